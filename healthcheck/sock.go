package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpDialer makes the connections of tcp and http(s) checks with raw
// system calls instead of net.Dialer. A check connects once, does one
// exchange and aborts, at up to thousands per second, and the profile of
// net.Dialer at that rate is mostly its own machinery: address parsing, a
// context with a timer per dial, a goroutine watching that context during
// the connect, getsockname, getpeername and TCP_NODELAY after it. Here a
// check costs socket, setsockopt(SO_LINGER), connect and one getpeername
// when the connection completes at once (as it does on loopback and often
// on a LAN); only a check that must wait, or that does I/O afterwards, puts
// the socket into the runtime poller (os.NewFile), whose deadline then
// covers every later step of the check.
type tcpDialer struct {
	remote netip.AddrPort
	family int
	ra     rawSockaddr
	la     unix.Sockaddr // nil unless source_address is set
	// pause, in tests, starves the checker at a step (checkClock.pause).
	pause func(step string)
}

func newTCPDialer(remote netip.AddrPort, source netip.Addr) (tcpDialer, error) {
	d := tcpDialer{remote: netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())}
	var err error
	var sa unix.Sockaddr
	d.family, sa, err = sockaddr(d.remote)
	if err != nil {
		return d, err
	}
	d.ra = toRaw(sa)
	if source.IsValid() {
		fam, la, err := sockaddr(netip.AddrPortFrom(source.Unmap(), 0))
		if err != nil {
			return d, fmt.Errorf("source_address: %w", err)
		}
		if fam != d.family {
			return d, fmt.Errorf("source_address %s and target %s are of different address families", source, remote.Addr())
		}
		d.la = la
	}
	return d, nil
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return 0, nil, fmt.Errorf("no address")
	case a.Is4():
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.Atoi(z); err == nil {
			sa.ZoneId = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else {
			return 0, nil, fmt.Errorf("zone %q: %v", z, err)
		}
	}
	return unix.AF_INET6, sa, nil
}

// rawSockaddr is a remote address as connect(2) takes it, encoded once.
type rawSockaddr struct {
	// Room for the largest address a check connects to: RawSockaddrAny
	// would be 112 bytes in every tcp and http checker, where 28 do.
	sa  unix.RawSockaddrInet6
	len uint32
}

func toRaw(sa unix.Sockaddr) rawSockaddr {
	var r rawSockaddr
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET
		p.Port = htons(uint16(sa.Port))
		p.Addr = sa.Addr
		r.len = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET6
		p.Port = htons(uint16(sa.Port))
		p.Addr = sa.Addr
		p.Scope_id = sa.ZoneId
		r.len = unix.SizeofSockaddrInet6
	}
	return r
}

// htons puts a port in network byte order, as it sits in memory.
func htons(p uint16) uint16 {
	b := [2]byte{byte(p >> 8), byte(p)}
	return *(*uint16)(unsafe.Pointer(&b))
}

// The calls that make and end a check's connection are raw system calls:
// on a non-blocking socket none of them waits, and a plain call enters
// the scheduler's syscall state, where the runtime's sysmon thread takes
// the processor away from a call that lasts over 20 µs (a loopback
// connect does the whole handshake inside it) and hands it to another
// thread: on an emulated CPU that churn, and sysmon polling every 20 µs to
// find it, cost more than the checks (the health-check bench in the VM).
func rawSocket(family int) (int, error) {
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("socket", errno)
	}
	return int(fd), nil
}

func rawSetLinger0(fd int) error {
	l := unix.Linger{Onoff: 1}
	_, _, errno := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
	if errno != 0 {
		return os.NewSyscallError("setsockopt", errno)
	}
	return nil
}

func rawConnect(fd int, ra *rawSockaddr) syscall.Errno {
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&ra.sa)), uintptr(ra.len))
	return errno
}

func rawClose(fd int) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// open makes the check's socket, ready to connect: nonblocking, closing
// with RST, bound to source_address if one is set.
func (d *tcpDialer) open() (int, error) {
	fd, err := rawSocket(d.family)
	if err != nil {
		return -1, err
	}
	// Checks close with RST, as HAProxy's do: a probe has nothing left to
	// flush, and at thousands of checks per second the TIME_WAIT sockets
	// of an orderly close would eat the ephemeral ports and kernel memory.
	// Set now, it also covers every early return of the caller.
	if err := rawSetLinger0(fd); err != nil {
		rawClose(fd)
		return -1, err
	}
	if d.la != nil {
		if err := unix.Bind(fd, d.la); err != nil {
			rawClose(fd)
			return -1, os.NewSyscallError("bind", err)
		}
	}
	return fd, nil
}

