package healthcheck

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/timerfd"
)

// checkLoop drives tcp and plain http checks as state machines on one
// epoll set of its own, from the scheduler's dispatcher goroutine, the way
// keepalived's checker runs them: no goroutine, runtime poller
// registration, timer or context per check, and no hand-off between
// threads to start or finish one. Issue 14 measured what the worker path
// costs per check on top of its system calls (the goroutine hand-off that
// wakes a second thread, os.NewFile, a deadline timer, a finalizer and an
// AfterFunc per check): the scheduler alone was 40 µs a check on the host,
// and the whole was 1.6-2x keepalived's CPU per check in the VM.
//
// The check logic is the worker path's: the same socket calls (tcpDialer),
// the same response evaluation (httpURL.evaluate, fed from a buffer, or
// for a plain response its allocation-free twin httpURL.quick), the
// same turns (checkClock: a timeout counts only the target's time, judged
// by when its answer reached the kernel). https and the other kinds stay on
// the workers (crypto/tls reads through a blocking net.Conn).
type checkLoop struct {
	epfd, evfd int
	// The loop waits in Go's poller, not in epoll_wait: ep is epfd as a
	// pollable file, and tfd, a timerfd in the set, ends a wait at the
	// next deadline with the kernel's nanoseconds (an epoll_wait timeout
	// counts whole milliseconds). Blocked in a system call, the loop kept
	// a processor in syscall state, and the runtime's sysmon, which only
	// sleeps deeply when every processor is idle, took it back after 10 ms
	// and then woke every 20 us for a millisecond: 2272 context switches a
	// second for 200 checks a second (host, tcp-200, -threads).
	ep       *os.File
	rc       syscall.RawConn
	tfd      int
	armed    time.Time // what tfd is set for; zero: disarmed
	n        int       // events the last epoll_wait returned
	waitFn   func(fd uintptr) bool
	byFD     []*flight // in flight, by socket
	dl       flightHeap
	events   []unix.EpollEvent
	done     []*flight // finished in the last poll
	bufs     [][]byte  // free response buffers
	inflight int
	woken    bool      // the last poll was woken through evfd
	now      time.Time // when the last poll's wait ended
	// evmu keeps evfd open while another goroutine wakes the loop
	// through it: closed, its number could name someone else's file.
	evmu   sync.RWMutex
	closed bool
}

// flight is one check run on the loop.
type flight struct {
	// The scheduler's, set before start.
	p         *probe
	scheduled time.Time
	started   time.Time
	stall0    time.Duration

	spec  loopSpec
	clk   checkClock
	fd    int
	state flightState
	url   int       // the urls[url] being checked
	turn  time.Time // when the target's current turn began
	sent  int       // bytes of the request sent
	buf   []byte    // the response so far
	eval  int       // len(buf) at the last evaluation
	head  bool      // buf holds the whole response head
	phase string    // what a timeout now interrupts
	resp  partialReader
	hi    int    // index in the deadline heap, -1 when not in it
	r     Result // when finished
	// deadline0 is the scheduler's deadline, before any credit.
	deadline0 time.Time
}

type flightState uint8

const (
	connecting flightState = iota
	sending
	receiving
)

// loopSpec is what a checker that runs on the loop gives it.
type loopSpec struct {
	dial    *tcpDialer
	urls    []*httpURL // none: a tcp check (connect only)
	timeout time.Duration
}

// loopChecker is a Checker whose runs a checkLoop can drive.
type loopChecker interface {
	Checker
	loopSpec() (loopSpec, bool)
}

func (c *tcpChecker) loopSpec() (loopSpec, bool) {
	return loopSpec{dial: &c.dial, timeout: c.timeout}, true
}

func (c *httpChecker) loopSpec() (loopSpec, bool) {
	return loopSpec{dial: &c.dial, urls: c.urls, timeout: c.timeout}, c.tls == nil
}

