package vrrp

import (
	"sync"

	"github.com/haldir-lb/haldir/conf"
)

// SyncGroup makes its member instances change state together, like
// keepalived's vrrp_sync_group: while any member has a tracking fault all
// are in Fault, and when one member becomes master or backup the others
// follow. Members with opposite priorities on two routers make the group
// flap, as in keepalived: give one router the higher priority for all.
type SyncGroup struct {
	cfg     conf.SyncGroupSpec
	members []*Instance

	mu     sync.Mutex
	faulty map[*Instance]bool // own tracking fault of each member
	told   map[*Instance]bool // group fault last posted to each member
	last   map[*Instance]State
	notify *notifier
}

// NewSyncGroup joins members (which must not be running yet) into a group.
// Group notify commands run on master, backup and fault transitions of the
// group as a whole, with HALDIR_INSTANCE set to the group name.
func NewSyncGroup(cfg conf.SyncGroupSpec, members []*Instance) *SyncGroup {
	g := &SyncGroup{cfg: cfg, members: members, faulty: map[*Instance]bool{}, told: map[*Instance]bool{}, last: map[*Instance]State{}}
	for _, m := range members {
		m.group = g
	}
	g.notify = newNotifier(members[0].opts.NotifyTimeout, func(err error) { members[0].log.Warn("sync group notify", "group", cfg.Name, "err", err) })
	return g
}

// Group returns the sync group the instance belongs to, or nil.
func (in *Instance) Group() *SyncGroup { return in.group }

// Close stops the group's notifier after the members have stopped.
func (g *SyncGroup) Close() { g.notify.close() }

// post delivers ev to a member without blocking the caller's state machine
// (members post to each other from their own goroutines) and in the order
// of the calls: the member's inbox is unbounded and drained in order. An
// event for a member that has stopped is dropped.
func post(m *Instance, ev Event) {
	select {
	case <-m.stopped:
		return
	default:
	}
	m.inbox.Put(ev)
}

// memberFault records from's own tracking fault and tells each member
// whether any other member is faulty, whenever that changes for it. The
// view is per member because a member's own fault does not count towards
// its group fault: with one group-wide flag, a member that faulted first
// and recovered first was never told the group recovered, and stayed in
// Fault for good.
func (g *SyncGroup) memberFault(from *Instance, fault bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faulty[from] = fault
	for _, m := range g.members {
		others := false
		for _, o := range g.members {
			if o != m && g.faulty[o] {
				others = true
			}
		}
		if others != g.told[m] {
			g.told[m] = others
			// Posted under the lock so that two members' updates reach
			// each member in the order the group decided them.
			post(m, EvGroupFault{Fault: others})
		}
	}
}

func (g *SyncGroup) memberChanged(from *Instance, sc StateChange) {
	g.mu.Lock()
	g.last[from] = sc.To
	all := len(g.last) == len(g.members)
	for _, m := range g.members {
		if g.last[m] != sc.To {
			all = false
		}
	}
	g.mu.Unlock()
	// A change the group forced is not sent on: the member that caused it
	// already told everyone, and sending it back made two members whose
	// own changes crossed swap states with each other for ever. The
	// adverts on each VRID settle such a crossing instead.
	// A planned handoff is not sent on either: every member takes over or
	// yields on its own, each make-before-break on its own VRID.
	if sc.Cause != CauseGroupState && sc.Cause != CauseHandoff && (sc.To == StateMaster || sc.To == StateBackup) {
		for _, m := range g.members {
			if m != from {
				post(m, EvGroupState{To: sc.To})
			}
		}
	}
	// The group as a whole changed state once every member has.
	if all {
		argv := map[State][]string{StateMaster: g.cfg.Notify.Master, StateBackup: g.cfg.Notify.Backup, StateFault: g.cfg.Notify.Fault}[sc.To]
		g.notify.enqueue(notifyJob{argv: argv, instance: g.cfg.Name, state: sc.To, priority: sc.Priority})
	}
}

// Members returns the group's instances, in configuration order.
func (g *SyncGroup) Members() []*Instance { return append([]*Instance(nil), g.members...) }
