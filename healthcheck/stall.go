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

// stallTick is the period of the real meter's ticker: 100 wake-ups a
// second while the scheduler runs.
const stallTick = 10 * time.Millisecond

// stallMin is the smallest lateness of a tick counted as a stall: below it
// is ordinary timer and scheduling jitter.
const stallMin = 5 * time.Millisecond

// tickStallMeter is the real StallMeter: a ticker whose late ticks add up
// to the stall time. A process that stands still ticks late by the
// stall, whatever its cause.
type tickStallMeter struct {
	last    atomic.Int64 // unix nanoseconds of the last tick
	stalled atomic.Int64 // nanoseconds
}

func newTickStallMeter() *tickStallMeter {
	m := &tickStallMeter{}
	m.last.Store(time.Now().UnixNano())
	return m
}

// run ticks until ctx is done.
func (m *tickStallMeter) run(ctx context.Context) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now().UnixNano()
			prev := m.last.Swap(now)
			if late := time.Duration(now-prev) - stallTick; late >= stallMin {
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
	if late := time.Duration(now.UnixNano()-m.last.Load()) - stallTick; late >= stallMin {
		s += late
	}
	return s
}

// noStalls is the StallMeter of a fake clock: it never stalls.
type noStalls struct{}

func (noStalls) Stalled(time.Time) time.Duration { return 0 }
