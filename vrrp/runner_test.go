package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// pollUntil polls cond until it holds or d passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fastInstance is an instance that, alone on its (fake) link, is master
// within a few tens of milliseconds.
func fastInstance(name string, vrid int) conf.VRRPInstance {
	c := goodInstance()
	c.Name, c.VRID, c.AdvertInterval = name, vrid, conf.Duration(10*time.Millisecond)
	return c
}

// runnerHarness runs a Runner on the fake host and collects its state
// changes as the daemon's loop does.
type runnerHarness struct {
	t    *testing.T
	host *fakeHost
	r    *Runner
	seen []StateChange
}

func newRunnerHarness(t *testing.T) *runnerHarness {
	h := &runnerHarness{t: t, host: newFakeHost()}
	h.r = NewRunner(h.host.options())
	t.Cleanup(h.r.Stop)
	return h
}

// collect takes the state changes reported so far.
func (h *runnerHarness) collect() {
	select {
	case <-h.r.Changed():
		h.seen = append(h.seen, h.r.TakeChanges()...)
	default:
	}
}

func (h *runnerHarness) state(name string) State {
	for _, st := range h.r.Status() {
		if st.Name == name {
			return st.State
		}
	}
	return -1
}

func (h *runnerHarness) waitState(name string, want State) {
	h.t.Helper()
	pollUntil(h.t, 5*time.Second, fmt.Sprintf("%s %s", name, want), func() bool { return h.state(name) == want })
}

// changesOf lists name's reported transitions as "from>to".
func (h *runnerHarness) changesOf(name string) []string {
	h.collect()
	var out []string
	for _, sc := range h.seen {
		if sc.Instance == name {
			out = append(out, sc.From.String()+">"+sc.To.String())
		}
	}
	return out
}

// TestRunnerApply: the first Apply starts every instance; a reload keeps
// an unchanged instance, updates a new priority in place (no transition,
// the same socket), restarts one whose interface changed, starts an added
// one and stops a removed one, and Status follows the configuration order.
func TestRunnerApply(t *testing.T) {
	h := newRunnerHarness(t)
	cfg := &conf.Config{VRRP: []conf.VRRPInstance{fastInstance("a", 1), fastInstance("b", 2), fastInstance("c", 3)}}
	h.r.Apply(conf.Compile(cfg))
	for _, n := range []string{"a", "b", "c"} {
		h.waitState(n, StateMaster)
	}
	ioA, ioB := h.host.io("a"), h.host.io("b")
	if !ioA.vips.isUp() {
		t.Fatal("master a has no addresses up")
	}

	next := &conf.Config{VRRP: []conf.VRRPInstance{fastInstance("d", 4), fastInstance("b", 2), fastInstance("a", 1)}}
	next.VRRP[1].Interface = "eth1" // b: restart
	next.VRRP[2].Priority = 150     // a: in place
	h.r.Apply(conf.Compile(next))
	h.waitState("d", StateMaster)
	h.waitState("b", StateMaster)
	pollUntil(t, 5*time.Second, "a's adverts at priority 150", func() bool {
		s := ioA.adverts()
		return len(s) > 0 && s[len(s)-1].priority == 150
	})
	if h.host.io("a") != ioA {
		t.Error("a was reopened; a priority change is taken in place")
	}
	if h.host.io("b") == ioB {
		t.Error("b kept its socket; an interface change restarts it")
	}
	var names []string
	for _, st := range h.r.Status() {
		names = append(names, st.Name)
	}
	if got := strings.Join(names, ","); got != "d,b,a" {
		t.Errorf("Status order %s, want the configuration's d,b,a", got)
	}
	if got := strings.Join(h.changesOf("a"), " "); got != "init>backup backup>master" {
		t.Errorf("a's transitions %q, want only its start: the reload kept it running", got)
	}
	pollUntil(t, 5*time.Second, "c's stop reported", func() bool {
		ch := h.changesOf("c")
		return len(ch) > 0 && ch[len(ch)-1] == "master>init"
	})
	if ioC := h.host.io("c"); ioC.vips.isUp() {
		t.Error("removed master c left its addresses up")
	}
	if s := h.host.io("c").adverts(); s[len(s)-1].priority != 0 {
		t.Errorf("removed master c's last advert has priority %d, want 0 (hand over)", s[len(s)-1].priority)
	}
}

