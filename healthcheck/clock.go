package healthcheck

import "time"

// Clock is the scheduler's notion of time, injectable so that rise/fall and
// scheduling can be tested by advancing a fake clock instead of sleeping.
type Clock interface {
	Now() time.Time
	// TimerAt fires at the absolute time at (at once if it has passed).
	// Absolute, not relative, so that a fake clock advanced between the
	// scheduler reading Now and arming the timer cannot delay it.
	TimerAt(at time.Time) Timer
}

// Timer is the part of *time.Timer the scheduler uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) TimerAt(at time.Time) Timer {
	return realTimer{time.NewTimer(time.Until(at))}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
