package vrrp

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

func TestSyncGroupPropagation(t *testing.T) {
	a, b := goodInstance(), goodInstance()
	b.Name, b.VRID = "vb", 8
	ia := NewInstance(specOf(a), Options{})
	ib := NewInstance(specOf(b), Options{})
	out := filepath.Join(t.TempDir(), "log")
	notify := []string{"/bin/sh", "-c", `echo "$HALDIR_INSTANCE $HALDIR_STATE" >> "$0"`, out}
	g := NewSyncGroup(conf.SyncGroupSpec{Name: "g", Notify: conf.GroupNotifySpec{Master: notify, Fault: notify}}, []*Instance{ia, ib})
	// post queues synchronously: what memberChanged posted is there.
	recv := func(in *Instance) Event {
		t.Helper()
		evs := in.inbox.Take()
		if len(evs) != 1 {
			t.Fatalf("%s got %#v, want one group event", in.Name(), evs)
		}
		return evs[0]
	}
	g.memberChanged(ia, StateChange{From: StateBackup, To: StateMaster})
	if ev := recv(ib); ev != (EvGroupState{To: StateMaster}) {
		t.Fatalf("vb got %#v", ev)
	}
	g.memberChanged(ib, StateChange{From: StateBackup, To: StateMaster})
	if ev := recv(ia); ev != (EvGroupState{To: StateMaster}) {
		t.Fatalf("vi got %#v", ev)
	}
	// A fault of one member faults the others, once; recovery clears it.
	g.memberFault(ia, true)
	if ev := recv(ib); ev != (EvGroupFault{Fault: true}) {
		t.Fatalf("vb got %#v", ev)
	}
	g.memberFault(ia, true)
	g.memberFault(ia, false)
	if ev := recv(ib); ev != (EvGroupFault{Fault: false}) {
		t.Fatalf("vb got %#v", ev)
	}
	if evs := ia.inbox.Take(); len(evs) > 0 {
		t.Fatalf("the faulty member itself got %#v", evs)
	}
	g.Close()
	// The group notify ran once, when the whole group was master.
	b2, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != "g MASTER\n" {
		t.Fatalf("group notify log %q", b2)
	}
}

// groupHarness wires two or more Machines to a real SyncGroup the way the
// Instance driver does, without sockets or goroutines: state changes go to
// memberChanged, tracking changes to memberFault, and what the group posts
// is read back from each member's inbox and handled in a fixed order.
type groupHarness struct {
	t       *testing.T
	g       *SyncGroup
	ins     []*Instance
	ms      []*Machine
	now     time.Time
	changes []StateChange // every state change, in order
}

func newGroupHarness(t *testing.T, n int) *groupHarness {
	t.Helper()
	h := &groupHarness{t: t, now: t0}
	for i := range n {
		c := goodInstance()
		c.Name, c.VRID = "m"+string(rune('a'+i)), 7+i
		in := NewInstance(specOf(c), Options{})
		m, err := NewMachine(baseCfg())
		if err != nil {
			t.Fatal(err)
		}
		h.ins, h.ms = append(h.ins, in), append(h.ms, m)
	}
	g := NewSyncGroup(conf.SyncGroupSpec{Name: "g"}, h.ins)
	t.Cleanup(g.Close)
	h.g = g
	return h
}

// handle gives ev to member i's machine and reports its state changes to
// the group, as driver.handle does.
func (h *groupHarness) handle(i int, ev Event) {
	acts, _ := h.ms[i].Handle(h.now, ev)
	for _, a := range acts {
		if sc, ok := a.(ActStateChange); ok {
			c := StateChange{Instance: h.ins[i].Name(), From: sc.From, To: sc.To, Cause: sc.Cause, Reason: sc.Reason, At: h.now}
			h.changes = append(h.changes, c)
			h.g.memberChanged(h.ins[i], c)
		}
	}
}

// track sets member i's own tracking fault, as the driver's tracking case.
func (h *groupHarness) track(i int, fault bool) {
	h.handle(i, EvTracking{Fault: fault})
	h.g.memberFault(h.ins[i], fault)
}

// settle delivers pending group events round-robin until none is left. It
// fails if the group is still posting after limit deliveries: the members
// keep re-triggering each other.
func (h *groupHarness) settle(limit int) {
	h.t.Helper()
	for n := 0; ; {
		idle := true
		for i, in := range h.ins {
			for _, ev := range in.inbox.Take() {
				idle = false
				if n++; n > limit {
					h.t.Fatalf("group still posting after %d events; changes:\n%s", limit, h.history())
				}
				h.handle(i, ev)
			}
		}
		if idle {
			return
		}
	}
}

func (h *groupHarness) history() string {
	var s string
	for _, c := range h.changes {
		s += fmt.Sprintf("  %s %s -> %s (%s)\n", c.Instance, c.From, c.To, c.Reason)
	}
	return s
}

func (h *groupHarness) want(states ...State) {
	h.t.Helper()
	for i, s := range states {
		if got := h.ms[i].State(); got != s {
			h.t.Fatalf("member %s is %s, want %s; changes:\n%s", h.ins[i].Name(), got, s, h.history())
		}
	}
}

