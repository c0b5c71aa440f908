package vrrp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type step struct {
	at     time.Duration // since t0
	ev     Event
	want   []Action // exact, with state change reasons blanked
	reason IgnoreReason
	state  State
	prio   uint8 // effective priority after the step, when non-zero
}

func setAt(d time.Duration) Action { return ActSetTimer{At: t0.Add(d)} }

// reassert100 is a master of priority 100 answering another master that
// loses to it: an advert and its addresses announced again.
var reassert100 = []Action{ActSendAdvert{Priority: 100}, ActAnnounce{}}

var cancel = ActSetTimer{}

func change(from, to State) []Action {
	return []Action{ActStateChange{From: from, To: to}, ActNotify{State: to}}
}

func cat(parts ...any) []Action {
	var out []Action
	for _, p := range parts {
		switch p := p.(type) {
		case Action:
			out = append(out, p)
		case []Action:
			out = append(out, p...)
		}
	}
	return out
}

func adv(src string, prio uint8, iv time.Duration) EvAdvert {
	return EvAdvert{Src: netip.MustParseAddr(src), Priority: prio, Interval: iv}
}

const (
	sec = time.Second
	// Skew and Master_Down_Interval for priority 100 and a 1s interval.
	skew100 = 156 * sec / 256 // 609.375ms
	down100 = 3*sec + skew100
)

func baseCfg() MachineConfig {
	return MachineConfig{Version: 3, Priority: 100, Interval: sec, Preempt: true, Primary: netip.MustParseAddr("192.0.2.10")}
}

func runSteps(t *testing.T, cfg MachineConfig, steps []step) *Machine {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		acts, reason := m.Handle(t0.Add(s.at), s.ev)
		for j, a := range acts {
			if sc, ok := a.(ActStateChange); ok {
				if sc.Reason == "" {
					t.Errorf("step %d: state change without reason", i)
				}
				sc.Reason, sc.Cause = "", 0
				acts[j] = sc
			}
		}
		if !reflect.DeepEqual(acts, s.want) {
			t.Fatalf("step %d (%T at %v): actions\n%#v\nwant\n%#v", i, s.ev, s.at, acts, s.want)
		}
		if reason != s.reason {
			t.Fatalf("step %d (%T): ignore reason %q, want %q", i, s.ev, reason, s.reason)
		}
		if m.State() != s.state {
			t.Fatalf("step %d (%T): state %v, want %v", i, s.ev, m.State(), s.state)
		}
		if s.prio != 0 && m.Priority() != s.prio {
			t.Fatalf("step %d: priority %d, want %d", i, m.Priority(), s.prio)
		}
	}
	return m
}

// becameMaster is what a router does on taking over at d with priority p.
func becameMaster(from State, p uint8, d time.Duration) []Action {
	return cat(ActAddVIPs{}, ActAnnounce{Lead: true}, ActSendAdvert{Priority: p}, change(from, StateMaster), setAt(d+sec))
}

