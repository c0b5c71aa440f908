package vrrp

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/timerfd"
)

// timerSet runs the protocol timers (Master_Down_Timer, Adver_Timer) of
// many instances, a Runner's or a Set's, on one timerfd waited on through Go's
// poller, as keepalived runs every instance's timers on one thread.
//
// A timerfd, not a time.Timer: the Go runtime sleeps in epoll_wait, whose
// timeout counts whole milliseconds, so a timer's sub-millisecond
// remainder can become a 1ms sleep (golang/go#53824), and the kernel adds
// 0.1% of every epoll timeout as slack (3.6ms on a 1s interval's
// Master_Down_Interval). A timerfd is an hrtimer with the thread's 50µs
// slack, and the poller wakes as soon as it is readable.
//
// One timerfd for all: with one per instance, 100 masters at 100ms woke
// the process 1000 times a second, once per advert. A wake-up now fires
// every timer that is due, and a timer with slack (a master's
// Adver_Timer, Machine.TimerSlack) also when it is due within its slack:
// masters whose adverts fall within a hundredth of an interval of each
// other send them on one wake-up, and stay together.
//
// Moving a deadline later never wakes an instance early: a backup pushes
// its Master_Down_Timer back on every advert. With several timers the
// kernel timer keeps the earliest deadline it was set for; when it fires,
// the set re-arms it for the earliest deadline wanted now, without waking
// any instance whose deadline has moved. With one, it follows the
// deadline at once (see resetSlack).
type timerSet struct {
	mu   sync.Mutex
	f    *os.File // nil while no timer exists
	fd   int
	refs int
	// armed are the timers with a deadline, each at its fdTimer.slot: a
	// slice, not a map, since a master at 10ms takes and re-arms its timer
	// 100 times a second, and a map's iteration, insert and delete were
	// 4% of its CPU (perf) where a scan of a few pointers costs nothing.
	armed  []*fdTimer
	kernel time.Time // the deadline the timerfd is set for; zero: disarmed
	// fireAt is the earliest the timerfd can fire for its last setting, a
	// monotonic reading (zero: disarmed, or its fire taken).
	fireAt time.Time
	// wakes counts the timerfd's fires (tests: what a later deadline
	// costs).
	wakes atomic.Int64
}

func newTimerSet() *timerSet { return &timerSet{} }

// fdTimer is one instance's timer in a timerSet. Its deadline is guarded
// by the set's mutex; C and fired deliver fires.
type fdTimer struct {
	set   *timerSet
	C     chan time.Time
	want  time.Time     // the deadline (zero: none)
	slack time.Duration // it may fire this much before want
	slot  int           // its index in set.armed; -1: not armed
	// fired, when set, is offered each fire first, on the set's
	// goroutine; it returns whether it handled it (else C gets it).
	fired atomic.Pointer[func() bool]
}

// newFDTimer is a timer on a set of its own.
func newFDTimer() (*fdTimer, error) { return newTimerSet().newTimer() }

// newTimer adds a timer to s, opening the timerfd for the first one.
func (s *timerSet) newTimer() (*fdTimer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("vrrp: timerfd_create: %w", err)
		}
		s.fd, s.f, s.kernel, s.fireAt = fd, os.NewFile(uintptr(fd), "vrrp-timer"), time.Time{}, time.Time{}
		go s.run(s.f)
	}
	s.refs++
	return &fdTimer{set: s, C: make(chan time.Time, 1), slot: -1}, nil
}

// run delivers the fires of f until it is closed.
func (s *timerSet) run(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return // closed already
	}
	var due []*fdTimer
	// One Read for the timerfd's whole life: fire handles a fire and
	// returns false, so the poller waits for the next one. A Read per fire
	// begins by forgetting what the poller saw, so it must try the fd
	// before it waits, a read that fails with EAGAIN on every fire.
	//
	// Nor does fire read the expiration count: Go's poller waits
	// edge-triggered, and each expiration wakes the timerfd's waiters
	// whether or not the last one was read (the next timerfd_settime
	// clears the count). Whether the kernel timer has fired for what it
	// was set for last is told by the clock instead (takeFired): a read per
	// fire was one system call in five of a master at 10ms.
	fire := func(uintptr) bool {
		now := time.Now()
		var ok bool
		if due, ok = s.takeFired(now, due[:0]); !ok {
			return false
		}
		s.wakes.Add(1)
		for _, t := range due {
			if f := t.fired.Load(); f != nil && (*f)() {
				continue
			}
			select {
			case t.C <- now:
			default: // one pending fire is enough
			}
		}
		clear(due) // no timer is kept alive by the buffer
		s.rearmLater(now)
		return false
	}
	_ = rc.Read(fire) // returns when f is closed
}

// rearmLater moves the kernel timer to the earliest deadline wanted now,
// when the fires just handled pushed every deadline it was set for later:
// a backup that read the quiet socket (routineFilter) re-armed its
// siblings on the link too, and a timerfd_settime costs less than the
// wake-up for nothing it saves.
func (s *timerSet) rearmLater(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kernel.IsZero() {
		return
	}
	if next := s.earliest(); next.After(s.kernel) {
		s.arm(now, next)
	}
}

