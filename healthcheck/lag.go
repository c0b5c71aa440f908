package healthcheck

import (
	"sync"
	"time"
)

// OverloadLag is the lag (Scheduler.Lag) from which the checker counts as
// overloaded: the log warns and status says so. Below it, a busy host's
// timer and wake-up jitter.
const OverloadLag = 100 * time.Millisecond

// lagWindow is how long a lag stays in Scheduler.Lag: between one and two
// windows, so that a scrape or a status every few seconds sees each burst.
const lagWindow = 10 * time.Second

// lateLogEvery spaces the overload warnings.
const lateLogEvery = 10 * time.Second

// lagMeter keeps the largest lag of the checks settled recently, in two
// windows (the current one and the one before), and says when a lag is
// worth a warning (at most every lateLogEvery).
type lagMeter struct {
	mu        sync.Mutex
	cur, prev time.Duration
	start     time.Time // of the current window
	logged    time.Time
}

// rotate moves the windows on to now; the caller holds m.mu.
func (m *lagMeter) rotate(now time.Time) {
	switch age := now.Sub(m.start); {
	case age >= 2*lagWindow:
		m.cur, m.prev, m.start = 0, 0, now
	case age >= lagWindow:
		m.cur, m.prev, m.start = 0, m.cur, m.start.Add(lagWindow)
	}
}

// note records a check's lag at now, and reports whether to warn.
func (m *lagMeter) note(lag time.Duration, now time.Time) (warn bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rotate(now)
	m.cur = max(m.cur, lag)
	if lag < OverloadLag || now.Sub(m.logged) < lateLogEvery {
		return false
	}
	m.logged = now
	return true
}

// recent is the largest lag of the last one to two windows at now.
func (m *lagMeter) recent(now time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rotate(now)
	return max(m.cur, m.prev)
}
