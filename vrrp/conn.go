package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// advertConn sends and receives VRRP payloads on one interface.
type advertConn interface {
	Read(buf []byte) (Received, error)
	// Write sends b to dst; b is the sender's again when Write
	// returns (a master encodes every advert into one buffer).
	Write(b []byte, dst netip.Addr) error
	Close() error
	// setSource changes the source address of what Write sends; called
	// from the goroutine that writes.
	setSource(src netip.Addr)
}

// tosNetworkControl is DSCP CS6 (0xc0), what keepalived and RFC 4594 use
// for routing protocol traffic.
const tosNetworkControl = 0xc0

// bindToDevice keeps a raw socket to one interface's traffic, so two
// instances on different interfaces never see each other's adverts.
func bindToDevice(ifname string) func(string, string, syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// listenRaw opens a raw IP protocol 112 socket on ifi, sending from src
// with TTL / hop limit 255 and reporting TTL and destination of received
// packets. It joins no group: linkSockets does, once per link (join).
func listenRaw(ifi *net.Interface, src netip.Addr) (advertConn, error) {
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
	if src.Is4() {
		pc, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
		if err != nil {
			return nil, fmt.Errorf("vrrp: raw IPv4 socket on %s: %w", ifi.Name, err)
		}
		setReadBuffer(pc)
		c := &conn4{pc: pc, p: ipv4.NewPacketConn(pc), ifi: ifi, src: src}
		if c.tx, err = newRawSender(pc, "ip4:112"); err == nil {
			err = c.setup()
		}
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("vrrp: raw IPv4 socket on %s: %w", ifi.Name, err)
		}
		return c, nil
	}
	pc, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw IPv6 socket on %s: %w", ifi.Name, err)
	}
	setReadBuffer(pc)
	c := &conn6{pc: pc, p: ipv6.NewPacketConn(pc), ifi: ifi, src: src}
	if c.tx, err = newRawSender(pc, "ip6:112"); err == nil {
		err = c.setup()
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("vrrp: raw IPv6 socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// dropAll is a socket filter that accepts nothing.
var dropAll = mustAssemble(bpf.RetConstant{Val: 0})

func mustAssemble(insts ...bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(insts)
	if err != nil {
		panic(err)
	}
	return raw
}

// listenSendOnly opens a raw VRRP socket on ifi that only sends (the
// virtual MAC's macvlan): a filter drops everything it would receive, so
// that unread packets never pile up in its buffer. Adverts are read on the
// base interface.
func listenSendOnly(ifi *net.Interface, src netip.Addr) (advertConn, error) {
	c, err := listenRaw(ifi, src)
	if err != nil {
		return nil, err
	}
	switch c := c.(type) {
	case *conn4:
		err = c.p.SetBPF(dropAll)
	case *conn6:
		err = c.p.SetBPF(dropAll)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("vrrp: send-only socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// readBuffer is large enough to absorb a burst of a few thousand adverts
// (a flood, or many instances on one segment) while the reader catches
// up, so they are dropped by Decode with a reason instead of silently by
// the kernel.
const readBuffer = 4 << 20

// setReadBuffer tries SO_RCVBUFFORCE (CAP_NET_ADMIN, which a VRRP daemon
// has anyway) and falls back to SO_RCVBUF, which net.core.rmem_max caps.
func setReadBuffer(pc net.PacketConn) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
		}
	})
}

// stampReceived asks the kernel for each packet's receive time and the
// socket's count of packets it had no room for (recvBatch).
func stampReceived(pc net.PacketConn) error {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no file descriptor", pc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		}
	}); err != nil {
		return err
	}
	return serr
}

// stripIPv4Header returns the payload of b, an IPv4 datagram as a raw
// socket's recvmmsg returns it (ReadFrom strips the header, recvmmsg
// does not); what is not a well-formed header is returned whole, for
// Decode to count.
func stripIPv4Header(b []byte) []byte {
	if len(b) < 20 || b[0]>>4 != 4 {
		return b
	}
	if hl := int(b[0]&0x0f) * 4; hl >= 20 && hl <= len(b) {
		return b[hl:]
	}
	return b
}

type conn4 struct {
	pc  net.PacketConn
	p   *ipv4.PacketConn
	tx  *rawSender
	ifi *net.Interface
	src netip.Addr
	oob sendCmsg
}

