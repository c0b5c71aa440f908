package director

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
)

// Key returns the IPVS service key of a configured virtual server. The
// integrator uses it to address health verdicts.
func Key(vs conf.VirtualServer) (ipvs.ServiceKey, error) {
	if vs.Fwmark != 0 {
		if vs.Address.IsValid() {
			return ipvs.ServiceKey{}, fmt.Errorf("both address and fwmark set (a service is one or the other)")
		}
		if vs.Fwmark < 0 || int64(vs.Fwmark) > 0xffffffff {
			return ipvs.ServiceKey{}, fmt.Errorf("fwmark %d out of range 1..4294967295", vs.Fwmark)
		}
		k := ipvs.ServiceKey{Fwmark: uint32(vs.Fwmark)}
		switch strings.ToLower(vs.Family) {
		case "", "inet", "ipv4":
		case "inet6", "ipv6":
			k.V6 = true
		default:
			return ipvs.ServiceKey{}, fmt.Errorf("family %q: want inet or inet6", vs.Family)
		}
		return k, nil
	}
	if !vs.Address.IsValid() {
		return ipvs.ServiceKey{}, fmt.Errorf("neither address nor fwmark set")
	}
	if vs.Port < 0 || vs.Port > 65535 {
		return ipvs.ServiceKey{}, fmt.Errorf("port %d out of range 0..65535", vs.Port)
	}
	p, err := ipvs.ParseProtocol(vs.Protocol)
	if err != nil {
		return ipvs.ServiceKey{}, err
	}
	return ipvs.ServiceKey{Protocol: p, Addr: netip.AddrPortFrom(vs.Address.Unmap(), uint16(vs.Port))}, nil
}

// RealAddr returns the destination address of a configured real server: a
// real server without a port uses its virtual server's port.
func RealAddr(vs conf.VirtualServer, rs conf.RealServer) netip.AddrPort {
	port := rs.Port
	if port == 0 && vs.Fwmark == 0 {
		port = vs.Port
	}
	return netip.AddrPortFrom(rs.Address.Unmap(), uint16(port))
}

// vsModel is a validated virtual server: everything needed to compute its
// desired kernel entries from the health state.
type vsModel struct {
	name       string
	svc        ipvs.Service
	reals      []realModel
	quorum     int
	hysteresis int
	inhibit    bool
	sorry      *ipvs.Destination
	in         vsInputs // what it was built from
}

type realModel struct {
	name      string
	tmpl      ipvs.Destination // every field but Weight
	weight    int              // configured
	checked   bool
	initialUp bool
}

func vsName(i int, vs conf.VirtualServer) string {
	if vs.Name != "" {
		return fmt.Sprintf("virtual_server[%d] %q", i, vs.Name)
	}
	return fmt.Sprintf("virtual_server[%d]", i)
}

// buildModel validates the virtual servers and turns them into models. The
// error names the virtual server (and real server) and the field at fault.
func buildModel(vss []conf.VirtualServer) ([]vsModel, error) {
	out := make([]vsModel, 0, len(vss))
	seen := make(map[ipvs.ServiceKey]int, len(vss))
	for i, vs := range vss {
		m, err := buildVS(vs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", vsName(i, vs), err)
		}
		if prev, dup := seen[m.svc.Key]; dup {
			return nil, fmt.Errorf("%s: service %s already defined by %s", vsName(i, vs), m.svc.Key, vsName(prev, vss[prev]))
		}
		seen[m.svc.Key] = i
		m.name = vs.Name
		if m.name == "" {
			m.name = m.svc.Key.String()
		}
		out = append(out, m)
	}
	return out, nil
}

