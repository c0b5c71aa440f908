package director

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
)

// This file turns conf's typed virtual servers (validated, every default
// applied) into the kernel entries they stand for: the director's half of
// the configuration, the kernel's names and numbers.

// Key returns the IPVS service of a configured virtual server. The
// integrator uses it to address health verdicts.
func Key(vs *conf.VirtualServerSpec) ipvs.ServiceKey {
	if vs.Fwmark != 0 {
		return ipvs.ServiceKey{Fwmark: vs.Fwmark, V6: vs.Family == conf.FamilyInet6}
	}
	// conf.Protocol values are the IP protocol numbers IPVS keys by.
	return ipvs.ServiceKey{Protocol: ipvs.Protocol(vs.Protocol), Addr: vs.Addr}
}

// The kernel's values of conf's enums.
var (
	schedulerFlags = []struct {
		conf conf.SchedulerFlags
		bit  uint32
	}{
		{conf.SchedFlagFallback, ipvs.FlagSched1}, // IP_VS_SVC_F_SCHED_SH_FALLBACK, _MH_FALLBACK
		{conf.SchedFlagPort, ipvs.FlagSched2},     // IP_VS_SVC_F_SCHED_SH_PORT, _MH_PORT
		{conf.SchedFlagOnePacket, ipvs.FlagOnePacket},
	}
	forwardings = map[conf.Forwarding]ipvs.Forwarding{
		conf.ForwardNAT: ipvs.ForwardNAT, conf.ForwardDR: ipvs.ForwardDR, conf.ForwardTunnel: ipvs.ForwardTunnel,
	}
	tunnelTypes = map[conf.TunnelType]ipvs.TunnelType{
		conf.TunnelIPIP: ipvs.TunnelIPIP, conf.TunnelGUE: ipvs.TunnelGUE, conf.TunnelGRE: ipvs.TunnelGRE,
	}
	tunnelChecksums = map[conf.TunnelChecksum]uint16{
		conf.TunnelCsumNone: ipvs.TunnelNoCsum, conf.TunnelCsum: ipvs.TunnelCsum, conf.TunnelRemCsum: ipvs.TunnelRemCsum,
	}
)

// vsModel is a configured virtual server as kernel entries: everything
// needed to compute its desired state from the health state.
type vsModel struct {
	vsHead
	reals []realModel
}

// vsHead is a vsModel but its real servers: comparable, so that models are
// compared with == and no field list.
type vsHead struct {
	name       string
	svc        ipvs.Service
	quorum     int
	hysteresis int
	inhibit    bool
	hasSorry   bool
	sorry      ipvs.Destination // the sorry server, when hasSorry
}

type realModel struct {
	name      string
	tmpl      ipvs.Destination // every field but Weight
	weight    int              // configured
	checked   bool
	initialUp bool
}

// head converts all of a virtual server but its real servers.
func head(vs *conf.VirtualServerSpec) vsHead {
	key := Key(vs)
	maxBits := 32
	if key.IsV6() {
		maxBits = 128
	}
	h := vsHead{name: vs.Name, quorum: vs.Quorum, hysteresis: vs.Hysteresis, inhibit: vs.InhibitOnFailure,
		svc: ipvs.Service{Key: key, ServiceSettings: ipvs.ServiceSettings{Scheduler: vs.Scheduler.String(), NetmaskBits: maxBits}}}
	if h.name == "" {
		h.name = key.String()
	}
	for _, f := range schedulerFlags {
		if vs.SchedulerFlags&f.conf != 0 {
			h.svc.Flags |= f.bit
		}
	}
	if vs.Persistence > 0 {
		h.svc.Flags |= ipvs.FlagPersistent
		h.svc.Timeout = uint32(vs.Persistence.Seconds())
		h.svc.NetmaskBits = vs.PersistenceGranularity
	}
	if vs.Sorry.IsValid() {
		h.hasSorry, h.sorry = true, dest(vs, vs.Sorry, vs.Forwarding)
		h.sorry.Weight = vs.SorryWeight
	}
	return h
}

