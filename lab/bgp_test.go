package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

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
}

// TestBGPLabSpread sends new TCP connections from the client to the VIP,
// which every director answers locally with its name, and checks the
// router's L4 hashing spreads them over the three directors within ±10 %
// of even. 3,000 flows put ±10 % at about 3.9 standard deviations of a
// uniform random spread, so a correct lab fails this only by bad luck
// about once in 10,000 runs; a lab hashing on addresses alone sends every
// flow to one director.
func TestBGPLabSpread(t *testing.T) {
	b, _ := bgpLabWithStandIns(t, lab.BGPOptions{})
	const port = 8080
	for _, d := range b.Directors() {
		if err := d.AddAddr("lo", vip32); err != nil {
			t.Fatal(err)
		}
		ln, err := d.Listen("tcp", netip.AddrPortFrom(lab.BGPVIP4, port).String())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = fmt.Fprintln(c, d.Name())
				c.Close()
			}
		}()
	}
	const flows = 3000
	got := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := b.Client.Do(func() error {
		var d net.Dialer
		for n := range flows {
			c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(lab.BGPVIP4, port).String())
			if err != nil {
				return fmt.Errorf("flow %d: %w", n, err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			name, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				return fmt.Errorf("flow %d: reading the director's name: %w", n, err)
			}
			got[strings.TrimSpace(name)]++
		}
		return nil
	})
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