// connect starts the handshake on fd, an open socket, and reports whether
// it completed inside the call. The checker's turn ends at the returned
// time (the SYN hands the ball to the target): a long stretch since
// clk.ours is credited. On error fd is closed.
func (d *tcpDialer) connect(fd int, clk *checkClock) (connected bool, turn time.Time, err error) {
	turn = time.Now()
	if turn.Sub(clk.ours) > clk.slow {
		clk.credit(clk.ours, turn)
	}
	switch errno := rawConnect(fd, &d.ra); errno {
	case 0:
		return true, turn, nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		// A loopback or LAN handshake often completes inside connect.
		return hasPeer(fd), turn, nil
	default:
		rawClose(fd)
		return false, turn, os.NewSyscallError("connect", errno)
	}
}

// dial connects within clk's deadline; ctx's cancellation aborts a wait.
// With io false the caller will only close the connection, so one that
// completes at once never enters the poller.
func (d tcpDialer) dial(ctx context.Context, clk *checkClock, io bool) (*sockConn, error) {
	fd, err := d.open()
	if err != nil {
		return nil, err
	}
	connected, turn, err := d.connect(fd, clk)
	if err != nil {
		return nil, err
	}
	if connected && !io {
		return &sockConn{fd: fd, remote: d.remote}, nil
	}

	f := os.NewFile(uintptr(fd), "tcp")
	c := &sockConn{fd: -1, sysfd: fd, f: f, remote: d.remote, clk: clk}
	if err := f.SetDeadline(clk.deadline); err != nil {
		f.Close()
		return nil, fmt.Errorf("socket not pollable: %w", err)
	}
	// Cancellation (probe removed, scheduler stopped) moves the deadline
	// into the past, which unblocks whatever the check is waiting on
	// without a goroutine per check.
	c.stop = context.AfterFunc(ctx, func() {
		c.cancelled.Store(true)
		f.SetDeadline(time.Unix(1, 0))
	})
	rc, err := f.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.rc = rc
	if connected {
		// The handshake was the kernel's, inside connect; the checker
		// may still have been stopped inside the call (a CFS quota
		// throttles a thread mid-call too), so a connect that looks
		// slow is judged by when the kernel completed it.
		err = c.answered("connect", turn)
	} else {
		err = c.awaitConnect(turn)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	if clk.pause != nil {
		clk.pause("connected")
	}
	return c, nil
}

// awaitConnect waits for the handshake that began at turn. A deadline
// that fired is checked against the kernel's clock: a connection that
// completed in time while the checker was not running is a connection.
func (c *sockConn) awaitConnect(turn time.Time) error {
	var cerr error
	werr := c.rc.Write(func(fd uintptr) bool {
		var done bool
		done, cerr = connectOutcome(int(fd))
		return done // else still connecting: wait for writability
	})
	if werr == nil {
		werr = cerr
	}
	if isDeadline(werr) && !c.cancelled.Load() && hasPeer(c.sysfd) {
		werr = nil
	}
	if werr != nil {
		return werr
	}
	return c.answered("connect", turn)
}

// answered settles the target's turn that began at turn and ended with
// the answer the checker has just seen: a timeout if the kernel says it
// came after the deadline, else the checker's lateness in seeing it is
// credited and the ball is the checker's from now (clk.ours).
func (c *sockConn) answered(what string, turn time.Time) error {
	now := time.Now()
	moved, inTime := c.clk.answered(c.sysfd, what, turn, now)
	if !inTime {
		return errTargetTimeout
	}
	if moved {
		c.setDeadline()
	}
	c.clk.ours = now
	return nil
}

// setDeadline gives the poller the moved deadline, unless the check was
// cancelled meanwhile (whose past deadline must stay).
func (c *sockConn) setDeadline() {
	c.f.SetDeadline(c.clk.deadline)
	if c.cancelled.Load() {
		c.f.SetDeadline(time.Unix(1, 0))
	}
}

// soError is getsockopt(SO_ERROR), raw.
func soError(fd int) (int32, syscall.Errno) {
	var (
		v int32
		n = uint32(unsafe.Sizeof(v))
	)
	_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0)
	return v, errno
}

