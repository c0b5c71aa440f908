package vrrp_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
	"github.com/vishvananda/netlink"
)

const vmacIf = "vrrp.42"

func vmacConfig(prio int, f family) conf.VRRPInstance {
	c := instanceConfig("vi", prio, f)
	c.UseVMAC, c.VMACInterface = true, vmacIf
	return c
}

// startVMACRouter starts a use_vmac instance and waits for its macvlan, so
// that hasVIP (which looks at the macvlan) can be asked at once.
func startVMACRouter(t *testing.T, h *lab.Host, cfg conf.VRRPInstance) *router {
	t.Helper()
	r := startRouter(t, h, cfg)
	r.iface = vmacIf
	waitFor(t, h.Name()+" "+vmacIf, settle, func() bool {
		_, err := h.Netlink().LinkByName(vmacIf)
		return err == nil
	})
	return r
}

// vmacLAN is the two-router LAN of the use_vmac tests, observed, with
// both routers naming themselves on port 8080 and the client ("attacker")
// to ask them; it returns the VIP and the virtual MAC of f.
func vmacLAN(t *testing.T, f family) (*lab.Lab, *lab.Observer, *lab.Host, netip.Addr, net.HardwareAddr) {
	t.Helper()
	l := buildLAN(t, 2)
	obs := observe(t, l)
	for _, n := range []string{"r1", "r2"} {
		serveName(t, l.Host(n), "tcp")
	}
	return l, obs, l.Host("attacker"), f.vip.Addr(), vrrp.VirtualMAC(vrid, f.name == "ipv6")
}

// serveName answers every TCP connection on port 8080 with the host's name,
// so that a client can tell which router holds the VIP.
func serveName(t *testing.T, h *lab.Host, network string) {
	t.Helper()
	ln, err := h.Listen(network, ":8080")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(h.Name() + "\n"))
			c.Close()
		}
	}()
}

// whoHolds asks the VIP's port 8080 from the client until it answers
// want (the switch may still forward to the old master for a moment).
func whoHolds(t *testing.T, client *lab.Host, vip netip.Addr, want string) {
	t.Helper()
	ask := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := client.Dial(ctx, "tcp", netip.AddrPortFrom(vip, 8080).String())
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	poll.UntilEvery(t, settle, 20*time.Millisecond, fmt.Sprintf("the VIP %v to answer as %s", vip, want), func() (bool, any) {
		got, err := ask()
		return err == nil && got == want, fmt.Sprintf("answer %q, %v", got, err)
	})
}

// neighMAC returns the MAC the client's neighbour table holds for ip.
func neighMAC(t *testing.T, client *lab.Host, ip netip.Addr) net.HardwareAddr {
	t.Helper()
	link, err := client.Netlink().LinkByName(lanIf)
	if err != nil {
		t.Fatal(err)
	}
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := client.Netlink().NeighList(link.Attrs().Index, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr
		}
	}
	t.Fatalf("client has no neighbour entry for %v: %+v", ip, ns)
	return nil
}

// waitVMACAnnounce waits for a gratuitous ARP / unsolicited NA for vip sent
// from mac (Ethernet source and announced address both), after seq.
func waitVMACAnnounce(t *testing.T, obs *lab.Observer, after uint64, vip netip.Addr, mac net.HardwareAddr) lab.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	announced := announces(vip, mac)
	rec, err := obs.WaitForAfter(ctx, after, func(r lab.Record) bool {
		return bytes.Equal(r.Src, mac) && announced(r)
	})
	if err != nil {
		t.Fatalf("no gratuitous ARP/NA for %v from the virtual MAC %v: %v", vip, mac, err)
	}
	return rec
}

func linkUp(t *testing.T, h *lab.Host) bool {
	t.Helper()
	l, err := h.Netlink().LinkByName(vmacIf)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Flags&net.FlagUp != 0
}