// realOf converts one real server of vs.
func realOf(vs *conf.VirtualServerSpec, rs *conf.RealServerSpec) realModel {
	d := dest(vs, rs.Addr, rs.Forwarding)
	d.UpperThreshold, d.LowerThreshold = rs.UpperThreshold, rs.LowerThreshold
	return realModel{name: rs.Name, tmpl: d, weight: rs.Weight, checked: rs.Check != nil,
		initialUp: rs.Check == nil || rs.Check.InitialUp}
}

// dest is a destination of vs at addr, weight unset.
func dest(vs *conf.VirtualServerSpec, addr netip.AddrPort, f conf.Forwarding) ipvs.Destination {
	d := ipvs.Destination{Addr: addr, DestSettings: ipvs.DestSettings{Forwarding: forwardings[f]}}
	if f == conf.ForwardTunnel {
		d.TunnelType, d.TunnelPort = tunnelTypes[vs.Tunnel.Type], vs.Tunnel.Port
		d.TunnelFlags = tunnelChecksums[vs.Tunnel.Checksum]
	}
	return d
}

// model converts one virtual server.
func model(vs *conf.VirtualServerSpec) vsModel {
	m := vsModel{vsHead: head(vs), reals: make([]realModel, len(vs.RealServers))}
	for j := range vs.RealServers {
		m.reals[j] = realOf(vs, &vs.RealServers[j])
	}
	return m
}

// is reports whether m is vs's model, converting without allocating: a
// reload compares every virtual server and converts only those that
// changed.
func (m *vsModel) is(vs *conf.VirtualServerSpec) bool {
	if len(m.reals) != len(vs.RealServers) || m.vsHead != head(vs) {
		return false
	}
	for j := range vs.RealServers {
		if m.reals[j] != realOf(vs, &vs.RealServers[j]) {
			return false
		}
	}
	return true
}

// equal reports whether two models program and judge alike.
func (m *vsModel) equal(o *vsModel) bool {
	return m.vsHead == o.vsHead && slices.Equal(m.reals, o.reals)
}

func vsName(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("virtual_server[%d] %q", i, name)
	}
	return fmt.Sprintf("virtual_server[%d]", i)
}

// modelDiff is what a reload changed.
type modelDiff struct {
	// structural: virtual servers were added, removed, reordered or
	// renamed, so per-position bookkeeping (index, snapshot order, quorum
	// names) must be rebuilt.
	structural bool
	changed    []ipvs.ServiceKey // services added, removed or whose model changed
}

// rebuildModel converts the virtual servers, keeping the model of old
// where it is equal (its slices too, so an unchanged table costs no
// memory), and says what changed. Two virtual servers of one service are
// refused: conf does not let them through, and the reconciler's per-service
// state could not tell them apart.
func rebuildModel(vss []conf.VirtualServerSpec, old []vsModel) ([]vsModel, modelDiff, error) {
	out := make([]vsModel, len(vss))
	diff := modelDiff{structural: len(vss) != len(old)}
	seen := make(map[ipvs.ServiceKey]int, len(vss))
	for i := range vss {
		key := Key(&vss[i])
		if prev, dup := seen[key]; dup {
			return nil, diff, fmt.Errorf("%s: service %s already defined by %s", vsName(i, vss[i].Name), key, vsName(prev, vss[prev].Name))
		}
		seen[key] = i
		if i < len(old) && old[i].is(&vss[i]) {
			out[i] = old[i]
			continue
		}
		m := model(&vss[i])
		out[i] = m
		if i >= len(old) || old[i].svc.Key != m.svc.Key || old[i].name != m.name {
			diff.structural = true
		}
		diff.changed = append(diff.changed, m.svc.Key)
	}
	if !diff.structural {
		return out, diff, nil // the same services at the same positions
	}
	diff.changed = nil
	// Added, removed, moved or renamed: compare by service.
	prev := make(map[ipvs.ServiceKey]*vsModel, len(old))
	for i := range old {
		prev[old[i].svc.Key] = &old[i]
	}
	for i := range out {
		key := out[i].svc.Key
		if o := prev[key]; o == nil || !o.equal(&out[i]) {
			diff.changed = append(diff.changed, key)
		}
		delete(prev, key)
	}
	for key := range prev {
		diff.changed = append(diff.changed, key)
	}
	return out, diff, nil
}