// TestRunnerFailedStartRetried: an instance that cannot start is named in
// NotRunning, the others run, and a reload tries it again.
func TestRunnerFailedStartRetried(t *testing.T) {
	h := newRunnerHarness(t)
	h.host.failOpen["b"] = errors.New(`interface "eth9": no such network interface`)
	cfg := &conf.Config{VRRP: []conf.VRRPInstance{fastInstance("a", 1), fastInstance("b", 2)}}
	h.r.Apply(conf.Compile(cfg))
	h.waitState("a", StateMaster)
	pollUntil(t, 5*time.Second, "b not running", func() bool { return strings.Contains(h.r.NotRunning()["b"], "eth9") })
	if err := h.r.Alive(context.Background()); err != nil {
		t.Fatalf("Alive: %v (a failed start is not a stall)", err)
	}
	h.host.mu.Lock()
	delete(h.host.failOpen, "b")
	h.host.mu.Unlock()
	h.r.Apply(conf.Compile(cfg))
	h.waitState("b", StateMaster)
	if nr := h.r.NotRunning(); len(nr) != 0 {
		t.Errorf("NotRunning %v after b started", nr)
	}
}

// TestRunnerQuorum: a tracked virtual server's quorum reaches the running
// instance, and an instance that starts later gets the last report.
func TestRunnerQuorum(t *testing.T) {
	h := newRunnerHarness(t)
	a := fastInstance("a", 1)
	a.TrackVirtualSrvs = []conf.TrackVS{{Name: "web"}} // weight 0: fault while down
	h.r.SetVirtualServerUp("web", true)                // before the instance exists
	h.r.Apply(conf.Compile(&conf.Config{VRRP: []conf.VRRPInstance{a}}))
	h.waitState("a", StateMaster)
	h.r.SetVirtualServerUp("web", false)
	h.waitState("a", StateFault)
	h.r.SetVirtualServerUp("other", true) // not tracked: nothing
	h.r.SetVirtualServerUp("web", true)
	h.waitState("a", StateMaster)
	want := "init>backup backup>master master>fault fault>backup backup>master"
	if got := strings.Join(h.changesOf("a"), " "); got != want {
		t.Errorf("transitions %q, want %q", got, want)
	}
}

// TestRunnerSyncGroup: a sync group's members fail together, and a reload
// that restarts one member restarts the group with a new SyncGroup (the
// old one is closed once its last member stopped).
func TestRunnerSyncGroup(t *testing.T) {
	h := newRunnerHarness(t)
	a, b := fastInstance("a", 1), fastInstance("b", 2)
	b.TrackVirtualSrvs = []conf.TrackVS{{Name: "web"}}
	h.r.SetVirtualServerUp("web", true)
	cfg := &conf.Config{VRRP: []conf.VRRPInstance{a, b}, VRRPSyncGroups: []conf.VRRPSyncGroup{{Name: "g", Instances: []string{"a", "b"}}}}
	h.r.Apply(conf.Compile(cfg))
	h.waitState("a", StateMaster)
	h.waitState("b", StateMaster)
	h.r.SetVirtualServerUp("web", false)
	h.waitState("b", StateFault)
	h.waitState("a", StateFault) // the group's fault
	h.r.SetVirtualServerUp("web", true)
	h.waitState("a", StateMaster)
	h.waitState("b", StateMaster)

	old := h.r.instances()[0].Group()
	next := &conf.Config{VRRP: []conf.VRRPInstance{a, b}, VRRPSyncGroups: cfg.VRRPSyncGroups}
	next.VRRP[0].Interface = "eth1"
	h.r.Apply(conf.Compile(next))
	ins := h.r.instances()
	if len(ins) != 2 || ins[0].Group() == old || ins[0].Group() != ins[1].Group() {
		t.Fatalf("after the reload the members are not in one new group")
	}
	h.r.mu.Lock()
	_, oldRuns := h.r.groups[old]
	n := h.r.groups[ins[0].Group()]
	h.r.mu.Unlock()
	if oldRuns || n != 2 {
		t.Errorf("group refcounts: old group still counted %v, new group %d members, want 2", oldRuns, n)
	}
	h.waitState("a", StateMaster)
	h.waitState("b", StateMaster)
}

