package director

import (
	"maps"

	"github.com/haldir-lb/haldir/ipvs"
)

// QuorumState is whether one configured virtual server has its quorum on
// this director: the summed effective weight of its healthy real servers
// reached quorum (with hysteresis). VRRP tracks it so that a director whose
// real servers are not serving does not hold the virtual addresses.
type QuorumState struct {
	Name        string // the virtual server's configured name
	Service     ipvs.ServiceKey
	Up          bool
	AliveWeight int
	Quorum      int
}

// quorumMemory is the hysteresis of every configured service's quorum:
// its state as the last desired-state computation left it, the only thing
// one computation hands to the next. desired reads it; the Reconciler
// records each result with record.
type quorumMemory map[ipvs.ServiceKey]bool

// next is the quorum of virtual server m when its healthy real servers
// weigh alive, like keepalived: up iff alive >= quorum the first time;
// then lost when alive < quorum - hysteresis and regained when alive >=
// quorum + hysteresis, keeping its previous state in between.
func (q quorumMemory) next(m *vsModel, alive int) bool {
	up, had := q[m.svc.Key]
	switch {
	case !had:
		return alive >= m.quorum
	case up && alive < m.quorum-m.hysteresis:
		return false
	case !up && alive >= m.quorum+m.hysteresis:
		return true
	}
	return up
}

// record remembers d's quorum and reports whether it changed a state
// remembered before (the first one is no change).
func (q quorumMemory) record(d *desiredSvc) (changed bool) {
	key := d.model.svc.Key
	prev, had := q[key]
	q[key] = d.quorumUp
	return had && prev != d.quorumUp
}

// quorumChangesLocked returns the quorum states to report after a pass
// that computed want, and records them as reported; r.mu must be held.
// keys are want's keys in cmpKey order, or (prune false) the only keys
// whose state may have changed since the last report, when the set of
// virtual servers and their names is the same. With prune, virtual servers
// no longer configured are forgotten, so one that comes back is reported
// again.
func (r *Reconciler) quorumChangesLocked(want map[ipvs.ServiceKey]*desiredSvc, keys []ipvs.ServiceKey, prune bool) []QuorumState {
	if r.onQuorum == nil {
		return nil
	}
	var out []QuorumState
	live := map[string]bool{}
	for _, key := range keys {
		d := want[key]
		name := d.model.name
		live[name] = true
		if up, ok := r.reported[name]; ok && up == d.quorumUp {
			continue
		}
		r.reported[name] = d.quorumUp
		out = append(out, QuorumState{Name: name, Service: key, Up: d.quorumUp, AliveWeight: d.aliveWeight, Quorum: d.model.quorum})
	}
	if prune {
		maps.DeleteFunc(r.reported, func(name string, _ bool) bool { return !live[name] })
	}
	return out
}
