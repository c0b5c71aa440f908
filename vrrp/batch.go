package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many packets one read may take: the adverts of a
// burst (many masters' timers firing on one wake-up, see timerSet) cost
// one system call and one wake-up.
const batchSize = 64

// mmsghdr is struct mmsghdr (recvmmsg(2)).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// recvBatch reads the packets waiting on a raw socket with recvmmsg, into
// buffers it reuses: a Received's payload is valid until the next read.
//
// recvmmsg is called with RawSyscall, not through x/net's ReadBatch: on a
// non-blocking socket it never blocks, and a Syscall's entersyscall wakes
// the runtime's sysmon thread whenever the process was idle, two context
// switches per packet for a backup that only listens (a third of its CPU
// at 100 adverts/s). Go's poller still does the waiting.
type recvBatch struct {
	rc    syscall.RawConn
	fd    int // a bare descriptor, when rc is nil (newRecvBatchFD)
	hs    []mmsghdr
	iov   []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrInet6 // large enough for either family
	oob   [][]byte
	out   []Received
	// control fills in what the family's control message says (and
	// strips what the family's raw socket leaves in the payload).
	control func(r *Received, oob []byte)
	n       int
	err     error
	readFn  func(fd uintptr) bool
	// dirty is how many of hs the last recvmmsg may have written.
	dirty int
	// nowFn is readNow's Control function, made once (a closure made
	// per call escaped: an allocation per drain), and got its result.
	nowFn func(fd uintptr)
	got   bool
	// clock turns the packets' kernel receive times into Received.At;
	// drops is the socket's last count of packets it had no room for.
	clock arrivalClock
	drops uint32
}

// newRecvBatchFD is newRecvBatch for a bare non-blocking descriptor,
// read only with readNow.
func newRecvBatchFD(fd, oobLen int, control func(*Received, []byte)) *recvBatch {
	b := newRecvBatch(nil, oobLen, control)
	b.fd = fd
	return b
}

func newRecvBatch(pc net.PacketConn, oobLen int, control func(*Received, []byte)) *recvBatch {
	b := &recvBatch{
		fd: -1,
		hs: make([]mmsghdr, batchSize), iov: make([]unix.Iovec, batchSize), bufs: make([][]byte, batchSize),
		names: make([]unix.RawSockaddrInet6, batchSize), oob: make([][]byte, batchSize),
		out: make([]Received, 0, batchSize), control: control, dirty: batchSize,
		clock: newArrivalClock(time.Now()),
	}
	oobLen += stampOOB
	if sc, ok := pc.(syscall.Conn); ok {
		b.rc, b.err = sc.SyscallConn()
	}
	for i := range b.hs {
		b.bufs[i] = make([]byte, 1500)
		b.oob[i] = make([]byte, oobLen)
		b.iov[i].Base = &b.bufs[i][0]
		b.iov[i].SetLen(len(b.bufs[i]))
	}
	b.readFn = b.recv
	b.nowFn = func(fd uintptr) { b.got = b.recv(fd) }
	return b
}

// recv is one recvmmsg on fd; false when nothing waits (the poller
// waits then).
func (b *recvBatch) recv(fd uintptr) bool {
	// Only the headers the last call may have written (its messages and
	// the one after) are set again: setting all 64 touched 4 KB on every
	// read, most of it for nothing, a backup's busiest function in perf.
	for i := range b.hs[:b.dirty] {
		h := &b.hs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		h.Control = &b.oob[i][0]
		h.SetControllen(len(b.oob[i]))
		h.Flags = 0
		b.hs[i].n = 0
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hs[0])), uintptr(len(b.hs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		n = 0
	}
	b.dirty = min(int(n)+1, len(b.hs))
	switch errno {
	case 0:
		b.n, b.err = int(n), nil
	case unix.EAGAIN:
		return false
	case unix.EINTR:
		return b.recv(fd)
	default:
		b.n, b.err = 0, errno
	}
	return true
}

// read waits for packets and returns them, at least one.
func (b *recvBatch) read() ([]Received, error) {
	if b.rc == nil {
		return nil, b.err
	}
	if err := b.rc.Read(b.readFn); err != nil {
		return nil, err
	}
	return b.received()
}

