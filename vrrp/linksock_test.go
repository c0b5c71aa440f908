package vrrp

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// TestLinkSocketReadWaiting: readWaiting hands what waits in a real raw
// socket to the sink of its VRID on the caller's goroutine, with no
// reader running, and returns at once when nothing waits.
func TestLinkSocketReadWaiting(t *testing.T) {
	lab.SkipIfNotRoot(t)
	src, peer := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	ifi, c, tx, _ := rawPair(t, "vrrp-readwaiting", src, peer)
	var got []Received
	// No reader: only readWaiting takes what the socket holds.
	s := &linkSocket{owner: newLinkSockets(nil), ifi: ifi, conn: c.(sharedRaw), refs: 1, subs: [256][]*linkSub{
		7: {{vrid: 7, sink: func(r Received) { r.Payload = slices.Clone(r.Payload); got = append(got, r) }}},
	}}
	s.readWaiting(nil, nil)
	if len(got) != 0 {
		t.Fatalf("read %d packets from an empty socket", len(got))
	}
	a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	pkt, err := a.Marshal(peer, src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tx.Write(pkt, src); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		s.readWaiting(nil, nil)
		time.Sleep(time.Millisecond)
	}
	if len(got) != 3 {
		t.Fatalf("readWaiting delivered %d of 3 adverts", len(got))
	}
	for _, r := range got {
		if r.Src != peer || r.TTL != 255 || !bytes.Equal(r.Payload, pkt) {
			t.Errorf("delivered %+v, want the advert from %v with TTL 255", r, peer)
		}
	}
}

// TestLinkSocketCountsOverflow: packets the kernel drops at a full
// socket are counted as socket_overflow for each instance on the link,
// so that every advert sent is either delivered or counted, however
// many of the batches reading the socket saw the overflow.
func TestLinkSocketCountsOverflow(t *testing.T) {
	lab.SkipIfNotRoot(t)
	src, peer := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	ifi, c, tx, _ := rawPair(t, "vrrp-overflow", src, peer)
	// The smallest receive buffer the kernel allows holds a few packets.
	raw, err := c.(*conn4).pc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var setErr error
	if err := raw.Control(func(fd uintptr) {
		setErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1)
	}); err != nil || setErr != nil {
		t.Fatalf("SO_RCVBUF: %v %v", err, setErr)
	}
	var d7, d8 DropCounters
	delivered := 0
	sink := func(Received) { delivered++ }
	s := &linkSocket{owner: newLinkSockets(nil), ifi: ifi, conn: c.(sharedRaw), refs: 2, subs: [256][]*linkSub{
		7: {{vrid: 7, sink: sink, drops: &d7}},
		8: {{vrid: 8, sink: func(Received) {}, drops: &d8}},
	}}
	a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	pkt, err := a.Marshal(peer, src)
	if err != nil {
		t.Fatal(err)
	}
	send := func(n int) {
		for i := range n {
			if err := tx.Write(pkt, src); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
	}
	drain := func(want int) {
		deadline := time.Now().Add(5 * time.Second)
		for delivered+int(d7.Get(DropSocketOverflow)) < want && time.Now().Before(deadline) {
			s.readWaiting(nil, nil)
			time.Sleep(time.Millisecond)
		}
	}
	// The kernel reports a socket's losses on the next packet it
	// queues (SO_RXQ_OVFL): each burst is followed by one more once
	// the socket has room.
	const rounds, perRound = 3, 100
	sent := 0
	for round := range rounds {
		send(perRound)
		sent += perRound
		for range 100 {
			s.readWaiting(nil, nil)
		}
		// A second batch on the socket, as the reader's beside
		// readWaiting's: it sees the same count and must not add it
		// again.
		if round == 1 {
			s.waiting = nil
		}
		send(1)
		sent++
		drain(sent)
		lost := int(d7.Get(DropSocketOverflow))
		if delivered+lost != sent || lost == 0 {
			t.Fatalf("round %d: %d sent, %d delivered, %d counted lost: want every one delivered or counted, some lost", round, sent, delivered, lost)
		}
		if d8.Get(DropSocketOverflow) != uint64(lost) {
			t.Fatalf("round %d: VRID 8's instance counted %d lost, VRID 7's %d: each instance on the link counts them", round, d8.Get(DropSocketOverflow), lost)
		}
	}
}