// TestE2EVMAC runs two use_vmac routers and a client on one switch through
// a hard failover and the failback: adverts and announcements carry the
// virtual MAC, only the master's macvlan is up, and the client's neighbour
// entry for the VIP keeps the virtual MAC while the VIP moves.
func TestE2EVMAC(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l, obs, client, vip, mac := vmacLAN(t, f)
			r1 := startVMACRouter(t, l.Host("r1"), vmacConfig(100, f))
			r2 := startVMACRouter(t, l.Host("r2"), vmacConfig(200, f))
			all := []*router{r1, r2}
			waitMaster(t, r2, all)
			waitVMACAnnounce(t, obs, 0, vip, mac)

			// The master's macvlan is up with the virtual MAC; the
			// backup's is down, so it sends nothing with that MAC.
			if got := r2.in.Status().VMACInterface; got != vmacIf {
				t.Fatalf("status VMACInterface %q, want %q", got, vmacIf)
			}
			if got, _ := r2.h.HardwareAddr(vmacIf); !bytes.Equal(got, mac) {
				t.Fatalf("r2 %s has MAC %v, want %v", vmacIf, got, mac)
			}
			if !linkUp(t, r2.h) || linkUp(t, r1.h) {
				t.Fatalf("%s up: r2 %v, r1 %v; want only the master's", vmacIf, linkUp(t, r2.h), linkUp(t, r1.h))
			}
			// The master's adverts leave with the virtual MAC.
			ctx, cancel := context.WithTimeout(context.Background(), settle)
			defer cancel()
			if _, err := obs.WaitFor(ctx, func(r lab.Record) bool {
				return r.VRRP != nil && r.VRRP.Src == r2.in.Status().Source && bytes.Equal(r.Src, mac)
			}); err != nil {
				t.Fatalf("no advert from r2 with the virtual MAC: %v", err)
			}
			if f.name == "ipv4" {
				for _, s := range []struct{ key, want string }{
					{"net/ipv4/conf/" + vmacIf + "/arp_ignore", "1"},
					{"net/ipv4/conf/" + vmacIf + "/accept_local", "1"},
					{"net/ipv4/conf/" + vmacIf + "/rp_filter", "2"},
					{"net/ipv6/conf/" + vmacIf + "/disable_ipv6", "1"},
					{"net/ipv4/conf/" + lanIf + "/arp_ignore", "1"},
					{"net/ipv4/conf/" + lanIf + "/arp_filter", "1"},
					{"net/ipv4/conf/" + lanIf + "/arp_announce", "2"},
				} {
					if got, err := r2.h.ReadSysctl(s.key); err != nil || got != s.want {
						t.Errorf("r2 %s = %q (%v), want %s", s.key, got, err, s.want)
					}
				}
			}

			whoHolds(t, client, vip, "r2")
			if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
				t.Fatalf("client resolves %v to %v, want the virtual MAC %v", vip, got, mac)
			}

			// Hard failover: only r1 can send now, so an announcement
			// with the virtual MAC after the cut is r1's.
			seq := obs.LastSeq()
			if err := r2.h.Link(lanIf).Cut(); err != nil {
				t.Fatal(err)
			}
			waitMaster(t, r1, []*router{r1})
			waitVMACAnnounce(t, obs, seq, vip, mac)
			whoHolds(t, client, vip, "r1")
			if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
				t.Fatalf("after failover the client resolves %v to %v, want the same virtual MAC %v", vip, got, mac)
			}
			if linkUp(t, r2.h) {
				t.Fatalf("r2's %s still up in fault", vmacIf)
			}

			// Failback: r2 preempts. r1, master with its macvlan up,
			// must hear adverts whose source MAC is its own virtual MAC.
			if err := r2.h.Link(lanIf).Restore(); err != nil {
				t.Fatal(err)
			}
			waitMaster(t, r2, all)
			assertSteady(t, r2, all, 500*time.Millisecond)
			whoHolds(t, client, vip, "r2")
			if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
				t.Fatalf("after failback the client resolves %v to %v, want %v", vip, got, mac)
			}

			// Stopping removes the macvlan.
			r1.stop()
			r2.stop()
			for _, r := range all {
				var notFound netlink.LinkNotFoundError
				if _, err := r.h.Netlink().LinkByName(vmacIf); !errors.As(err, &notFound) {
					t.Errorf("%s: %s after stop: %v", r.h.Name(), vmacIf, err)
				}
			}
		})
	}
}