// readNow returns the packets waiting now, none when there are none; it
// never waits.
func (b *recvBatch) readNow() ([]Received, error) {
	b.got = false
	switch {
	case b.fd >= 0:
		b.got = b.recv(uintptr(b.fd))
	case b.rc == nil:
		return nil, b.err
	default:
		if err := b.rc.Control(b.nowFn); err != nil {
			return nil, err
		}
	}
	if !b.got {
		b.clock.emptied = time.Now()
		return nil, nil
	}
	return b.received()
}

// received is what the last recv read.
func (b *recvBatch) received() ([]Received, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.out = b.out[:0]
	now := time.Now()
	sr := b.clock.read(now, now.UnixNano())
	var stamps [batchSize]int64
	for i := range b.n {
		h := &b.hs[i]
		oob := b.oob[i][:h.hdr.Controllen]
		stamp, drops, ovfl := cmsgStamp(oob)
		if ovfl && drops != b.drops {
			// The kernel dropped the newest packets: the ones read
			// here may not be the last the master sent.
			b.drops, sr.trusted = drops, false
		}
		stamps[i] = stamp
		// Filled in place: a local handed to control (a func value)
		// escaped, an allocation per packet read.
		b.out = append(b.out, Received{Payload: b.bufs[i][:h.n], TTL: -1, Src: sockaddrAddr(&b.names[i], h.hdr.Namelen)})
		b.control(&b.out[len(b.out)-1], oob)
	}
	for i := range b.out {
		b.out[i].At, b.out[i].stamp = sr.at(stamps[i]), stamps[i]
	}
	if b.n < len(b.hs) {
		b.clock.emptied = now
	}
	return b.out, nil
}

// sockaddrAddr is the address of a sockaddr_in or sockaddr_in6 of length
// n; invalid for anything else.
func sockaddrAddr(sa *unix.RawSockaddrInet6, n uint32) netip.Addr {
	switch {
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(sa4.Addr)
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrFrom16(sa.Addr)
	}
	return netip.Addr{}
}

// rawSender sends on a raw socket with sendmsg through RawSyscall, for
// the reason recvBatch reads with it: a master's every advert otherwise
// woke the runtime's sysmon thread. Go's poller waits when the socket's
// buffer is full.
//
// The message header, its iovec and the function handed to the RawConn
// live here, made once: on the stack they escaped to the heap through
// RawConn.Write, four allocations per advert (perf: allocation and GC
// were a tenth of a 10ms master's CPU). The instances of a link send on
// one socket from their own goroutines, hence mu.
type rawSender struct {
	rc    syscall.RawConn
	net   string // "ip4:112", for errors
	mu    sync.Mutex
	h     unix.Msghdr
	iov   unix.Iovec
	name  [unix.SizeofSockaddrInet6]byte // the largest address sent to
	errno syscall.Errno
	write func(fd uintptr) bool
}

func newRawSender(pc net.PacketConn, network string) (*rawSender, error) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor", pc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &rawSender{rc: rc, net: network}
	s.write = s.sendmsg
	return s, nil
}

// sendmsg is the RawConn's write function, s.mu held.
func (s *rawSender) sendmsg(fd uintptr) bool {
	for {
		_, _, s.errno = unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.h)), unix.MSG_DONTWAIT)
		if s.errno != unix.EINTR {
			return s.errno != unix.EAGAIN
		}
	}
}

// send sends b with the control message oob to the socket address name
// of length namelen (at most a sockaddr_in6; ll and in are smaller).
func (s *rawSender) send(b, oob []byte, name unsafe.Pointer, namelen uint32) error {
	s.mu.Lock()
	s.iov = unix.Iovec{}
	if len(b) > 0 {
		s.iov.Base = &b[0]
	}
	s.iov.SetLen(len(b))
	n := copy(s.name[:], unsafe.Slice((*byte)(name), namelen))
	s.h = unix.Msghdr{Name: &s.name[0], Namelen: uint32(n), Iov: &s.iov}
	s.h.SetIovlen(1)
	if len(oob) > 0 {
		s.h.Control = &oob[0]
		s.h.SetControllen(len(oob))
	}
	s.errno = 0
	err := s.rc.Write(s.write)
	errno := s.errno
	// No reference to the caller's buffers is kept.
	s.iov, s.h = unix.Iovec{}, unix.Msghdr{}
	s.mu.Unlock()
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmsg", errno)
	}
	if err != nil {
		return &net.OpError{Op: "write", Net: s.net, Err: err}
	}
	return nil
}