func newCheckLoop() (*checkLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile hands it to the poller (an epoll
	// descriptor is readable while events wait in it).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	l := &checkLoop{epfd: epfd, evfd: -1, tfd: -1, events: make([]unix.EpollEvent, 128)}
	l.ep = os.NewFile(uintptr(epfd), "healthcheck-epoll")
	l.waitFn = func(fd uintptr) bool {
		l.n = l.epollNow()
		return l.n > 0
	}
	fail := func(call string, err error) (*checkLoop, error) {
		l.closeFDs()
		return nil, os.NewSyscallError(call, err)
	}
	if l.rc, err = l.ep.SyscallConn(); err != nil {
		return fail("epoll", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail("eventfd", err)
	}
	if l.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		return fail("timerfd_create", err)
	}
	for _, fd := range []int{l.evfd, l.tfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail("epoll_ctl", err)
		}
	}
	return l, nil
}

// closeFDs closes the loop's own descriptors.
func (l *checkLoop) closeFDs() {
	l.evmu.Lock()
	l.closed = true
	if l.evfd >= 0 {
		unix.Close(l.evfd)
	}
	l.evmu.Unlock()
	if l.tfd >= 0 {
		unix.Close(l.tfd)
	}
	l.ep.Close()
}

// close aborts every flight and frees the loop's descriptors.
func (l *checkLoop) close() {
	for _, f := range l.byFD {
		if f != nil {
			l.abort(f)
		}
	}
	l.closeFDs()
}

// wake makes the current or next poll return; any goroutine may call it.
func (l *checkLoop) wake() {
	l.evmu.RLock()
	defer l.evmu.RUnlock()
	if l.closed {
		return
	}
	one := uint64(1)
	unix.RawSyscall(unix.SYS_WRITE, uintptr(l.evfd), uintptr(unsafe.Pointer(&one)), 8)
}

// start begins a run of f.spec due by deadline. A run that ends at once
// (refused, or a tcp check whose connect completed inside the call) is in
// finished on return.
func (l *checkLoop) start(f *flight, deadline time.Time) {
	f.fd, f.hi, f.url = -1, -1, 0
	f.clk.start(deadline, f.spec.timeout, f.spec.dial.pause)
	l.inflight++
	l.connect(f)
}

func (l *checkLoop) connect(f *flight) {
	d := f.spec.dial
	fd, err := d.open()
	if err != nil {
		l.finish(f, f.fail("connect", err))
		return
	}
	connected, turn, err := d.connect(fd, &f.clk)
	if err != nil {
		l.finish(f, f.fail("connect", err))
		return
	}
	f.fd, f.turn, f.state, f.phase = fd, turn, connecting, "connect"
	for fd >= len(l.byFD) {
		l.byFD = append(l.byFD, nil)
	}
	l.byFD[fd] = f
	if f.hi < 0 {
		heap.Push(&l.dl, f)
	} else {
		heap.Fix(&l.dl, f.hi)
	}
	if connected {
		l.connected(f, true)
		return
	}
	l.want(f, unix.EPOLLOUT, true)
}

// want waits for events on f's socket.
func (l *checkLoop) want(f *flight, events uint32, add bool) {
	op := unix.EPOLL_CTL_MOD
	if add {
		op = unix.EPOLL_CTL_ADD
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(f.fd)}
	if _, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(l.epfd), uintptr(op), uintptr(f.fd), uintptr(unsafe.Pointer(&ev)), 0, 0); errno != 0 {
		l.finish(f, failure(f.phase, os.NewSyscallError("epoll_ctl", errno), time.Time{}, f.spec.timeout))
	}
}

// connected settles the connect turn: judged by when the kernel completed
// the handshake if it looks late. atOnce: inside connect, so the socket is
// not in the epoll set yet.
func (l *checkLoop) connected(f *flight, atOnce bool) {
	now := time.Now()
	if !l.answered(f, "connect", now) {
		l.finish(f, f.fail("connect", errTargetTimeout))
		return
	}
	if f.clk.pause != nil {
		f.clk.pause("connected")
	}
	if len(f.spec.urls) == 0 {
		l.finish(f, up("connected"))
		return
	}
	f.buf, f.eval, f.head = f.buf[:0], 0, false
	l.send(f, atOnce)
}