func TestMachine(t *testing.T) {
	startBackup := step{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 100}
	toMaster := step{down100, EvTimer{}, becameMaster(StateBackup, 100, down100), Handled, StateMaster, 0}
	m0 := down100 // when toMaster happened
	with := func(f func(*MachineConfig)) MachineConfig { c := baseCfg(); f(&c); return c }

	cases := []struct {
		name  string
		cfg   MachineConfig
		steps []step
	}{
		{"init: startup goes backup and arms Master_Down_Interval", baseCfg(), []step{startBackup}},
		// Timers shared by many instances fire together (timerSet): a
		// master's Adver_Timer within its slack (1ms at 1s) sends, and
		// its next advert follows one interval after the fire; a
		// backup's Master_Down_Timer never fires early.
		{"master: Adver_Timer fired within its slack sends, and moves to the fire", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec - 2*time.Millisecond, EvTimer{}, nil, IgnoreStaleTimer, StateMaster, 0},
			{m0 + sec - 500*time.Microsecond, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(m0+2*sec-500*time.Microsecond)), Handled, StateMaster, 0},
		}},
		{"backup: Master_Down_Timer has no slack", baseCfg(), []step{startBackup,
			{down100 - 100*time.Microsecond, EvTimer{}, nil, IgnoreStaleTimer, StateBackup, 0},
			toMaster,
		}},
		// haldir maintenance: priority 1 (no transition of its own), then
		// the master resigns the VRRP way and stays backup while another
		// router advertises, higher or lower than its usual priority; with
		// nobody left it takes over again after its Master_Down_Interval.
		{"maintenance: lowest priority, resign, stay backup, take over when alone", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec/2, EvTracking{Lowest: true, Delta: 50}, nil, Handled, StateMaster, 1},
			{m0 + sec/2, EvResign{Why: "maintenance"}, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateBackup),
				setAt(m0+sec/2+3*sec+255*sec/256)), Handled, StateBackup, 1},
			{m0 + sec, adv("192.0.2.1", 50, sec), []Action{setAt(m0 + sec + 3*sec + 255*sec/256)}, Handled, StateBackup, 1},
			{m0 + 2*sec, EvResign{Why: "again"}, nil, IgnoreNotMaster, StateBackup, 1},
			{m0 + sec + 3*sec + 255*sec/256, EvTimer{}, becameMaster(StateBackup, 1, m0+sec+3*sec+255*sec/256), Handled, StateMaster, 1},
			{m0 + 5*sec, EvTracking{}, nil, Handled, StateMaster, 100},
		}},
		{"maintenance: the address owner keeps 255 and does not resign", with(func(c *MachineConfig) { c.Priority = 255 }), []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
			{sec / 2, EvTracking{Lowest: true}, nil, Handled, StateMaster, 255},
			{sec / 2, EvResign{Why: "maintenance"}, nil, IgnoreNotMaster, StateMaster, 255},
		}},
		// A planned handoff, old master's side: it stays master until the
		// target's advert, releases without priority 0, then holds back
		// preemption under the lower target; a master-down timer (the
		// target gone) makes it master again and ends the hold.
		{"handoff: yield releases on the target's advert and holds back preemption", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec/2, EvYield{To: netip.MustParseAddr("192.0.2.20"), Until: t0.Add(m0 + 2*sec)}, nil, Handled, StateMaster, 0},
			{m0 + sec/2, adv("192.0.2.30", 50, sec), reassert100, Handled, StateMaster, 0},
			{m0 + sec/2 + 3*time.Millisecond, adv("192.0.2.20", 50, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup),
				setAt(m0+sec/2+3*time.Millisecond+down100)), Handled, StateBackup, 0},
			{m0 + sec, adv("192.0.2.20", 50, sec), []Action{setAt(m0 + sec + down100)}, Handled, StateBackup, 0},
			{m0 + sec + down100, EvTimer{}, becameMaster(StateBackup, 100, m0+sec+down100), Handled, StateMaster, 0},
			// Mastership moved: the hold is over, a lower master is not accepted.
			{m0 + sec + down100, adv("192.0.2.20", 50, sec), reassert100, Handled, StateMaster, 0},
		}},
		{"handoff: a yield the target never answers lapses; the router stays master", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec/2, EvYield{To: netip.MustParseAddr("192.0.2.20"), Until: t0.Add(m0 + sec/2 + 100*time.Millisecond)}, nil, Handled, StateMaster, 0},
			{m0 + sec, EvTimer{}, []Action{ActSendAdvert{Priority: 100}, setAt(m0 + 2*sec)}, Handled, StateMaster, 0},
			// Too late: the yield is over, the lower advert changes nothing.
			{m0 + sec + time.Millisecond, adv("192.0.2.20", 50, sec), reassert100, Handled, StateMaster, 0},
		}},
		{"handoff: yield refused unless master", baseCfg(), []step{startBackup,
			{sec, EvYield{To: netip.MustParseAddr("192.0.2.20"), Until: t0.Add(2 * sec)}, nil, IgnoreYieldNotMaster, StateBackup, 0},
		}},
		{"handoff: the address owner does not yield", with(func(c *MachineConfig) { c.Priority = 255 }), []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
			{sec / 2, EvYield{To: netip.MustParseAddr("192.0.2.20"), Until: t0.Add(2 * sec)}, nil, IgnoreYieldNotMaster, StateMaster, 255},
		}},
		// The target's side: master at once, deaf to the old master's
		// higher adverts during the take window, normal after it.
		{"handoff: takeover makes master now and holds against the old master", baseCfg(), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 200, sec), []Action{setAt(2*sec + down100)}, Handled, StateBackup, 0},
			{2*sec + sec/2, EvTakeOver{Until: t0.Add(2*sec + sec/2 + sec)}, becameMaster(StateBackup, 100, 2*sec+sec/2), Handled, StateMaster, 0},
			{3 * sec, adv("192.0.2.1", 200, sec), nil, IgnoreTaking, StateMaster, 0},
			{3*sec + sec/2, adv("192.0.2.1", 200, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(3*sec+sec/2+down100)), Handled, StateBackup, 0},
		}},
		// The hold ends once the old master has been quiet for three
		// intervals (it released): its later preemption is obeyed
		// even inside the handoff's window.
		{"handoff: the hold ends when the old master has released", baseCfg(), []step{startBackup,
			{sec, EvTakeOver{Until: t0.Add(sec + 10*sec)}, becameMaster(StateBackup, 100, sec), Handled, StateMaster, 0},
			{sec + sec/2, adv("192.0.2.1", 200, sec), nil, IgnoreTaking, StateMaster, 0},
			{2 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(3*sec)), Handled, StateMaster, 0},
			{3 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(4*sec)), Handled, StateMaster, 0},
			{3*sec + sec/2, adv("192.0.2.1", 200, sec), nil, IgnoreTaking, StateMaster, 0},
			{4 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(5*sec)), Handled, StateMaster, 0},
			{5 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(6*sec)), Handled, StateMaster, 0},
			{6 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(7*sec)), Handled, StateMaster, 0},
			{7 * sec, EvTimer{}, cat(ActSendAdvert{Priority: 100}, setAt(8*sec)), Handled, StateMaster, 0},
			{7*sec + sec/2, adv("192.0.2.1", 200, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(7*sec+sec/2+down100)), Handled, StateBackup, 0},
		}},
		{"handoff: takeover refused unless backup", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec/2, EvTakeOver{Until: t0.Add(m0 + 2*sec)}, nil, IgnoreTakeNotBackup, StateMaster, 0},
		}},
		{"init: owner takes over at once", with(func(c *MachineConfig) { c.Priority = 255 }), []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
		}},
		{"init: startup twice is ignored", baseCfg(), []step{startBackup, {1, EvStartup{}, nil, IgnoreAlreadyRunning, StateBackup, 0}}},
		{"init: events before startup are ignored", baseCfg(), []step{
			{0, adv("192.0.2.1", 200, sec), nil, IgnoreNotRunning, StateInit, 0},
			{0, EvTimer{}, nil, IgnoreNotRunning, StateInit, 0},
			{0, EvShutdown{}, nil, IgnoreNotRunning, StateInit, 0},
		}},
		{"backup: master down timer makes master", baseCfg(), []step{startBackup, toMaster}},
		{"backup: early timer is stale", baseCfg(), []step{startBackup, {sec, EvTimer{}, nil, IgnoreStaleTimer, StateBackup, 0}}},
		{"backup: higher advert re-arms the down timer", baseCfg(), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 200, sec), []Action{setAt(2*sec + down100)}, Handled, StateBackup, 0},
			{down100, EvTimer{}, nil, IgnoreStaleTimer, StateBackup, 0},
		}},
		{"backup: equal advert with preempt re-arms", baseCfg(), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 100, sec), []Action{setAt(2*sec + down100)}, Handled, StateBackup, 0},
		}},
		{"backup: priority 0 waits only skew", baseCfg(), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 0, sec), []Action{setAt(2*sec + skew100)}, Handled, StateBackup, 0},
			{2*sec + skew100, EvTimer{}, becameMaster(StateBackup, 100, 2*sec+skew100), Handled, StateMaster, 0},
		}},
		{"backup: preempt ignores lower priority and takes over", baseCfg(), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 50, sec), nil, IgnoreLowerPriority, StateBackup, 0},
			toMaster,
		}},
		{"backup: nopreempt accepts lower priority master", with(func(c *MachineConfig) { c.Preempt = false }), []step{startBackup,
			{2 * sec, adv("192.0.2.1", 50, sec), []Action{setAt(2*sec + down100)}, Handled, StateBackup, 0},
			{down100, EvTimer{}, nil, IgnoreStaleTimer, StateBackup, 0},
		}},
		{"backup: owner always preempts even with preempt off", with(func(c *MachineConfig) { c.Priority = 255; c.Preempt = false }), []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 0},
			// Another owner with a higher address wins the tie.
			{sec / 2, adv("192.0.2.200", 255, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(sec/2+3*sec+sec/256)), Handled, StateBackup, 0},
			{sec, adv("192.0.2.1", 100, sec), nil, IgnoreLowerPriority, StateBackup, 0},
		}},
		{"backup: v3 adopts the master's interval", baseCfg(), []step{startBackup,
			{sec, adv("192.0.2.1", 200, 100*time.Millisecond), []Action{setAt(sec + 300*time.Millisecond + 156*100*time.Millisecond/256)}, Handled, StateBackup, 0},
		}},
		{"backup: v2 keeps its own interval and RFC 3768 skew", with(func(c *MachineConfig) { c.Version = 2; c.Interval = 2 * sec }), []step{
			{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(6*sec+skew100)), Handled, StateBackup, 0},
			{sec, adv("192.0.2.1", 200, 3*sec), []Action{setAt(7*sec + skew100)}, Handled, StateBackup, 0},
		}},
		{"backup: preempt_delay tolerates a lower master, then preempts", with(func(c *MachineConfig) { c.PreemptDelay = 5 * sec }), []step{startBackup,
			{sec, adv("192.0.2.1", 50, sec), []Action{setAt(sec + down100)}, Handled, StateBackup, 0},
			{3 * sec, adv("192.0.2.1", 50, sec), []Action{setAt(3*sec + down100)}, Handled, StateBackup, 0},
			{6 * sec, adv("192.0.2.1", 50, sec), nil, IgnoreLowerPriority, StateBackup, 0},
			{3*sec + down100, EvTimer{}, becameMaster(StateBackup, 100, 3*sec+down100), Handled, StateMaster, 0},
		}},
		{"backup: a higher master restarts preempt_delay", with(func(c *MachineConfig) { c.PreemptDelay = 5 * sec }), []step{startBackup,
			{sec, adv("192.0.2.1", 50, sec), []Action{setAt(sec + down100)}, Handled, StateBackup, 0},
			{2 * sec, adv("192.0.2.2", 200, sec), []Action{setAt(2*sec + down100)}, Handled, StateBackup, 0},
			{4 * sec, adv("192.0.2.1", 50, sec), []Action{setAt(4*sec + down100)}, Handled, StateBackup, 0},
			{8 * sec, adv("192.0.2.1", 50, sec), []Action{setAt(8*sec + down100)}, Handled, StateBackup, 0},
			{9 * sec, adv("192.0.2.1", 50, sec), nil, IgnoreLowerPriority, StateBackup, 0},
		}},
		{"backup: shutdown", baseCfg(), []step{startBackup, {sec, EvShutdown{}, cat(change(StateBackup, StateInit), cancel), Handled, StateInit, 0}}},
		{"master: adver timer sends and re-arms", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec, EvTimer{}, []Action{ActSendAdvert{Priority: 100}, setAt(m0 + 2*sec)}, Handled, StateMaster, 0},
			{m0 + sec + sec/2, EvTimer{}, nil, IgnoreStaleTimer, StateMaster, 0},
		}},
		{"master: reconfigure lowers the priority in the next advert, no transition", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, EvReconfigure{Priority: 50, Preempt: true}, nil, Handled, StateMaster, 50},
			{m0 + sec, EvTimer{}, []Action{ActSendAdvert{Priority: 50}, setAt(m0 + 2*sec)}, Handled, StateMaster, 50},
			// Now a priority-100 advert wins.
			{m0 + sec + 1, adv("192.0.2.1", 100, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+sec+1+3*sec+206*sec/256)), Handled, StateBackup, 50},
		}},
		{"backup: reconfigure raises the priority, and preempts", baseCfg(), []step{startBackup,
			{sec, adv("192.0.2.1", 150, sec), []Action{setAt(sec + down100)}, Handled, StateBackup, 100},
			{2 * sec, EvReconfigure{Priority: 200, Preempt: true}, nil, Handled, StateBackup, 200},
			{3 * sec, adv("192.0.2.1", 150, sec), nil, IgnoreLowerPriority, StateBackup, 200},
		}},
		{"backup: reconfigure to no preempt accepts a lower master", with(func(c *MachineConfig) { c.Priority = 200 }), []step{
			{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(3*sec+56*sec/256)), Handled, StateBackup, 200},
			{sec, adv("192.0.2.1", 150, sec), nil, IgnoreLowerPriority, StateBackup, 200},
			{2 * sec, EvReconfigure{Priority: 200, Preempt: false}, nil, Handled, StateBackup, 200},
			{3 * sec, adv("192.0.2.1", 150, sec), []Action{setAt(3*sec + 3*sec + 56*sec/256)}, Handled, StateBackup, 200},
		}},
		{"reconfigure: unchanged and refused", baseCfg(), []step{startBackup,
			{sec, EvReconfigure{Priority: 100, Preempt: true}, nil, IgnoreReconfigNoop, StateBackup, 100},
			{sec, EvReconfigure{Priority: 255, Preempt: true}, nil, IgnoreReconfigBad, StateBackup, 100},
			{sec, EvReconfigure{Priority: 0, Preempt: true}, nil, IgnoreReconfigBad, StateBackup, 100},
		}},
		{"owner: reconfigure refused", with(func(c *MachineConfig) { c.Priority = OwnerPriority }), []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
			{sec / 2, EvReconfigure{Priority: 100, Preempt: true}, nil, IgnoreReconfigBad, StateMaster, 255},
		}},
		{"master: a late timer keeps the cadence", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec + 3*time.Millisecond, EvTimer{}, []Action{ActSendAdvert{Priority: 100}, setAt(m0 + 2*sec)}, Handled, StateMaster, 0},
			{m0 + 2*sec + time.Millisecond, EvTimer{}, []Action{ActSendAdvert{Priority: 100}, setAt(m0 + 3*sec)}, Handled, StateMaster, 0},
		}},
		{"master: after a stall longer than the interval, no burst", baseCfg(), []step{startBackup, toMaster,
			{m0 + 3*sec + sec/2, EvTimer{}, []Action{ActSendAdvert{Priority: 100}, setAt(m0 + 4*sec + sec/2)}, Handled, StateMaster, 0},
		}},
		{"master: higher advert makes backup", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, adv("192.0.2.1", 101, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+1+down100)), Handled, StateBackup, 0},
		}},
		{"master: equal priority from higher address wins", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, adv("192.0.2.11", 100, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+1+down100)), Handled, StateBackup, 0},
		}},
		{"master: equal priority from lower address is answered the same way", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, adv("192.0.2.9", 100, sec), reassert100, Handled, StateMaster, 0},
		}},
		{"master: lower priority is answered: an advert and the addresses announced again", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, adv("192.0.2.200", 99, sec), reassert100, Handled, StateMaster, 0},
		}},
		{"master: IPv6 tie-break on link-local address", with(func(c *MachineConfig) { c.Primary = netip.MustParseAddr("fe80::10") }), []step{startBackup, toMaster,
			{m0 + 1, adv("fe80::9", 100, sec), reassert100, Handled, StateMaster, 0},
			{m0 + 2, adv("fe80::a:0", 100, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+2+down100)), Handled, StateBackup, 0},
		}},
		{"master: v3 backup after losing adopts interval", baseCfg(), []step{startBackup, toMaster,
			{m0, adv("192.0.2.1", 200, 200*time.Millisecond), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+600*time.Millisecond+156*200*time.Millisecond/256)), Handled, StateBackup, 0},
		}},
		{"master: priority 0 from peer is answered at once", baseCfg(), []step{startBackup, toMaster,
			{m0 + sec/2, adv("192.0.2.1", 0, sec), []Action{ActSendAdvert{Priority: 100}, setAt(m0 + sec/2 + sec)}, Handled, StateMaster, 0},
		}},
		{"master: shutdown resigns with priority 0 and removes VIPs", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, EvShutdown{}, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateInit), cancel), Handled, StateInit, 0},
			{m0 + sec, EvTimer{}, nil, IgnoreNotRunning, StateInit, 0},
			{m0 + 2*sec, EvStartup{}, cat(change(StateInit, StateBackup), setAt(m0+2*sec+down100)), Handled, StateBackup, 0},
		}},
		{"tracking: weight lowers the advertised priority", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, EvTracking{Delta: -30}, nil, Handled, StateMaster, 70},
			{m0 + sec, EvTimer{}, []Action{ActSendAdvert{Priority: 70}, setAt(m0 + 2*sec)}, Handled, StateMaster, 70},
			{m0 + sec + 1, adv("192.0.2.1", 90, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(m0+sec+1+3*sec+186*sec/256)), Handled, StateBackup, 70},
			{m0 + 2*sec, EvTracking{Delta: -30}, nil, IgnoreTrackingNoop, StateBackup, 70},
		}},
		{"tracking: priority is clamped to 1..254", baseCfg(), []step{startBackup,
			{1, EvTracking{Delta: -500}, nil, Handled, StateBackup, 1},
			{2, EvTracking{Delta: 500}, nil, Handled, StateBackup, 254},
		}},
		{"tracking: an owner keeps 255", with(func(c *MachineConfig) { c.Priority = 255 }), []step{
			{0, EvTracking{Delta: -100}, nil, Handled, StateInit, 255},
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
		}},
		{"tracking: fault while master resigns; adverts ignored; recovery restarts", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, EvTracking{Fault: true}, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateFault), cancel), Handled, StateFault, 0},
			{m0 + 2, adv("192.0.2.1", 0, sec), nil, IgnoreFault, StateFault, 0},
			{m0 + sec, EvTimer{}, nil, IgnoreFault, StateFault, 0},
			{m0 + 2*sec, EvTracking{}, cat(change(StateFault, StateBackup), setAt(m0+2*sec+down100)), Handled, StateBackup, 0},
		}},
		{"tracking: fault while backup", baseCfg(), []step{startBackup,
			{1, EvTracking{Fault: true, Delta: -10}, cat(change(StateBackup, StateFault), cancel), Handled, StateFault, 90},
			{2, EvShutdown{}, cat(change(StateFault, StateInit), cancel), Handled, StateInit, 0},
		}},
		{"tracking: owner recovering from fault takes over at once", with(func(c *MachineConfig) { c.Priority = 255 }), []step{
			{0, EvTracking{Fault: true}, nil, Handled, StateInit, 0},
			{0, EvStartup{}, cat(change(StateInit, StateFault), cancel), Handled, StateFault, 0},
			{sec, EvTracking{}, becameMaster(StateFault, 255, sec), Handled, StateMaster, 0},
		}},
		{"group: a member's fault faults the group; own fault keeps it", baseCfg(), []step{startBackup, toMaster,
			{m0 + 1, EvGroupFault{Fault: true}, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateFault), cancel), Handled, StateFault, 0},
			{m0 + 2, EvGroupFault{Fault: true}, nil, IgnoreGroupNoop, StateFault, 0},
			{m0 + 3, EvTracking{Fault: true}, nil, Handled, StateFault, 0},
			{m0 + 4, EvGroupFault{}, nil, Handled, StateFault, 0},
			{m0 + 5, EvTracking{}, cat(change(StateFault, StateBackup), setAt(m0+5+down100)), Handled, StateBackup, 0},
		}},
		{"group: fault before startup", baseCfg(), []step{
			{0, EvGroupFault{Fault: true}, nil, Handled, StateInit, 0},
			{1, EvStartup{}, cat(change(StateInit, StateFault), cancel), Handled, StateFault, 0},
		}},
		{"group: follows a member to master and back", baseCfg(), []step{startBackup,
			{sec, EvGroupState{To: StateMaster}, becameMaster(StateBackup, 100, sec), Handled, StateMaster, 0},
			{sec + 1, EvGroupState{To: StateMaster}, nil, IgnoreGroupNoop, StateMaster, 0},
			{2 * sec, EvGroupState{To: StateBackup}, cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(2*sec+down100)), Handled, StateBackup, 0},
			{2*sec + 1, EvGroupState{To: StateBackup}, nil, IgnoreGroupNoop, StateBackup, 0},
		}},
		{"group: state changes are ignored in fault", baseCfg(), []step{startBackup,
			{1, EvTracking{Fault: true}, cat(change(StateBackup, StateFault), cancel), Handled, StateFault, 0},
			{2, EvGroupState{To: StateMaster}, nil, IgnoreGroupNoop, StateFault, 0},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.cfg, c.steps) })
	}
}

