package healthcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
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
	ra     unix.Sockaddr // copied per dial: the syscall package writes into it
	la     unix.Sockaddr // nil unless source_address is set
}

func newTCPDialer(remote netip.AddrPort, source netip.Addr) (tcpDialer, error) {
	d := tcpDialer{remote: netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())}
	var err error
	d.family, d.ra, err = sockaddr(d.remote)
	if err != nil {
		return d, err
	}
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

func (d tcpDialer) copyRemote() unix.Sockaddr {
	switch sa := d.ra.(type) {
	case *unix.SockaddrInet4:
		c := *sa
		return &c
	case *unix.SockaddrInet6:
		c := *sa
		return &c
	}
	return d.ra
}

// dial connects by deadline; ctx's cancellation aborts a wait. With io
// false the caller will only close the connection, so one that completes
// at once never enters the poller.
func (d tcpDialer) dial(ctx context.Context, deadline time.Time, io bool) (*sockConn, error) {
	fd, err := unix.Socket(d.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	// Checks close with RST, as HAProxy's do: a probe has nothing left to
	// flush, and at thousands of checks per second the TIME_WAIT sockets
	// of an orderly close would eat the ephemeral ports and kernel memory.
	// Set now, it also covers every early return below.
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt", err)
	}
	if d.la != nil {
		if err := unix.Bind(fd, d.la); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError("bind", err)
		}
	}
	connected := false
	switch err := unix.Connect(fd, d.copyRemote()); err {
	case nil:
		connected = true
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		// A loopback or LAN handshake often completes inside connect.
		connected = hasPeer(fd)
	default:
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	if connected && !io {
		return &sockConn{fd: fd, remote: d.remote}, nil
	}
	f := os.NewFile(uintptr(fd), "tcp")
	c := &sockConn{fd: -1, f: f, remote: d.remote}
	if err := f.SetDeadline(deadline); err != nil {
		f.Close()
		return nil, fmt.Errorf("socket not pollable: %w", err)
	}
	// Cancellation (probe removed, scheduler stopped) moves the deadline
	// into the past, which unblocks whatever the check is waiting on
	// without a goroutine per check.
	c.stop = context.AfterFunc(ctx, func() { f.SetDeadline(time.Unix(1, 0)) })
	if connected {
		return c, nil
	}
	// Only a connect still in progress needs the raw connection: most
	// complete inside connect, and it is one allocation more per check.
	rc, err := f.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var cerr error
	werr := rc.Write(func(fd uintptr) bool {
		if hasPeer(int(fd)) {
			return true
		}
		switch n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR); {
		case err != nil:
			cerr = os.NewSyscallError("getsockopt", err)
		case n != 0:
			cerr = os.NewSyscallError("connect", syscall.Errno(n))
		default:
			return false // still connecting: wait for writability
		}
		return true
	})
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		c.Close()
		return nil, werr
	}
	return c, nil
}

// hasPeer reports whether the socket fd is connected: getpeername(2)
// succeeds. Called directly, not through unix.Getpeername, which decodes
// the address into a new Sockaddr and, for AF_INET, asks the kernel the
// socket's protocol (getsockopt SO_PROTOCOL) to tell L2TP apart: one
// system call and two allocations per check for an address nobody reads.
func hasPeer(fd int) bool {
	var (
		rsa unix.RawSockaddrAny
		n   = uint32(unix.SizeofSockaddrAny)
	)
	_, _, errno := unix.Syscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	return errno == 0
}

// sockConn is a check's connection: a bare descriptor when the check only
// connects, else a pollable *os.File. Close aborts it (RST). It implements
// net.Conn for crypto/tls.
type sockConn struct {
	fd     int // when f is nil
	f      *os.File
	stop   func() bool
	remote netip.AddrPort
}

func (c *sockConn) Read(b []byte) (int, error)  { return c.f.Read(b) }
func (c *sockConn) Write(b []byte) (int, error) { return c.f.Write(b) }

func (c *sockConn) Close() error {
	if c.f == nil {
		return unix.Close(c.fd)
	}
	c.stop()
	return c.f.Close()
}

func (c *sockConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *sockConn) RemoteAddr() net.Addr               { return net.TCPAddrFromAddrPort(c.remote) }
func (c *sockConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *sockConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *sockConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
