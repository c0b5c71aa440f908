package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// TestTimerAfterQueuedAdverts: a backup whose master down timer fired
// while the master's advert already waited (a stall made both ready at
// once) takes the advert first and stays backup; the fire is stale.
// It does not reach the machine: the timer re-arms for the new deadline.
func TestTimerAfterQueuedAdverts(t *testing.T) {
	in := NewInstance(specOf(goodInstance()), Options{})
	m, err := NewMachine(in.machineConfig(netip.MustParseAddr("192.0.2.2")))
	if err != nil {
		t.Fatal(err)
	}
	timer, err := newFDTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer timer.close()
	d := &driver{in: in, m: m, timer: timer, track: tracking{}}
	// Backup since long enough ago that its master down timer is due.
	if _, reason := m.Handle(time.Now().Add(-time.Minute), EvStartup{}); reason != Handled || m.State() != StateBackup {
		t.Fatalf("startup: %v, state %v", reason, m.State())
	}
	pkts := make(chan EvAdvert, 4)
	pkts <- EvAdvert{Src: netip.MustParseAddr("192.0.2.3"), Priority: 200, Interval: time.Second}
	d.timerFired(pkts, false)
	if m.State() != StateBackup {
		t.Fatalf("state %v after a fire with the master's advert queued, want backup", m.State())
	}
	// The advert moved the deadline: the fire is not handed to the
	// machine at all, and the timer is re-armed for the new deadline.
	st := in.Status()
	if st.AdvertsRecv != 1 || st.Ignored[string(IgnoreStaleTimer)] != 0 {
		t.Fatalf("adverts received %d, stale timers %d; want 1 and 0", st.AdvertsRecv, st.Ignored[string(IgnoreStaleTimer)])
	}
	if timer.want != m.Deadline() || timer.set.kernelAt() != m.Deadline() {
		t.Fatalf("timer wants %v, kernel timer at %v; want both at the machine's deadline %v", timer.want, timer.set.kernelAt(), m.Deadline())
	}
	if len(pkts) != 0 {
		t.Fatalf("%d adverts left queued", len(pkts))
	}
}

// TestInlineTimerLeavesFireToLoop: a fire handled off the loop's goroutine
// while the loop holds an advert it has taken from the queue but not
// handled (it waits for the driver's lock) is left to the loop, which
// handles it after that advert: the advert could be the master's that
// stops the timer. Handled at once, a live master was declared down.
func TestInlineTimerLeavesFireToLoop(t *testing.T) {
	in := NewInstance(specOf(goodInstance()), Options{})
	m, err := NewMachine(in.machineConfig(netip.MustParseAddr("192.0.2.2")))
	if err != nil {
		t.Fatal(err)
	}
	timer, err := newFDTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer timer.close()
	d := &driver{in: in, m: m, timer: timer, track: tracking{}}
	if _, reason := m.Handle(time.Now().Add(-time.Minute), EvStartup{}); reason != Handled || m.State() != StateBackup {
		t.Fatalf("startup: %v, state %v", reason, m.State())
	}
	timer.resetAt(time.Now(), m.Deadline())
	pkts := make(chan EvAdvert, 4)
	in.queued.Store(1) // taken by the loop, not handled
	if d.timerFired(pkts, true) {
		t.Fatal("the inline fire was handled while the loop held an advert")
	}
	if m.State() != StateBackup {
		t.Fatalf("state %v, want backup until the loop has handled its advert", m.State())
	}
	// The loop handles that advert (here: from the queue), then the
	// fire: stale, the master is alive.
	pkts <- EvAdvert{Src: netip.MustParseAddr("192.0.2.3"), Priority: 200, Interval: time.Second}
	if !d.timerFired(pkts, false) || m.State() != StateBackup {
		t.Fatalf("state %v after the loop's fire, want backup", m.State())
	}
	if st := in.Status(); st.AdvertsRecv != 1 || in.queued.Load() != 0 {
		t.Fatalf("adverts received %d, queued %d; want 1 and 0", st.AdvertsRecv, in.queued.Load())
	}
}
