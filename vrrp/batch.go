package vrrp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
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
		out: make([]Received, 0, batchSize), control: control,
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
	return b
}

// recv is one recvmmsg on fd; false when nothing waits (the poller
// waits then).
func (b *recvBatch) recv(fd uintptr) bool {
	for i := range b.hs {
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
	got := false
	switch {
	case b.fd >= 0:
		got = b.recv(uintptr(b.fd))
	case b.rc == nil:
		return nil, b.err
	default:
		if err := b.rc.Control(func(fd uintptr) { got = b.recv(fd) }); err != nil {
			return nil, err
		}
	}
	if !got {
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
		r := Received{Payload: b.bufs[i][:h.n], TTL: -1, Src: sockaddrAddr(&b.names[i], h.hdr.Namelen)}
		b.control(&r, oob)
		b.out = append(b.out, r)
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
type rawSender struct {
	rc  syscall.RawConn
	net string // "ip4:112", for errors
}

func newRawSender(pc net.PacketConn, network string) (rawSender, error) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return rawSender{}, fmt.Errorf("%T has no file descriptor", pc)
	}
	rc, err := sc.SyscallConn()
	return rawSender{rc: rc, net: network}, err
}

// send sends b with the control message oob to the socket address name
// of length namelen.
func (s rawSender) send(b, oob []byte, name unsafe.Pointer, namelen uint32) error {
	var iov unix.Iovec
	if len(b) > 0 {
		iov.Base = &b[0]
	}
	iov.SetLen(len(b))
	h := unix.Msghdr{Name: (*byte)(name), Namelen: namelen, Iov: &iov}
	h.SetIovlen(1)
	if len(oob) > 0 {
		h.Control = &oob[0]
		h.SetControllen(len(oob))
	}
	var errno syscall.Errno
	err := s.rc.Write(func(fd uintptr) bool {
		for {
			_, _, errno = unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), unix.MSG_DONTWAIT)
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmsg", errno)
	}
	if err != nil {
		return &net.OpError{Op: "write", Net: s.net, Err: err}
	}
	return nil
}
