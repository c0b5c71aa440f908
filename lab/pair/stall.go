package pair

import (
	"sync"
	"time"
)

// StallMeter measures how long this process goes unscheduled: a ticker's
// lateness beyond stallMin. On a busy host the TCG VM freezes now and
// then, and every outage measured in it grows by as much.
type StallMeter struct {
	stop, done chan struct{}
	period     time.Duration

	mu      sync.Mutex
	total   time.Duration
	longest time.Duration
	stalls  []stall
}

// stall is one pause: when it ended and how long it was.
type stall struct {
	end time.Time
	d   time.Duration
}

// stallMin is the lateness counted as a stall.
const stallMin = 50 * time.Millisecond

// StartStallMeter starts measuring.
func StartStallMeter() *StallMeter {
	m := &StallMeter{stop: make(chan struct{}), done: make(chan struct{}), period: 10 * time.Millisecond}
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.period)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				if late := now.Sub(last) - m.period; late > stallMin {
					m.Add(now, late)
				}
				last = now
			}
		}
	}()
	return m
}

// Add records a stall of d that ended at end: the meter's own ticker
// does, and tests of what reads a meter.
func (m *StallMeter) Add(end time.Time, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total += d
	m.longest = max(m.longest, d)
	m.stalls = append(m.stalls, stall{end, d})
}

// In is the stall time that overlaps [from, to].
func (m *StallMeter) In(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum time.Duration
	for i := len(m.stalls) - 1; i >= 0; i-- {
		st := m.stalls[i]
		if st.end.Before(from) {
			break
		}
		if st.end.Add(-st.d).After(to) {
			continue
		}
		sum += st.d
	}
	return sum
}

// Totals are the total and longest stall so far.
func (m *StallMeter) Totals() (total, longest time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total, m.longest
}

// Halt stops the meter and returns the total and longest stall.
func (m *StallMeter) Halt() (total, longest time.Duration) {
	close(m.stop)
	<-m.done
	return m.Totals()
}