// answered is sockConn.answered on the loop: false if the kernel says the
// target's answer came after the deadline.
func (l *checkLoop) answered(f *flight, what string, now time.Time) bool {
	moved, inTime := f.clk.answered(f.fd, what, f.turn, now)
	if !inTime {
		return false
	}
	if moved {
		heap.Fix(&l.dl, f.hi)
	}
	f.clk.ours = now
	return true
}

// send writes the request (the rest of it, after a full socket buffer).
// unregistered: the socket is not in the epoll set yet.
func (l *checkLoop) send(f *flight, unregistered bool) {
	req := f.spec.urls[f.url].reqBytes
	if f.state != sending {
		f.sent = 0
	}
	f.phase = "writing request"
	for f.sent < len(req) {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(f.fd), uintptr(unsafe.Pointer(&req[f.sent])), uintptr(len(req)-f.sent), unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			f.sent += int(r)
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			f.state = sending
			l.want(f, unix.EPOLLOUT, unregistered)
			return
		}
		l.finish(f, f.fail(f.phase, os.NewSyscallError("write", errno)))
		return
	}
	// Standing still before the send was the checker's time; from here
	// the target has the ball.
	now := time.Now()
	if now.Sub(f.clk.ours) > f.clk.slow && f.clk.credit(f.clk.ours, now) {
		heap.Fix(&l.dl, f.hi)
	}
	f.turn, f.clk.ours = now, now
	if f.clk.pause != nil {
		f.clk.pause("sent")
	}
	f.state, f.buf, f.phase = receiving, f.buf[:0], "reading headers"
	l.want(f, unix.EPOLLIN|unix.EPOLLRDHUP, unregistered)
}

// bufCap is the most of a response the loop keeps: the head's cap, then
// the body's cap with room for chunked framing (what evaluate's limited
// readers let through).
const bufCap = 2*maxHeader + MaxBody

// receive reads what the target sent and evaluates the response once it
// is complete. late: the deadline fired, so an empty socket is a timeout.
func (l *checkLoop) receive(f *flight, late bool) {
	for {
		if len(f.buf) == cap(f.buf) {
			l.grow(f)
		}
		eof := false
		b := f.buf[len(f.buf):cap(f.buf)]
		r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(f.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			eof = r == 0
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if late && !time.Now().Before(f.clk.deadline) {
				l.finish(f, f.fail(f.phase, errTargetTimeout))
			}
			return
		default:
			l.finish(f, f.fail(f.phase, os.NewSyscallError("read", errno)))
			return
		}
		f.buf = f.buf[:len(f.buf)+int(r)]
		eof = eof || len(f.buf) >= bufCap
		what := "data"
		if eof {
			what = "fin"
		}
		now := time.Now()
		if !l.answered(f, what, now) {
			l.finish(f, f.fail(f.phase, errTargetTimeout))
			return
		}
		// The rest of the answer is the target's turn again, counted
		// from here: the time in between was the checker's.
		f.turn = now
		if res, done := f.judge(eof); done {
			l.urlDone(f, res)
			return
		}
	}
}

