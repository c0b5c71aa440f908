package healthcheck

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A check over TCP is a game of turns: the target's turn runs from the
// moment the checker hands it work (the SYN, a request) to the moment its
// answer reaches the kernel; the checker's turn runs from then until it
// hands over again. Only the target's turns may use up its timeout. A
// checker that the host starves (a cgroup's quota, a busy emulated CPU)
// takes its turns late: it wakes long after the answer reached the socket,
// or stands still between the answer and the next request. Judged by when
// the checker got around to it, such a check times out and fails a healthy
// server (issue 14: false downs under overload, "timeout reading headers"
// and "timeout writing request").
//
// So the deadline moves: every stretch the checker held the ball moves it
// later by that much. On the fast path nothing is measured but a clock
// read per step, and the deadline the runtime's poller holds is the
// scheduler's; only a turn that took long (more than slowTurn), or a
// deadline that fired, asks the kernel when the answer came: TCP_INFO's
// tcpi_last_data_recv (and tcpi_last_ack_recv, for a FIN) say how many
// milliseconds ago the last segment arrived. A timeout is then a fact about
// the target: nothing, or not all of its answer, had arrived by the moved
// deadline.

// checkClock is one check run's deadline on the target's time, shared by
// the connections of the run (several urls).
type checkClock struct {
	// deadline is the scheduler's deadline plus every stretch credited to
	// the checker so far.
	deadline time.Time
	// ours is when the checker last got the ball (the run started, a
	// connection completed, a read returned).
	ours time.Time
	// slow is how long a turn may look before the kernel is asked.
	slow time.Duration
	// pause, in tests, stands in for the host starving the checker at a
	// named step ("connected", "sent").
	pause func(step string)
}

// start begins a run: the checkers keep their clock in place (a probe's
// runs never overlap), which spares an allocation per check.
//
// The checker holds the ball from the check's start, which the scheduler
// set the deadline from (CheckDeadline: a timeout after it, less up to
// maxLagCredit of lag credit): a stall between there and the first send
// (the scheduler's own code, Run's) is the checker's too. The start is
// taken as late as the lag credit allows, so that a check never gets
// back the credit CheckDeadline took.
func (k *checkClock) start(deadline time.Time, timeout time.Duration, pause func(string)) {
	begun := deadline.Add(-timeout + min(maxLagCredit, timeout/10))
	*k = checkClock{deadline: deadline, ours: begun, slow: max(slowTurn, timeout/10), pause: pause}
}

// slowTurn is how long a turn may look, at least, before the kernel is
// asked when it really ended; a tenth of the timeout if that is longer. A
// LAN round trip or a quick server stays well below it, and the checker's
// own lateness below it is not worth a system call per check on a slow
// (emulated) host: what it leaves uncredited, a tenth of the timeout per
// turn at most, the scheduler's retry of late failures still covers.
const slowTurn = 2 * time.Millisecond

// jiffyTolerance is how much earlier than TCP_INFO says an arrival may have
// been: its times are in kernel ticks (4 ms at HZ=250, Debian's; 1 ms at
// RHEL's HZ=1000), and the doubt goes to the target.
const jiffyTolerance = 4 * time.Millisecond

// credit moves the deadline later by the checker's stretch from since to
// now, and reports whether it moved.
func (k *checkClock) credit(since, now time.Time) bool {
	if d := now.Sub(since); d > 0 {
		k.deadline = k.deadline.Add(d)
		return true
	}
	return false
}

// arrival is when the last segment of the kind asked for reached fd, by
// the kernel's clock (TCP_INFO), with the tick's doubt given to the
// target. What can be: "data" (the last data segment), "fin" (the latest
// segment of any kind, so the FIN after the data), "connect" (the
// connection's completion, which data received since only moves later).
func arrival(fd int, what string) (time.Time, error) {
	// Into a local, with a raw call: unix.GetsockoptTCPInfo returns a new
	// struct each time, an allocation per slow turn, which most turns
	// are when the checker is busy. getsockopt does not block.
	var ti unix.TCPInfo
	size := uint32(unsafe.Sizeof(ti))
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&ti)), uintptr(unsafe.Pointer(&size)), 0)
	now := time.Now()
	if errno != 0 {
		return time.Time{}, os.NewSyscallError("getsockopt TCP_INFO", errno)
	}
	ago := ti.Last_data_recv
	switch what {
	case "fin":
		ago = min(ago, ti.Last_ack_recv)
	case "connect":
		ago = max(ago, ti.Last_ack_recv)
	}
	return now.Add(-time.Duration(ago)*time.Millisecond - jiffyTolerance), nil
}

// answered settles the target's turn that began at turn and whose answer
// the checker saw at now: if the turn looks slow, the kernel says when the
// answer came, and the checker's wake-up after it is credited. It
// returns false when that answer came after the deadline (a timeout of
// the target's own).
func (k *checkClock) answered(fd int, what string, turn, now time.Time) (moved, inTime bool) {
	if now.Sub(turn) <= k.slow && !now.After(k.deadline) {
		return false, true
	}
	at, err := arrival(fd, what)
	if err != nil {
		// No kernel word: judge by what the checker saw.
		return false, !now.After(k.deadline)
	}
	if at.Before(turn) {
		at = turn // the doubt never reaches back before the turn
	}
	if at.After(k.deadline) {
		return false, false
	}
	return k.credit(at, now), true
}

// errTargetTimeout is a timeout the kernel's clock confirms: the answer
// was not there by the moved deadline.
var errTargetTimeout = os.ErrDeadlineExceeded

func isDeadline(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