// earliest is the earliest deadline armed (zero: none), s.mu held.
func (s *timerSet) earliest() time.Time {
	var next time.Time
	for _, t := range s.armed {
		if next.IsZero() || t.want.Before(next) {
			next = t.want
		}
	}
	return next
}

// takeFired is take, s.mu taken, when the kernel timer has fired for its
// last setting by now; otherwise it takes nothing and returns false: the
// poller woke for an expiration that a timerfd_settime has replaced since
// (a deadline moved, the fire handled already).
func (s *timerSet) takeFired(now time.Time, due []*fdTimer) ([]*fdTimer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fireAt.IsZero() || now.Before(s.fireAt) {
		return due, false
	}
	return s.take(now, due), true
}

// take removes the timers due at now (within their slack) from the armed
// ones and appends them to due, earliest deadline first, and re-arms the
// kernel timer for the earliest deadline left; s.mu held.
func (s *timerSet) take(now time.Time, due []*fdTimer) []*fdTimer {
	s.kernel, s.fireAt = time.Time{}, time.Time{}
	for i := 0; i < len(s.armed); {
		t := s.armed[i]
		if now.Before(t.want.Add(-t.slack)) {
			i++
			continue
		}
		due = append(due, t)
		s.disarm(t) // moves the last one to i
	}
	if next := s.earliest(); !next.IsZero() {
		s.arm(now, next)
	}
	if len(due) > 1 {
		slices.SortFunc(due, func(a, b *fdTimer) int { return a.want.Compare(b.want) })
	}
	return due
}

// arm sets the kernel timer for at, s.mu held; a deadline already past
// fires at once. fireAt is read from the clock just before the call, and
// the kernel counts its relative time from within the call, so the timer
// cannot fire before fireAt; it is a monotonic reading, which at (a
// kernel receive stamp plus Master_Down_Interval, say) may not be, so a
// step of the wall clock cannot make a fire look early.
func (s *timerSet) arm(now, at time.Time) {
	d := max(at.Sub(now), time.Nanosecond)
	s.kernel, s.fireAt = at, time.Now().Add(d)
	timerfd.Set(s.fd, d)
}

// enlist adds t to the armed timers, s.mu held.
func (s *timerSet) enlist(t *fdTimer) {
	if t.slot < 0 {
		t.slot = len(s.armed)
		s.armed = append(s.armed, t)
	}
}

// disarm removes t from the armed timers, s.mu held; the last one takes
// its place.
func (s *timerSet) disarm(t *fdTimer) {
	i := t.slot
	if i < 0 {
		return
	}
	last := len(s.armed) - 1
	s.armed[i] = s.armed[last]
	s.armed[i].slot = i
	s.armed[last] = nil
	s.armed = s.armed[:last]
	t.slot = -1
}

// kernelAt is when the kernel timer fires (zero: disarmed).
func (s *timerSet) kernelAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kernel
}

// resetAt makes at the deadline (now is the caller's clock), with no
// slack.
func (t *fdTimer) resetAt(now, at time.Time) { t.resetSlack(now, at, 0) }

// resetSlack makes at the deadline, which the timer may fire up to slack
// before.
func (t *fdTimer) resetSlack(now, at time.Time, slack time.Duration) {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	t.want, t.slack = at, slack
	s.enlist(t)
	// With one timer in the set, a later deadline re-arms at once: one
	// timerfd_settime (a raw call) is cheaper than the wake-up it saves,
	// which a backup at 10ms paid every third advert. With many, a fire
	// finds the new earliest once for all of them.
	if s.kernel.IsZero() || at.Before(s.kernel) || len(s.armed) == 1 && !at.Equal(s.kernel) {
		s.arm(now, at)
	}
}

// reset is resetAt(now, now+d).
func (t *fdTimer) reset(d time.Duration) {
	now := time.Now()
	t.resetAt(now, now.Add(d))
}

// stop drops the deadline. The kernel timer is left alone: if it was set
// for this deadline, its fire finds nothing due and re-arms.
func (t *fdTimer) stop() {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	t.want = time.Time{}
	s.disarm(t)
}

// due answers a fire from C or fired: whether the deadline has come
// (within the slack). When it has moved later since, it stays armed and
// due returns false; a fire after stop returns false.
func (t *fdTimer) due(now time.Time) bool {
	s := t.set
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case t.want.IsZero():
		return false
	case now.Before(t.want.Add(-t.slack)):
		s.enlist(t)
		if s.kernel.IsZero() || t.want.Before(s.kernel) {
			s.arm(now, t.want)
		}
		return false
	}
	t.want = time.Time{}
	s.disarm(t)
	return true
}

// close removes the timer from its set; the last one closes the timerfd.
// Never from a fired function: the set's goroutine runs those inside its
// read of the timerfd, which the file's Close waits for.
func (t *fdTimer) close() {
	s := t.set
	s.mu.Lock()
	s.disarm(t)
	t.fired.Store(nil)
	var f *os.File
	if s.refs--; s.refs == 0 {
		f, s.f, s.kernel, s.fireAt = s.f, nil, time.Time{}, time.Time{}
	}
	s.mu.Unlock()
	// Outside the lock: Close waits for a fire being handled, which
	// takes it.
	if f != nil {
		_ = f.Close()
	}
}
