package healthcheck

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
)

// fakeClock only moves when Advance is called.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) TimerAt(at time.Time) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: at, c: make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool          { return true }

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// scripted returns results from a script, one per call, then repeats the
// last; it counts calls.
type scripted struct {
	mu     sync.Mutex
	script []Result
	calls  int
}

func (s *scripted) Run(context.Context, time.Time) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.script)-1)
	s.calls++
	return s.script[i]
}

func ok() Result            { return up("ok") }
func bad() Result           { return down("bad") }
func weighted(w int) Result { r := up("w"); r.Weight = w; return r }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.True(t, 5*time.Second, what, cond)
}

func TestVerdict(t *testing.T) {
	U, D := ok(), bad()
	tests := []struct {
		name       string
		initialUp  bool
		rise, fall int
		seq        []Result
		want       string // verdict after each result: u/d, '*' marks a change
	}{
		{"rise1 fall1 follows every result", false, 1, 1, []Result{U, D, U, D}, "u* d* u* d*"},
		{"rise2 needs two", false, 2, 1, []Result{U, D, U, U, U}, "d d d u* u"},
		{"fall3 absorbs flaps", true, 1, 3, []Result{D, D, U, D, D, U, D, D, D}, "u u u u u u u u d*"},
		{"up-down-up with rise3 fall3 never flips", true, 3, 3, []Result{D, U, D, U, D, D, U}, "u u u u u u u"},
		{"down target flapping never rises", false, 2, 2, []Result{U, D, U, D, U}, "d d d d d"},
		{"zero rise/fall mean 1", true, 0, 0, []Result{D, U}, "d* u*"},
		{"dynamic weight changes while up", true, 1, 1, []Result{weighted(5), weighted(5), weighted(0), U}, "u* u u* u*"},
		{"weight taken on rise", false, 2, 1, []Result{weighted(3), weighted(4)}, "d u*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerdict(tt.initialUp, tt.rise, tt.fall)
			var got []string
			for _, r := range tt.seq {
				ch := v.observe(r)
				s := "d"
				if v.up {
					s = "u"
				}
				if ch {
					s += "*"
				}
				got = append(got, s)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
	v := newVerdict(false, 2, 1)
	v.observe(weighted(3))
	v.observe(weighted(4))
	if v.weight != 4 {
		t.Fatalf("weight on rise = %d, want 4 (latest)", v.weight)
	}
}

func target(port uint16, c conf.CheckSpec) Target {
	return tgt(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), c)
}

type harness struct {
	s      *Scheduler
	clock  *fakeClock
	mu     sync.Mutex
	fakes  map[string]*scripted
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, scripts map[uint16][]Result) *harness {
	return newHarnessWith(t, scripts, Options{})
}

// newHarnessWith is newHarness with opt's other options.
func newHarnessWith(t *testing.T, scripts map[uint16][]Result, opt Options) *harness {
	h := &harness{clock: newFakeClock(), fakes: map[string]*scripted{}}
	opt.Clock = h.clock
	opt.Rand = func(time.Duration) time.Duration { return 0 }
	opt.NewChecker = func(tg Target) (Checker, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		f := &scripted{script: scripts[tg.Addr.Port()]}
		h.fakes[tg.Key()] = f
		return f, nil
	}
	h.s = New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) checks(key string) uint64 { return probeChecks(h.s, key) }

// probeChecks is how many checks the probe of key has run.
func probeChecks(s *Scheduler, key string) uint64 {
	for _, st := range s.Status() {
		if st.Key == key {
			return st.Checks
		}
	}
	return 0
}

// step advances the clock one interval and waits until the probe has
// completed n checks in all.
func (h *harness) step(t *testing.T, d time.Duration, key string, n uint64) {
	t.Helper()
	h.clock.Advance(d)
	waitFor(t, "check to complete", func() bool { return h.checks(key) >= n })
}

func drain(ch <-chan Transition) []Transition {
	var out []Transition
	for {
		select {
		case tr := <-ch:
			out = append(out, tr)
		default:
			return out
		}
	}
}

func TestSchedulerRiseFallWithFakeClock(t *testing.T) {
	U, D := ok(), bad()
	seq := []Result{U, U, D, U, D, D, D, U, U, weighted(7)}
	h := newHarness(t, map[uint16][]Result{80: seq})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Rise: 2, Fall: 3}
	tg := target(80, c)
	init, err := h.s.Update([]Target{tg})
	if err != nil {
		t.Fatal(err)
	}
	if len(init) != 1 || init[0].Up || init[0].Reason != "initial state down" {
		t.Fatalf("initial = %+v, want one down", init)
	}
	var got []string
	for i := range seq {
		h.step(t, time.Second, tg.Key(), uint64(i+1))
		// transitions are emitted before the probe is rescheduled, and the
		// next step waits for the next check, so this read is complete.
		for _, tr := range drain(h.s.Transitions()) {
			got = append(got, tr.String()[len("127.0.0.1:80 tcp "):])
		}
	}
	// Allow the last emission to land.
	waitFor(t, "last transition", func() bool {
		for _, tr := range drain(h.s.Transitions()) {
			got = append(got, tr.String()[len("127.0.0.1:80 tcp "):])
		}
		return len(got) >= 4
	})
	want := []string{"up: ok", "down: bad", "up: ok", "up weight 7: w"}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions %q, want %q", got, want)
	}
	st := h.s.Status()[0]
	if len(st.History) != 10 || st.History[9].Weight != 7 {
		t.Fatalf("history = %d entries (last %+v), want 10 ending in weight 7", len(st.History), st.History[len(st.History)-1])
	}
}

