package lab_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
)

var vip32 = netip.PrefixFrom(lab.BGPVIP4, 32)

// bgpLabWithStandIns builds the BGP lab with FRR announcing the VIP from
// every director and waits for the router's three next hops.
func bgpLabWithStandIns(t *testing.T, opts lab.BGPOptions) (*lab.BGP, [3]*lab.FRR) {
	t.Helper()
	b := lab.NewBGPT(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fs, err := b.StartStandIns(ctx, vip32)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	if _, err := b.Router.WaitNextHops(ctx, vip32, lab.DirectorEdges4()...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	return b, fs
}

// directorsAnswer puts the VIP on every director's loopback with an echo
// server on port, greeting with the director's name: each director answers
// the flows the router sends it, with no IPVS and no state shared.
func directorsAnswer(t *testing.T, b *lab.BGP, port uint16) {
	t.Helper()
	for _, d := range b.Directors() {
		if err := d.AddAddr("lo", vip32); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ServeEcho(netip.AddrPortFrom(lab.BGPVIP4, port).String()); err != nil {
			t.Fatal(err)
		}
	}
}

func without(all []netip.Addr, drop netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range all {
		if a != drop {
			out = append(out, a)
		}
	}
	return out
}

// TestBGPLabRoutes checks the router's FIB follows the directors'
// announcements: three equal next hops for the VIP, and losing one
// director (its link cut: BFD; its bgpd stopped: a NOTIFICATION; its bgpd
// killed: the TCP session closing) removes exactly that next hop, which
// comes back when the director does. It reports how long each took.
func TestBGPLabRoutes(t *testing.T) {
	b, fs := bgpLabWithStandIns(t, lab.BGPOptions{})
	all := lab.DirectorEdges4()

	peers, err := b.RouterFRR.BFDPeers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.TransmitInterval != 100*time.Millisecond || p.ReceiveInterval != 100*time.Millisecond || p.DetectMultiplier != 3 {
			t.Errorf("router's BFD session with %v: tx %v rx %v x%d, want 100ms 100ms x3", p.Peer, p.TransmitInterval, p.ReceiveInterval, p.DetectMultiplier)
		}
	}

	type loss struct {
		name    string
		within  time.Duration
		lose    func(i int) error
		recover func(ctx context.Context, i int) error
	}
	for _, tc := range []loss{
		{
			// BFD at 100 ms x 3 detects in 300 ms; the rest is bgpd and
			// zebra (and a loaded CI machine).
			name:    "link cut (BFD)",
			within:  900 * time.Millisecond,
			lose:    func(i int) error { return b.Director[i].Link("eth0").Cut() },
			recover: func(_ context.Context, i int) error { return b.Director[i].Link("eth0").Restore() },
		},
		{
			name:    "bgpd stopped (NOTIFICATION)",
			within:  900 * time.Millisecond,
			lose:    func(i int) error { return fs[i].StopDaemon("bgpd", syscall.SIGTERM) },
			recover: func(ctx context.Context, i int) error { return fs[i].Start(ctx) },
		},
		{
			name:    "bgpd killed (session closed)",
			within:  900 * time.Millisecond,
			lose:    func(i int) error { return fs[i].StopDaemon("bgpd", syscall.SIGKILL) },
			recover: func(ctx context.Context, i int) error { return fs[i].Start(ctx) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const i = 1
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := tc.lose(i); err != nil {
				t.Fatal(err)
			}
			seen, err := b.Router.WaitNextHops(ctx, vip32, without(all, all[i])...)
			if err != nil {
				t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
			}
			took := seen.Sub(start)
			t.Logf("%s of director%d: the router's route to %v lost exactly that next hop after %v", tc.name, i+1, vip32, took.Round(time.Millisecond))
			if took > tc.within {
				t.Errorf("%s: next hop removed after %v, want within %v", tc.name, took, tc.within)
			}
			start = time.Now()
			if err := tc.recover(ctx, i); err != nil {
				t.Fatal(err)
			}
			seen, err = b.Router.WaitNextHops(ctx, vip32, all...)
			if err != nil {
				t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
			}
			t.Logf("director%d back: three next hops again after %v", i+1, seen.Sub(start).Round(time.Millisecond))
		})
	}
	t.Run("router restarted", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := b.RouterFRR.Stop(); err != nil {
			t.Fatal(err)
		}
		// zebra takes its routes with it when it stops.
		if _, err := b.Router.WaitNextHops(ctx, vip32); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := b.RouterFRR.Start(ctx); err != nil {
			t.Fatal(err)
		}
		seen, err := b.Router.WaitNextHops(ctx, vip32, all...)
		if err != nil {
			t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
		}
		t.Logf("router's FRR restarted: three next hops again after %v", seen.Sub(start).Round(time.Millisecond))
	})
}

