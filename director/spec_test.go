package director

import (
	"net/netip"
	"slices"

	"github.com/haldir-lb/haldir/conf"
)

// specOf compiles a configuration the tests write as raw conf values.
// conf applies its defaults while loading a file, which these fixtures
// skip, so the keys they leave out get conf's defaults here first (the
// file's meaning of an absent key; an explicit zero weight stays zero), and
// conf.Compile does the rest. c is not modified.
func specOf(c *conf.Config) *conf.Spec {
	out := *c
	out.VirtualServers = slices.Clone(c.VirtualServers)
	for i := range out.VirtualServers {
		vs := &out.VirtualServers[i]
		vs.Protocol = or(vs.Protocol, conf.DefaultProtocol)
		vs.Scheduler = or(vs.Scheduler, conf.DefaultScheduler)
		vs.Forwarding = or(vs.Forwarding, conf.DefaultForwarding)
		if vs.Fwmark != 0 {
			vs.Family = or(vs.Family, "inet")
		}
		if vs.Quorum == 0 {
			vs.Quorum = conf.DefaultQuorum
		}
		v6 := vs.Family == "inet6" || vs.Address.Is6()
		if vs.PersistenceGranularity == 0 {
			vs.PersistenceGranularity = 32
			if v6 {
				vs.PersistenceGranularity = 128
			}
		}
		if vs.SorryServer.IsValid() && vs.SorryServer.Port() == 0 {
			vs.SorryServer = netip.AddrPortFrom(vs.SorryServer.Addr(), uint16(vs.Port))
		}
		tun := vs.Forwarding == "tun"
		vs.RealServers = slices.Clone(vs.RealServers)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			if rs.Port == 0 {
				rs.Port = vs.Port
			}
			rs.Forwarding = or(rs.Forwarding, vs.Forwarding)
			tun = tun || rs.Forwarding == "tun"
			if rs.Check != nil {
				chk := *rs.Check
				chk.InitialState = or(chk.InitialState, conf.DefaultInitialState)
				rs.Check = &chk
			}
		}
		if tun {
			vs.TunnelType = or(vs.TunnelType, conf.DefaultTunnelType)
		}
	}
	return conf.Compile(&out)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
