package healthcheck

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Transition is a change of a probe's verdict: up/down flipped, or the
// weight of an up target changed. Key identifies the probe (Target.Key); a
// consumer that subscribed several virtual servers to one real server maps
// the key back to all of them.
type Transition struct {
	Key    string
	Target Target
	Up     bool
	Weight int // WeightConfigured, or an exec check's dynamic weight
	Reason string
	At     time.Time
}

// Observation is one completed check, for metrics: Started-Scheduled is the
// scheduling lag.
type Observation struct {
	Key       string
	Scheduled time.Time
	Started   time.Time
	Result    Result
}

// Options configure a Scheduler. Zero values pick defaults.
type Options struct {
	Clock         Clock                               // default: real time
	MaxConcurrent int                                 // checks in flight at once; default 1024
	History       int                                 // results kept per probe; default 10
	Buffer        int                                 // Transitions channel capacity; default 1024
	NewChecker    func(Target) (Checker, error)       // default NewChecker; tests inject fakes
	OnResult      func(Observation)                   // optional; called from check goroutines
	Rand          func(n time.Duration) time.Duration // warmup draw in [0,n); default math/rand
}

// ProbeStatus is a snapshot of one probe for status output.
type ProbeStatus struct {
	Key         string
	Target      Target
	Up          bool
	Weight      int
	Reason      string
	Since       time.Time
	Checks      uint64
	Subscribers int       // how many entries of the last Update named this probe
	Next        time.Time // zero while a check is in flight or for type none
	History     []Result  // oldest first
}

// Scheduler runs one probe per distinct Target.Key. A dispatcher goroutine
// keeps probes in a heap ordered by next run time; for each due probe it
// takes one of MaxConcurrent slots and starts the check in a short-lived
// goroutine. Goroutines and sockets are therefore bounded by MaxConcurrent
// whatever the number of targets, and a hung target holds only its own slot
// until its timeout.
type Scheduler struct {
	opt   Options
	clock Clock
	out   chan Transition
	sem   chan struct{}
	wake  chan struct{}
	epoch time.Time
	base  context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	updateMu sync.Mutex // serialises Update calls

	mu     sync.Mutex
	probes map[string]*probe
	queue  probeHeap
}

type probe struct {
	key      string
	target   Target
	checker  Checker // nil for type none
	interval time.Duration
	retry    time.Duration
	v        verdict
	reason   string
	since    time.Time
	next     time.Time
	due      time.Duration // next - Scheduler.epoch: a cheap heap key
	index    int           // in the heap; -1 when not queued
	running  bool
	removed  bool
	ctx      context.Context
	cancel   context.CancelFunc
	subs     int
	checks   uint64
	hist     []Result // ring
	histN    int
}

// New returns a scheduler with no probes. Call Update to set the targets and
// Run to start checking.
func New(opt Options) *Scheduler {
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	if opt.MaxConcurrent <= 0 {
		opt.MaxConcurrent = 1024
	}
	if opt.History <= 0 {
		opt.History = 10
	}
	if opt.Buffer <= 0 {
		opt.Buffer = 1024
	}
	if opt.NewChecker == nil {
		opt.NewChecker = NewChecker
	}
	if opt.Rand == nil {
		opt.Rand = func(n time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(n))) }
	}
	base, stop := context.WithCancel(context.Background())
	return &Scheduler{
		opt:    opt,
		clock:  opt.Clock,
		epoch:  opt.Clock.Now(),
		out:    make(chan Transition, opt.Buffer),
		sem:    make(chan struct{}, opt.MaxConcurrent),
		wake:   make(chan struct{}, 1),
		base:   base,
		stop:   stop,
		probes: map[string]*probe{},
	}
}

// Transitions delivers verdict changes, in order per probe. The consumer
// must keep reading: a full channel stalls the probes that have news (and
// only those).
func (s *Scheduler) Transitions() <-chan Transition { return s.out }