// hasPeer reports whether the socket fd is connected: getpeername(2)
// succeeds. Called directly, not through unix.Getpeername, which decodes
// the address into a new Sockaddr and, for AF_INET, asks the kernel the
// socket's protocol (getsockopt SO_PROTOCOL) to tell L2TP apart: one
// system call and two allocations per check for an address nobody reads.
// connectOutcome tells whether fd's nonblocking connect has ended, and
// its error if it failed; not done means the handshake is still going.
func connectOutcome(fd int) (done bool, err error) {
	if hasPeer(fd) {
		return true, nil
	}
	switch n, errno := soError(fd); {
	case errno != 0:
		return true, os.NewSyscallError("getsockopt", errno)
	case n != 0:
		return true, os.NewSyscallError("connect", syscall.Errno(n))
	}
	return false, nil
}

func hasPeer(fd int) bool {
	var (
		rsa unix.RawSockaddrAny
		n   = uint32(unix.SizeofSockaddrAny)
	)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return errno == 0
}

// sockConn is a check's connection: a bare descriptor when the check only
// connects, else a pollable *os.File. Close aborts it (RST). It implements
// net.Conn for crypto/tls.
type sockConn struct {
	fd     int // when f is nil
	sysfd  int // f's descriptor, for the calls that bypass the poller
	f      *os.File
	rc     syscall.RawConn // f's, which waits in the poller with f's deadline
	stop   func() bool
	remote netip.AddrPort
	// clk is the check's deadline on the target's time (turns.go); turn
	// is when the target's current turn began (the last send).
	clk       *checkClock
	turn      time.Time
	cancelled atomic.Bool
}

// Read and Write wait in the runtime's poller as os.File's do, but read
// and send with raw system calls (see rawSocket); the send never raises
// SIGPIPE (MSG_NOSIGNAL).
func (c *sockConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := c.pollRead(b)
	if isDeadline(err) && !c.cancelled.Load() {
		n, err = c.lateRead(b)
	}
	what := "data"
	switch {
	case err == io.EOF:
		what = "fin"
	case err != nil:
		return n, err
	}
	if aerr := c.answered(what, c.turn); aerr != nil {
		return 0, aerr
	}
	// What comes next on this connection is the target's again (more of
	// the answer), counted from here: time in between was the checker's.
	c.turn = c.clk.ours
	return n, err
}

// lateRead is a read whose deadline fired: if the answer is in the socket
// it is read (and then judged by when it arrived), and if nothing is
// there and the deadline has passed the target timed out.
func (c *sockConn) lateRead(b []byte) (int, error) {
	for {
		r, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(c.sysfd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			if r == 0 {
				return 0, io.EOF
			}
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			return 0, os.NewSyscallError("read", errno)
		}
		if !time.Now().Before(c.clk.deadline) {
			return 0, errTargetTimeout
		}
		// The deadline moved since the poller's fired: wait for the rest.
		c.setDeadline()
		return c.pollRead(b)
	}
}

func (c *sockConn) pollRead(b []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write ends the checker's turn: the time since it got the ball, if long,
// is credited, and the target's turn starts when the bytes are in the
// kernel.
func (c *sockConn) Write(b []byte) (int, error) {
	var (
		n   int
		err error
	)
	// A send whose deadline passed while the checker held the ball
	// (starved right before it) is the checker's lateness too: credited,
	// and tried again, once.
	for try := 0; try < 2; try++ {
		if now := time.Now(); (try > 0 || now.Sub(c.clk.ours) > c.clk.slow) && c.clk.credit(c.clk.ours, now) {
			c.clk.ours = now
			c.setDeadline()
		}
		n, err = c.pollWrite(b)
		if n > 0 || !isDeadline(err) || c.cancelled.Load() {
			break
		}
	}
	c.turn = time.Now()
	c.clk.ours = c.turn
	if err == nil && c.clk.pause != nil {
		c.clk.pause("sent")
	}
	return n, err
}

func (c *sockConn) pollWrite(b []byte) (int, error) {
	var (
		done  int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done), unix.MSG_NOSIGNAL, 0, 0)
			switch e {
			case 0:
				done += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return done, err
	case errno != 0:
		return done, os.NewSyscallError("write", errno)
	}
	return done, nil
}

func (c *sockConn) Close() error {
	if c.f == nil {
		return rawClose(c.fd)
	}
	c.stop()
	return c.f.Close()
}

func (c *sockConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *sockConn) RemoteAddr() net.Addr               { return net.TCPAddrFromAddrPort(c.remote) }
func (c *sockConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *sockConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *sockConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
