package vrrp

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// TestPathWatchClears checks how a broken send path clears: an error a
// route lookup cannot see (a firewall's EPERM) after a backoff that doubles
// when it recurs soon after the last retry; a route-visible one as soon as
// the lookup works (the next probe).
func TestPathWatchClears(t *testing.T) {
	lab.SkipIfNotRoot(t)
	src, peer := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	l := lab.BuildT(t, "vrrp-pathwatch", lab.Topology{Switches: []string{"lan"}, Hosts: []lab.HostSpec{{Name: "r1",
		Links: []lab.LinkSpec{{Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(src, 24)}}}}}})
	var p *pathWatch
	var first trackUpdate
	if err := l.Host("r1").Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p, first, err = openPathWatch(ifi, src, nil, []netip.Addr{peer})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if first != (trackUpdate{key: keySource}) {
		t.Fatalf("initial source check %+v, want fine", first)
	}
	out := make(chan trackUpdate, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.start(ctx, &wg, false, out)
	t.Cleanup(func() { cancel(); p.close(); wg.Wait() })

	// next waits for the keySend item's next report and returns how long
	// it took.
	next := func(failing bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		select {
		case u := <-out:
			if u.key != keySend || u.failing != failing {
				t.Fatalf("report %+v, want %s failing=%v", u, keySend, failing)
			}
		case <-time.After(within):
			t.Fatalf("no %s failing=%v report within %v", keySend, failing, within)
		}
		return time.Since(start)
	}
	for _, step := range []struct {
		name     string
		routed   bool
		min, max time.Duration // when it clears
	}{
		{"firewall: one backoff", false, probeInterval - 100*time.Millisecond, 2*probeInterval + 500*time.Millisecond},
		{"firewall again: backoff doubled", false, 2*probeInterval - 100*time.Millisecond, 3*probeInterval + 500*time.Millisecond},
		{"route lookup works: no backoff", true, 0, probeInterval + 500*time.Millisecond},
	} {
		p.sendFailed(sendFailure{why: step.name, routed: step.routed})
		next(true, time.Second)
		if d := next(false, step.max); d < step.min {
			t.Fatalf("%s: cleared after %v, want at least %v", step.name, d, step.min)
		}
	}
}

// TestPathWatchFollowsEvents: keySource follows the address events that
// concern it and costs no netlink work for the others (the VIPs of every
// instance on the link), nor while nothing changes; once the subscription
// is lost, it is polled every probeInterval instead.
func TestPathWatchFollowsEvents(t *testing.T) {
	lab.SkipIfNotRoot(t)
	src, peer := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	l := lab.BuildT(t, "vrrp-pathevents", lab.Topology{Switches: []string{"lan"}, Hosts: []lab.HostSpec{{Name: "r1",
		Links: []lab.LinkSpec{{Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(src, 24)}}}}}})
	h := l.Host("r1")
	var p *pathWatch
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p, _, err = openPathWatch(ifi, src, nil, []netip.Addr{peer})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := make(chan trackUpdate, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.start(ctx, &wg, false, out)
	t.Cleanup(func() { cancel(); p.close(); wg.Wait() })
	expect := func(failing bool, within time.Duration) {
		t.Helper()
		select {
		case u := <-out:
			if u.key != keySource || u.failing != failing {
				t.Fatalf("report %+v, want %s failing=%v", u, keySource, failing)
			}
		case <-time.After(within):
			t.Fatalf("no %s failing=%v report within %v", keySource, failing, within)
		}
	}
	for i := range 30 {
		if err := h.AddAddr("eth0", netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32)); err != nil {
			t.Fatal(err)
		}
	}
	// Events are taken in order: by the time the source's removal is
	// reported, the 30 VIP events before it have been looked at.
	if err := h.DelAddr("eth0", netip.PrefixFrom(src, 24)); err != nil {
		t.Fatal(err)
	}
	expect(true, probeInterval/2)
	if n := p.checks.Load(); n != 2 {
		t.Errorf("%d source checks (the one at open, then 30 unrelated address events and the removal); want 2", n)
	}
	if err := h.AddAddr("eth0", netip.PrefixFrom(src, 24)); err != nil {
		t.Fatal(err)
	}
	expect(false, probeInterval/2)

	// Without the subscription, the ticker finds the change.
	p.close()
	if err := h.DelAddr("eth0", netip.PrefixFrom(src, 24)); err != nil {
		t.Fatal(err)
	}
	expect(true, 2*probeInterval+500*time.Millisecond)
}
