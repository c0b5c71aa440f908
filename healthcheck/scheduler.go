package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/script"
)

// Transition is a change of a probe's verdict: up/down flipped, or the
// weight of an up target changed. Key identifies the probe (Target.Key); a
// consumer that subscribed several virtual servers to one real server maps
// the key back to all of them.
type Transition struct {
	Key string
	// Target is the probe's, shared by its transitions and never
	// changed: a copy (440 bytes) made the Transitions channel's buffer
	// alone half a megabyte.
	Target *Target
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
	MaxConcurrent int                                 // checks in flight at once, on the loop and on workers each; default 1024
	History       int                                 // results kept per probe; default 10
	Buffer        int                                 // Transitions channel capacity; default 1024
	NewChecker    func(Target) (Checker, error)       // default NewChecker; tests inject fakes
	OnResult      func(Observation)                   // optional; called from check goroutines
	Rand          func(n time.Duration) time.Duration // warmup draw in [0,n); default math/rand
	// NotifyTimeout kills a notify_up/notify_down command that runs
	// longer; default conf.DefaultNotifyTimeout.
	NotifyTimeout time.Duration
	// MaxNotify bounds the notify commands running at once; default 16.
	MaxNotify int
	Logger    *slog.Logger // notify failures; default slog.Default()
	// Stalls measures the process's own stalls, which a check's timeout
	// excludes; default a ticker that Run starts (tests give fakes).
	Stalls StallMeter
	// Slack is how late the dispatcher may wake for a due check: its
	// timer is armed at the head's due time rounded up to a multiple of
	// Slack, and every check due by then starts in that one wake-up.
	// Default DefaultSlack with the real clock, none with another (a
	// fake clock's tests step to exact due times); negative: none.
	Slack time.Duration
}

// DefaultSlack is Options.Slack's default. With 1k targets a second, a
// timer armed for each due check woke the process about every
// millisecond, and each wake-up cost more in the Go runtime (re-arming
// the poller's timeout, waking a thread for the handed-off check) than
// the check's own system calls; within 2 ms, wake-ups at that rate come
// in batches. The start lag it adds (at most Slack, Observation.Started)
// is taken back from the check's time like any lag (CheckDeadline).
const DefaultSlack = 2 * time.Millisecond

// NotifyCounts count the notify_up/notify_down commands of real servers.
type NotifyCounts struct {
	Run     uint64 // exited 0
	Failed  uint64 // exited non-zero, killed at the timeout or did not start
	Dropped uint64 // not run: a real server's backlog was full
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
	// LateRetries counts failures that came back well after their
	// deadline, so the checker itself was late (overloaded), and were
	// retried before counting towards fall.
	LateRetries uint64
}

