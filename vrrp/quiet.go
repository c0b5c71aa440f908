package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A backup needs an advert at once only when it changes what happens
// next: a priority 0 advert (its master resigned: take over after
// Skew_Time). Every other advert of its master only pushes the
// Master_Down_Timer back from the time it arrived. So a link's adverts
// are split between two raw sockets by kernel filters:
//
//   - the prompt socket, read as soon as a packet arrives, gets every
//     packet except the routine ones;
//   - the quiet socket, which nothing waits on, gets the routine ones: an
//     advert with a non-zero priority for a VRID whose one instance on
//     the link is a plain backup (not drilled).
//
// The quiet socket is read when a backup's timer comes due, before the
// prompt socket's packets are handled, and before any other event of an
// instance on the link (timerFired, catchUp). Each of its adverts is
// handled as if it had come at once: decoded by the same Decoder, with
// its kernel receive time (Received.At) as the time it arrived, and in
// arrival order with the prompt ones. A backup of a master advertising
// every 10 ms then wakes about once per Master_Down_Interval (three
// adverts) instead of once per advert, which is what keepalived pays.
//
// A packet the filters class wrongly is only read sooner or later: the
// decision is made on its content, by Decode and the Machine, never by
// the filter.

// routineFilter is the socket filter of a link's quiet socket (quiet) or
// of its prompt socket (the complement) for the routine VRIDs vrids. A
// raw IPv4 socket's filter sees the IPv4 header first, a raw IPv6
// socket's the VRRP header. A packet too short to look at, with IPv4
// options, or with priority 0 is never routine.
func routineFilter(v6 bool, vrids []uint8, quiet bool) []bpf.RawInstruction {
	routine, prompt := uint32(0), uint32(0xffffffff)
	if quiet {
		routine, prompt = prompt, routine
	}
	if len(vrids) == 0 {
		return mustAssemble(bpf.RetConstant{Val: prompt})
	}
	off, min := uint32(0), uint32(8)
	var prog []bpf.Instruction
	if !v6 {
		off, min = 20, 28
	}
	// Jumps count the instructions they skip; the tail is
	// [ret prompt, ret routine].
	prog = append(prog, bpf.LoadExtension{Num: bpf.ExtLen})
	head := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: min, SkipTrue: 1},
		bpf.Jump{Skip: 0}, // to ret prompt, patched below
	}
	if !v6 {
		head = append(head,
			bpf.LoadAbsolute{Off: 0, Size: 1},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x45, SkipTrue: 1},
			bpf.Jump{Skip: 0},
		)
	}
	head = append(head,
		bpf.LoadAbsolute{Off: off + 2, Size: 1}, // priority
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 1},
		bpf.Jump{Skip: 0},
		bpf.LoadAbsolute{Off: off + 1, Size: 1}, // VRID
	)
	prog = append(prog, head...)
	for i, v := range vrids {
		// To ret routine: past the rest of the list and ret prompt.
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(v), SkipTrue: uint8(len(vrids) - 1 - i + 1)})
	}
	promptAt := len(prog)
	prog = append(prog, bpf.RetConstant{Val: prompt}, bpf.RetConstant{Val: routine})
	// Patch the long jumps to ret prompt.
	for i, in := range prog {
		if j, ok := in.(bpf.Jump); ok && j.Skip == 0 {
			prog[i] = bpf.Jump{Skip: uint32(promptAt - i - 1)}
		}
	}
	return mustAssemble(prog...)
}

// maxRoutineVRIDs bounds a filter's list: a JumpIf skips at most 255
// instructions. VRIDs are 1..255, so every one fits.
const maxRoutineVRIDs = 255

// cmsgStamp reads a received packet's kernel receive time (SO_TIMESTAMPNS,
// wall clock nanoseconds; 0 when none) and the socket's count of packets
// dropped for want of buffer space (SO_RXQ_OVFL; ovfl false when none).
func cmsgStamp(oob []byte) (stamp int64, drops uint32, ovfl bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return stamp, drops, ovfl
		}
		if h.Level == unix.SOL_SOCKET {
			switch {
			case h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
				sec := int64(binary.NativeEndian.Uint64(data))
				nsec := int64(binary.NativeEndian.Uint64(data[8:]))
				stamp = sec*1e9 + nsec
			case h.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
				drops, ovfl = binary.NativeEndian.Uint32(data), true
			}
		}
		oob = rest
	}
	return stamp, drops, ovfl
}

// stampOOB is the room the receive time and drop count take in a
// packet's control messages.
var stampOOB = unix.CmsgSpace(16) + unix.CmsgSpace(4)

// arrivalClock turns kernel receive times into times on Go's monotonic
// clock, for one socket's reader. Socket timestamps are on the wall clock
// (Linux has no monotonic one for received packets), which can be
// stepped: a stamp is trusted only when the wall clock kept pace with the
// monotonic one since the last read, and only as old as the last read
// that left the socket empty (a packet it left was not there yet). An
// untrusted stamp counts as the time of the read: an advert taken as
// later than it came can delay a takeover by the clock's step, one taken
// as earlier could make a backup take over from a live master.
type arrivalClock struct {
	emptied  time.Time     // the last read that left the socket empty
	last     time.Time     // the last read
	skew     time.Duration // wall minus monotonic time elapsed since base, at last
	base     time.Time
	baseWall int64
}

