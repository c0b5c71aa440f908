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
