package healthcheck

import (
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// TestTickStallMeter: a tick that comes late adds its lateness, jitter
// below stallMin does not, and a stall still in progress (no tick since)
// counts already.
func TestTickStallMeter(t *testing.T) {
	m := newTickStallMeter()
	m.period.Store(int64(stallTick))
	t0 := time.Unix(1000, 0)
	m.last.Store(t0.UnixNano())
	if got := m.Stalled(t0.Add(stallTick + stallMin - time.Millisecond)); got != 0 {
		t.Errorf("jitter below stallMin counted: %v", got)
	}
	if got := m.Stalled(t0.Add(100 * time.Millisecond)); got != 100*time.Millisecond-stallTick {
		t.Errorf("a stall in progress: %v, want %v", got, 100*time.Millisecond-stallTick)
	}
	// The ticker folds it in when it runs; reading again counts it once.
	m.stalled.Add(int64(100*time.Millisecond - stallTick))
	m.last.Store(t0.Add(100 * time.Millisecond).UnixNano())
	if got := m.Stalled(t0.Add(101 * time.Millisecond)); got != 100*time.Millisecond-stallTick {
		t.Errorf("after the late tick: %v, want %v", got, 100*time.Millisecond-stallTick)
	}
}

// TestStallPeriod: the meter ticks at a tenth of the shortest check
// timeout, within 10-100 ms, and not at all without checks.
func TestStallPeriod(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{0, 0},
		{50 * time.Millisecond, stallTick},
		{500 * time.Millisecond, 50 * time.Millisecond},
		{5 * time.Second, stallTickMax},
	} {
		if got := stallPeriod(tc.timeout); got != tc.want {
			t.Errorf("stallPeriod(%v) = %v, want %v", tc.timeout, got, tc.want)
		}
	}
}

// TestStallMeterFollowsChecks: a scheduler without targets leaves its
// stall meter stopped (a VRRP-only daemon was woken 100 times a second by
// it); targets set its period from their shortest timeout; removing them
// stops it again, and the time it stood stopped is not a stall.
func TestStallMeterFollowsChecks(t *testing.T) {
	s := New(Options{})
	m, ok := s.opt.Stalls.(*tickStallMeter)
	if !ok {
		t.Fatalf("stall meter %T, want the ticker", s.opt.Stalls)
	}
	period := func() time.Duration { return time.Duration(m.period.Load()) }
	if p := period(); p != 0 {
		t.Fatalf("period %v with no targets, want stopped", p)
	}
	tcp := func(port uint16, timeout time.Duration) Target {
		return tgt(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Hour, Timeout: timeout})
	}
	for _, tc := range []struct {
		name    string
		targets []Target
		want    time.Duration
	}{
		{"one at 2s", []Target{tcp(1, 2*time.Second)}, stallTickMax},
		{"the shortest, 300ms, sets it", []Target{tcp(1, 2*time.Second), tcp(2, 300*time.Millisecond)}, 30 * time.Millisecond},
		{"none", nil, 0},
	} {
		if _, err := s.Update(tc.targets); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p := period(); p != tc.want {
			t.Errorf("%s: period %v, want %v", tc.name, p, tc.want)
		}
	}
	// Stopped since long ago, then started: no stall.
	m.last.Store(time.Now().Add(-time.Hour).UnixNano())
	m.setPeriod(stallTick)
	if got := m.Stalled(time.Now()); got != 0 {
		t.Errorf("stalled %v right after starting again, want 0", got)
	}
}