// judge evaluates the response received so far (all of it if eof), and
// reports whether that decides the check: not while the response is
// incomplete. Pure protocol logic, fuzzed (FuzzIncrementalJudge) to decide
// as evaluating the whole response at once does, however it arrives.
func (f *flight) judge(eof bool) (Result, bool) {
	// Evaluating parses from the start: done for every read while the
	// response is small, else when it doubled, so that a large body
	// costs linear time.
	if !eof && (!f.headDone() || len(f.buf) > 64<<10 && len(f.buf) < 2*f.eval) {
		return Result{}, false
	}
	f.eval = len(f.buf)
	u := f.spec.urls[f.url]
	switch res, q := u.quick(f.buf, eof); q {
	case quickDone:
		return res, true
	case quickWait:
		f.phase = "reading body" // what evaluate's error would say
		return Result{}, false
	}
	f.resp = partialReader{b: f.buf, eof: eof}
	res, phase, err := u.evaluate(&f.resp)
	if err != nil {
		// Before the end of the response an error may be its missing
		// rest in disguise (net/http reads a trailer cut short as
		// "unexpected EOF reading trailer"): only the whole response's
		// errors count. A server that sent a broken response and keeps
		// the connection open times out.
		if !eof {
			f.phase = phase
			return Result{}, false
		}
		res = f.fail(phase, err)
	}
	return res, true
}

// fail is the check's result when phase failed with err.
func (f *flight) fail(phase string, err error) Result {
	return failure(phase, err, f.clk.deadline, f.spec.timeout)
}

// headDone reports whether the response head is complete, or has passed
// its cap (which evaluate reports). Until then it is not evaluated:
// net/http reads a line cut short by the end of what arrived as a whole
// line ("malformed MIME header").
func (f *flight) headDone() bool {
	if f.head {
		return true
	}
	f.head = len(f.buf) > maxHeader || bytes.Contains(f.buf, []byte("\r\n\r\n")) || bytes.Contains(f.buf, []byte("\n\n"))
	return f.head
}

// grow doubles f's buffer, up to bufCap.
func (l *checkLoop) grow(f *flight) {
	if cap(f.buf) == 0 {
		if n := len(l.bufs); n > 0 {
			f.buf, l.bufs = l.bufs[n-1], l.bufs[:n-1]
			return
		}
		f.buf = make([]byte, 0, 4096)
		return
	}
	nb := make([]byte, len(f.buf), min(2*cap(f.buf), bufCap))
	copy(nb, f.buf)
	f.buf = nb
}

// urlDone ends one url's request: the next url, on a new connection within
// the same deadline, or the run's result (keepalived's several url blocks:
// in order, the first failure decides).
func (l *checkLoop) urlDone(f *flight, r Result) {
	n := len(f.spec.urls)
	if n == 1 {
		l.finish(f, r)
		return
	}
	if !r.Up {
		l.finish(f, r)
		return
	}
	if f.url == n-1 {
		r.Reason = fmt.Sprintf("%d urls: %s", n, r.Reason)
		l.finish(f, r)
		return
	}
	l.closeFD(f)
	f.url++
	l.connect(f)
}

// event handles what epoll reported for f's socket.
func (l *checkLoop) event(f *flight) {
	switch f.state {
	case connecting:
		switch done, err := connectOutcome(f.fd); {
		case err != nil:
			l.finish(f, f.fail("connect", err))
		case done:
			l.connected(f, false)
		}
	case sending:
		l.send(f, false)
	case receiving:
		l.receive(f, false)
	}
}

// expire handles a flight whose deadline passed: what the kernel already
// has is looked at first, and judged by when it arrived.
func (l *checkLoop) expire(f *flight) {
	switch f.state {
	case connecting:
		// A refusal that waits unread is the target's answer, not a
		// timeout.
		switch done, err := connectOutcome(f.fd); {
		case err != nil:
			l.finish(f, f.fail("connect", err))
			return
		case done:
			l.connected(f, false)
			return
		}
	case receiving:
		l.receive(f, true)
		return
	}
	l.finish(f, f.fail(f.phase, errTargetTimeout))
}

func (l *checkLoop) closeFD(f *flight) {
	if f.fd < 0 {
		return
	}
	rawClose(f.fd) // also leaves the epoll set
	l.byFD[f.fd] = nil
	f.fd = -1
}

