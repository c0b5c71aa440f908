package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// TestTimerAfterQueuedAdverts: a backup whose master down timer fired
// while the master's advert already waited (a stall made both ready at
// once) takes the advert first and stays backup; the fire is stale.
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
	st := in.Status()
	if st.AdvertsRecv != 1 || st.Ignored[string(IgnoreStaleTimer)] != 1 {
		t.Fatalf("adverts received %d, stale timers %d; want 1 and 1", st.AdvertsRecv, st.Ignored[string(IgnoreStaleTimer)])
	}
	if len(pkts) != 0 {
		t.Fatalf("%d adverts left queued", len(pkts))
	}
}
