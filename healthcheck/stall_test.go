package healthcheck

import (
	"testing"
	"time"
)

// TestTickStallMeter: a tick that comes late adds its lateness, jitter
// below stallMin does not, and a stall still in progress (no tick since)
// counts already.
func TestTickStallMeter(t *testing.T) {
	m := newTickStallMeter()
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