// maxSlew is how far the wall clock may drift from the monotonic one
// per second without counting as stepped (adjtime slews at most 500 ppm).
const maxSlew = time.Millisecond

// stampSlack covers a packet that came during the read that emptied the
// socket, after the kernel had looked.
const stampSlack = time.Millisecond

func newArrivalClock(now time.Time) arrivalClock {
	return arrivalClock{emptied: now, last: now, base: now, baseWall: now.UnixNano()}
}

// stampRead turns the stamps of one read into arrival times.
type stampRead struct {
	now     time.Time // when the read was done
	wall    int64     // now on the wall clock
	trusted bool
	oldest  time.Time
}

// read starts turning the stamps of a read done by now, wall on the wall
// clock (now.UnixNano(), but for tests).
func (c *arrivalClock) read(now time.Time, wall int64) stampRead {
	skew := time.Duration(wall-c.baseWall) - now.Sub(c.base)
	d := (skew - c.skew).Abs()
	trusted := d <= maxSlew+now.Sub(c.last)/1000
	c.last, c.skew = now, skew
	return stampRead{now: now, wall: wall, trusted: trusted, oldest: c.emptied.Add(-stampSlack)}
}

// at is the arrival time of a packet stamped stamp (wall nanoseconds, 0:
// none).
func (r stampRead) at(stamp int64) time.Time {
	if !r.trusted || stamp == 0 {
		return r.now
	}
	age := time.Duration(r.wall - stamp)
	if age < 0 || age > r.now.Sub(r.oldest) {
		return r.now
	}
	return r.now.Add(-age)
}

// quietSocket is a link's quiet socket: a raw VRRP socket that only
// receives, on a bare descriptor. It is never in Go's poller: a
// descriptor there wakes the process on every packet (the poller's epoll
// set reports it, whether a goroutine waits or not), and the point of the
// quiet socket is that its packets wake nobody.
type quietSocket struct {
	fd  int
	ifi *net.Interface
	v6  bool
}

// sockOpt is one integer socket option.
type sockOpt struct {
	name       string
	level, opt int
	value      int
}

// listenQuiet opens the quiet socket of ifi's link for a family, taking
// no packet (see routineFilter) until a VRID is routine. Its options are
// the receiving half of listenRaw's.
func listenQuiet(ifi *net.Interface, v6 bool) (*quietSocket, error) {
	family := unix.AF_INET
	opts := []sockOpt{
		{"SO_TIMESTAMPNS", unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1},
		{"SO_RXQ_OVFL", unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1},
		{"IP_RECVTTL", unix.IPPROTO_IP, unix.IP_RECVTTL, 1},
		{"IP_PKTINFO", unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
	}
	if v6 {
		family = unix.AF_INET6
		opts[2] = sockOpt{"IPV6_RECVHOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1}
		opts[3] = sockOpt{"IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1}
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, ipProtoVRRP)
	if err != nil {
		return nil, fmt.Errorf("vrrp: quiet socket on %s: %w", ifi.Name, os.NewSyscallError("socket", err))
	}
	q := &quietSocket{fd: fd, ifi: ifi, v6: v6}
	fail := func(what string, err error) (*quietSocket, error) {
		q.Close()
		return nil, fmt.Errorf("vrrp: quiet socket on %s: %s: %w", ifi.Name, what, err)
	}
	// The filter first: nothing is queued before it is in place.
	if err := q.setFilter(routineFilter(v6, nil, true)); err != nil {
		return fail("SO_ATTACH_FILTER", err)
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.value); err != nil {
			return fail(o.name, err)
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name); err != nil {
		return fail("SO_BINDTODEVICE", err)
	}
	return q, nil
}

// ipProtoVRRP is VRRP's IP protocol number.
const ipProtoVRRP = 112

func (q *quietSocket) setFilter(prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return fmt.Errorf("empty filter")
	}
	fs := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		fs[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return unix.SetsockoptSockFprog(q.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(fs)), Filter: &fs[0]})
}

// join joins the VRRP group on the link, as the prompt socket does.
func (q *quietSocket) join() error {
	if q.v6 {
		return unix.SetsockoptIPv6Mreq(q.fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, &unix.IPv6Mreq{Multiaddr: GroupV6.As16(), Interface: uint32(q.ifi.Index)})
	}
	return unix.SetsockoptIPMreqn(q.fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{Multiaddr: GroupV4.As4(), Ifindex: int32(q.ifi.Index)})
}

// newBatch returns the buffers the quiet socket is read into.
func (q *quietSocket) newBatch() *recvBatch {
	oobLen, control := recvSetup(q.v6)
	return newRecvBatchFD(q.fd, oobLen, control)
}

func (q *quietSocket) Close() error { return unix.Close(q.fd) }