// Scheduler runs one probe per distinct Target.Key. A dispatcher goroutine
// keeps probes in a heap ordered by next run time. With the real clock it
// runs tcp and plain http checks itself, as state machines on an epoll
// loop of its own (checkLoop), at most MaxConcurrent at once and at most
// startsPerRound between two looks at the checks in flight; through a
// feeder goroutine it hands every other check (https, exec, dns, udp) to a
// pool of at most MaxConcurrent worker goroutines, started as the load
// needs them and kept until Run returns. Goroutines and sockets are
// therefore bounded by MaxConcurrent whatever the number of targets, a
// hung target holds only its own socket (or worker) until its timeout, a
// busy pool never holds the loop, and a steady load creates no goroutine
// (and grows no stack) per check. A checker that cannot keep up checks
// less often and says how late it is (Lag).
type Scheduler struct {
	opt   Options
	clock Clock
	out   chan Transition
	wake  chan struct{}
	work  chan *probe // dispatcher to idle workers; unbuffered
	epoch time.Time
	base  context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	workers int // started so far; only the goroutine that dispatches (Run's, or the loop's feeder) touches it

	updateMu sync.Mutex // serialises Update calls

	// notify runs notify commands off the checking goroutines, in order
	// per probe (its key), MaxNotify at once.
	notify                            *script.Queue
	log                               *slog.Logger
	notifyRun, notifyFail, notifyDrop atomic.Uint64
	lateTotal                         atomic.Uint64
	lag                               lagMeter

	mu     sync.Mutex
	probes map[string]*probe
	queue  probeHeap

	// loop runs tcp and plain http checks on the dispatcher goroutine
	// (checkLoop) while Run runs with the real clock; poke wakes it.
	loop atomic.Pointer[checkLoop]
	// readied: the loop sent a transition since its last poll (only the
	// dispatcher goroutine touches it).
	readied bool
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
	running  bool // popped from the heap: waiting for a worker or checking
	removed  bool // dropped by Update; a heap entry left behind is skipped
	ctx      context.Context
	cancel   context.CancelFunc
	subs     int
	notify   []Notify // subscribers with a notify command
	checks   uint64
	hist     []histEntry // ring
	histN    int
	// lateOf is, while the next run retries a late failure, the time the
	// failed run was scheduled for: the retry keeps the probe's phase.
	lateOf time.Time
	// lateRetries counts failures retried because the checker was late;
	// lateN those of the current slot.
	lateRetries uint64
	lateN       int
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
	if opt.NotifyTimeout <= 0 {
		opt.NotifyTimeout = conf.DefaultNotifyTimeout
	}
	if opt.MaxNotify <= 0 {
		opt.MaxNotify = 16
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	_, real := opt.Clock.(realClock)
	if opt.Stalls == nil {
		if real {
			opt.Stalls = newTickStallMeter()
		} else {
			opt.Stalls = noStalls{} // a fake clock stands still by itself
		}
	}
	if opt.Slack == 0 && real {
		opt.Slack = DefaultSlack
	}
	base, stop := context.WithCancel(context.Background())
	s := &Scheduler{
		opt:    opt,
		clock:  opt.Clock,
		epoch:  opt.Clock.Now(),
		out:    make(chan Transition, opt.Buffer),
		wake:   make(chan struct{}, 1),
		work:   make(chan *probe),
		base:   base,
		stop:   stop,
		probes: map[string]*probe{},
		log:    opt.Logger,
	}
	s.notify = script.NewQueue(script.QueueOptions{Timeout: opt.NotifyTimeout, Running: opt.MaxNotify, Done: s.notified})
	return s
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
	// An entry points at its target in targets: a copy (440 bytes) per
	// target doubled what a first Update of 1k targets held.
	type entry struct {
		t  *Target
		ck Checker
	}
	want := make(map[string]*entry, len(targets))
	subs := map[string]int{}
	notify := map[string][]Notify{}
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
	for i := range targets {
		t := &targets[i]
		if t.Check == nil {
			errs = append(errs, fmt.Errorf("target %s: no check spec", t.Addr))
			continue
		}
		k := t.Key()
		subs[k]++
		if n := t.Notify; len(n.Up) > 0 || len(n.Down) > 0 {
			notify[k] = append(notify[k], n)
		}
		if want[k] != nil {
			continue
		}
		order = append(order, k)
		e := &entry{t: t}
		want[k] = e
		if existing[k] {
			continue
		}
		ck, err := s.opt.NewChecker(t.checkOnly())
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
			// Its heap entry, if any, is skipped when it comes due: lazy
			// removal keeps the heap free of index bookkeeping.
			p.removed = true
			p.cancel()
			delete(s.probes, k)
		}
	}
	out := make([]Transition, 0, len(order))
	for _, k := range order {
		p := s.probes[k]
		if p == nil {
			p = s.newProbe(k, want[k].t.checkOnly(), want[k].ck, now)
			s.probes[k] = p
		}
		p.subs, p.notify = subs[k], notify[k]
		out = append(out, p.transition(now))
	}
	period := time.Duration(0) // no checks: the stall meter rests
	for _, p := range s.probes {
		if t := stallPeriod(p.target.Check.Timeout); period == 0 || t < period {
			period = max(t, stallTick)
		}
	}
	s.mu.Unlock()
	if m, ok := s.opt.Stalls.(*tickStallMeter); ok {
		m.setPeriod(period)
	}
	s.poke()
	return out, nil
}