func buildVS(vs conf.VirtualServer) (vsModel, error) {
	key, err := Key(vs)
	if err != nil {
		return vsModel{}, err
	}
	m := vsModel{quorum: vs.Quorum, hysteresis: vs.Hysteresis, inhibit: vs.InhibitOnFailure}
	if m.quorum <= 0 {
		m.quorum = 1 // keepalived's default
	}
	if m.hysteresis < 0 {
		return m, fmt.Errorf("hysteresis %d is negative", vs.Hysteresis)
	}
	svc := ipvs.Service{Key: key, ServiceSettings: ipvs.ServiceSettings{Scheduler: strings.ToLower(vs.Scheduler)}}
	if svc.Scheduler == "" {
		svc.Scheduler = "wlc"
	}
	for _, f := range vs.SchedulerFlags {
		bit, ok := schedulerFlags[strings.ToLower(f)]
		if !ok {
			return m, fmt.Errorf("scheduler_flags: unknown flag %q (want sh-port, sh-fallback, mh-port, mh-fallback, ops)", f)
		}
		svc.Flags |= bit
	}
	maxBits := 32
	if key.IsV6() {
		maxBits = 128
	}
	svc.NetmaskBits = maxBits
	if vs.PersistenceTimeout.D() > 0 {
		svc.Flags |= ipvs.FlagPersistent
		secs := vs.PersistenceTimeout.D().Seconds()
		if secs < 1 || secs > float64(^uint32(0)) {
			return m, fmt.Errorf("persistence_timeout %s out of range 1s..%ds", vs.PersistenceTimeout, ^uint32(0))
		}
		svc.Timeout = uint32(secs)
		if g := vs.PersistenceGranularity; g != 0 {
			if g < 1 || g > maxBits {
				return m, fmt.Errorf("persistence_granularity /%d out of range 1..%d", g, maxBits)
			}
			svc.NetmaskBits = g
		}
	} else if vs.PersistenceTimeout.D() < 0 {
		return m, fmt.Errorf("persistence_timeout %s is negative", vs.PersistenceTimeout)
	}
	m.svc = svc

	fwd, err := ipvs.ParseForwarding(vs.Forwarding)
	if err != nil {
		return m, fmt.Errorf("forwarding: %w", err)
	}
	tt, tport, tflags, err := parseTunnel(vs)
	if err != nil {
		return m, err
	}
	mkDest := func(addr netip.AddrPort, f ipvs.Forwarding) ipvs.Destination {
		d := ipvs.Destination{Addr: addr, DestSettings: ipvs.DestSettings{Forwarding: f}}
		if f == ipvs.ForwardTunnel {
			d.TunnelType, d.TunnelPort, d.TunnelFlags = tt, tport, tflags
		}
		return d
	}
	// m.reals[j] is real server j. Duplicates are found by scanning it,
	// cheaper than a map per virtual server for the usual handful of real
	// servers; large pools get the map.
	m.reals = make([]realModel, 0, len(vs.RealServers))
	var seen map[netip.AddrPort]int
	if len(vs.RealServers) > 16 {
		seen = make(map[netip.AddrPort]int, len(vs.RealServers))
	}
	dupOf := func(a netip.AddrPort) (int, bool) {
		if seen != nil {
			i, ok := seen[a]
			return i, ok
		}
		for i := range m.reals {
			if m.reals[i].tmpl.Addr == a {
				return i, true
			}
		}
		return 0, false
	}
	for j, rs := range vs.RealServers {
		// Formatted only for an error: a thousand services of ten real
		// servers are built on every reload.
		where := realName{j, rs.Name}
		if !rs.Address.IsValid() {
			return m, fmt.Errorf("%s: address missing", where)
		}
		if rs.Port < 0 || rs.Port > 65535 {
			return m, fmt.Errorf("%s: port %d out of range 0..65535", where, rs.Port)
		}
		addr := RealAddr(vs, rs)
		if prev, dup := dupOf(addr); dup {
			return m, fmt.Errorf("%s: %s already used by real_server[%d]", where, addr, prev)
		}
		f := fwd
		if rs.Forwarding != "" {
			if f, err = ipvs.ParseForwarding(rs.Forwarding); err != nil {
				return m, fmt.Errorf("%s: forwarding: %w", where, err)
			}
		}
		if rs.Weight < 0 || rs.Weight > ipvs.MaxWeight {
			return m, fmt.Errorf("%s: weight %d out of range 0..%d", where, rs.Weight, ipvs.MaxWeight)
		}
		if rs.UpperThreshold < 0 || rs.LowerThreshold < 0 || (rs.LowerThreshold > rs.UpperThreshold) {
			return m, fmt.Errorf("%s: thresholds lower=%d upper=%d: want 0 <= lower <= upper", where, rs.LowerThreshold, rs.UpperThreshold)
		}
		if addr.Addr().Is6() != key.IsV6() && f != ipvs.ForwardTunnel {
			return m, fmt.Errorf("%s: %s is not in the service's address family (only tun forwarding mixes families)", where, addr.Addr())
		}
		d := mkDest(addr, f)
		d.UpperThreshold, d.LowerThreshold = uint32(rs.UpperThreshold), uint32(rs.LowerThreshold)
		// conf has already overlaid the virtual server's check on the real
		// server's (and turned type "none" into nil): rs.Check is the
		// effective one.
		chk := rs.Check
		checked := chk != nil && chk.Type != "" && !strings.EqualFold(chk.Type, "none")
		initialUp := true
		if checked {
			switch strings.ToLower(chk.InitialState) {
			case "", "up":
			case "down":
				initialUp = false
			default:
				return m, fmt.Errorf("%s: check.initial_state %q: want up or down", where, chk.InitialState)
			}
		}
		m.reals = append(m.reals, realModel{name: rs.Name, tmpl: d, weight: rs.Weight, checked: checked, initialUp: initialUp})
		if seen != nil {
			seen[addr] = j
		}
	}
	if vs.SorryServer.IsValid() {
		addr := netip.AddrPortFrom(vs.SorryServer.Addr().Unmap(), vs.SorryServer.Port())
		if addr.Port() == 0 && key.Fwmark == 0 {
			addr = netip.AddrPortFrom(addr.Addr(), key.Addr.Port())
		}
		if _, dup := dupOf(addr); dup {
			return m, fmt.Errorf("sorry_server %s is also a real server", addr)
		}
		if addr.Addr().Is6() != key.IsV6() && fwd != ipvs.ForwardTunnel {
			return m, fmt.Errorf("sorry_server %s is not in the service's address family", addr)
		}
		if vs.SorryServerWeight < 0 || vs.SorryServerWeight > ipvs.MaxWeight {
			return m, fmt.Errorf("sorry_server_weight %d out of range 0..%d", vs.SorryServerWeight, ipvs.MaxWeight)
		}
		d := mkDest(addr, fwd)
		d.Weight = vs.SorryServerWeight
		m.sorry = &d
	}
	return m, nil
}