func TestMachineAccessors(t *testing.T) {
	m := runSteps(t, baseCfg(), []step{
		{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 0},
		{sec, adv("192.0.2.1", 200, 500*time.Millisecond), []Action{setAt(sec + 1500*time.Millisecond + 156*500*time.Millisecond/256)}, Handled, StateBackup, 0},
	})
	if m.MasterAddr() != netip.MustParseAddr("192.0.2.1") || m.MasterInterval() != 500*time.Millisecond {
		t.Fatalf("master %v interval %v", m.MasterAddr(), m.MasterInterval())
	}
	if m.Deadline() != t0.Add(sec+1500*time.Millisecond+156*500*time.Millisecond/256) {
		t.Fatalf("deadline %v", m.Deadline())
	}
}

func TestNewMachineErrors(t *testing.T) {
	for name, f := range map[string]func(*MachineConfig){
		"version":    func(c *MachineConfig) { c.Version = 4 },
		"priority 0": func(c *MachineConfig) { c.Priority = 0 },
		"priority":   func(c *MachineConfig) { c.Priority = 256 },
		"interval":   func(c *MachineConfig) { c.Interval = 0 },
		"delay":      func(c *MachineConfig) { c.PreemptDelay = -1 },
		"primary":    func(c *MachineConfig) { c.Primary = netip.Addr{} },
	} {
		t.Run(name, func(t *testing.T) {
			c := baseCfg()
			f(&c)
			if _, err := NewMachine(c); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestMachineYielded: Yielded is set by a handoff's release and cleared
// when mastership moves again.
func TestMachineYielded(t *testing.T) {
	startBackup := step{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 100}
	toMaster := step{down100, EvTimer{}, becameMaster(StateBackup, 100, down100), Handled, StateMaster, 0}
	target := netip.MustParseAddr("192.0.2.20")
	m := runSteps(t, baseCfg(), []step{startBackup, toMaster,
		{down100 + sec/2, EvYield{To: target, Until: t0.Add(down100 + 2*sec)}, nil, Handled, StateMaster, 0},
		{down100 + sec, adv("192.0.2.20", 50, sec), cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(down100+sec+down100)), Handled, StateBackup, 0},
	})
	if !m.Yielded() {
		t.Fatal("not yielded after the release")
	}
	if _, r := m.Handle(t0.Add(down100+sec), EvReleaseHold{}); r != Handled || m.Yielded() {
		t.Fatalf("release: %q, yielded %v", r, m.Yielded())
	}
	if _, r := m.Handle(t0.Add(down100+sec), EvReleaseHold{}); r != IgnoreNoHold {
		t.Fatalf("a second release: %q, want %q", r, IgnoreNoHold)
	}
	m.Handle(t0.Add(down100+sec+down100), EvTimer{})
	if m.State() != StateMaster || m.Yielded() {
		t.Fatalf("after the target went silent: %v, yielded %v; want master, not yielded", m.State(), m.Yielded())
	}
}

// TestMachineDrill: a drill's simulated crash releases silently and
// stays a backup that neither preempts nor takes over on its timer; its
// simulated fault sends priority 0 like a real one. Both observe the
// peer's takeover against the protocol's bound, and at the end hold back
// preemption unless failing back.
func TestMachineDrill(t *testing.T) {
	startBackup := step{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 100}
	toMaster := step{down100, EvTimer{}, becameMaster(StateBackup, 100, down100), Handled, StateMaster, 0}
	m0 := down100
	skew50 := 206 * sec / 256
	crashAt := m0 + sec/2
	takeAt := crashAt + 3*sec + skew50 + 2*time.Millisecond
	crash := EvDrill{Failure: DrillCrash, On: true}
	fault := EvDrill{Failure: DrillFault, On: true}

	cases := []struct {
		name      string
		steps     []step
		obs       bool
		gap       time.Duration
		bound     time.Duration
		yielded   bool
		wasMaster bool
	}{
		{"crash: silent release, no takeover on the timer, observed, held at the end", []step{startBackup, toMaster,
			{crashAt, crash, cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(crashAt+down100)), Handled, StateBackup, 0},
			{crashAt + down100, EvTimer{}, []Action{setAt(crashAt + 2*down100)}, IgnoreDrill, StateBackup, 0},
			{takeAt, adv("192.0.2.20", 50, sec), []Action{setAt(takeAt + down100)}, Handled, StateBackup, 0},
			{takeAt + sec, adv("192.0.2.20", 50, sec), []Action{setAt(takeAt + sec + down100)}, Handled, StateBackup, 0},
			{takeAt + sec, EvGroupState{To: StateMaster}, nil, IgnoreDrill, StateBackup, 0},
			{takeAt + sec, EvTakeOver{Until: t0.Add(takeAt + 2*sec)}, nil, IgnoreDrill, StateBackup, 0},
			{takeAt + 2*sec, EvDrill{Failure: DrillCrash}, []Action{setAt(takeAt + 2*sec + down100)}, Handled, StateBackup, 0},
			{takeAt + 3*sec, adv("192.0.2.20", 50, sec), []Action{setAt(takeAt + 3*sec + down100)}, Handled, StateBackup, 0},
			{takeAt + 3*sec, EvDrill{Failure: DrillCrash}, nil, IgnoreDrillBad, StateBackup, 0},
		}, true, 3*sec + skew50 + 2*time.Millisecond, 3*sec + skew50 + drillSlack, true, true},
		{"crash with failback: preemption takes mastership back", []step{startBackup, toMaster,
			{crashAt, crash, cat(ActRemoveVIPs{}, change(StateMaster, StateBackup), setAt(crashAt+down100)), Handled, StateBackup, 0},
			{takeAt, adv("192.0.2.20", 50, sec), []Action{setAt(takeAt + down100)}, Handled, StateBackup, 0},
			{takeAt + sec, EvDrill{Failure: DrillCrash, Failback: true}, []Action{setAt(takeAt + sec + down100)}, Handled, StateBackup, 0},
			{takeAt + 2*sec, adv("192.0.2.20", 50, sec), nil, IgnoreLowerPriority, StateBackup, 0},
			{takeAt + sec + down100, EvTimer{}, becameMaster(StateBackup, 100, takeAt+sec+down100), Handled, StateMaster, 0},
		}, true, 3*sec + skew50 + 2*time.Millisecond, 3*sec + skew50 + drillSlack, false, true},
		{"crash refused on a backup, and an end without a start", []step{startBackup,
			{sec, crash, nil, IgnoreDrillBad, StateBackup, 0},
			{sec, EvDrill{Failure: DrillFault}, nil, IgnoreDrillBad, StateBackup, 0},
		}, false, 0, 0, false, false},
		{"crash refused to the address owner", []step{
			{0, EvStartup{}, becameMaster(StateInit, 255, 0), Handled, StateMaster, 255},
			{sec / 2, crash, nil, IgnoreDrillBad, StateMaster, 255},
		}, false, 0, 0, false, false},
		{"fault: priority 0 and Fault, observed against the peer's skew, back to backup held", []step{startBackup, toMaster,
			{crashAt, fault, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateFault), cancel), Handled, StateFault, 0},
			{crashAt + skew50 + time.Millisecond, adv("192.0.2.20", 50, sec), nil, IgnoreFault, StateFault, 0},
			{crashAt + sec, crash, nil, IgnoreDrillBad, StateFault, 0},
			{crashAt + 2*sec, EvDrill{Failure: DrillFault}, cat(change(StateFault, StateBackup), setAt(crashAt+2*sec+down100)), Handled, StateBackup, 0},
			{crashAt + 3*sec, adv("192.0.2.20", 50, sec), []Action{setAt(crashAt + 3*sec + down100)}, Handled, StateBackup, 0},
		}, true, skew50 + time.Millisecond, skew50 + drillSlack, true, true},
		{"fault: a tracking fault that remains keeps Fault after the drill", []step{startBackup, toMaster,
			{crashAt, fault, cat(ActSendAdvert{Priority: 0}, ActRemoveVIPs{}, change(StateMaster, StateFault), cancel), Handled, StateFault, 0},
			{crashAt + sec, EvTracking{Fault: true, Cause: "eth0 down"}, nil, Handled, StateFault, 0},
			{crashAt + 2*sec, EvDrill{Failure: DrillFault}, nil, Handled, StateFault, 0},
			{crashAt + 3*sec, EvTracking{}, cat(change(StateFault, StateBackup), setAt(crashAt+3*sec+down100)), Handled, StateBackup, 0},
		}, true, 0, 255*sec/256 + drillSlack, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := baseCfg()
			if c.steps[0].prio == 255 {
				cfg.Priority = 255
			}
			m := runSteps(t, cfg, c.steps)
			o, ok := m.Drill()
			if ok != c.obs {
				t.Fatalf("observation %v, want %v", ok, c.obs)
			}
			if !ok {
				return
			}
			if o.Gap() != c.gap || o.Bound != c.bound || o.WasMaster != c.wasMaster {
				t.Errorf("gap %v bound %v was master %v; want %v %v %v", o.Gap(), o.Bound, o.WasMaster, c.gap, c.bound, c.wasMaster)
			}
			if m.Yielded() != c.yielded {
				t.Errorf("yielded %v, want %v", m.Yielded(), c.yielded)
			}
		})
	}
}