// finish ends f's run with r.
func (l *checkLoop) finish(f *flight, r Result) {
	if len(f.spec.urls) > 1 && !r.Up {
		r.Reason = f.spec.urls[f.url].path + ": " + r.Reason
	}
	l.closeFD(f)
	if f.hi >= 0 {
		heap.Remove(&l.dl, f.hi)
	}
	if c := cap(f.buf); c == 4096 && len(l.bufs) < 64 {
		l.bufs = append(l.bufs, f.buf[:0])
	}
	f.buf, f.resp = nil, partialReader{}
	f.r = r
	l.inflight--
	l.done = append(l.done, f)
}

// abort ends f's run without a result (the probe was removed).
func (l *checkLoop) abort(f *flight) {
	l.finish(f, Result{})
	l.done = l.done[:len(l.done)-1]
}

// finished returns the flights that finished since the last call, valid
// until the next start or poll.
func (l *checkLoop) finished() []*flight {
	d := l.done
	l.done = l.done[:0]
	return d
}

// poll waits until wake (zero: no limit) for the sockets of the flights,
// their deadlines and a wake, and handles what came; the flights that
// finished are then in finished, and now is when the wait ended.
func (l *checkLoop) poll(wake time.Time) {
	l.woken = false
	if len(l.dl) > 0 && (wake.IsZero() || l.dl[0].clk.deadline.Before(wake)) {
		wake = l.dl[0].clk.deadline
	}
	n := l.epollNow()
	if n == 0 && (wake.IsZero() || time.Until(wake) > 0) {
		l.arm(wake)
		// One Read: waitFn polls the set, and the poller parks the loop
		// until it has events. An error is the set closed (close runs on
		// this goroutine, so not during a poll).
		l.n = 0
		_ = l.rc.Read(l.waitFn)
		n = l.n
	}
	l.now = time.Now()
	for _, ev := range l.events[:n] {
		fd := int(ev.Fd)
		switch fd {
		case l.evfd:
			timerfd.Read(uintptr(fd))
			l.woken = true
			continue
		case l.tfd:
			timerfd.Read(uintptr(fd))
			l.armed = time.Time{}
			continue
		}
		if fd < len(l.byFD) && l.byFD[fd] != nil {
			l.event(l.byFD[fd])
		}
	}
	// Deadlines after events: an answer that is there counts.
	now := l.now
	for len(l.dl) > 0 && !now.Before(l.dl[0].clk.deadline) {
		l.expire(l.dl[0])
	}
}

// epollNow returns how many events wait in the set, into l.events,
// without waiting: a raw call, which cannot block (epoll_pwait with no
// signal mask is epoll_wait, which arm64 lacks).
func (l *checkLoop) epollNow() int {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
	if errno != 0 {
		return 0 // EINTR: the next poll sees them
	}
	return int(n)
}

// arm sets the timerfd to end the wait at wake (zero: no limit), when it
// is not set for that already.
func (l *checkLoop) arm(wake time.Time) {
	if wake.Equal(l.armed) {
		return
	}
	d := time.Duration(0) // disarmed
	if !wake.IsZero() {
		d = max(time.Until(wake), 1)
	}
	timerfd.Set(l.tfd, d)
	l.armed = wake
}

// partialReader feeds evaluate the response received so far: past its end
// it says errNeedMore until the target closed.
type partialReader struct {
	b   []byte
	off int
	eof bool
}

// errNeedMore is the response being incomplete so far.
var errNeedMore = errors.New("response incomplete so far")

func (r *partialReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		if r.eof {
			return 0, io.EOF
		}
		return 0, errNeedMore
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// flightHeap orders flights by deadline.
type flightHeap []*flight

func (h flightHeap) Len() int           { return len(h) }
func (h flightHeap) Less(i, j int) bool { return h[i].clk.deadline.Before(h[j].clk.deadline) }
func (h flightHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hi, h[j].hi = i, j
}
func (h *flightHeap) Push(x any) {
	f := x.(*flight)
	f.hi = len(*h)
	*h = append(*h, f)
}
func (h *flightHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	f.hi = -1
	return f
}