func (c *conn4) setup() error {
	steps := []func() error{
		func() error { return c.p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true) },
		func() error { return c.p.SetTTL(255) },
		func() error { return c.p.SetMulticastTTL(255) },
		func() error { return c.p.SetMulticastLoopback(false) },
		func() error { return c.p.SetMulticastInterface(c.ifi) },
		func() error { return c.p.SetTOS(tosNetworkControl) },
		func() error { return stampReceived(c.pc) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func (c *conn4) Read(buf []byte) (Received, error) {
	n, cm, from, err := c.p.ReadFrom(buf)
	if err != nil {
		return Received{}, err
	}
	r := Received{Payload: buf[:n], TTL: -1}
	if ip, ok := from.(*net.IPAddr); ok {
		r.Src, _ = netip.AddrFromSlice(ip.IP)
		r.Src = r.Src.Unmap()
	}
	if cm != nil {
		r.TTL = cm.TTL
		r.Dst, _ = netip.AddrFromSlice(cm.Dst)
		r.Dst = r.Dst.Unmap()
	}
	return r, nil
}

// newBatch returns the buffers the link's reader reads into (recvBatch).
func (c *conn4) newBatch() *recvBatch {
	oobLen, control := recvSetup(false)
	return newRecvBatch(c.pc, oobLen, control)
}

// recvSetup is what a batch read of a family's raw VRRP socket needs:
// room for the control messages the sockets ask for, and the function
// that fills a Received in from them.
func recvSetup(v6 bool) (oobLen int, control func(*Received, []byte)) {
	if v6 {
		return len(ipv6.NewControlMessage(ipv6.FlagHopLimit | ipv6.FlagDst | ipv6.FlagInterface)), func(r *Received, oob []byte) {
			r.TTL, r.Dst, _ = cmsgInfo(oob, true)
		}
	}
	return len(ipv4.NewControlMessage(ipv4.FlagTTL | ipv4.FlagDst | ipv4.FlagInterface)), func(r *Received, oob []byte) {
		// recvmmsg on a raw socket keeps the IPv4 header (ReadFrom
		// strips it).
		r.Payload = stripIPv4Header(r.Payload)
		r.TTL, r.Dst, _ = cmsgInfo(oob, false)
	}
}

func (c *conn4) Write(b []byte, dst netip.Addr) error { return c.writeFrom(b, c.src, dst) }

// writeFrom sends b to dst from src, an address of the socket's interface.
func (c *conn4) writeFrom(b []byte, src, dst netip.Addr) error {
	oob := c.oob.get(src, func() []byte {
		cm := ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifi.Index}
		return cm.Marshal()
	})
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.As4()}
	return c.tx.send(b, oob, unsafe.Pointer(&sa), unix.SizeofSockaddrInet4)
}

func (c *conn4) join() error {
	return c.p.JoinGroup(c.ifi, &net.IPAddr{IP: GroupV4.AsSlice()})
}

func (c *conn4) Close() error { return c.pc.Close() }

func (c *conn4) setFilter(prog []bpf.RawInstruction) error { return c.p.SetBPF(prog) }

func (c *conn4) setSource(src netip.Addr) { c.src = src }

type conn6 struct {
	pc  net.PacketConn
	p   *ipv6.PacketConn
	tx  *rawSender
	ifi *net.Interface
	src netip.Addr
	oob sendCmsg
}

func (c *conn6) setup() error {
	steps := []func() error{
		func() error {
			return c.p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		},
		func() error { return c.p.SetHopLimit(255) },
		func() error { return c.p.SetMulticastHopLimit(255) },
		func() error { return c.p.SetMulticastLoopback(false) },
		func() error { return c.p.SetMulticastInterface(c.ifi) },
		func() error { return c.p.SetTrafficClass(tosNetworkControl) },
		func() error { return stampReceived(c.pc) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func (c *conn6) Read(buf []byte) (Received, error) {
	n, cm, from, err := c.p.ReadFrom(buf)
	if err != nil {
		return Received{}, err
	}
	r := Received{Payload: buf[:n], TTL: -1}
	if ip, ok := from.(*net.IPAddr); ok {
		r.Src, _ = netip.AddrFromSlice(ip.IP)
	}
	if cm != nil {
		r.TTL = cm.HopLimit
		r.Dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	return r, nil
}

// newBatch returns the buffers the link's reader reads into (recvBatch).
func (c *conn6) newBatch() *recvBatch {
	oobLen, control := recvSetup(true)
	return newRecvBatch(c.pc, oobLen, control)
}

func (c *conn6) Write(b []byte, dst netip.Addr) error { return c.writeFrom(b, c.src, dst) }

func (c *conn6) join() error {
	return c.p.JoinGroup(c.ifi, &net.IPAddr{IP: GroupV6.AsSlice()})
}

// writeFrom sends b to dst from src, an address of the socket's interface.
func (c *conn6) writeFrom(b []byte, src, dst netip.Addr) error {
	oob := c.oob.get(src, func() []byte {
		cm := ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.ifi.Index, HopLimit: 255}
		return cm.Marshal()
	})
	// The scope is the interface's index: a zone name would be resolved
	// in the namespace of whatever thread runs this write, not the
	// socket's (see Options.Do).
	sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16(), Scope_id: uint32(c.ifi.Index)}
	return c.tx.send(b, oob, unsafe.Pointer(&sa), unix.SizeofSockaddrInet6)
}

func (c *conn6) Close() error { return c.pc.Close() }

func (c *conn6) setFilter(prog []bpf.RawInstruction) error { return c.p.SetBPF(prog) }

func (c *conn6) setSource(src netip.Addr) { c.src = src }
