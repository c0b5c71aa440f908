package director

import (
	"net/netip"
	"slices"

	"github.com/haldir-lb/haldir/ipvs"
)

// desiredSvc is the kernel state wanted for one service, with what the
// snapshot needs to explain it.
type desiredSvc struct {
	model       *vsModel
	svc         ipvs.Service
	dests       []ipvs.Destination
	reals       []realState
	aliveWeight int
	quorumUp    bool
	sorry       bool // the sorry server replaces the pool
}

type realState struct {
	healthy    bool
	known      bool // a verdict was received
	effective  int  // weight while healthy (operator's, dynamic or configured)
	present    bool // wanted in the kernel
	overridden bool // the operator's weight is in force (haldir drain)
}

// desired computes the kernel state wanted for one virtual server from its
// model, the health verdicts, the operator's weight overrides and the
// quorum memory q. It is pure: it reads health, ops and q and changes none
// (the caller records the quorum it found, see quorumMemory), and its
// result depends only on m, the verdicts and overrides of m's real servers
// and m's remembered quorum, which is why a pass may recompute only the
// services a reload, a verdict or an override touched.
//
// Semantics, per virtual server:
//   - A real server without a check (none configured, or type "none") is
//     always up. A checked one is in its check's initial_state until its
//     first verdict ("" counts as up, keepalived's default without alpha).
//   - Effective weight: the operator's override (haldir drain) when set,
//     else the verdict's dynamic weight when set, else the configured
//     weight. An override does not change health: a drained real server
//     that fails its check is removed like any other, and one that
//     recovers comes back at the override's weight. It counts in the
//     quorum at that weight (a server drained to 0 serves no new
//     connection, so it adds nothing).
//   - A down real server is removed, or kept with weight 0 under
//     inhibit_on_failure (established connections are not cut).
//   - Quorum, like keepalived: alive = sum of effective weights of healthy
//     real servers (quorumMemory.next has the hysteresis rule).
//   - While the quorum is lost and a sorry_server is configured, the sorry
//     server replaces the pool: it is the only destination, and the real
//     servers are removed (even under inhibit_on_failure) so no new
//     connection reaches a pool too small to serve it. Without a sorry
//     server the pool stays as computed.
func desired(m *vsModel, health map[healthKey]Verdict, ops map[healthKey]int, q quorumMemory) *desiredSvc {
	key := m.svc.Key
	d := &desiredSvc{model: m, svc: m.svc, reals: make([]realState, len(m.reals))}
	for j, rm := range m.reals {
		rs := realState{healthy: true, effective: rm.weight}
		if rm.checked {
			rs.healthy = rm.initialUp
			if v, ok := health[healthKey{key, rm.tmpl.Addr}]; ok {
				rs.known, rs.healthy = true, v.Up
				if v.WeightSet && v.Weight >= 0 {
					rs.effective = min(v.Weight, ipvs.MaxWeight)
				}
			}
		}
		if w, ok := ops[healthKey{key, rm.tmpl.Addr}]; ok {
			rs.effective, rs.overridden = w, true
		}
		if rs.healthy {
			d.aliveWeight += rs.effective
		}
		d.reals[j] = rs
	}
	d.quorumUp = q.next(m, d.aliveWeight)
	d.sorry = !d.quorumUp && m.hasSorry
	if d.sorry {
		d.dests = []ipvs.Destination{m.sorry}
	} else {
		d.dests = make([]ipvs.Destination, 0, len(m.reals))
		for j, rm := range m.reals {
			rs := &d.reals[j]
			dst := rm.tmpl
			switch {
			case rs.healthy:
				dst.Weight = rs.effective
			case m.inhibit:
				dst.Weight = 0
			default:
				continue
			}
			rs.present = true
			d.dests = append(d.dests, dst)
		}
		if orderSensitive(m.svc.Scheduler) {
			canonical(d.dests) // order.go
		}
	}
	return d
}