func (s *Scheduler) newProbe(k string, t Target, ck Checker, now time.Time) *probe {
	c := t.Check
	p := &probe{key: k, target: t, checker: ck, since: now, hist: make([]histEntry, s.opt.History)}
	p.ctx, p.cancel = context.WithCancel(s.base)
	p.interval, p.retry = c.Interval, c.RetryDelay
	p.v = newVerdict(c.InitialUp, c.Rise, c.Fall)
	p.reason = "initial state down"
	if c.InitialUp {
		p.reason = "initial state up"
	}
	// Spread first checks so that 10k targets configured at once do not
	// all fire in the same millisecond: a stable per-key phase within the
	// interval, or a random draw within warmup when one is set.
	var off time.Duration
	if w := c.Warmup; w > 0 {
		off = s.opt.Rand(w)
	} else {
		h := fnv.New64a()
		h.Write([]byte(k))
		off = time.Duration(h.Sum64() % uint64(p.interval))
	}
	s.enqueue(p, now.Add(off))
	return p
}

// enqueue puts p in the heap to run at t, and reports whether it became the
// head (the dispatcher's timer is then armed too late). The caller holds
// s.mu.
func (s *Scheduler) enqueue(p *probe, t time.Time) bool {
	p.next = t
	return s.queue.push(heapEntry{due: int64(t.Sub(s.epoch)), p: p}) == 0
}

// checkOnly is t without its subscriber's notify commands: what a probe
// and its checker keep, shared by every subscriber.
func (t *Target) checkOnly() Target {
	c := *t
	c.Notify = Notify{}
	return c
}

func (p *probe) transition(at time.Time) Transition {
	return Transition{Key: p.key, Target: &p.target, Up: p.v.up, Weight: p.v.weight, Reason: p.reason, At: at}
}

func (s *Scheduler) poke() {
	if l := s.loop.Load(); l != nil {
		l.wake()
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run dispatches checks until ctx is done, then cancels checks in flight
// and waits for them. It must be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	// Last: the notify commands of transitions already emitted still run
	// (each within NotifyTimeout), as VRRP's stop notification does.
	defer s.notify.Close()
	defer s.wg.Wait()
	defer s.stop()
	defer close(s.work) // idle workers exit
	if m, ok := s.opt.Stalls.(*tickStallMeter); ok {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			m.run(ctx)
		}()
	}
	if _, real := s.clock.(realClock); real {
		l, err := newCheckLoop()
		if err == nil {
			return s.runLoop(ctx, l)
		}
		s.log.Warn("health checks: no event loop, every check runs on a worker goroutine", "err", err)
	}
	var (
		timer Timer
		armed int64 // the wake-up time timer is armed for
		batch []*probe
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var head int64
		var have bool
		batch, _, head, have = s.popDue(batch[:0], 0)
		if len(batch) > 0 {
			for i, p := range batch {
				if !s.dispatch(ctx, p) {
					clear(batch[i:])
					return ctx.Err()
				}
			}
			clear(batch) // no stale probe pointers held between rounds
			continue     // dispatching took time: look again before sleeping
		}
		// The wake-up for the head: its due time rounded up to the
		// slack. A new head that rounds to the same wake-up keeps the
		// timer.
		wake := s.wakeFor(head)
		if timer != nil && (!have || wake != armed) {
			timer.Stop()
			timer = nil
		}
		if have && timer == nil {
			timer, armed = s.clock.TimerAt(s.epoch.Add(time.Duration(wake))), wake
		}
		var tc <-chan time.Time
		if timer != nil {
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-tc:
			timer = nil
		}
	}
}

// popDue pops the probes due now from the heap, at most limit of them (0:
// every one), in one lock hold: at 10k targets per second a wake-up finds
// several due probes, and each costs a heap pop, not a lock round trip and
// a timer. It returns them appended to batch, and the due time of the new
// head if there is one (in the past if limit left some due).
func (s *Scheduler) popDue(batch []*probe, limit int) (_ []*probe, at time.Time, head int64, have bool) {
	at = s.clock.Now()
	now := int64(at.Sub(s.epoch))
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := len(batch); len(s.queue) > 0 && s.queue[0].due <= now && (limit <= 0 || len(batch)-n < limit); {
		p := s.queue.pop().p
		if p.removed {
			continue
		}
		p.running = true
		batch = append(batch, p)
	}
	if len(s.queue) > 0 {
		return batch, at, s.queue[0].due, true
	}
	return batch, at, 0, false
}

