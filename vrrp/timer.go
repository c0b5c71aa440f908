package vrrp

import (
	"fmt"
	"os"
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
// A fire that races a reset can still be delivered; the Machine ignores
// a timer event before its deadline (IgnoreStaleTimer).
type fdTimer struct {
	fd int
	f  *os.File
	C  chan time.Time
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
			select {
			case t.C <- time.Now():
			default: // one pending fire is enough
			}
		}
	}()
	return t, nil
}

// reset arms the timer to fire once after d; d <= 0 fires at once.
func (t *fdTimer) reset(d time.Duration) {
	t.set(max(d, time.Nanosecond))
}

// stop disarms the timer.
func (t *fdTimer) stop() { t.set(0) }

func (t *fdTimer) set(d time.Duration) {
	// Cannot fail for a valid timerfd and a non-negative relative time.
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}, nil)
}

func (t *fdTimer) close() { _ = t.f.Close() }
