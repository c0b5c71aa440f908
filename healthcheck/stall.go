package healthcheck

import (
	"context"
	"sync/atomic"
	"time"
)

// StallMeter measures how long this process was not running when it
// should have been: CPU starvation, a cgroup's CFS quota, a paused VM.
// A check's timeout counts only the time the checker could run; a check
// that timed out mostly while the process stood still says nothing about
// its target (Scheduler.lateFailure).
type StallMeter interface {
	// Stalled is the process's stall time so far, with one in progress.
	Stalled(now time.Time) time.Duration
}

// stallTick and stallTickMax bound the period of the real meter's
// ticker: a tenth of the shortest check timeout (stallPeriod). A stall
// longer than the period delays a tick and is measured, short by at most
// a period; shorter ones are within the quarter of a check's time that
// counts anyway (lateSlack).
const (
	stallTick    = 10 * time.Millisecond
	stallTickMax = 100 * time.Millisecond
)

// stallMin is the smallest lateness of a tick counted as a stall: below it
// is ordinary timer and scheduling jitter.
const stallMin = 5 * time.Millisecond

// stallPeriod is the meter's period for checks whose shortest timeout is
// shortest; zero (no checks) stops it.
func stallPeriod(shortest time.Duration) time.Duration {
	if shortest <= 0 {
		return 0
	}
	return min(max(shortest/10, stallTick), stallTickMax)
}

// tickStallMeter is the real StallMeter: a ticker whose late ticks add up
// to the stall time. A process that stands still ticks late by the
// stall, whatever its cause. It ticks only while there are checks: a
// daemon without any (VRRP alone) was woken 100 times a second for
// nothing, most of an idle backup's CPU.
type tickStallMeter struct {
	last    atomic.Int64 // unix nanoseconds of the last tick
	stalled atomic.Int64 // nanoseconds
	period  atomic.Int64 // the ticker's, nanoseconds; 0: stopped
	changed chan struct{}
}

func newTickStallMeter() *tickStallMeter {
	m := &tickStallMeter{changed: make(chan struct{}, 1)}
	m.last.Store(time.Now().UnixNano())
	return m
}

// setPeriod changes the ticker's period; zero stops it. A meter that
// starts again counts from now: the time it stood stopped is no stall.
func (m *tickStallMeter) setPeriod(p time.Duration) {
	old := time.Duration(m.period.Load())
	if p == old {
		return
	}
	if old == 0 {
		m.last.Store(time.Now().UnixNano())
	}
	m.period.Store(int64(p))
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// run ticks until ctx is done.
func (m *tickStallMeter) run(ctx context.Context) {
	var (
		t    *time.Ticker
		tick <-chan time.Time
		p    time.Duration
	)
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			if t != nil {
				t.Stop()
				t, tick = nil, nil
			}
			if p = time.Duration(m.period.Load()); p > 0 {
				m.last.Store(time.Now().UnixNano())
				t = time.NewTicker(p)
				tick = t.C
			}
		case <-tick:
			now := time.Now().UnixNano()
			prev := m.last.Swap(now)
			if late := time.Duration(now-prev) - p; late >= stallMin {
				m.stalled.Add(int64(late))
			}
		}
	}
}

// Stalled implements StallMeter. A stall in progress (the ticker has not
// run since) is counted from the tick it missed, so a check that returns
// first, as the process resumes, still sees it.
func (m *tickStallMeter) Stalled(now time.Time) time.Duration {
	s := time.Duration(m.stalled.Load())
	p := time.Duration(m.period.Load())
	if p == 0 {
		return s
	}
	if late := time.Duration(now.UnixNano()-m.last.Load()) - p; late >= stallMin {
		s += late
	}
	return s
}

// noStalls is the StallMeter of a fake clock: it never stalls.
type noStalls struct{}

func (noStalls) Stalled(time.Time) time.Duration { return 0 }