// wakeFor is the wake-up for a head due at head: its due time rounded up
// to the slack, so that the checks due within it start in one wake-up.
func (s *Scheduler) wakeFor(head int64) int64 {
	if q := int64(s.opt.Slack); q > 0 {
		return (head + q - 1) / q * q
	}
	return head
}

// runLoop is Run with a checkLoop: the dispatcher starts tcp and plain
// http checks on the loop and waits in its poll for their sockets, their
// deadlines, the head's due time and pokes; other checks go to workers.
func (s *Scheduler) runLoop(ctx context.Context, l *checkLoop) error {
	s.loop.Store(l)
	defer func() {
		s.loop.Store(nil)
		l.close()
	}()
	defer context.AfterFunc(ctx, l.wake)()
	fd := s.runFeeder(ctx)
	defer func() { <-fd.done }() // before Run closes s.work
	var batch, waiting []*probe  // waiting: due while the loop is full
	// Flights are recycled, at most MaxConcurrent of them, not kept per
	// probe: a flight is half a kilobyte, 5 MB at 10k probes.
	var free []*flight
	// Clock reads are shared: one per batch of starts and of finishes,
	// not one per step of every check (in the emulated guest of the
	// bench, whose hpet clocksource the vDSO cannot read, each read is a
	// system call).
	land := func(now time.Time) {
		done := l.finished()
		if len(done) == 0 {
			return
		}
		if now.IsZero() {
			now = s.clock.Now()
		}
		for _, f := range done {
			s.land(f, now)
			*f = flight{}
			free = append(free, f)
		}
	}
	for {
		var (
			now  time.Time
			head int64
			have bool
		)
		batch, now, head, have = s.popDue(batch[:0], startsPerRound)
		for _, p := range batch {
			if spec, ok := loopSpecOf(p); ok {
				if len(waiting) > 0 || l.inflight >= s.opt.MaxConcurrent {
					waiting = append(waiting, p)
					continue
				}
				free = s.fly(l, p, spec, now, free)
				continue
			}
			fd.add(p)
		}
		clear(batch)
		land(time.Time{})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// No new round of starts before a poll, even when more checks
		// came due meanwhile (the wait is then zero): at 10k checks/s
		// starting them takes about as long as they take to come due, and
		// a loop that went on starting would leave the answers and
		// deadlines of the checks in flight unhandled.
		var wake time.Time
		if len(batch) > 0 {
			wake = now // in the past: no wait
		} else if have {
			wake = s.epoch.Add(time.Duration(s.wakeFor(head)))
		}
		if s.readied {
			// A goroutine this loop readied (the consumer of a
			// transition it sent) waits on this processor until the
			// loop parks, and a busy loop parks only when no event
			// waits in its set, which at thousands of checks a second
			// may be some milliseconds away. Yielding lets it run now.
			s.readied = false
			runtime.Gosched()
		}
		l.poll(wake)
		if l.woken {
			// Update removed probes, or Run is stopping: their checks in
			// flight end here, without a result.
			for _, f := range l.byFD {
				if f != nil && f.p.ctx.Err() != nil {
					l.abort(f)
					*f = flight{}
					free = append(free, f)
				}
			}
		}
		land(l.now)
		for n := 0; n < startsPerRound && len(waiting) > 0 && l.inflight < s.opt.MaxConcurrent; n++ {
			p := waiting[0]
			waiting[0] = nil
			waiting = waiting[1:]
			if spec, ok := loopSpecOf(p); ok {
				free = s.fly(l, p, spec, l.now, free)
			}
		}
		land(time.Time{})
	}
}