// ServiceStatus is the state of one configured virtual server after the
// last pass.
type ServiceStatus struct {
	Name        string
	Key         ipvs.ServiceKey
	Scheduler   string
	InKernel    bool
	QuorumUp    bool
	AliveWeight int // sum of effective weights of healthy real servers
	Quorum      int
	Hysteresis  int
	SorryActive bool // the sorry server replaces the pool
	Stats       ipvs.Stats
	Reals       []RealStatus
}

// RealStatus is the state of one real server (or the sorry server).
type RealStatus struct {
	Name             string
	Addr             netip.AddrPort
	Sorry            bool // this is the sorry server
	Checked          bool // false: no health check, always up
	Healthy          bool
	HealthKnown      bool // a verdict was received (else the initial state applies)
	ConfiguredWeight int
	// Overridden: an operator's weight (haldir drain) replaces the
	// configured and dynamic ones; OverrideWeight is that weight.
	Overridden      bool
	OverrideWeight  int
	EffectiveWeight int  // weight wanted in the kernel (0 when down and inhibited)
	InKernel        bool // present in the kernel after the pass
	KernelWeight    int
	ActiveConns     uint32
	InactiveConns   uint32
	Stats           ipvs.Stats
}

// Snapshot returns the state of every configured virtual server as of the
// last pass (kernel presence, weights and counters come from the kernel
// read, updated by the pass's successful writes; a ReconcileChanges pass
// reads nothing, so counters are those of the last full pass).
func (r *Reconciler) Snapshot() []ServiceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.snap)
	for i := range out {
		out[i].Reals = slices.Clone(out[i].Reals)
	}
	return out
}

// snapshot describes the pass that used model (a SetConfig during the pass
// shows in the next one).
func snapshot(model []vsModel, want map[ipvs.ServiceKey]*desiredSvc, cur map[ipvs.ServiceKey]*kstate) []ServiceStatus {
	out := make([]ServiceStatus, 0, len(model))
	for i := range model {
		out = append(out, snapshotOne(&model[i], want, cur))
	}
	return out
}

// snapshotOne is one virtual server's entry of snapshot.
func snapshotOne(m *vsModel, want map[ipvs.ServiceKey]*desiredSvc, cur map[ipvs.ServiceKey]*kstate) ServiceStatus {
	d := want[m.svc.Key]
	st := cur[m.svc.Key]
	ss := ServiceStatus{Name: m.name, Key: m.svc.Key, Scheduler: m.svc.Scheduler, InKernel: st != nil,
		QuorumUp: d.quorumUp, AliveWeight: d.aliveWeight, Quorum: m.quorum, Hysteresis: m.hysteresis, SorryActive: d.sorry}
	kd := destLookup(nil)
	if st != nil {
		ss.Stats = st.svc.Stats
		kd = destLookup(st.dests)
	}
	if n := len(m.reals); n > 0 {
		ss.Reals = make([]RealStatus, 0, n+1)
	}
	fill := func(rs *RealStatus) {
		if i, ok := kd(rs.Addr); ok {
			x := &st.dests[i]
			rs.InKernel, rs.KernelWeight = true, x.Weight
			rs.ActiveConns, rs.InactiveConns, rs.Stats = x.ActiveConns, x.InactiveConns, x.Stats
		}
	}
	for j, rm := range m.reals {
		rsd := d.reals[j]
		rs := RealStatus{Name: rm.name, Addr: rm.tmpl.Addr, Checked: rm.checked, Healthy: rsd.healthy,
			HealthKnown: rsd.known, ConfiguredWeight: rm.weight, Overridden: rsd.overridden}
		if rsd.overridden {
			rs.OverrideWeight = rsd.effective
		}
		if rsd.present {
			rs.EffectiveWeight = rsd.effective
			if !rsd.healthy {
				rs.EffectiveWeight = 0
			}
		}
		fill(&rs)
		ss.Reals = append(ss.Reals, rs)
	}
	if m.hasSorry {
		rs := RealStatus{Name: "sorry_server", Addr: m.sorry.Addr, Sorry: true, Healthy: true,
			ConfiguredWeight: m.sorry.Weight}
		if d.sorry {
			rs.EffectiveWeight = m.sorry.Weight
		}
		fill(&rs)
		ss.Reals = append(ss.Reals, rs)
	}
	return ss
}
