package healthcheck

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// lateStep is one run of a lateCheck: it ends over past its deadline
// (negative: that much before it) with result r.
type lateStep struct {
	over  time.Duration
	r     Result
	stall time.Duration // of the process, during the run
}

// fakeStalls is a StallMeter the checks of a test move.
type fakeStalls struct {
	mu sync.Mutex
	d  time.Duration
}

func (f *fakeStalls) Stalled(time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d
}

func (f *fakeStalls) add(d time.Duration) {
	f.mu.Lock()
	f.d += d
	f.mu.Unlock()
}

// lateCheck plays steps on the scheduler's fake clock, one per run, then
// repeats the last.
type lateCheck struct {
	clock  *fakeClock
	stalls *fakeStalls
	mu     sync.Mutex
	steps  []lateStep
	runs   int
	start  []time.Time
}

func (c *lateCheck) Run(_ context.Context, deadline time.Time) Result {
	c.mu.Lock()
	st := c.steps[min(c.runs, len(c.steps)-1)]
	c.runs++
	c.start = append(c.start, c.clock.Now())
	c.mu.Unlock()
	c.stalls.add(st.stall)
	c.clock.Advance(deadline.Add(st.over).Sub(c.clock.Now()))
	return st.r
}

func (c *lateCheck) started() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.start...)
}

// TestSchedulerLateFailureRetried: a failure that comes back well after
// its deadline (the checker, not the target, was late) is retried at once
// and does not count towards fall (maxLateRetries times, and more while a
// retry still fits before the next slot), as is a failure on time during
// which the process stood still; a failure on time counts at once. fall
// is 1, so a counted failure brings the target down.
func TestSchedulerLateFailureRetried(t *testing.T) {
	const (
		interval = time.Second
		timeout  = 200 * time.Millisecond
	)
	late := 150 * time.Millisecond // far past lateSlack(200ms) = 10ms
	timedOut := down("timeout after 200ms connecting")
	for _, tc := range []struct {
		name     string
		interval time.Duration
		steps    []lateStep
		down     bool   // the target goes down
		runs     int    // checks run in the first slot (with a retry: 2)
		retries  uint64 // LateRetries
	}{
		{"late timeout, then the retry answers", interval, []lateStep{{late, timedOut, 0}, {-190 * time.Millisecond, ok(), 0}}, false, 2, 1},
		{"late timeouts retried up to maxLateRetries, then counted when the slot has no room", 1500 * time.Millisecond, []lateStep{{late, timedOut, 0}}, true, 4, 3},
		{"late timeout twice, then the retry answers", interval, []lateStep{{late, timedOut, 0}, {late, timedOut, 0}, {-190 * time.Millisecond, ok(), 0}}, false, 3, 2},
		{"timeout on time: counts", interval, []lateStep{{0, timedOut, 0}}, true, 1, 0},
		{"timeout on time, the process stalled for most of it", interval, []lateStep{{0, timedOut, 150 * time.Millisecond}, {-190 * time.Millisecond, ok(), 0}}, false, 2, 1},
		{"timeout on time, a short stall: counts", interval, []lateStep{{0, timedOut, lateSlack(timeout) - time.Millisecond}}, true, 1, 0},
		// A busy VM stalls for a while now and then: a check that ran for
		// most of its time, or came back a little late, is a real timeout
		// (a hung target must still go down in time).
		{"timeout on time, a fifth of it stalled: counts", interval, []lateStep{{0, timedOut, timeout / 5}}, true, 1, 0},
		{"a fifth of the timeout late: counts", interval, []lateStep{{timeout / 5, timedOut, 0}}, true, 1, 0},
		{"within the slack: counts", interval, []lateStep{{lateSlack(timeout) - time.Millisecond, timedOut, 0}}, true, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			stalls := &fakeStalls{}
			ck := &lateCheck{clock: clock, stalls: stalls, steps: append([]lateStep{{-190 * time.Millisecond, ok(), 0}}, tc.steps...)}
			s := New(Options{Clock: clock, Rand: func(time.Duration) time.Duration { return 0 }, Stalls: stalls,
				NewChecker: func(Target) (Checker, error) { return ck, nil }})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			h := &harness{s: s, clock: clock}
			tg := target(80, conf.CheckSpec{Kind: conf.CheckTCP, Interval: tc.interval, Timeout: timeout, Rise: 1, Fall: 1, InitialUp: true, Warmup: 1})
			t0 := clock.Now()
			if _, err := s.Update([]Target{tg}); err != nil {
				t.Fatal(err)
			}
			drain(s.Transitions())
			// The first slot's check passes; the second slot is the case.
			h.next(t, tg.Key(), 1)
			slot := t0.Add(tc.interval)
			clock.Advance(slot.Sub(clock.Now()))
			h.next(t, tg.Key(), uint64(1+tc.runs))
			var st ProbeStatus
			for _, x := range s.Status() {
				st = x
			}
			if st.Up == tc.down || st.LateRetries != tc.retries || s.LateRetries() != tc.retries {
				t.Fatalf("up %v, late retries %d (scheduler %d); want up %v, %d\nhistory %+v", st.Up, st.LateRetries, s.LateRetries(), !tc.down, tc.retries, st.History)
			}
			if trs := drain(s.Transitions()); len(trs) != map[bool]int{true: 1}[tc.down] {
				t.Fatalf("transitions %v", trs)
			}
			starts := ck.started()
			if back := timeout + tc.steps[0].over; tc.runs >= 2 && !starts[2].Equal(slot.Add(back)) {
				t.Errorf("retry started at +%v after the slot, want at once when the late failure came back (+%v)", starts[2].Sub(slot), back)
			}
			// The probe keeps its phase: the next run is a slot later.
			if !st.Next.Equal(slot.Add(tc.interval)) {
				t.Errorf("next run at %v after the slot, want %v", st.Next.Sub(slot), tc.interval)
			}
		})
	}
}