func TestSchedulerRetryDelay(t *testing.T) {
	h := newHarness(t, map[uint16][]Result{80: {bad()}})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: 10 * time.Second, RetryDelay: time.Second,
		Fall: 3, InitialUp: true, Warmup: 1}
	tg := target(80, c)
	if _, err := h.s.Update([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	h.step(t, 0, tg.Key(), 1) // warmup draw 0: first check at once
	h.step(t, time.Second, tg.Key(), 2)
	h.step(t, time.Second, tg.Key(), 3) // third failure: down
	tr := <-h.s.Transitions()
	if tr.Up || tr.Reason != "bad" {
		t.Fatalf("transition %v, want down: bad", tr)
	}
	// Down now: back to the interval, read from the schedule itself (a
	// wrong retry would show as a next run one second away).
	want := h.clock.Now().Add(10 * time.Second)
	if next := h.next(t, tg.Key(), 3); !next.Equal(want) {
		t.Fatalf("next check at +%v after going down, want +10s (the interval)", next.Sub(h.clock.Now()))
	}
	h.step(t, 10*time.Second, tg.Key(), 4)
}

// next waits until the probe is rescheduled after its nth check and
// returns when it runs next.
func (h *harness) next(t *testing.T, key string, n uint64) time.Time {
	t.Helper()
	var next time.Time
	waitFor(t, "reschedule", func() bool {
		for _, st := range h.s.Status() {
			if st.Key == key && st.Checks >= n {
				next = st.Next
			}
		}
		return !next.IsZero()
	})
	return next
}

// slowCheck takes took on the scheduler's clock and records the deadline
// it was given.
type slowCheck struct {
	clock     *fakeClock
	took      time.Duration
	mu        sync.Mutex
	deadlines []time.Time
}

func (c *slowCheck) Run(_ context.Context, deadline time.Time) Result {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, deadline)
	c.mu.Unlock()
	c.clock.Advance(c.took)
	return ok()
}

