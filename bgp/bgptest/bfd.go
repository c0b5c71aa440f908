package bgptest

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bfd"
	"golang.org/x/sys/unix"
)

// BFDPort is the single-hop BFD control port (RFC 5881).
const BFDPort = 3784

// BFD is the router's end of one single-hop BFD session (RFC 5880,
// asynchronous mode, no authentication): enough of the state machine to
// bring a peer's session up and, by going silent, let it time out, as a
// router that dies does. Two GoBGP speakers cannot be each other's BFD
// peer on one host: each binds the wildcard address on port 3784, and the
// kernel hands a datagram to one of the two sockets only.
type BFD struct {
	addr, peer netip.Addr
	interval   time.Duration
	in, out    *net.UDPConn

	mu      sync.Mutex
	state   bfd.StateType
	my      uint32
	your    uint32
	silent  bool
	stopped chan struct{}
}

// StartBFD runs the router's end at addr for a session with peer, sending
// every interval (and asking the peer for the same); it stops at the
// test's end.
func StartBFD(t testing.TB, addr, peer netip.Addr, interval time.Duration) *BFD {
	t.Helper()
	// SO_REUSEADDR beside the peer's own BFD socket on *:3784: the
	// kernel gives this more specific one the datagrams to addr.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(addr, BFDPort).String())
	if err != nil {
		t.Fatalf("bgptest: BFD at %v: %v", addr, err)
	}
	out, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, BFDPort)))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	b := &BFD{addr: addr, peer: peer, interval: interval, in: pc.(*net.UDPConn), out: out, state: bfd.StateDown, my: 0x4711, stopped: make(chan struct{})}
	done := make(chan struct{})
	go b.receive()
	go b.send(done)
	t.Cleanup(func() { close(done); b.in.Close(); b.out.Close(); <-b.stopped })
	return b
}

// receive runs the state machine on the peer's packets (RFC 5880 6.8.6).
func (b *BFD) receive() {
	buf := make([]byte, 128)
	for {
		n, from, err := b.in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var h bfd.BFDHeader
		if from.Addr().Unmap() != b.peer || h.UnmarshalBinary(buf[:n]) != nil || h.MyDiscriminator == 0 {
			continue
		}
		b.mu.Lock()
		b.your = h.MyDiscriminator
		switch {
		case b.silent:
		case h.State == bfd.StateAdminDown || h.State == bfd.StateDown && b.state == bfd.StateUp:
			b.state = bfd.StateDown
		case h.State == bfd.StateDown && b.state == bfd.StateDown:
			b.state = bfd.StateInit
		case h.State == bfd.StateInit || h.State == bfd.StateUp && b.state == bfd.StateInit:
			b.state = bfd.StateUp
		}
		b.mu.Unlock()
	}
}

func (b *BFD) send(done chan struct{}) {
	defer close(b.stopped)
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		b.mu.Lock()
		h := bfd.BFDHeader{Version: 1, State: b.state, DetectTimeMultiplier: 3, MyDiscriminator: b.my, YourDiscriminator: b.your,
			DesiredMinTxInterval: uint32(b.interval / time.Microsecond), RequiredMinRxInterval: uint32(b.interval / time.Microsecond)}
		silent := b.silent
		b.mu.Unlock()
		if silent {
			continue
		}
		if p, err := h.MarshalBinary(); err == nil {
			_, _ = b.out.Write(p)
		}
	}
}

// State is the router's end's state: "up", "init" or "down".
func (b *BFD) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case bfd.StateUp:
		return "up"
	case bfd.StateInit:
		return "init"
	}
	return "down"
}

// Silence makes the router's end stop sending, as a dead router: the
// peer's detection time runs out.
func (b *BFD) Silence() {
	b.mu.Lock()
	b.silent = true
	b.mu.Unlock()
}