func parseTunnel(vs conf.VirtualServer) (ipvs.TunnelType, uint16, uint16, error) {
	var tt ipvs.TunnelType
	switch strings.ToLower(vs.TunnelType) {
	case "", "ipip":
		tt = ipvs.TunnelIPIP
	case "gue":
		tt = ipvs.TunnelGUE
	case "gre":
		tt = ipvs.TunnelGRE
	default:
		return 0, 0, 0, fmt.Errorf("tunnel_type %q: want ipip, gue or gre", vs.TunnelType)
	}
	if vs.TunnelPort < 0 || vs.TunnelPort > 65535 {
		return 0, 0, 0, fmt.Errorf("tunnel_port %d out of range 1..65535", vs.TunnelPort)
	}
	if tt == ipvs.TunnelGUE && vs.TunnelPort == 0 {
		return 0, 0, 0, fmt.Errorf("tunnel_type gue needs tunnel_port")
	}
	if tt != ipvs.TunnelGUE && vs.TunnelPort != 0 {
		return 0, 0, 0, fmt.Errorf("tunnel_port is only used with tunnel_type gue")
	}
	var flags uint16
	switch strings.ToLower(vs.TunnelChecksum) {
	case "", "none", "nocsum":
	case "csum":
		flags = ipvs.TunnelCsum
	case "remcsum":
		flags = ipvs.TunnelRemCsum
	default:
		return 0, 0, 0, fmt.Errorf("tunnel_checksum %q: want nocsum, csum or remcsum", vs.TunnelChecksum)
	}
	if flags != 0 && tt == ipvs.TunnelIPIP {
		return 0, 0, 0, fmt.Errorf("tunnel_checksum needs tunnel_type gue or gre")
	}
	return tt, uint16(vs.TunnelPort), flags, nil
}

// realName names a real server in error messages.
type realName struct {
	index int
	name  string
}

func (n realName) String() string {
	if n.name != "" {
		return fmt.Sprintf("real_server[%d] %q", n.index, n.name)
	}
	return fmt.Sprintf("real_server[%d]", n.index)
}

// vsInputs are the fields of a conf.VirtualServer that buildVS reads (and
// nothing else: check intervals or notify scripts do not change the
// kernel table), owned by the model so that a reload can tell which
// virtual servers changed even when the caller edits its configuration in
// place. Comparing them costs a small fraction of building the model, so
// a reload rebuilds only the virtual servers that changed.
// TestModelInputsCoverBuild mutates every field of the configuration and
// fails when one changes the model without changing these.
type vsInputs struct {
	scalars vsScalars
	flags   []string
	reals   []rsInputs
}

type vsScalars struct {
	name, family, protocol, scheduler, forwarding string
	tunnelType, tunnelChecksum                    string
	address                                       netip.Addr
	port, fwmark, tunnelPort, granularity         int
	quorum, hysteresis, sorryWeight               int
	persistence                                   conf.Duration
	inhibit                                       bool
	sorry                                         netip.AddrPort
}

