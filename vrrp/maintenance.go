package vrrp

import "sync"

// haldir maintenance, as a VRRP instance takes it: a tracked item, cause
// "maintenance", that while on sets the effective priority to 1
// (EvTracking.Lowest). The router then stays backup whatever its
// configured priority as long as another router is alive, and still takes
// over when none is: maintenance never leaves the addresses without a
// master. Turning it on does not by itself make a master hand over (a
// preempting backup takes over after Master_Down_Interval, since it
// ignores the lower adverts); the daemon resigns the masters explicitly
// (Resign) the moment it turns maintenance on.

// maintKey is the maintenance item of an instance's tracking.
var maintKey = trackKey{kind: trackMaint}

// maintInput is the maintenance state handed to an instance from any
// goroutine; the instance's loop reads it on evMaintenance.
type maintInput struct {
	mu     sync.Mutex
	on     bool
	reason string
}

func (m *maintInput) set(on bool, reason string) {
	m.mu.Lock()
	m.on, m.reason = on, reason
	m.mu.Unlock()
}

// apply sets the maintenance item of t.
func (m *maintInput) apply(t tracking) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it := t[maintKey]
	if it == nil {
		it = &trackItem{lowest: true, desc: "maintenance", down: "on"}
		t[maintKey] = it
	}
	it.failing, it.reason = m.on, ""
	if m.on && m.reason != "" {
		it.reason = "maintenance on: " + m.reason
	}
}

// evMaintenance wakes an instance's loop to take maintInput. It travels
// through the inbox so that it is taken before an EvResign posted after
// it: a master lowers its priority first, then hands over, and the
// backup it hands to is not preempted back.
type evMaintenance struct{}

func (evMaintenance) isEvent() {}

// SetMaintenance turns haldir maintenance on or off for the instance
// (reason is shown with the cause). It never blocks and may be called
// before Run and from any goroutine.
func (in *Instance) SetMaintenance(on bool, reason string) {
	in.maint.set(on, reason)
	in.inbox.Put(evMaintenance{})
}

// Resign makes the instance hand over if it is master (EvResign): it
// sends priority 0, drops its addresses and becomes backup. Why is the
// transition's reason. It never blocks; a call before Run or while not
// master changes nothing.
func (in *Instance) Resign(why string) {
	in.inbox.Put(EvResign{Why: why})
}

// SetMaintenance turns maintenance on or off for every instance, running
// or started later (a reload's new instances start in it).
func (r *Runner) SetMaintenance(on bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maint = maintState{on: on, reason: reason}
	for _, x := range r.runs {
		x.in.SetMaintenance(on, reason)
	}
}

// maintState is the Runner's record of maintenance for instances that
// start later.
type maintState struct {
	on     bool
	reason string
}

// Resign makes the running instance called name hand over if it is
// master (Instance.Resign); false when no such instance runs.
func (r *Runner) Resign(name, why string) bool {
	in := r.Instance(name)
	if in == nil {
		return false
	}
	in.Resign(why)
	return true
}