// TestSyncGroupFaultRecovery: every member leaves Fault once no member has
// a tracking fault, whichever order the faults come and go in.
func TestSyncGroupFaultRecovery(t *testing.T) {
	type op struct {
		member int
		fault  bool
	}
	for _, tc := range []struct {
		name string
		ops  []op
	}{
		{"first to fault recovers first", []op{{0, true}, {1, true}, {0, false}, {1, false}}},
		{"first to fault recovers last", []op{{0, true}, {1, true}, {1, false}, {0, false}}},
		{"one member alone", []op{{1, true}, {1, false}}},
		{"flapping member", []op{{0, true}, {0, false}, {0, true}, {1, true}, {0, false}, {1, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newGroupHarness(t, 2)
			for i := range h.ms {
				h.handle(i, EvStartup{})
			}
			h.settle(10)
			h.want(StateBackup, StateBackup)
			faulty := map[int]bool{}
			for _, o := range tc.ops {
				h.now = h.now.Add(sec)
				h.track(o.member, o.fault)
				h.settle(10)
				faulty[o.member] = o.fault
				if faulty[0] || faulty[1] {
					h.want(StateFault, StateFault)
				} else {
					h.want(StateBackup, StateBackup)
				}
			}
			h.want(StateBackup, StateBackup)
		})
	}
	t.Run("three members, faults overlap", func(t *testing.T) {
		h := newGroupHarness(t, 3)
		for i := range h.ms {
			h.handle(i, EvStartup{})
		}
		h.settle(10)
		for _, o := range []op{{0, true}, {2, true}, {0, false}, {1, true}, {2, false}} {
			h.now = h.now.Add(sec)
			h.track(o.member, o.fault)
			h.settle(10)
			h.want(StateFault, StateFault, StateFault)
		}
		h.track(1, false)
		h.settle(10)
		h.want(StateBackup, StateBackup, StateBackup)
	})
}

// TestSyncGroupCrossedChanges: the front member drops to backup on a
// better advert just as the back member's Master_Down timer makes it
// master, and each change reaches the other member only after it made its
// own. The members must not swap states for ever: a change the group forced
// is not sent on, and the peer router's adverts then settle the group.
func TestSyncGroupCrossedChanges(t *testing.T) {
	peer := adv("192.0.2.20", 200, sec)
	h := newGroupHarness(t, 2)
	for i := range h.ms {
		h.handle(i, EvStartup{})
	}
	h.settle(10)
	h.want(StateBackup, StateBackup)
	h.now = t0.Add(down100)
	h.handle(0, EvTimer{}) // front: backup -> master; the back has not heard yet
	h.handle(0, peer)      // front: master -> backup on the peer's better advert
	h.handle(1, EvTimer{}) // back: backup -> master, its timer ran out meanwhile
	h.settle(20)
	// The crossed group messages may leave the members apart for a moment;
	// the next advert of the peer on each VRID brings both to backup.
	h.now = h.now.Add(sec)
	h.handle(0, peer)
	h.handle(1, peer)
	h.settle(20)
	h.want(StateBackup, StateBackup)
	for _, c := range h.changes {
		if c.To == StateMaster && c.Reason == "master down timer expired" && c.At.After(t0.Add(down100)) {
			t.Fatalf("a member timed out again after the peer was heard:\n%s", h.history())
		}
	}
}

// TestSyncGroupForcedChangeNotForwarded: a member that the group moved
// does not announce that move to the group again (keepalived: members
// forced by vrrp_sync_group do not re-trigger it), while its own changes
// still move the others.
func TestSyncGroupForcedChangeNotForwarded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sc     StateChange
		posted bool
	}{
		{"timer master", StateChange{From: StateBackup, To: StateMaster, Cause: CauseTimer}, true},
		{"advert backup", StateChange{From: StateMaster, To: StateBackup, Cause: CauseAdvert}, true},
		{"fault cleared", StateChange{From: StateFault, To: StateBackup, Cause: CauseTracking}, true},
		{"group fault cleared", StateChange{From: StateFault, To: StateBackup, Cause: CauseGroupFault}, true},
		{"forced master", StateChange{From: StateBackup, To: StateMaster, Cause: CauseGroupState}, false},
		{"forced backup", StateChange{From: StateMaster, To: StateBackup, Cause: CauseGroupState}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newGroupHarness(t, 3)
			h.g.memberChanged(h.ins[0], tc.sc)
			for _, in := range h.ins[1:] {
				evs := in.inbox.Take()
				switch {
				case tc.posted && (len(evs) != 1 || evs[0] != (EvGroupState{To: tc.sc.To})):
					t.Fatalf("%s got %#v, want the group state %s", in.Name(), evs, tc.sc.To)
				case !tc.posted && len(evs) > 0:
					t.Fatalf("%s got %#v, want nothing", in.Name(), evs)
				}
			}
			if evs := h.ins[0].inbox.Take(); len(evs) > 0 {
				t.Fatalf("the sender got %#v", evs)
			}
		})
	}
}

// TestSyncGroupPostOrder: what the group posts reaches each member in the
// order the group decided it, however many are pending and however slow
// the member is (the old 16-slot channel handed the overflow to one
// goroutine per event, which delivered in any order).
func TestSyncGroupPostOrder(t *testing.T) {
	h := newGroupHarness(t, 2)
	var want []Event
	for i := range 100 {
		to := StateMaster
		if i%2 == 1 {
			to = StateBackup
		}
		h.g.memberChanged(h.ins[0], StateChange{From: StateBackup, To: to, Cause: CauseTimer})
		want = append(want, EvGroupState{To: to})
	}
	if got := h.ins[1].inbox.Take(); !slices.Equal(got, want) {
		t.Fatalf("member got %d events %v, want %d alternating in order", len(got), got, len(want))
	}
}