// feeder hands the loop's other checks (https, exec, dns, udp) to the
// workers from a goroutine of its own: when every worker is busy (hung
// targets hold them up to their timeouts), the next of those checks waits
// for one there, and the loop's own checks go on. It is the only
// goroutine that dispatches while the loop runs.
type feeder struct {
	mu      sync.Mutex
	pending []*probe
	signal  chan struct{} // capacity 1: pending has news
	done    chan struct{} // closed when the feeder has stopped
}

// runFeeder starts the loop's feeder, which stops with ctx.
func (s *Scheduler) runFeeder(ctx context.Context) *feeder {
	fd := &feeder{signal: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(fd.done)
		var batch []*probe
		for {
			select {
			case <-ctx.Done():
				return
			case <-fd.signal:
			}
			fd.mu.Lock()
			batch, fd.pending = fd.pending, batch[:0]
			fd.mu.Unlock()
			for i, p := range batch {
				if !s.dispatch(ctx, p) {
					clear(batch[i:])
					return
				}
			}
			clear(batch) // no stale probe pointers held between rounds
		}
	}()
	return fd
}

// add queues p for a worker; it never blocks.
func (fd *feeder) add(p *probe) {
	fd.mu.Lock()
	fd.pending = append(fd.pending, p)
	fd.mu.Unlock()
	select {
	case fd.signal <- struct{}{}:
	default:
	}
}

// startsPerRound bounds the checks the loop starts between two polls. A
// loop that fell behind finds every probe due at once, and starting them
// all (1500 in a slow VM: more than a second, more than the timeout)
// left the answers and deadlines of the checks already in flight
// unhandled until after their deadlines, so it fell further behind: a
// refusal then read as a timeout, and dead targets went down seconds
// late. With a bound, the loop handles what came between rounds (128
// events a poll), and the probes it could not start wait in the heap,
// where their lateness is the lag it reports (Lag).
const startsPerRound = 32

// loopSpecOf says whether p's checks run on the loop, and how.
func loopSpecOf(p *probe) (loopSpec, bool) {
	if lc, ok := p.checker.(loopChecker); ok {
		return lc.loopSpec()
	}
	return loopSpec{}, false
}

// fly starts p's check on the loop at now, on a flight from free, and
// returns what is left of free: check's first half.
func (s *Scheduler) fly(l *checkLoop, p *probe, spec loopSpec, now time.Time, free []*flight) []*flight {
	if p.ctx.Err() != nil {
		return free // removed while waiting
	}
	var f *flight
	if n := len(free); n > 0 {
		f, free = free[n-1], free[:n-1]
	} else {
		f = new(flight)
	}
	f.p, f.spec = p, spec
	f.scheduled = p.next
	f.started = now
	f.stall0 = s.opt.Stalls.Stalled(f.started)
	f.deadline0 = CheckDeadline(f.scheduled, f.started, p.target.Check.Timeout)
	l.start(f, f.deadline0)
	return free
}

// land takes a flight's result, which the loop had by returned: check's
// second half.
func (s *Scheduler) land(f *flight, returned time.Time) {
	p := f.p
	stalled := s.opt.Stalls.Stalled(returned) - f.stall0
	r := f.r
	r.Start, r.Took = f.started, returned.Sub(f.started)
	if p.ctx.Err() != nil {
		return
	}
	s.settle(p, r, f.scheduled, f.started, f.deadline0, returned, stalled, false)
}

