package conf

import (
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Compile turns a configuration that Parse or Load returned (defaults
// applied, validated) into typed values, once. It cannot fail on such a
// configuration; on one that did not pass validation the values it could
// not read are left zero. It does not modify c and shares no slice with it.
func Compile(c *Config) *Spec {
	s := &Spec{
		Global: compileGlobal(&c.Global),
		IPVS: IPVSSpec{
			TimeoutTCP: c.IPVS.TimeoutTCP.D(), TimeoutTCPFin: c.IPVS.TimeoutTCPFin.D(), TimeoutUDP: c.IPVS.TimeoutUDP.D(),
		},
	}
	group := map[string]string{}
	for _, g := range c.VRRPSyncGroups {
		for _, n := range g.Instances {
			group[n] = g.Name
		}
		s.SyncGroups = append(s.SyncGroups, SyncGroupSpec{
			Name: g.Name, Instances: slices.Clone(g.Instances),
			Notify: GroupNotifySpec{Master: slices.Clone(g.NotifyMaster), Backup: slices.Clone(g.NotifyBackup), Fault: slices.Clone(g.NotifyFault)},
		})
	}
	for i := range c.VRRP {
		in := compileVRRP(&c.VRRP[i])
		in.SyncGroup = group[in.Name]
		s.VRRP = append(s.VRRP, in)
	}
	for i := range c.VirtualServers {
		s.VirtualServers = append(s.VirtualServers, compileVS(&c.VirtualServers[i]))
	}
	if x := c.Sync; x != nil {
		s.Sync = &ConnSyncSpec{
			Interface: x.Interface, VRRPInstance: x.VRRPInstance, SyncID: uint8(x.SyncID), MaxLen: uint16(x.MaxLen),
			McastGroup: x.McastGroup.Unmap(), McastPort: uint16(x.McastPort), McastTTL: uint8(x.McastTTL),
		}
	}
	if x := c.Cluster; x != nil {
		s.Cluster = &ClusterSpec{
			Name: x.Name, Bind: unmapAP(x.Bind), Advertise: unmapAP(x.Advertise),
			Peers: slices.Clone(x.Peers), SecretFile: x.SecretFile,
		}
	}
	if x := c.BGP; x != nil {
		s.BGP = compileBGP(x)
	}
	return s
}

func compileBGP(x *BGP) *BGPSpec {
	b := &BGPSpec{
		ASN: uint32(x.ASN), RouterID: x.RouterID.Unmap(), ListenPort: uint16(x.ListenPort),
		GracefulShutdown: x.GracefulShutdown, Device: x.Device,
	}
	for _, p := range x.Peers {
		ps := BGPPeerSpec{
			Address: p.Address.Unmap(), ASN: uint32(p.ASN), Port: uint16(p.Port), HoldTime: p.HoldTime.D(),
			PasswordFile: p.PasswordFile, Multihop: uint8(p.Multihop), LocalAddress: p.LocalAddress.Unmap(),
		}
		if f := p.BFD; f != nil {
			ps.BFD = &BFDSpec{MinTx: f.MinTx.D(), MinRx: f.MinRx.D(), Multiplier: uint8(f.Multiplier)}
		}
		b.Peers = append(b.Peers, ps)
	}
	for _, a := range x.Announce {
		as := BGPAnnounceSpec{Prefix: a.Prefix.Masked(), VirtualServers: slices.Clone(a.VirtualServers), MED: uint32(a.MED)}
		for _, c := range a.Communities {
			v, _ := ParseCommunity(c)
			as.Communities = append(as.Communities, v)
		}
		b.Announce = append(b.Announce, as)
	}
	return b
}

// LoadSpec is Load and Compile: the file at path as typed values. Its
// errors are Load's.
func LoadSpec(path string) (*Spec, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	return Compile(c), nil
}

func compileGlobal(g *Global) GlobalSpec {
	lvl, _ := ParseLogLevel(g.LogLevel)
	f, _ := ParseLogFormat(g.LogFormat)
	return GlobalSpec{
		RouterID: g.RouterID, ControlSocket: g.ControlSocket, StateDir: g.StateDir, MetricsListen: g.MetricsListen,
		LogLevel: lvl, LogFormat: f, NotifyTimeout: g.NotifyTimeout.D(),
	}
}

func compileVRRP(in *VRRPInstance) VRRPInstanceSpec {
	s := VRRPInstanceSpec{
		Name: in.Name, Interface: in.Interface,
		VRID: uint8(in.VRID), Priority: uint8(in.Priority), Version: uint8(in.Version),
		AdvertInterval: in.AdvertInterval.D(), Preempt: in.Preempt, PreemptDelay: in.PreemptDelay.D(),
		UseVMAC: in.UseVMAC, Family: FamilyInet,
		VirtualAddresses: unmapPrefixes(in.VirtualAddresses), ExcludedAddresses: unmapPrefixes(in.ExcludedAddresses),
		UnicastSource: in.UnicastSource.Unmap(),
		Notify: VRRPNotifySpec{
			Master: slices.Clone(in.NotifyMaster), Backup: slices.Clone(in.NotifyBackup),
			Fault: slices.Clone(in.NotifyFault), Stop: slices.Clone(in.NotifyStop),
		},
		GARP: GARPSpec{Delay: in.GARP.Delay.D(), Repeat: in.GARP.Repeat, Refresh: in.GARP.Refresh.D()},
	}
	dev := in.Interface
	if in.UseVMAC {
		s.VMACInterface = in.VMACInterface
		dev = in.VMACInterface
	}
	if len(s.VirtualAddresses) > 0 && s.VirtualAddresses[0].Addr().Is6() {
		s.Family = FamilyInet6
	}
	for _, o := range in.AddressOptions {
		ifc := o.Interface
		if ifc == "" {
			ifc = dev
		}
		s.AddressOptions = append(s.AddressOptions, AddressOptionSpec{Address: o.Address.Unmap(), Interface: ifc, Label: o.Label})
	}
	for _, p := range in.UnicastPeers {
		s.UnicastPeers = append(s.UnicastPeers, p.Unmap())
	}
	if in.Auth != nil && in.Version == 2 {
		s.Auth.Type, _ = ParseAuthType(in.Auth.Type)
		if s.Auth.Type == AuthPass {
			s.Auth.Password = in.Auth.Password
		}
	}
	for _, t := range in.TrackInterfaces {
		s.TrackInterfaces = append(s.TrackInterfaces, TrackInterfaceSpec(t))
	}
	for _, t := range in.TrackScripts {
		s.TrackScripts = append(s.TrackScripts, TrackScriptSpec{
			Name: t.Name, Command: slices.Clone(t.Command), Interval: t.Interval.D(), Timeout: t.Timeout.D(),
			Rise: t.Rise, Fall: t.Fall, Weight: t.Weight,
		})
	}
	for _, t := range in.TrackVirtualSrvs {
		s.TrackVirtualServers = append(s.TrackVirtualServers, TrackVirtualServerSpec(t))
	}
	return s
}

func compileVS(vs *VirtualServer) VirtualServerSpec {
	s := VirtualServerSpec{
		Name: vs.Name, Persistence: vs.PersistenceTimeout.D(), PersistenceGranularity: vs.PersistenceGranularity,
		Quorum: vs.Quorum, Hysteresis: vs.Hysteresis, InhibitOnFailure: vs.InhibitOnFailure,
		SorryWeight: vs.SorryServerWeight, Family: FamilyInet,
	}
	if vs.Fwmark > 0 {
		s.Fwmark = uint32(vs.Fwmark)
		s.Family, _ = ParseFamily(vs.Family)
	} else {
		s.Addr = netip.AddrPortFrom(vs.Address.Unmap(), port16(vs.Port))
		if s.Addr.Addr().Is6() {
			s.Family = FamilyInet6
		}
	}
	s.Protocol, _ = ParseProtocol(vs.Protocol)
	s.Scheduler, _ = ParseScheduler(vs.Scheduler)
	for _, f := range vs.SchedulerFlags {
		s.SchedulerFlags |= schedulerFlagNames[f].flag
	}
	s.Forwarding, _ = ParseForwarding(vs.Forwarding)
	if vs.TunnelType != "" {
		s.Tunnel.Type, _ = ParseTunnelType(vs.TunnelType)
		s.Tunnel.Port = port16(vs.TunnelPort)
		if vs.TunnelChecksum != "" {
			s.Tunnel.Checksum, _ = ParseTunnelChecksum(vs.TunnelChecksum)
		}
	}
	if vs.SorryServer.Addr().IsValid() {
		s.Sorry = unmapAP(vs.SorryServer)
	}
	for i := range vs.RealServers {
		s.RealServers = append(s.RealServers, compileRS(&vs.RealServers[i]))
	}
	return s
}

func compileRS(rs *RealServer) RealServerSpec {
	s := RealServerSpec{
		Name: rs.Name, Addr: netip.AddrPortFrom(rs.Address.Unmap(), port16(rs.Port)), Weight: rs.Weight,
		UpperThreshold: uint32(max(rs.UpperThreshold, 0)), LowerThreshold: uint32(max(rs.LowerThreshold, 0)),
		NotifyUp: slices.Clone(rs.NotifyUp), NotifyDown: slices.Clone(rs.NotifyDown),
	}
	s.Forwarding, _ = ParseForwarding(rs.Forwarding)
	if rs.Check != nil {
		s.Check = CompileCheck(rs.Check, s.Addr)
	}
	return s
}

// CompileCheck compiles the effective check (RealServer.Check, defaults
// applied) of the real server at rs, as Compile does; nil for type none.
// Compile is the way to a whole spec; this serves a caller that holds one
// real server's configuration, such as status output matching it to its
// probe.
func CompileCheck(c *Check, rs netip.AddrPort) *CheckSpec {
	kind, err := ParseCheckKind(c.Type)
	if err != nil {
		return nil
	}
	s := &CheckSpec{
		Kind: kind, Interval: c.Interval.D(), Timeout: c.Timeout.D(), Rise: c.Rise, Fall: c.Fall,
		RetryDelay: c.RetryDelay.D(), Warmup: c.Warmup.D(), InitialUp: c.InitialState == "up",
		Connect: rs, Source: c.SourceAddress.Unmap(),
	}
	if c.ConnectAddress.IsValid() {
		s.Connect = netip.AddrPortFrom(c.ConnectAddress.Unmap(), s.Connect.Port())
	}
	if c.ConnectPort != 0 {
		s.Connect = netip.AddrPortFrom(s.Connect.Addr(), port16(c.ConnectPort))
	}
	switch kind {
	case CheckHTTP, CheckHTTPS:
		s.HTTP = compileHTTP(c, kind, s.Connect)
	case CheckExec:
		s.Exec = ExecCheckSpec{Command: slices.Clone(c.Command), DynamicWeight: c.DynamicWeight}
	case CheckDNS:
		s.DNS = DNSCheckSpec{QueryName: c.QueryName, QueryType: dns.StringToType[strings.ToUpper(c.QueryType)], ExpectAnswer: c.ExpectAnswer}
	case CheckUDP:
		s.UDP = UDPCheckSpec{Payload: bytesOrNil(c.Payload), ExpectPayload: bytesOrNil(c.ExpectPayload), RequireReply: c.RequireReply}
	}
	return s
}

func compileHTTP(c *Check, kind CheckKind, connect netip.AddrPort) HTTPCheckSpec {
	h := HTTPCheckSpec{Host: c.Host}
	if h.Host == "" {
		h.Host = connect.String()
		if kind == CheckHTTP && connect.Port() == 80 || kind == CheckHTTPS && connect.Port() == 443 {
			h.Host = HostLiteral(connect.Addr())
		}
	}
	urls := c.URLs
	if len(urls) == 0 {
		urls = []CheckURL{{Path: c.Path, ExpectStatus: c.ExpectStatus, ExpectBody: c.ExpectBody, Digest: c.Digest}}
	}
	for _, u := range urls {
		us := URLSpec{Path: u.Path, ExpectStatus: slices.Clone(u.ExpectStatus), ExpectBody: u.ExpectBody}
		if u.Digest != "" {
			us.Digest, _ = hex.DecodeString(u.Digest)
		}
		h.URLs = append(h.URLs, us)
	}
	if kind == CheckHTTPS {
		h.TLSVerify, h.CAFile = c.TLSVerify, c.CAFile
		switch {
		case c.ServerName != "":
			h.ServerName = c.ServerName
		case c.Host != "":
			h.ServerName = c.Host
			if host, _, err := net.SplitHostPort(c.Host); err == nil {
				h.ServerName = host
			}
		default:
			h.ServerName = connect.Addr().String()
		}
	}
	return h
}

// HostLiteral writes a as the host of a URL or Host header: IPv6 in
// brackets.
func HostLiteral(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func port16(p int) uint16 {
	if p < 0 || p > 65535 {
		return 0
	}
	return uint16(p)
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func unmapPrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			out[i] = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
	}
	return out
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