// TestQuietDrainKeepsNewRoutine: a drain of the quiet socket that began
// while nothing was routine must not stop the drains when a VRID became
// routine meanwhile (the instance's driver sets it beside the link's
// reader); else that VRID's adverts wait in the quiet socket for good and
// its backup declares a live master down every Master_Down_Interval. A
// drain with no refilter since does stop them: nothing can wait there.
func TestQuietDrainKeepsNewRoutine(t *testing.T) {
	lab.SkipIfNotRoot(t)
	src, peer := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	ifi, c, tx, r1 := rawPair(t, "vrrp-quietrace", src, peer)
	var got []Received
	s := &linkSocket{owner: newLinkSockets(nil), ifi: ifi, conn: c.(sharedRaw), refs: 1,
		routine: map[uint8]bool{}, shared: map[uint8]bool{}, created: time.Now(), subs: [256][]*linkSub{
			7: {{vrid: 7, sink: func(r Received) { got = append(got, r) }}},
		}}
	if err := r1.Do(func() error { s.openQuiet(); return nil }); err != nil || s.quiet == nil {
		t.Fatalf("no quiet socket: %v", err)
	}
	t.Cleanup(func() { s.mu.Lock(); s.close(); s.mu.Unlock() })
	// A drain with nothing routine and no refilter since stops the drains.
	s.setRoutine(7, true)
	s.setRoutine(7, false)
	s.quietIdle(s.filterGen)
	if s.live.Load() {
		t.Fatalf("a drain that found nothing routine, with no refilter since, left the drains on")
	}
	// The race: a drain looks (nothing routine), the driver makes VRID
	// 7 routine, the drain finds the socket empty.
	s.fmu.Lock()
	gen := s.filterGen
	s.fmu.Unlock()
	s.setRoutine(7, true)
	s.quietIdle(gen)
	if !s.live.Load() {
		t.Fatalf("a drain that began before VRID 7 became routine stopped the drains")
	}
	a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	pkt, err := a.Marshal(peer, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Write(pkt, src); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		s.readWaiting(nil, nil)
		time.Sleep(time.Millisecond)
	}
	if len(got) != 1 || !got[0].quiet {
		t.Fatalf("delivered %d adverts (%+v), want the routine one, from the quiet socket", len(got), got)
	}
}

// rawPair builds a two-router LAN called name and opens a raw VRRP socket
// on each router's eth0: r1's (with its interface and host) and r2's,
// closed when the test ends.
func rawPair(t *testing.T, name string, src, peer netip.Addr) (*net.Interface, advertConn, advertConn, *lab.Host) {
	t.Helper()
	l := lab.BuildT(t, name, lab.Topology{Switches: []string{"lan"}, Hosts: []lab.HostSpec{
		{Name: "r1", Links: []lab.LinkSpec{{Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(src, 24)}}}},
		{Name: "r2", Links: []lab.LinkSpec{{Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(peer, 24)}}}},
	}})
	open := func(host string, a netip.Addr) (*net.Interface, advertConn) {
		var ifi *net.Interface
		var c advertConn
		if err := l.Host(host).Do(func() error {
			var err error
			if ifi, err = net.InterfaceByName("eth0"); err != nil {
				return err
			}
			c, err = listenRaw(ifi, a)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return ifi, c
	}
	ifi, c := open("r1", src)
	_, tx := open("r2", peer)
	return ifi, c, tx, l.Host("r1")
}