// dispatch hands p to an idle worker, starts a worker while there are fewer
// than MaxConcurrent, or else waits for one to become idle: the wait is
// scheduling lag, and is measured as such (Observation.Started).
func (s *Scheduler) dispatch(ctx context.Context, p *probe) bool {
	select {
	case s.work <- p:
		return true
	default:
	}
	if s.workers < s.opt.MaxConcurrent {
		s.workers++
		s.wg.Add(1)
		go s.worker(p)
		return true
	}
	select {
	case s.work <- p:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Scheduler) worker(p *probe) {
	defer s.wg.Done()
	s.check(p)
	for p := range s.work {
		s.check(p)
	}
}

func (s *Scheduler) check(p *probe) {
	// p.next is not written while p is running, and the hand-off through
	// s.work orders this read after the dispatcher's pop.
	scheduled := p.next
	if p.ctx.Err() != nil {
		return // removed while waiting for a worker
	}
	started := s.clock.Now()
	stall0 := s.opt.Stalls.Stalled(started)
	deadline := CheckDeadline(scheduled, started, p.target.Check.Timeout)
	r := p.checker.Run(p.ctx, deadline)
	returned := s.clock.Now()
	stalled := s.opt.Stalls.Stalled(returned) - stall0
	if r.Start.IsZero() {
		r.Start = started
	}
	if r.Took == 0 {
		r.Took = returned.Sub(started)
	}
	if p.ctx.Err() != nil {
		// Cancelled (removed, or the scheduler stopping): the failure it
		// returns says nothing of the target, and must not turn a healthy
		// server down or run its notify_down on the way out.
		return
	}
	s.settle(p, r, scheduled, started, deadline, returned, stalled, true)
}

// settle records a check's result r: the late failure's retry, the
// verdict, the transition and the next run. block: the caller (a worker)
// may wait for room in the Transitions channel; the loop may not, and a
// transition that does not fit at once is sent, and the probe then
// rescheduled, from a goroutine of its own.
func (s *Scheduler) settle(p *probe, r Result, scheduled, started, deadline, returned time.Time, stalled time.Duration, block bool) {
	if s.opt.OnResult != nil {
		s.opt.OnResult(Observation{Key: p.key, Scheduled: scheduled, Started: started, Result: r})
	}
	// The checker's own lateness in this check: a late start, a result
	// handled past its deadline (the loop or a worker did not run in
	// time) or the process standing still.
	if lag := max(started.Sub(scheduled), returned.Sub(deadline), stalled); s.lag.note(lag, returned) {
		s.log.Warn("health checks run late: the checker is overloaded; it checks less often, and its timeouts are retried before they count",
			"lag", lag.Round(time.Millisecond).String(), "target", p.target.Addr.String(), "check", p.target.Check.Kind.String(),
			"late_retries_total", s.lateTotal.Load())
	}

	s.mu.Lock()
	if p.removed {
		s.mu.Unlock()
		return
	}
	p.checks++
	// A retry keeps the slot of the run it retries.
	if !p.lateOf.IsZero() {
		scheduled, p.lateOf = p.lateOf, time.Time{}
	} else {
		p.lateN = 0
	}
	if s.lateFailure(p, r, started, deadline, returned, stalled, scheduled) {
		r.Reason += " (late: the checker was overloaded; retried, not counted)"
		p.hist[p.histN%len(p.hist)] = packResult(r)
		p.histN++
		p.lateRetries++
		p.lateN++
		p.running, p.lateOf = false, scheduled
		head := s.enqueue(p, returned)
		s.mu.Unlock()
		s.lateTotal.Add(1)
		if head {
			s.poke()
		}
		return
	}
	p.hist[p.histN%len(p.hist)] = packResult(r)
	p.histN++
	wasUp := p.v.up
	if !p.v.observe(r) {
		s.reschedule(p, r, scheduled, returned)
		s.mu.Unlock()
		return
	}
	p.reason = r.Reason
	p.since = s.clock.Now()
	tr := p.transition(p.since)
	var notify []Notify
	if p.v.up != wasUp {
		notify = p.notify // Update replaces the slice, never edits it
	}
	s.mu.Unlock()
	s.notifyAll(tr, notify)

	// Emit before rescheduling so that a probe's transitions stay in order
	// even if the consumer is slow.
	emit := func() {
		select {
		case s.out <- tr:
		case <-p.ctx.Done():
			return
		}
		now := s.clock.Now()
		s.mu.Lock()
		if !p.removed {
			s.reschedule(p, r, scheduled, now)
		}
		s.mu.Unlock()
	}
	if !block {
		s.readied = true
		select {
		case s.out <- tr:
		default:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				emit()
			}()
			return
		}
		s.mu.Lock()
		if !p.removed {
			s.reschedule(p, r, scheduled, returned)
		}
		s.mu.Unlock()
		return
	}
	emit()
}

