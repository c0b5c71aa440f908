package vrrp

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestFDTimer(t *testing.T) {
	cases := []struct {
		name  string
		arm   func(*fdTimer)
		fires bool
	}{
		{"fires after reset", func(tm *fdTimer) { tm.reset(5 * time.Millisecond) }, true},
		{"a past deadline fires at once", func(tm *fdTimer) { tm.reset(-time.Second) }, true},
		// 100ms leaves room for a descheduled test between the calls.
		{"stop disarms", func(tm *fdTimer) { tm.reset(100 * time.Millisecond); tm.stop() }, false},
		{"reset re-arms later", func(tm *fdTimer) { tm.reset(100 * time.Millisecond); tm.reset(time.Hour) }, false},
		{"reset re-arms earlier", func(tm *fdTimer) { tm.reset(time.Hour); tm.reset(5 * time.Millisecond) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm, err := newFDTimer()
			if err != nil {
				t.Fatal(err)
			}
			defer tm.close()
			start := time.Now()
			c.arm(tm)
			limit := time.After(300 * time.Millisecond)
			for {
				select {
				case now := <-tm.C:
					if !tm.due(now) {
						continue // re-armed for a later deadline
					}
					if !c.fires {
						t.Fatalf("fired after %v", time.Since(start))
					}
				case <-limit:
					if c.fires {
						t.Fatal("did not fire within 300ms")
					}
				}
				return
			}
		})
	}
}

// TestFDTimerLaterCostsNoWake: pushing the deadline later (a backup on
// every advert) never wakes the timer's owner early. With one timer in
// the set the kernel timer follows the deadline (a raw timerfd_settime
// instead of a wake-up); with more, it keeps the earliest, and its fire
// re-arms for the deadline wanted then without waking anyone.
func TestFDTimerLaterCostsNoWake(t *testing.T) {
	for _, tc := range []struct {
		name   string
		others int
		wakes  int64
		moves  bool
	}{
		{"alone: the kernel timer follows", 0, 1, true},
		{"with another: the set re-arms once", 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTimerSet()
			tm, err := s.newTimer()
			if err != nil {
				t.Fatal(err)
			}
			defer tm.close()
			start := time.Now()
			for range tc.others {
				o, err := s.newTimer()
				if err != nil {
					t.Fatal(err)
				}
				defer o.close()
				o.resetAt(start, start.Add(time.Hour))
			}
			tm.resetAt(start, start.Add(20*time.Millisecond))
			first := s.kernelAt()
			for i := 1; i <= 10; i++ {
				at := start.Add(time.Duration(20+5*i) * time.Millisecond)
				tm.resetAt(start, at)
				if k := s.kernelAt(); (k == at) != tc.moves || !tc.moves && k != first {
					t.Fatalf("deadline %d: kernel timer at %v", i, k.Sub(start))
				}
			}
			want := start.Add(70 * time.Millisecond)
			select {
			case now := <-tm.C:
				if !tm.due(now) {
					t.Fatalf("fired at %v, before its deadline (70ms)", now.Sub(start))
				}
				if late := now.Sub(want); late < 0 || late > 50*time.Millisecond {
					t.Fatalf("due at %v, want at 70ms (+ scheduling)", now.Sub(start))
				}
				if w := s.wakes.Load(); w != tc.wakes {
					t.Fatalf("%d kernel fires, want %d", w, tc.wakes)
				}
			case <-time.After(time.Second):
				t.Fatal("never due")
			}
		})
	}
}

// TestTimerSetSharesWakeups: timers of one set due within their slack of
// the first fire on its wake-up; a timer without slack never fires early,
// and a later one waits for its own.
func TestTimerSetSharesWakeups(t *testing.T) {
	s := newTimerSet()
	var tms []*fdTimer
	for range 4 {
		tm, err := s.newTimer()
		if err != nil {
			t.Fatal(err)
		}
		defer tm.close()
		tms = append(tms, tm)
	}
	start := time.Now()
	at := start.Add(30 * time.Millisecond)
	tms[0].resetSlack(start, at, 0)                                          // the leader
	tms[1].resetSlack(start, at.Add(500*time.Microsecond), time.Millisecond) // within its slack: rides along
	tms[2].resetSlack(start, at.Add(500*time.Microsecond), 0)                // no slack: its own fire
	tms[3].resetSlack(start, at.Add(20*time.Millisecond), time.Millisecond)  // beyond its slack: its own fire
	fired := make([]time.Time, len(tms))
	deadline := time.After(time.Second)
	for n := 0; n < len(tms); {
		var now time.Time
		var i int
		select {
		case now = <-tms[0].C:
			i = 0
		case now = <-tms[1].C:
			i = 1
		case now = <-tms[2].C:
			i = 2
		case now = <-tms[3].C:
			i = 3
		case <-deadline:
			t.Fatalf("fired %v after 1s", fired)
		}
		if !tms[i].due(now) {
			continue
		}
		fired[i] = now
		n++
	}
	if !fired[1].Equal(fired[0]) {
		t.Errorf("timer within its slack fired at %v, the leader at %v: want one wake-up", fired[1].Sub(start), fired[0].Sub(start))
	}
	if fired[2].Before(at.Add(500 * time.Microsecond)) {
		t.Errorf("timer without slack fired early, at %v", fired[2].Sub(start))
	}
	if fired[3].Before(at.Add(19 * time.Millisecond)) {
		t.Errorf("timer beyond its slack fired at %v, want at 50ms - 1ms or later", fired[3].Sub(start))
	}
}