// TestE2EVMACExisting: a macvlan left with the right MAC is adopted (same
// interface index), anything else of that name is refused and left alone.
func TestE2EVMACExisting(t *testing.T) {
	lab.SkipIfNotRoot(t)
	mac := vrrp.VirtualMAC(vrid, false)
	cases := []struct {
		name string
		link func(parent int) netlink.Link
		want string // "" = adopted
	}{
		{"right MAC adopted", func(p int) netlink.Link {
			return &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: vmacIf, ParentIndex: p, HardwareAddr: mac}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		}, ""},
		{"wrong MAC refused", func(p int) netlink.Link {
			return &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: vmacIf, ParentIndex: p, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		}, "has MAC 02:00:00:00:00:01, not the virtual MAC 00:00:5e:00:01:2a"},
		{"not a macvlan refused", func(int) netlink.Link {
			return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: vmacIf}}
		}, "is a bridge, not a macvlan"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := buildLAN(t, 1)
			h := l.Host("r1")
			base, err := h.Netlink().LinkByName(lanIf)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Netlink().LinkAdd(tc.link(base.Attrs().Index)); err != nil {
				t.Fatal(err)
			}
			before, err := h.Netlink().LinkByName(vmacIf)
			if err != nil {
				t.Fatal(err)
			}
			r := newRouter(t, h, vmacConfig(100, v4))
			r.iface = vmacIf
			if tc.want != "" {
				err := r.in.Run(context.Background())
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Run: %v, want an error containing %q", err, tc.want)
				}
				if after, err := h.Netlink().LinkByName(vmacIf); err != nil || after.Attrs().Index != before.Attrs().Index {
					t.Fatalf("the refused %s was touched: %v", vmacIf, err)
				}
				return
			}
			r.run()
			waitMaster(t, r, []*router{r})
			after, err := h.Netlink().LinkByName(vmacIf)
			if err != nil || after.Attrs().Index != before.Attrs().Index {
				t.Fatalf("%s was not adopted: index %d before, %v after (%v)", vmacIf, before.Attrs().Index, after, err)
			}
		})
	}
}

// TestE2EVMACUnicast: with unicast peers the adverts leave from the base
// interface (its own MAC, like keepalived's vmac_xmit_base) while the VIP
// and its announcements keep the virtual MAC across a graceful failover.
func TestE2EVMACUnicast(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l, obs, client, vip, mac := vmacLAN(t, f)
			c1, c2 := vmacConfig(100, f), vmacConfig(200, f)
			c1.UnicastPeers = []netip.Addr{f.host(12).Addr()}
			c2.UnicastPeers = []netip.Addr{f.host(11).Addr()}
			r1 := startVMACRouter(t, l.Host("r1"), c1)
			r2 := startVMACRouter(t, l.Host("r2"), c2)
			waitMaster(t, r2, []*router{r1, r2})
			waitVMACAnnounce(t, obs, 0, vip, mac)
			base, err := r2.h.HardwareAddr(lanIf)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), settle)
			defer cancel()
			if _, err := obs.WaitFor(ctx, func(r lab.Record) bool {
				return r.VRRP != nil && r.VRRP.Src == f.host(12).Addr() && r.VRRP.Dst == f.host(11).Addr() && bytes.Equal(r.Src, base)
			}); err != nil {
				t.Fatalf("no unicast advert from r2's own MAC %v: %v", base, err)
			}
			whoHolds(t, client, vip, "r2")

			seq := obs.LastSeq()
			r2.stop()
			waitMaster(t, r1, []*router{r1})
			waitVMACAnnounce(t, obs, seq, vip, mac)
			whoHolds(t, client, vip, "r1")
			if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
				t.Fatalf("after failover the client resolves %v to %v, want %v", vip, got, mac)
			}
		})
	}
}

// TestE2EVMACLeftoverCleared: a crashed run left r1's macvlan up with the
// VIP on it. Restarted as backup behind r2, r1 adopts the macvlan, takes it
// down and drops the VIP, so only r2 answers for it.
func TestE2EVMACLeftoverCleared(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	h := l.Host("r1")
	base, err := h.Netlink().LinkByName(lanIf)
	if err != nil {
		t.Fatal(err)
	}
	left := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: vmacIf, ParentIndex: base.Attrs().Index, HardwareAddr: vrrp.VirtualMAC(vrid, false)}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := h.Netlink().LinkAdd(left); err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink().LinkSetUp(left); err != nil {
		t.Fatal(err)
	}
	if err := h.AddAddr(vmacIf, vip4); err != nil {
		t.Fatal(err)
	}
	r2 := startVMACRouter(t, l.Host("r2"), vmacConfig(200, v4))
	waitMaster(t, r2, []*router{r2})
	r1 := startVMACRouter(t, h, vmacConfig(100, v4))
	all := []*router{r1, r2}
	waitMaster(t, r2, all)
	if linkUp(t, h) {
		t.Fatalf("r1's leftover %s is still up as backup", vmacIf)
	}
	assertSteady(t, r2, all, 500*time.Millisecond)
}