// TestSchedulerFixedRate: a check that takes 300 ms of a 1 s interval
// runs next at its scheduled time + 1 s, not at its end + 1 s (which
// would drift every probe's phase by its check time), and its deadline is
// on the scheduler's clock.
func TestSchedulerFixedRate(t *testing.T) {
	clock := newFakeClock()
	ck := &slowCheck{clock: clock, took: 300 * time.Millisecond}
	s := New(Options{Clock: clock, Rand: func(time.Duration) time.Duration { return 0 },
		NewChecker: func(Target) (Checker, error) { return ck, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := &harness{s: s, clock: clock}
	tg := target(80, conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Timeout: 500 * time.Millisecond, Warmup: 1})
	t0 := clock.Now()
	if _, err := s.Update([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		due := t0.Add(time.Duration(i) * time.Second)
		if next := h.next(t, tg.Key(), uint64(i+1)); !next.Equal(due.Add(time.Second)) {
			t.Fatalf("check %d due at +%v ran next at +%v, want +%v", i+1, due.Sub(t0), next.Sub(t0), due.Add(time.Second).Sub(t0))
		}
		ck.mu.Lock()
		dl := ck.deadlines[i]
		ck.mu.Unlock()
		if !dl.Equal(due.Add(500 * time.Millisecond)) {
			t.Fatalf("check %d got deadline +%v, want +500ms after its start on the scheduler's clock", i+1, dl.Sub(due))
		}
		clock.Advance(due.Add(time.Second).Sub(clock.Now()))
	}
}

func TestSchedulerReloadKeepsState(t *testing.T) {
	h := newHarness(t, map[uint16][]Result{1: {ok()}, 2: {ok()}, 3: {ok()}})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second}
	a, b, cc := target(1, c), target(2, c), target(3, c)
	if _, err := h.s.Update([]Target{a, b}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	waitFor(t, "first checks", func() bool { return h.checks(a.Key()) == 1 && h.checks(b.Key()) == 1 })
	waitFor(t, "a and b up", func() bool {
		n := 0
		for _, st := range h.s.Status() {
			if st.Up {
				n++
			}
		}
		return n == 2
	})
	states, err := h.s.Update([]Target{a, cc, a})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[0].Key != a.Key() || !states[0].Up || states[1].Key != cc.Key() || states[1].Up {
		t.Fatalf("Update states = %+v, want a up (kept), c down (new)", states)
	}
	st := h.s.Status()
	if len(st) != 2 {
		t.Fatalf("%d probes after reload, want 2", len(st))
	}
	for _, s := range st {
		switch s.Key {
		case a.Key():
			if s.Checks != 1 || len(s.History) != 1 || s.Subscribers != 2 {
				t.Fatalf("a after reload: checks %d history %d subscribers %d, want 1 1 2", s.Checks, len(s.History), s.Subscribers)
			}
		case cc.Key():
			if s.Checks != 0 {
				t.Fatalf("c has %d checks, want 0", s.Checks)
			}
		default:
			t.Fatalf("unexpected probe %s", s.Key)
		}
	}
	h.mu.Lock()
	fb := h.fakes[b.Key()]
	h.mu.Unlock()
	h.clock.Advance(time.Second)
	waitFor(t, "a and c checked", func() bool { return h.checks(a.Key()) == 2 && h.checks(cc.Key()) == 1 })
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.calls != 1 {
		t.Fatalf("removed probe b ran %d times, want 1", fb.calls)
	}

	// A changed check definition is a different probe: fresh state.
	c2 := c
	c2.Rise = 5
	a2 := target(1, c2)
	states, err = h.s.Update([]Target{a2})
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Up {
		t.Fatalf("changed definition kept old state: %+v", states[0])
	}
}

func TestSchedulerUpdateRejectsInvalid(t *testing.T) {
	s := New(Options{})
	good := target(1, conf.CheckSpec{Kind: conf.CheckTCP})
	if _, err := s.Update([]Target{good}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Update([]Target{target(2, conf.CheckSpec{Kind: 99}), target(3, conf.CheckSpec{Kind: conf.CheckHTTP,
		HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/", ExpectBody: "("}}}}),
		{Addr: netip.MustParseAddrPort("10.0.0.4:80")}})
	for _, want := range []string{"unknown kind", "expect_body", "target 10.0.0.4:80: no check spec"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want every problem named (%q)", err, want)
		}
	}
	if st := s.Status(); len(st) != 1 || st[0].Key != good.Key() {
		t.Fatalf("failed Update changed the probe set: %+v", st)
	}
}

// blocker hangs until its context is cancelled.
// blocker is a check that runs until it is cancelled; started counts
// its runs that began.
type blocker struct{ started, cancelled atomic.Int32 }

func (b *blocker) Run(ctx context.Context, _ time.Time) Result {
	b.started.Add(1)
	<-ctx.Done()
	b.cancelled.Add(1)
	return down("cancelled")
}

func TestSchedulerRemovalCancelsInflight(t *testing.T) {
	clock := newFakeClock()
	b := &blocker{}
	s := New(Options{Clock: clock, NewChecker: func(Target) (Checker, error) { return b, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	tg := target(9, conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second})
	s.Update([]Target{tg})
	clock.Advance(time.Second)
	// Popped (Next zero) is not yet running: a worker may not have taken
	// it, and a probe removed before then is never run, so nothing is
	// cancelled. Wait for the run itself.
	waitFor(t, "check in flight", func() bool { return b.started.Load() == 1 })
	if _, err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "in-flight check cancelled", func() bool { return b.cancelled.Load() == 1 })
	// Run waits for checks in flight, and a hung one must not hold it.
	s.Update([]Target{tg})
	clock.Advance(time.Second)
	waitFor(t, "check in flight again", func() bool { return b.started.Load() == 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return with a check in flight")
	}
	if b.cancelled.Load() != 2 {
		t.Fatalf("cancelled = %d, want 2", b.cancelled.Load())
	}
}

func TestSchedulerPhaseSpread(t *testing.T) {
	s := New(Options{Clock: newFakeClock(), NewChecker: func(Target) (Checker, error) { return &scripted{script: []Result{ok()}}, nil }})
	var ts []Target
	for i := range 1000 {
		ts = append(ts, target(uint16(1000+i), conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second}))
	}
	if _, err := s.Update(ts); err != nil {
		t.Fatal(err)
	}
	// First runs must cover the interval, not bunch at its start: count
	// them in ten 100ms buckets.
	var buckets [10]int
	base := s.clock.Now()
	for _, st := range s.Status() {
		off := st.Next.Sub(base)
		if off < 0 || off >= time.Second {
			t.Fatalf("first run offset %v outside [0,1s)", off)
		}
		buckets[off/(100*time.Millisecond)]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Fatalf("bucket %d has %d of 1000 first runs, want ~100: %v", i, n, buckets)
		}
	}
}

// The heap pops in due order whatever the order of pushes, and push reports
// a new head exactly when the pushed entry is earlier than all others.
func TestProbeHeapOrder(t *testing.T) {
	for _, n := range []int{1, 2, 3, 10, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(n), 7))
			var h probeHeap
			var dues []int64
			for range n {
				d := r.Int64N(int64(n) * 3) // duplicates included
				min := slices.Min(append(slices.Clone(dues), d))
				// Equal due times do not displace the head: the dispatcher's
				// timer is already armed for that time.
				wantHead := len(dues) == 0 || d < slices.Min(dues)
				if head := h.push(heapEntry{due: d, p: &probe{}}) == 0; head != wantHead {
					t.Fatalf("push(%d) reported head=%v with earlier entries %v", d, head, dues)
				}
				dues = append(dues, d)
				if h[0].due != min {
					t.Fatalf("head %d after push(%d), want %d", h[0].due, d, min)
				}
			}
			slices.Sort(dues)
			for i, want := range dues {
				if got := h.pop().due; got != want {
					t.Fatalf("pop %d = %d, want %d", i, got, want)
				}
			}
			if len(h) != 0 {
				t.Fatalf("%d entries left", len(h))
			}
		})
	}
}

// A result kept in a probe's history comes back as it went in, but for
// the start's monotonic reading and location and the duration's part below
// a microsecond; a duration past 35 minutes saturates.
func TestHistoryEntryRoundTrip(t *testing.T) {
	if n := unsafe.Sizeof(histEntry{}); n != 32 {
		t.Errorf("a history entry takes %d bytes, want 32: History of them per probe, for every probe", n)
	}
	start := time.Date(2026, 12, 4, 6, 15, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		r    Result
	}{
		{"up, configured weight", Result{Up: true, Weight: WeightConfigured, Reason: "status 200", Start: start, Took: 1234 * time.Microsecond}},
		{"down, zero start", Result{Weight: WeightConfigured, Reason: "connect: connection refused"}},
		{"exec weight", Result{Up: true, Weight: 253, Reason: "exit status 255 (weight 253)", Start: start, Took: time.Second}},
		{"quiesced", Result{Up: true, Weight: 0, Reason: "exit status 2 (weight 0)", Start: time.Now()}},
		{"took below a microsecond", Result{Up: true, Weight: WeightConfigured, Reason: "connected", Took: 1500 * time.Nanosecond}},
		{"took saturates", Result{Weight: WeightConfigured, Reason: "exit status 1", Took: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := packResult(tc.r).result()
			switch tc.name {
			case "took below a microsecond":
				tc.r.Took = time.Microsecond
			case "took saturates":
				tc.r.Took = math.MaxInt32 * time.Microsecond
			}
			if !got.Start.Equal(tc.r.Start) || got.Start.IsZero() != tc.r.Start.IsZero() {
				t.Errorf("start %v, want %v", got.Start, tc.r.Start)
			}
			got.Start, tc.r.Start = time.Time{}, time.Time{}
			if got != tc.r {
				t.Errorf("got %+v, want %+v", got, tc.r)
			}
		})
	}
}

// With Slack the dispatcher wakes at the head's due time rounded up to a
// multiple of it, and starts every check due by then in that wake-up; the
// start lag is the rounding. Without, it wakes at the due time itself.
func TestSchedulerSlack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		slack time.Duration
		wake  []time.Duration // when the dispatcher's timer is armed, from the epoch, in order
	}{
		{"slack 10ms: both in one wake-up at 10ms", 10 * time.Millisecond, []time.Duration{10 * time.Millisecond}},
		{"none: a wake-up per due check", -1, []time.Duration{3 * time.Millisecond, 7 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			t0 := clock.Now()
			offsets := []time.Duration{3 * time.Millisecond, 7 * time.Millisecond}
			var (
				mu  sync.Mutex
				obs []Observation
			)
			s := New(Options{Clock: clock, Slack: tc.slack,
				Rand:       func(time.Duration) time.Duration { o := offsets[0]; offsets = offsets[1:]; return o },
				NewChecker: func(Target) (Checker, error) { return &scripted{script: []Result{ok()}}, nil },
				OnResult:   func(o Observation) { mu.Lock(); obs = append(obs, o); mu.Unlock() }})
			spec := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Timeout: 500 * time.Millisecond, Warmup: time.Second}
			if _, err := s.Update([]Target{target(80, spec), target(81, spec)}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			armedAt := func(at time.Time) bool {
				clock.mu.Lock()
				defer clock.mu.Unlock()
				for _, tm := range clock.timers {
					if tm.at.Equal(at) {
						return true
					}
				}
				return false
			}
			for i, w := range tc.wake {
				at := t0.Add(w)
				waitFor(t, "the dispatcher's timer armed at +"+w.String(), func() bool { return armedAt(at) })
				clock.Advance(at.Sub(clock.Now()))
				// Each wake-up's checks have started before the clock moves on.
				n := 2 - len(tc.wake) + i + 1
				waitFor(t, strconv.Itoa(n)+" checks", func() bool { mu.Lock(); defer mu.Unlock(); return len(obs) == n })
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range obs {
				want := o.Scheduled
				if tc.slack > 0 {
					want = t0.Add(tc.wake[0])
				}
				if !o.Started.Equal(want) {
					t.Errorf("check due at +%v started at +%v, want +%v", o.Scheduled.Sub(t0), o.Started.Sub(t0), want.Sub(t0))
				}
			}
		})
	}
}

// TestSchedulerMemoryPerTarget: what a scheduler holds per target, with
// a checker that holds nothing, stays within a budget: its RSS at 1k
// targets is a goal of issue 14. The Transitions channel's buffer (1024
// transitions, each with a copy of its 440-byte target) made it 1974
// bytes a target; it is about 1530.
func TestSchedulerMemoryPerTarget(t *testing.T) {
	const n = 1000
	var ts []Target
	for i := range n {
		ts = append(ts, target(uint16(1000+i), conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second}))
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	ck := &scripted{script: []Result{ok()}}
	before := heap()
	s := New(Options{Clock: newFakeClock(), NewChecker: func(Target) (Checker, error) { return ck, nil }})
	trs, err := s.Update(ts)
	if err != nil || len(trs) != n {
		t.Fatalf("Update: %d transitions, %v", len(trs), err)
	}
	trs = nil
	per := float64(int64(heap())-int64(before)) / n
	// A probe (448 bytes: its target points at the compiled check), its
	// history ring (320), its key and context, the maps' entries: 1117
	// bytes when written (1532 when the probe held a copy of the check
	// and a history entry took 40 bytes).
	const budget = 1250
	if per > budget {
		t.Errorf("%.0f bytes held per target, want at most %d", per, budget)
	}
	t.Logf("%.0f bytes per target", per)
	runtime.KeepAlive(s)
	runtime.KeepAlive(ts)
}

// TestPopDueBounded: the loop takes at most a round's worth of due probes
// at once (startsPerRound), so that it handles its checks in flight
// between rounds; those left stay due at the heap's head, where Lag sees
// them.
func TestPopDueBounded(t *testing.T) {
	clock := newFakeClock()
	s := New(Options{Clock: clock, Rand: func(time.Duration) time.Duration { return 0 }, Stalls: &fakeStalls{},
		NewChecker: func(Target) (Checker, error) { return &slowCheck{clock: clock}, nil }})
	const n = 100
	var ts []Target
	for i := range n {
		ts = append(ts, target(uint16(1000+i), conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Warmup: 1}))
	}
	if _, err := s.Update(ts); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	var got int
	for round := 0; got < n; round++ {
		batch, at, head, have := s.popDue(nil, startsPerRound)
		if want := min(startsPerRound, n-got); len(batch) != want {
			t.Fatalf("round %d: %d probes, want %d", round, len(batch), want)
		}
		got += len(batch)
		if left := got < n; left && (!have || s.epoch.Add(time.Duration(head)).After(at)) {
			t.Fatalf("round %d: %d probes left, yet the head (have %v) is not due", round, n-got, have)
		}
		if got < n && s.Lag() != time.Second {
			t.Fatalf("round %d: lag %v with probes a second overdue", round, s.Lag())
		}
	}
	if batch, _, _, _ := s.popDue(nil, 0); len(batch) != 0 {
		t.Fatalf("%d probes popped twice", len(batch))
	}
}