// lateFailure reports whether a failed check says more about the checker
// than about its target: the checker could not run for much of the
// check's time. An overloaded director (CPU starved, a cgroup's quota, a
// paused VM) stands still while the reply waits in a socket, and runs the
// check's goroutine only at or after its deadline: the reply then reads as
// a timeout. So a timeout counts only the time the process ran (stalled,
// from the StallMeter, is taken off), and a check that came back well
// after its deadline was late itself. Such a failure is retried at once,
// before it counts towards fall: once in any case, and again while the
// retry still ends before the probe's next slot. A target that is really
// down fails its retries too, in time, and is counted; its failures keep
// their cadence. The caller holds s.mu.
func (s *Scheduler) lateFailure(p *probe, r Result, started, deadline, returned time.Time, stalled time.Duration, scheduled time.Time) bool {
	if r.Up || !p.v.up || !r.TimedOut {
		// Only a timeout that could bring an up target down: any other
		// failure is the target's answer, however late it was read.
		return false
	}
	timeout := p.target.Check.Timeout
	slack := lateSlack(timeout)
	allowed := deadline.Sub(started)
	// Only a stall of a quarter of the check's time or more says the
	// checker, not the target, failed: a busy host (a VM under load)
	// stalls for some milliseconds now and then, and retrying every such
	// failure delays removing a target that really hangs.
	late := returned.Sub(deadline) > max(slack, allowed/4)
	starved := stalled > allowed/4 && returned.Sub(started)-stalled < allowed-slack && returned.Sub(started) >= allowed-slack
	if !late && !starved {
		return false
	}
	return p.lateN < maxLateRetries || !returned.Add(timeout).After(scheduled.Add(p.interval))
}

// lateSlack is how far past its deadline a check may come back before the
// checker counts as late: timer and wake-up jitter on a busy host stay
// well below it.
func lateSlack(timeout time.Duration) time.Duration {
	return max(5*time.Millisecond, timeout/20)
}

// Lag is how late the checker has been over the last 10 to 20 seconds, or
// how overdue its most overdue check is now if that is more: how much
// later than fall x interval + timeout a dead target may go down. A check
// is late by its start past its schedule, by its result past its deadline
// (an overloaded checker handles a result later than the kernel had it)
// and by the time the process stood still during it.
func (s *Scheduler) Lag() time.Duration {
	now := s.clock.Now()
	lag := s.lag.recent(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		lag = max(lag, now.Sub(s.epoch.Add(time.Duration(s.queue[0].due))))
	}
	return lag
}

// LateRetries is how many failures were retried because the checker was
// late (lateFailure), since the start.
func (s *Scheduler) LateRetries() uint64 { return s.lateTotal.Load() }

// notifyAll queues the notify command of each subscriber for tr, a flip
// of up/down (a weight change notifies nobody, as in keepalived). It never
// blocks: the queue keeps each probe's commands in order.
func (s *Scheduler) notifyAll(tr Transition, subs []Notify) {
	state, field := "DOWN", "notify_down"
	if tr.Up {
		state, field = "UP", "notify_up"
	}
	for _, n := range subs {
		argv := n.Down
		if tr.Up {
			argv = n.Up
		}
		if len(argv) == 0 {
			continue
		}
		rs := tr.Target.Addr.String()
		if n.RealServer != "" {
			rs = fmt.Sprintf("%q %s", n.RealServer, rs)
		}
		s.notify.Enqueue(tr.Key, script.Job{
			Argv: argv,
			What: fmt.Sprintf("%s of real_server %s in virtual_server %q", field, rs, n.VirtualServer),
			Env: []string{
				"HALDIR_VIRTUAL_SERVER=" + n.VirtualServer,
				"HALDIR_REAL_SERVER=" + n.RealServer,
				"HALDIR_REAL_ADDRESS=" + tr.Target.Addr.Addr().String(),
				"HALDIR_REAL_PORT=" + strconv.Itoa(int(tr.Target.Addr.Port())),
				"HALDIR_STATE=" + state,
				"HALDIR_REASON=" + tr.Reason,
			},
		})
	}
}

