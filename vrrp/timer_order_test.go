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
	d.timerFired(pkts)
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