// Update replaces the set of targets. Targets with equal keys share one
// probe. Probes whose key is still present keep their state, history and
// schedule; removed ones stop (a check in flight is cancelled and its result
// dropped); new ones start in their initial state, their first check spread
// over the interval (or drawn within warmup). Nothing changes if any target
// is invalid. It returns the current state of every distinct key in targets,
// in input order, so the consumer can reconcile without waiting for events.
func (s *Scheduler) Update(targets []Target) ([]Transition, error) {
	type entry struct {
		t  Target
		ck Checker
	}
	want := map[string]*entry{}
	subs := map[string]int{}
	var order []string
	var errs []error
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	s.mu.Lock()
	existing := make(map[string]bool, len(s.probes))
	for k := range s.probes {
		existing[k] = true
	}
	s.mu.Unlock()
	for _, t := range targets {
		k := t.Key()
		subs[k]++
		if want[k] != nil {
			continue
		}
		order = append(order, k)
		e := &entry{t: t}
		want[k] = e
		if existing[k] {
			continue
		}
		if t.Check.Type == "none" {
			continue
		}
		ck, err := s.opt.NewChecker(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.ck = ck
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	now := s.clock.Now()
	s.mu.Lock()
	for k, p := range s.probes {
		if want[k] == nil {
			p.removed = true
			p.cancel()
			if p.index >= 0 {
				heap.Remove(&s.queue, p.index)
			}
			delete(s.probes, k)
		}
	}
	out := make([]Transition, 0, len(order))
	for _, k := range order {
		p := s.probes[k]
		if p == nil {
			p = s.newProbe(k, want[k].t, want[k].ck, now)
			s.probes[k] = p
		}
		p.subs = subs[k]
		out = append(out, p.transition(now))
	}
	s.mu.Unlock()
	s.poke()
	return out, nil
}

func (s *Scheduler) newProbe(k string, t Target, ck Checker, now time.Time) *probe {
	c := t.Check
	p := &probe{key: k, target: t, checker: ck, index: -1, since: now, hist: make([]Result, s.opt.History)}
	p.ctx, p.cancel = context.WithCancel(s.base)
	if ck == nil {
		p.v = newVerdict(true, 1, 1)
		p.reason = "no check (type none)"
		return p
	}
	p.interval = c.Interval.D()
	if p.interval <= 0 {
		p.interval = DefaultInterval
	}
	p.retry = c.RetryDelay.D()
	initialUp := c.InitialState == "up"
	p.v = newVerdict(initialUp, c.Rise, c.Fall)
	p.reason = "initial state down"
	if initialUp {
		p.reason = "initial state up"
	}
	// Spread first checks so that 10k targets configured at once do not
	// all fire in the same millisecond: a stable per-key phase within the
	// interval, or a random draw within warmup when one is set.
	var off time.Duration
	if w := c.Warmup.D(); w > 0 {
		off = s.opt.Rand(w)
	} else {
		h := fnv.New64a()
		h.Write([]byte(k))
		off = time.Duration(h.Sum64() % uint64(p.interval))
	}
	p.setNext(now.Add(off), s.epoch)
	heap.Push(&s.queue, p)
	return p
}

func (p *probe) setNext(t, epoch time.Time) {
	p.next, p.due = t, t.Sub(epoch)
}

func (p *probe) transition(at time.Time) Transition {
	return Transition{Key: p.key, Target: p.target, Up: p.v.up, Weight: p.v.weight, Reason: p.reason, At: at}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run dispatches checks until ctx is done, then cancels checks in flight
// and waits for them. It must be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.wg.Wait()
	defer s.stop()
	for {
		// Take a slot before popping a due probe, so that only checks that
		// can run have goroutines: at most MaxConcurrent, while the rest
		// wait as heap entries.
		s.mu.Lock()
		if len(s.queue) > 0 && !s.queue[0].next.After(s.clock.Now()) {
			select {
			case s.sem <- struct{}{}:
				s.launch()
				s.mu.Unlock()
				continue
			default:
			}
			s.mu.Unlock()
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			s.mu.Lock()
			if len(s.queue) > 0 && !s.queue[0].next.After(s.clock.Now()) {
				s.launch()
			} else {
				<-s.sem // the due probe was removed meanwhile
			}
			s.mu.Unlock()
			continue
		}
		var (
			tc <-chan time.Time
			t  Timer
		)
		if len(s.queue) > 0 {
			t = s.clock.TimerAt(s.queue[0].next)
			tc = t.C()
		}
		s.mu.Unlock()

		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return ctx.Err()
		case <-s.wake:
		case <-tc:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// launch starts the check of the probe at the top of the heap; the caller
// holds s.mu and a semaphore slot, which the check releases.
func (s *Scheduler) launch() {
	p := heap.Pop(&s.queue).(*probe)
	p.running = true
	s.wg.Add(1)
	go s.check(p, p.next)
}

func (s *Scheduler) check(p *probe, scheduled time.Time) {
	defer s.wg.Done()
	started := s.clock.Now()
	r := p.checker.Run(p.ctx)
	<-s.sem
	if r.Start.IsZero() {
		r.Start = started
	}
	if r.Took == 0 {
		r.Took = s.clock.Now().Sub(started)
	}
	if s.opt.OnResult != nil && p.ctx.Err() == nil {
		s.opt.OnResult(Observation{Key: p.key, Scheduled: scheduled, Started: started, Result: r})
	}

	s.mu.Lock()
	if p.removed {
		s.mu.Unlock()
		return
	}
	p.checks++
	p.hist[p.histN%len(p.hist)] = r
	p.histN++
	changed := p.v.observe(r)
	var tr Transition
	if changed {
		p.reason = r.Reason
		p.since = s.clock.Now()
		tr = p.transition(p.since)
	}
	s.mu.Unlock()

	// Emit before rescheduling so that a probe's transitions stay in order
	// even if the consumer is slow.
	if changed {
		select {
		case s.out <- tr:
		case <-p.ctx.Done():
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if p.removed {
		return
	}
	p.running = false
	now := s.clock.Now()
	if !r.Up && p.v.retrying() && p.retry > 0 {
		// keepalived's delay_before_retry: re-check a failing target
		// sooner (or later) than the interval before declaring it down.
		p.next = now.Add(p.retry)
	} else {
		// Fixed-rate from the scheduled time keeps the phase spread.
		p.next = scheduled.Add(p.interval)
	}
	// A check that overran its slot runs again at once rather than
	// piling up missed runs.
	if p.next.Before(now) {
		p.next = now
	}
	p.setNext(p.next, s.epoch)
	heap.Push(&s.queue, p)
	s.poke()
}

// Status returns a snapshot of every probe, sorted by key.
func (s *Scheduler) Status() []ProbeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProbeStatus, 0, len(s.probes))
	for _, p := range s.probes {
		st := ProbeStatus{
			Key: p.key, Target: p.target, Up: p.v.up, Weight: p.v.weight,
			Reason: p.reason, Since: p.since, Checks: p.checks, Subscribers: p.subs,
		}
		if p.checker != nil && !p.running {
			st.Next = p.next
		}
		n := min(p.histN, len(p.hist))
		for i := p.histN - n; i < p.histN; i++ {
			st.History = append(st.History, p.hist[i%len(p.hist)])
		}
		out = append(out, st)
	}
	sortStatus(out)
	return out
}

// String is a one-line summary, handy in logs.
func (t Transition) String() string {
	state := "down"
	if t.Up {
		state = "up"
	}
	w := ""
	if t.Weight != WeightConfigured {
		w = fmt.Sprintf(" weight %d", t.Weight)
	}
	return fmt.Sprintf("%s %s %s%s: %s", t.Target.Addr, t.Target.Check.Type, state, w, t.Reason)
}

type probeHeap []*probe

func (h probeHeap) Len() int           { return len(h) }
func (h probeHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h probeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *probeHeap) Push(x any) {
	p := x.(*probe)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *probeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}
