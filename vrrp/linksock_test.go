package vrrp

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
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
	l := lab.BuildT(t, "vrrp-readwaiting", lab.Topology{Switches: []string{"lan"}, Hosts: []lab.HostSpec{
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
	var got []Received
	// No reader: only readWaiting takes what the socket holds.
	s := &linkSocket{owner: newLinkSockets(nil), ifi: ifi, conn: c.(sharedRaw), refs: 1, subs: map[uint8][]*linkSub{
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