// TestTimerSetReopens: the last timer's close closes the timerfd; a new
// timer opens another, which fires.
func TestTimerSetReopens(t *testing.T) {
	s := newTimerSet()
	tm, err := s.newTimer()
	if err != nil {
		t.Fatal(err)
	}
	tm.close()
	if s.f != nil {
		t.Fatal("timerfd still open after the last timer closed")
	}
	tm, err = s.newTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.close()
	tm.reset(time.Millisecond)
	select {
	case now := <-tm.C:
		if !tm.due(now) {
			t.Fatal("fire not due")
		}
	case <-time.After(time.Second):
		t.Fatal("the reopened set never fired")
	}
}

// TestTimerSetArmedSlots: the armed timers (a slice with each timer's
// slot) follow any sequence of resets, stops and takes as a set would,
// and take returns exactly the timers due, earliest first.
func TestTimerSetArmedSlots(t *testing.T) {
	// No timerfd: arm's system call fails on fd -1 and nothing fires;
	// only the bookkeeping is under test.
	s := &timerSet{fd: -1}
	const n = 20
	timers := make([]*fdTimer, n)
	want := map[*fdTimer]time.Time{} // the model: armed timers and deadlines
	for i := range timers {
		timers[i] = &fdTimer{set: s, slot: -1}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1000, 0)
	for step := range 5000 {
		tm := timers[rng.IntN(n)]
		switch op := rng.IntN(10); {
		case op < 6:
			at := now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
			tm.resetAt(now, at)
			want[tm] = at
		case op < 8:
			tm.stop()
			delete(want, tm)
		default:
			now = now.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
			s.mu.Lock()
			due := s.take(now, nil)
			s.mu.Unlock()
			var model []*fdTimer
			for m, at := range want {
				if !now.Before(at) {
					model = append(model, m)
					delete(want, m)
				}
			}
			if len(due) != len(model) {
				t.Fatalf("step %d: take returned %d timers, %d were due", step, len(due), len(model))
			}
			for i, d := range due {
				if !slices.Contains(model, d) {
					t.Fatalf("step %d: take returned a timer not due", step)
				}
				if i > 0 && d.want.Before(due[i-1].want) {
					t.Fatalf("step %d: take's timers are not earliest first", step)
				}
			}
		}
		if len(s.armed) != len(want) {
			t.Fatalf("step %d: %d armed, want %d", step, len(s.armed), len(want))
		}
		for i, a := range s.armed {
			if a.slot != i || want[a] != a.want {
				t.Fatalf("step %d: armed[%d] has slot %d, deadline %v (want %v)", step, i, a.slot, a.want, want[a])
			}
		}
		for _, tm := range timers {
			if _, armed := want[tm]; !armed && tm.slot != -1 {
				t.Fatalf("step %d: a timer not armed has slot %d", step, tm.slot)
			}
		}
	}
}

// TestTimerSetTakesOnlyKernelFires: the set's goroutine does not read the
// timerfd's count, so a wake-up for an expiration that a later
// timerfd_settime replaced (a backup's deadline pushed back after the
// kernel timer fired, before the wake-up was handled) must take nothing;
// the clock against the kernel timer's setting tells them apart. A fire
// is taken once.
func TestTimerSetTakesOnlyKernelFires(t *testing.T) {
	s := &timerSet{fd: -1} // no timerfd: the settings are not sent
	tm := &fdTimer{set: s, slot: -1}
	start := time.Now()
	tm.resetAt(start, start.Add(time.Hour))
	if due, ok := s.takeFired(time.Now(), nil); ok || len(due) != 0 {
		t.Fatalf("before the kernel timer's setting: took %d, %v", len(due), ok)
	}
	if tm.slot != 0 || s.kernelAt() != start.Add(time.Hour) {
		t.Fatalf("a wake-up before the setting disarmed the timer (slot %d, kernel at %v)", tm.slot, s.kernelAt())
	}
	// A deadline already past: the kernel timer is set 1ns ahead.
	now := time.Now()
	tm.resetAt(now, now.Add(-time.Millisecond))
	for deadline := time.Now().Add(time.Second); ; {
		due, ok := s.takeFired(time.Now(), nil)
		if ok {
			if len(due) != 1 || due[0] != tm || tm.slot != -1 {
				t.Fatalf("took %d timers (slot %d), want the one due", len(due), tm.slot)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a past deadline's fire was never taken")
		}
	}
	if due, ok := s.takeFired(time.Now(), nil); ok || len(due) != 0 {
		t.Fatalf("the same fire taken twice: %d, %v", len(due), ok)
	}
	// A deadline without a monotonic reading (an advert's kernel receive
	// stamp plus Master_Down_Interval) still gives a monotonic setting.
	tm.resetAt(time.Now(), time.Now().Round(0).Add(time.Hour))
	if s.fireAt.Round(0) == s.fireAt {
		t.Fatal("the kernel timer's setting has no monotonic reading")
	}
}