// notified counts a notify command's outcome and logs a failure.
func (s *Scheduler) notified(j script.Job, err error) {
	switch {
	case err == nil:
		s.notifyRun.Add(1)
		return
	case errors.Is(err, script.ErrDropped):
		s.notifyDrop.Add(1)
	default:
		s.notifyFail.Add(1)
	}
	s.log.Warn("real server notify failed", "notify", j.What, "err", err)
}

// NotifyCounts returns the outcomes of notify commands so far.
func (s *Scheduler) NotifyCounts() NotifyCounts {
	return NotifyCounts{Run: s.notifyRun.Load(), Failed: s.notifyFail.Load(), Dropped: s.notifyDrop.Load()}
}

// reschedule queues p's next run, at now, after a check that ran at
// scheduled; the caller holds s.mu.
func (s *Scheduler) reschedule(p *probe, r Result, scheduled, now time.Time) {
	p.running = false
	var next time.Time
	if !r.Up && p.v.retrying() && p.retry > 0 {
		// keepalived's delay_before_retry: re-check a failing target
		// sooner (or later) than the interval before declaring it down.
		next = now.Add(p.retry)
	} else {
		// Fixed-rate from the scheduled time keeps the phase spread.
		next = scheduled.Add(p.interval)
	}
	// A check that overran its slot runs again at once rather than
	// piling up missed runs.
	if next.Before(now) {
		next = now
	}
	if s.enqueue(p, next) {
		s.poke() // earlier than the dispatcher's timer
	}
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
			LateRetries: p.lateRetries,
		}
		if p.checker != nil && !p.running {
			st.Next = p.next
		}
		n := min(p.histN, len(p.hist))
		for i := p.histN - n; i < p.histN; i++ {
			st.History = append(st.History, p.hist[i%len(p.hist)].result())
		}
		out = append(out, st)
	}
	sortStatus(out)
	return out
}

// histEntry is a Result as a probe's history keeps it: 32 bytes where a
// Result takes 64 (the start as Unix nanoseconds, the duration in
// microseconds, the weight in 16 bits: an exec check's is 0..253), times
// History entries per probe, for every probe.
type histEntry struct {
	reason string
	start  int64 // Unix ns; 0: the zero time
	tookUS int32 // saturates at about 35 minutes
	weight int16
	up     bool
}

func packResult(r Result) histEntry {
	h := histEntry{
		reason: r.Reason,
		tookUS: int32(min(r.Took/time.Microsecond, math.MaxInt32)),
		weight: int16(min(max(r.Weight, math.MinInt16), math.MaxInt16)),
		up:     r.Up,
	}
	if !r.Start.IsZero() {
		h.start = r.Start.UnixNano()
	}
	return h
}

func (h histEntry) result() Result {
	r := Result{Up: h.up, Weight: int(h.weight), Reason: h.reason, Took: time.Duration(h.tookUS) * time.Microsecond}
	if h.start != 0 {
		r.Start = time.Unix(0, h.start)
	}
	return r
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
	return fmt.Sprintf("%s %s %s%s: %s", t.Target.Addr, t.Target.Check.Kind, state, w, t.Reason)
}

// probeHeap is a binary min-heap on due time. The due time is stored
// beside the pointer so that sifting compares without dereferencing probes.
type probeHeap []heapEntry

type heapEntry struct {
	due int64 // nanoseconds since Scheduler.epoch
	p   *probe
}

// push adds e and returns its final index (0: the new head).
func (h *probeHeap) push(e heapEntry) int {
	*h = append(*h, e)
	q := *h
	i := len(q) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q[parent].due <= e.due {
			break
		}
		q[i] = q[parent]
		i = parent
	}
	q[i] = e
	return i
}

func (h *probeHeap) pop() heapEntry {
	q := *h
	top := q[0]
	n := len(q) - 1
	last := q[n]
	q[n] = heapEntry{}
	q = q[:n]
	*h = q
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && q[c+1].due < q[c].due {
			c++
		}
		if last.due <= q[c].due {
			break
		}
		q[i] = q[c]
		i = c
	}
	q[i] = last
	return top
}

// maxLateRetries is how many times a late failure is retried before it
// counts when the retries no longer fit before the probe's next slot.
const maxLateRetries = 3
