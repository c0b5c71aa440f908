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

// TestSchedulerLateFailureRetried: a timeout that comes back well after
// its deadline (the checker, not the target, was late) is retried at once
// and does not count towards fall (maxLateRetries times, and more while a
// retry still fits before the next slot), as is a timeout on time during
// which the process stood still; a timeout on time, and any other failure
// however late, counts at once. fall is 1, so a counted failure brings the
// target down.
func TestSchedulerLateFailureRetried(t *testing.T) {
	const (
		interval = time.Second
		timeout  = 200 * time.Millisecond
	)
	late := 150 * time.Millisecond // far past lateSlack(200ms) = 10ms
	timedOut := down("timeout after 200ms connecting")
	timedOut.TimedOut = true
	refused := down("connect: connection refused")
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
		// Only a timeout can be the checker's doing: a refusal read late
		// is still the target's answer.
		{"late refusal: counts", interval, []lateStep{{late, refused, 0}}, true, 1, 0},
		{"refusal on time, the process stalled for most of it: counts", interval, []lateStep{{0, refused, 150 * time.Millisecond}}, true, 1, 0},
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

// TestSchedulerLag: Lag is how late the checker has been lately: a result
// handled past its deadline counts (the checker's lateness, not the
// target's), for one to two windows, and so does a check not started by
// its due time.
func TestSchedulerLag(t *testing.T) {
	const (
		interval = time.Second
		timeout  = 200 * time.Millisecond
		late     = 300 * time.Millisecond
	)
	tg := target(80, conf.CheckSpec{Kind: conf.CheckTCP, Interval: interval, Timeout: timeout, Rise: 1, Fall: 1, InitialUp: true, Warmup: 1})
	zero := func(time.Duration) time.Duration { return 0 }

	t.Run("late result", func(t *testing.T) {
		clock := newFakeClock()
		stalls := &fakeStalls{}
		// Up every time, so no late retry: the second result comes back
		// late, the rest on time.
		ck := &lateCheck{clock: clock, stalls: stalls, steps: []lateStep{{-190 * time.Millisecond, ok(), 0}, {late, ok(), 0}, {-190 * time.Millisecond, ok(), 0}}}
		s := runScheduler(t, Options{Clock: clock, Rand: zero, Stalls: stalls, NewChecker: func(Target) (Checker, error) { return ck, nil }})
		h := &harness{s: s, clock: clock}
		t0 := clock.Now()
		if _, err := s.Update([]Target{tg}); err != nil {
			t.Fatal(err)
		}
		h.next(t, tg.Key(), 1)
		if lag := s.Lag(); lag != 0 {
			t.Fatalf("lag %v after a check on time, want 0", lag)
		}
		slot := t0
		for n := uint64(2); ; n++ {
			slot = slot.Add(interval)
			clock.Advance(slot.Sub(clock.Now()))
			h.next(t, tg.Key(), n)
			lag := s.Lag()
			since := clock.Now().Sub(t0.Add(interval + timeout + late)) // since the late result
			switch {
			case n == 2 && lag != late:
				t.Fatalf("lag %v after a result %v past its deadline, want %v", lag, late, late)
			case since < lagWindow && lag != late:
				t.Fatalf("lag %v %v after the late result, want it kept (%v)", lag, since, late)
			case since >= 2*lagWindow+interval && lag != 0:
				t.Fatalf("lag %v %v after the late result, want 0 by then", lag, since)
			}
			if lag == 0 {
				return
			}
			if n > 40 {
				t.Fatal("the lag never went")
			}
		}
	})

	t.Run("not started", func(t *testing.T) {
		clock := newFakeClock()
		// Not run: the dispatcher is stuck, and the due check waits.
		s := New(Options{Clock: clock, Rand: zero, Stalls: &fakeStalls{}, NewChecker: func(Target) (Checker, error) { return &slowCheck{clock: clock}, nil }})
		if _, err := s.Update([]Target{tg}); err != nil {
			t.Fatal(err)
		}
		t0 := clock.Now()
		clock.Advance(3 * time.Second)
		if lag, want := s.Lag(), clock.Now().Sub(t0); lag != want {
			t.Fatalf("lag %v with the check due at the start and not started, want %v", lag, want)
		}
	})
}