// TestMachineAlignedAdverts: with AlignAdverts a master advertises on the
// multiples of its interval in Unix time (t0 is one), whenever it took
// over, so that all of a process's masters with one interval send on one
// wake-up; an early fire within the slack keeps the grid, a stall
// restarts on it, and an answer to a resignation comes back to it.
func TestMachineAlignedAdverts(t *testing.T) {
	const ms = time.Millisecond
	aligned := func(iv time.Duration) MachineConfig {
		c := baseCfg()
		c.Interval, c.AlignAdverts = iv, true
		return c
	}
	send := ActSendAdvert{Priority: 100}
	took := func(at, next time.Duration) step {
		return step{at, EvTimer{}, cat(ActAddVIPs{}, ActAnnounce{Lead: true}, send, change(StateBackup, StateMaster), setAt(next)), Handled, StateMaster, 0}
	}
	down10 := 300*ms + 100*ms*156/256 // Master_Down_Interval at 100 ms
	for _, tc := range []struct {
		name  string
		cfg   MachineConfig
		steps []step
	}{
		{"1s: takeover at 3.609s, next advert at 4s", aligned(sec), []step{
			{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 0},
			took(down100, 4*sec),
			{4*sec + 300*time.Microsecond, EvTimer{}, cat(send, setAt(5*sec)), Handled, StateMaster, 0},
			{5*sec - 500*time.Microsecond, EvTimer{}, cat(send, setAt(6*sec)), Handled, StateMaster, 0},
			{8*sec + 200*ms, EvTimer{}, cat(send, setAt(9*sec)), Handled, StateMaster, 0},
			{9*sec + 500*ms, adv("192.0.2.20", 0, sec), cat(send, setAt(10*sec)), Handled, StateMaster, 0},
		}},
		{"100ms: takeover at 360.9ms, next advert at 400ms", aligned(100 * ms), []step{
			{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down10)), Handled, StateBackup, 0},
			took(down10, 400*ms),
			{400 * ms, EvTimer{}, cat(send, setAt(500*ms)), Handled, StateMaster, 0},
		}},
		{"a takeover after a resignation advertises next on the grid", aligned(sec), []step{
			{0, EvStartup{}, cat(change(StateInit, StateBackup), setAt(down100)), Handled, StateBackup, 0},
			{sec, adv("192.0.2.20", 200, sec), cat(setAt(sec + down100)), Handled, StateBackup, 0},
			{sec + 500*ms, adv("192.0.2.20", 0, sec), cat(setAt(sec + 500*ms + skew100)), Handled, StateBackup, 0},
			took(sec+500*ms+skew100, 3*sec),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.steps) })
	}
}