// TestBGPLabSpread sends new TCP connections from the client to the VIP,
// which every director greets locally with its name, and checks the
// router's L4 hashing spreads them over the three directors within ±10 %
// of even. 3,000 flows put ±10 % at about 3.9 standard deviations of a
// uniform random spread, so a correct lab fails this only by bad luck
// about once in 10,000 runs; a lab hashing on addresses alone sends every
// flow to one director.
func TestBGPLabSpread(t *testing.T) {
	b, _ := bgpLabWithStandIns(t, lab.BGPOptions{})
	const port = 8080
	directorsAnswer(t, b, port)
	const flows = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	got, err := b.Client.Greetings(ctx, netip.AddrPortFrom(lab.BGPVIP4, port), flows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d flows in %v: %v", flows, time.Since(start).Round(time.Millisecond), got)
	even := flows / len(b.Director)
	for _, d := range b.Directors() {
		if n := got[d.Name()]; n < even*9/10 || n > even*11/10 {
			t.Errorf("%s got %d of %d flows, want %d ± 10%% (all: %v)", d.Name(), n, flows, even, got)
		}
	}
}

// TestBGPLabGracefulShutdown checks the router honours RFC 8326: a
// director that tags its route GRACEFUL_SHUTDOWN (as haldir does before
// maintenance) leaves the multipath set while its session stays up, and
// comes back when the tag goes.
func TestBGPLabGracefulShutdown(t *testing.T) {
	b, fs := bgpLabWithStandIns(t, lab.BGPOptions{})
	all := lab.DirectorEdges4()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gshut := func(on bool) {
		t.Helper()
		cmd := "bgp graceful-shutdown"
		if !on {
			cmd = "no " + cmd
		}
		if out, err := fs[0].Vtysh(ctx, "configure terminal", fmt.Sprintf("router bgp %d", lab.DirectorASN), cmd); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	gshut(true)
	if _, err := b.Router.WaitNextHops(ctx, vip32, all[1:]...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	paths, err := b.RouterFRR.BGPPaths(ctx, vip32)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("router has %d paths to %v, want 3 (one per director): %+v", len(paths), vip32, paths)
	}
	for _, p := range paths {
		inShutdown := p.Peer == all[0]
		if got := slices.Contains(p.Communities, "graceful-shutdown"); got != inShutdown || (p.LocalPref == 0) != inShutdown || p.Multipath == inShutdown {
			t.Errorf("path from %v: communities %v, local preference %d, multipath %v; want graceful-shutdown with 0 and out of the multipath set only from %v", p.Peer, p.Communities, p.LocalPref, p.Multipath, all[0])
		}
	}
	peers, err := b.RouterFRR.BGPPeers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if !p.Established() || p.PfxRcd != 1 {
			t.Errorf("router's session with %v: %s with %d prefixes, want Established with 1 (graceful shutdown keeps the session and the route)", p.Address, p.State, p.PfxRcd)
		}
	}
	gshut(false)
	if _, err := b.Router.WaitNextHops(ctx, vip32, all...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
}

// TestBGPLabIPv6 peers over IPv6 too: the stand-ins announce the IPv6 VIP
// and the router installs it with the directors' global addresses as next
// hops.
func TestBGPLabIPv6(t *testing.T) {
	b := lab.NewBGPT(t, lab.BGPOptions{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vip128 := netip.PrefixFrom(lab.BGPVIP6, 128)
	if _, err := b.StartStandIns(ctx, vip32, vip128); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	if _, err := b.Router.WaitNextHops(ctx, vip128, lab.DirectorEdges6()...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	if _, err := b.Router.WaitNextHops(ctx, vip32, lab.DirectorEdges4()...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	start := time.Now()
	if err := b.Director[0].Link("eth0").Cut(); err != nil {
		t.Fatal(err)
	}
	seen, err := b.Router.WaitNextHops(ctx, vip128, lab.DirectorEdges6()[1:]...)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	t.Logf("director1's link cut: its IPv6 next hop gone after %v", seen.Sub(start).Round(time.Millisecond))
}

// TestBGPLabHoldConns checks the connection harness on the BGP lab: 90
// connections held from the client to the VIP, answered by an echo server
// on every director itself (no IPVS, no state shared). Cutting the link of
// the director that is the middle next hop of the router's route moves its
// flows to directors that never saw them, which reset them: exactly its
// connections break. The others survive because the kernel's multipath
// selection is hash-threshold: removing the middle of three next hops
// splits its share of the hash space between its neighbours and moves no
// other flow. (Removing the first or last would also move half of the
// middle one's flows, a sixth of all: the router's ECMP is not resilient
// hashing.)
func TestBGPLabHoldConns(t *testing.T) {
	b, _ := bgpLabWithStandIns(t, lab.BGPOptions{})
	const port = 7
	directorsAnswer(t, b, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	held, err := b.Client.HoldConns(ctx, netip.AddrPortFrom(lab.BGPVIP4, port), lab.HoldOptions{Conns: 90})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Stop()
	poll.Until(t, 30*time.Second, "every held connection busy", func() (bool, any) {
		for _, c := range held.Report().Conns {
			if c.Broken || c.RoundTrips < 5 {
				return false, fmt.Sprintf("%v: %d round trips, broken %v (%v)", c.Local, c.RoundTrips, c.Broken, c.Err)
			}
		}
		return true, nil
	})
	total, _ := held.Report().ByServer()
	for _, d := range b.Directors() {
		if total[d.Name()] == 0 {
			t.Fatalf("no connection landed on %s: %v", d.Name(), total)
		}
	}
	all := lab.DirectorEdges4()
	mid := slices.Index(all, kernelNextHops(t, b.Router, vip32)[1])
	victim := b.Director[mid]
	held.ResetStalls()
	cut := time.Now()
	if err := victim.Link("eth0").Cut(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Router.WaitNextHops(ctx, vip32, without(all, all[mid])...); err != nil {
		t.Fatal(err)
	}
	d2 := victim.Name()
	poll.Until(t, 30*time.Second, "all of the cut director's connections broken", func() (bool, any) {
		r := held.Report()
		total, broken := r.ByServer()
		return broken[d2] == total[d2], r
	})
	r := held.Stop()
	t.Logf("%s's link cut: %v", d2, r)
	var lastBreak time.Duration
	for _, c := range r.Conns {
		if c.Server != d2 && c.Broken {
			t.Errorf("%v on %s broke (%v) though its director stayed", c.Local, c.Server, c.Err)
		}
		if c.Broken {
			lastBreak = max(lastBreak, c.BrokenAt.Sub(cut))
		}
	}
	t.Logf("the last of %s's connections broke %v after the cut; survivors' max stall %v", d2, lastBreak.Round(time.Millisecond), r.MaxStall().Round(time.Millisecond))
	if r.Survived() != len(r.Conns)-total[d2] {
		t.Errorf("%d survived, want %d (all but %s's)", r.Survived(), len(r.Conns)-total[d2], d2)
	}
}

// kernelNextHops returns the gateways of h's multipath route to p in the
// kernel's order, which decides the hash-threshold regions.
func kernelNextHops(t *testing.T, h *lab.Host, p netip.Prefix) []netip.Addr {
	t.Helper()
	rs, err := h.Netlink().RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil || len(rs) != 1 || len(rs[0].MultiPath) != 3 {
		t.Fatalf("router's route to %v: %v, %v; want one route with three next hops", p, rs, err)
	}
	var out []netip.Addr
	for _, nh := range rs[0].MultiPath {
		a, _ := netip.AddrFromSlice(nh.Gw)
		out = append(out, a.Unmap())
	}
	t.Logf("the router's next hops for %v in the kernel's order: %v", p, out)
	return out
}

// TestBGPLabRealRoutes checks the real servers' default routes: via the
// router's back leg (LVS-DR, tunnels), or over every director (LVS-NAT).
func TestBGPLabRealRoutes(t *testing.T) {
	back := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 1, last}) }
	back6 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	for _, tt := range []struct {
		name        string
		opts        lab.BGPOptions
		want, want6 []netip.Addr
	}{
		{"via the router", lab.BGPOptions{NoRouter: true}, []netip.Addr{lab.BackGW4}, []netip.Addr{lab.BackGW6}},
		{"via the directors", lab.BGPOptions{NoRouter: true, RealsViaDirectors: true},
			[]netip.Addr{back(11), back(12), back(13)},
			[]netip.Addr{back6("2001:db8:2::11"), back6("2001:db8:2::12"), back6("2001:db8:2::13")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := lab.NewBGPT(t, tt.opts)
			if b.RouterFRR != nil {
				t.Error("NoRouter started FRR")
			}
			for _, r := range b.Reals() {
				for _, c := range []struct {
					dst  netip.Prefix
					want []netip.Addr
				}{{netip.MustParsePrefix("0.0.0.0/0"), tt.want}, {netip.MustParsePrefix("::/0"), tt.want6}} {
					got, err := r.NextHops(c.dst)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(got) != fmt.Sprint(c.want) {
						t.Errorf("%s: default route %v via %v, want %v", r.Name(), c.dst, got, c.want)
					}
				}
			}
		})
	}
}
