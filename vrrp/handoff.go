package vrrp

import (
	"net/netip"
	"time"
)

// A planned handoff moves mastership make-before-break (haldir handoff):
// the old master yields (EvYield), the target takes over (EvTakeOver) and
// announces the addresses while the old master still holds them, and the
// old master releases only when it hears the target's first advert. A
// sync group moves as one: every member yields or takes over, each on its
// own VRID. Who tells the target is the caller's business (the daemon
// sends a cluster message).

// Yield makes the instance, if master, wait until until for an advert
// from to and then release (EvYield). It never blocks.
func (in *Instance) Yield(to netip.Addr, until time.Time) {
	in.inbox.Put(EvYield{To: to, Until: until})
}

// TakeOver makes the instance, if backup, master now, holding on against
// the old master's adverts until until (EvTakeOver). It never blocks.
func (in *Instance) TakeOver(until time.Time, why string) {
	in.inbox.Put(EvTakeOver{Until: until, Why: why})
}

// groupOf is the instance and the other members of its sync group.
func (r *Runner) groupOf(name string) []*Instance {
	in := r.Instance(name)
	if in == nil {
		return nil
	}
	if in.group == nil {
		return []*Instance{in}
	}
	return in.group.Members()
}

// Yield makes the running instance called name, and the rest of its sync
// group, yield to to until until; it returns the instances it asked (none
// when no such instance runs).
func (r *Runner) Yield(name string, to netip.Addr, until time.Time) []string {
	var names []string
	for _, in := range r.groupOf(name) {
		in.Yield(to, until)
		names = append(names, in.cfg.Name)
	}
	return names
}

// TakeOver makes the running instance called name, and the rest of its
// sync group, take over until until; it returns the instances it asked.
func (r *Runner) TakeOver(name string, until time.Time, why string) []string {
	var names []string
	for _, in := range r.groupOf(name) {
		in.TakeOver(until, why)
		names = append(names, in.cfg.Name)
	}
	return names
}

// Group is the names of the running instance called name and the rest of
// its sync group; nil when no such instance runs.
func (r *Runner) Group(name string) []string {
	var names []string
	for _, in := range r.groupOf(name) {
		names = append(names, in.cfg.Name)
	}
	return names
}

// ReleaseHold ends the hold on preemption that a handoff's release left
// on every running instance (EvReleaseHold).
func (r *Runner) ReleaseHold() {
	for _, in := range r.instances() {
		in.inbox.Put(EvReleaseHold{})
	}
}

// Drill starts (on) or ends a drill's simulated failure of the running
// instance called name and the rest of its sync group, which fail and
// come back as one (EvDrill); it returns the instances it asked.
func (r *Runner) Drill(name string, f DrillFailure, on, failback bool) []string {
	var names []string
	for _, in := range r.groupOf(name) {
		in.inbox.Put(EvDrill{Failure: f, On: on, Failback: failback})
		names = append(names, in.cfg.Name)
	}
	return names
}