// TestRunnerTrackScript: a failing track_script lowers the priority of the
// adverts by its weight and a recovered one restores it, with no root.
func TestRunnerTrackScript(t *testing.T) {
	flag := t.TempDir() + "/ok"
	h := newRunnerHarness(t)
	a := fastInstance("a", 1)
	a.TrackScripts = []conf.TrackScript{{Name: "chk", Command: []string{"/bin/test", "-e", flag}, Weight: -30,
		Interval: conf.Duration(20 * time.Millisecond), Timeout: conf.Duration(time.Second), Rise: 1, Fall: 1}}
	h.r.Apply(conf.Compile(&conf.Config{VRRP: []conf.VRRPInstance{a}}))
	h.waitState("a", StateMaster)
	io := h.host.io("a")
	lastPrio := func(want uint8) func() bool {
		return func() bool {
			s := io.adverts()
			return len(s) > 0 && s[len(s)-1].priority == want
		}
	}
	pollUntil(t, 5*time.Second, "adverts at 100-30 while the script fails", lastPrio(70))
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 5*time.Second, "adverts at 100 once it passes", lastPrio(100))
	st := h.r.Status()[0]
	if st.PriorityChanges["track_script:chk"] == 0 {
		t.Errorf("priority changes %v, want track_script:chk counted", st.PriorityChanges)
	}
}

// TestRunnerAlive: an instance whose event loop does not answer (here:
// one that never ran its loop) makes the Runner not alive, naming the
// instance; one that has stopped is not a stall.
func TestRunnerAlive(t *testing.T) {
	h := newRunnerHarness(t)
	in := NewInstance(specOf(fastInstance("VI_X", 7)), h.host.options())
	x := &run{in: in, cancel: func() {}, done: make(chan struct{})}
	h.r.mu.Lock()
	h.r.runs["VI_X"], h.r.order = x, []string{"VI_X"}
	h.r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.r.Alive(ctx); err == nil || !strings.Contains(err.Error(), `vrrp instance "VI_X": its loop does not answer`) {
		t.Errorf("Alive = %v, want VI_X's loop not answering", err)
	}
	close(x.done) // it ended (failed to start): not running, not stalled
	if err := h.r.Alive(context.Background()); err != nil {
		t.Errorf("Alive with an ended instance: %v", err)
	}
	h.r.mu.Lock()
	delete(h.r.runs, "VI_X")
	h.r.mu.Unlock()
}

// TestMasterDownReadsWaitingAdverts: a backup whose Master_Down_Timer is
// due reads what waits in its socket before it takes over. The adverts of
// a live master that a stall kept unread (the reader starved like the
// rest of the daemon) keep it backup; once the master is really silent,
// it takes over within Master_Down_Interval. Before, the timer won and a
// starved backup made a split brain on every stall.
func TestMasterDownReadsWaitingAdverts(t *testing.T) {
	h := newRunnerHarness(t)
	ic := fastInstance("vi", 7)
	h.r.Apply(conf.Compile(&conf.Config{VRRP: []conf.VRRPInstance{ic}}))
	pollUntil(t, 5*time.Second, "the instance open", func() bool { return h.host.io("vi") != nil })
	io := h.host.io("vi")
	peer, group := netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("224.0.0.18")
	a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	pkt, err := a.Marshal(peer, group)
	if err != nil {
		t.Fatal(err)
	}
	// The master's adverts arrive every interval, but only into the
	// socket: the reader never hands them over by itself here.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				io.wait(Received{Payload: pkt, Src: peer, Dst: group, TTL: 255})
			}
		}
	}()
	pollUntil(t, 5*time.Second, "the peer heard as master", func() bool {
		st := h.r.Status()
		return len(st) == 1 && st[0].MasterAddr == peer
	})
	// 30 Master_Down_Intervals (36 ms each) with the master only in the
	// socket: the backup stays backup.
	time.Sleep(30 * 36 * time.Millisecond)
	close(stop)
	<-done
	if ch := h.changesOf("vi"); len(ch) != 1 || ch[0] != "init>backup" {
		t.Fatalf("transitions %q while the master's adverts waited in the socket, want only init>backup", ch)
	}
	if n := io.waitingReads(); n == 0 {
		t.Fatal("the Master_Down_Timer never read the socket")
	}
	// The master gone for real: take over.
	h.waitState("vi", StateMaster)
}
