package vrrp

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fdTimer is the driver's protocol timer (Master_Down_Timer, Adver_Timer)
// on a timerfd read through Go's poller. A time.Timer is not precise
// enough for VRRP at short intervals: the Go runtime sleeps in
// epoll_wait, whose timeout counts whole milliseconds, so a timer's
// sub-millisecond remainder can become a 1ms sleep (golang/go#53824), and
// the kernel adds 0.1% of every epoll timeout as slack (3.6ms on a 1s
// interval's Master_Down_Interval). A timerfd is an hrtimer with the
// thread's 50µs slack, and the poller wakes as soon as it is readable.
//
// Moving the deadline later costs no system call: a backup pushes its
// Master_Down_Timer back on every advert, and keepalived's timer thread
// does not re-arm for that either. The kernel timer keeps its earlier
// time; when it fires, due re-arms it for the deadline wanted now. A fire
// that races a reset or a stop is also answered by due, and the Machine
// ignores a timer event before its deadline anyway (IgnoreStaleTimer).
type fdTimer struct {
	fd int
	f  *os.File
	C  chan time.Time
	// armed is when the kernel timer fires (zero: disarmed); want is the
	// deadline the driver asked for (zero: none). want >= armed.
	armed, want time.Time
	// fired, when set, is offered each fire first, on the timer's own
	// goroutine; it returns whether it handled it (else C gets it).
	fired atomic.Pointer[func() bool]
}

func newFDTimer() (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("vrrp: timerfd_create: %w", err)
	}
	t := &fdTimer{fd: fd, f: os.NewFile(uintptr(fd), "vrrp-timer"), C: make(chan time.Time, 1)}
	go func() {
		var n [8]byte // the expiration count
		for {
			if _, err := t.f.Read(n[:]); err != nil {
				return // closed
			}
			if f := t.fired.Load(); f != nil && (*f)() {
				continue
			}
			select {
			case t.C <- time.Now():
			default: // one pending fire is enough
			}
		}
	}()
	return t, nil
}

// resetAt makes at the deadline (now is the caller's clock); a deadline
// already past fires at once.
func (t *fdTimer) resetAt(now, at time.Time) {
	t.want = at
	if !t.armed.IsZero() && !at.Before(t.armed) {
		return // the kernel fires first; due re-arms then
	}
	t.armed = at
	t.set(max(at.Sub(now), time.Nanosecond))
}

// reset is resetAt(now, now+d).
func (t *fdTimer) reset(d time.Duration) {
	now := time.Now()
	t.resetAt(now, now.Add(d))
}

// stop drops the deadline and disarms the timer.
func (t *fdTimer) stop() {
	t.want, t.armed = time.Time{}, time.Time{}
	t.set(0)
}

// due answers a fire from C: whether the deadline has come. When it has
// moved later, it re-arms the kernel timer for it and returns false; a
// fire after stop returns false.
func (t *fdTimer) due(now time.Time) bool {
	t.armed = time.Time{}
	switch {
	case t.want.IsZero():
		return false
	case now.Before(t.want):
		t.armed = t.want
		t.set(t.want.Sub(now))
		return false
	}
	t.want = time.Time{}
	return true
}

func (t *fdTimer) set(d time.Duration) {
	// Cannot fail for a valid timerfd and a non-negative relative time.
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}, nil)
}

func (t *fdTimer) close() { _ = t.f.Close() }