type rsInputs struct {
	name, forwarding, checkType, initialState string
	address                                   netip.Addr
	port, weight, upper, lower                int
	check                                     bool
}

func scalarsOf(vs *conf.VirtualServer) vsScalars {
	return vsScalars{name: vs.Name, family: vs.Family, protocol: vs.Protocol, scheduler: vs.Scheduler,
		forwarding: vs.Forwarding, tunnelType: vs.TunnelType, tunnelChecksum: vs.TunnelChecksum,
		address: vs.Address, port: vs.Port, fwmark: vs.Fwmark, tunnelPort: vs.TunnelPort,
		granularity: vs.PersistenceGranularity, quorum: vs.Quorum, hysteresis: vs.Hysteresis,
		sorryWeight: vs.SorryServerWeight, persistence: vs.PersistenceTimeout, inhibit: vs.InhibitOnFailure,
		sorry: vs.SorryServer}
}

func rsInputsOf(rs *conf.RealServer) rsInputs {
	in := rsInputs{name: rs.Name, forwarding: rs.Forwarding, address: rs.Address, port: rs.Port,
		weight: rs.Weight, upper: rs.UpperThreshold, lower: rs.LowerThreshold}
	if rs.Check != nil {
		in.check, in.checkType, in.initialState = true, rs.Check.Type, rs.Check.InitialState
	}
	return in
}

func inputsOf(vs *conf.VirtualServer) vsInputs {
	in := vsInputs{scalars: scalarsOf(vs), flags: slices.Clone(vs.SchedulerFlags), reals: make([]rsInputs, len(vs.RealServers))}
	for i := range vs.RealServers {
		in.reals[i] = rsInputsOf(&vs.RealServers[i])
	}
	return in
}

// matches reports whether vs has these inputs, without allocating.
func (in *vsInputs) matches(vs *conf.VirtualServer) bool {
	if in.scalars != scalarsOf(vs) || !slices.Equal(in.flags, vs.SchedulerFlags) || len(in.reals) != len(vs.RealServers) {
		return false
	}
	for i := range vs.RealServers {
		if in.reals[i] != rsInputsOf(&vs.RealServers[i]) {
			return false
		}
	}
	return true
}

func (in *vsInputs) equal(o *vsInputs) bool {
	return in.scalars == o.scalars && slices.Equal(in.flags, o.flags) && slices.Equal(in.reals, o.reals)
}

// modelDiff is what a reload changed.
type modelDiff struct {
	// structural: virtual servers were added, removed, reordered or
	// renamed, so per-position bookkeeping (index, snapshot order, quorum
	// names) must be rebuilt.
	structural bool
	changed    []ipvs.ServiceKey // services added, removed or whose inputs changed
}

// rebuildModel is buildModel reusing the models of old whose inputs are
// unchanged: when every virtual server keeps its position, key and name
// (the usual reload), only the changed ones are built and validated (the
// others were valid and build the same). Otherwise it builds everything,
// which validates in order exactly as buildModel does.
func rebuildModel(vss []conf.VirtualServer, old []vsModel) ([]vsModel, modelDiff, error) {
	var diff modelDiff
	if len(vss) == len(old) {
		out := make([]vsModel, len(vss))
		inPlace := true
		for i := range vss {
			vs := &vss[i]
			if old[i].in.matches(vs) {
				out[i] = old[i]
				continue
			}
			m, err := buildVS(*vs)
			if err != nil {
				return nil, diff, fmt.Errorf("%s: %w", vsName(i, *vs), err)
			}
			m.name = vs.Name
			if m.name == "" {
				m.name = m.svc.Key.String()
			}
			if m.svc.Key != old[i].svc.Key || m.name != old[i].name {
				inPlace = false
				break
			}
			m.in = inputsOf(vs)
			out[i] = m
			diff.changed = append(diff.changed, m.svc.Key)
		}
		if inPlace {
			return out, diff, nil
		}
	}
	m, err := buildModel(vss)
	if err != nil {
		return nil, diff, err
	}
	diff = modelDiff{structural: true}
	prev := make(map[ipvs.ServiceKey]*vsModel, len(old))
	for i := range old {
		prev[old[i].svc.Key] = &old[i]
	}
	for i := range m {
		m[i].in = inputsOf(&vss[i])
		key := m[i].svc.Key
		if o := prev[key]; o == nil || !o.in.equal(&m[i].in) || o.name != m[i].name {
			diff.changed = append(diff.changed, key)
		}
		delete(prev, key)
	}
	for key := range prev {
		diff.changed = append(diff.changed, key)
	}
	return m, diff, nil
}
