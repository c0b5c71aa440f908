package vrrp_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// advert encodes a VRRP advert for the test VRID and the family's VIP.
func advert(t testing.TB, f family, version int, prio uint8, src, dst netip.Addr) []byte {
	t.Helper()
	a := vrrp.Advert{Version: version, VRID: vrid, Priority: prio, Interval: fast, Addrs: []netip.Addr{f.vip.Addr()}}
	if version == 2 {
		a.Interval = time.Second
	}
	b, err := a.Marshal(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sendForged sends count VRRP payloads made by gen from host h to dst with
// the given TTL / hop limit, and returns how many it sent and how long it
// took. It is bounded by count and by a 2s deadline, which a loaded
// machine can reach first: callers expect what was sent, not count.
func sendForged(t testing.TB, h *lab.Host, dst netip.Addr, ttl, count int, gen func(i int) []byte) (sent int, took time.Duration) {
	t.Helper()
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		if dst.Is4() {
			pc, err = net.ListenPacket("ip4:112", "0.0.0.0")
		} else {
			pc, err = net.ListenPacket("ip6:112", "::")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ifi, err := h.Interface(lanIf)
	if err != nil {
		t.Fatal(err)
	}
	var write func(b []byte) error
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.Is4() {
		p := ipv4.NewPacketConn(pc)
		for _, err := range []error{p.SetTTL(ttl), p.SetMulticastTTL(ttl), p.SetMulticastInterface(ifi)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		write = func(b []byte) error { _, err := p.WriteTo(b, nil, to); return err }
	} else {
		p := ipv6.NewPacketConn(pc)
		to.Zone = strconv.Itoa(ifi.Index)
		for _, err := range []error{p.SetHopLimit(ttl), p.SetMulticastHopLimit(ttl), p.SetMulticastInterface(ifi)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		write = func(b []byte) error { _, err := p.WriteTo(b, nil, to); return err }
	}
	start := time.Now()
	deadline := start.Add(2 * time.Second)
	// Paced in batches of 100 per 10ms (up to 10000/s) so that the
	// receiver's socket buffer, not the attacker, is what is tested.
	for ; sent < count && time.Now().Before(deadline); sent++ {
		i := sent
		if err := write(gen(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return sent, time.Since(start)
}

// TestE2EBadInput injects malformed, forged and flooding adverts at a
// master: every one is dropped with its reason and counted, and the master
// stays master with the VIP throughout.
func TestE2EBadInput(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, f))
			all := []*router{r1, r2}
			waitMaster(t, r2, all)
			att := l.Host("attacker")
			group := vrrp.GroupV4
			src := v4.host(99).Addr()
			if f.name == "ipv6" {
				group = vrrp.GroupV6
				src = linkLocal(t, att)
			}
			good := func(prio uint8) []byte { return advert(t, f, 3, prio, src, group) }

			// Watch the master for the whole attack: it must never lose
			// the VIP or its state.
			stop := make(chan struct{})
			bad := make(chan string, 1)
			go func() {
				for {
					select {
					case <-stop:
						close(bad)
						return
					default:
					}
					if r2.state() != vrrp.StateMaster || !r2.hasVIP() || r1.hasVIP() {
						bad <- "master lost mastership or VIP during the attack"
						close(bad)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()

			cases := []struct {
				reason string
				ttl    int
				n      int
				gen    func(i int) []byte
			}{
				{"bad_ttl", 64, 20, func(int) []byte { return good(254) }},
				{"too_short", 255, 5, func(int) []byte { return good(254)[:6] }},
				{"too_long", 255, 5, func(int) []byte { return append(good(254), 0, 0, 0, 0) }},
				{"bad_checksum", 255, 5, func(int) []byte { b := good(254); b[6] ^= 0xff; return b }},
				// A v2 header on a v3 router (for IPv6 the codec itself
				// rejects v2, RFC 3768 being IPv4 only, with the same reason).
				{"bad_version", 255, 5, func(int) []byte {
					if f.name == "ipv4" {
						return advert(t, f, 2, 254, src, group)
					}
					b := good(254)
					b[0] = 0x21
					return b
				}},
				{"unknown_vrid", 255, 5, func(int) []byte {
					a := vrrp.Advert{Version: 3, VRID: vrid + 1, Priority: 254, Interval: fast, Addrs: []netip.Addr{f.vip.Addr()}}
					b, _ := a.Marshal(src, group)
					return b
				}},
				{"addr_list_mismatch", 255, 5, func(int) []byte {
					other := f.host(200).Addr()
					a := vrrp.Advert{Version: 3, VRID: vrid, Priority: 254, Interval: fast, Addrs: []netip.Addr{other}}
					b, _ := a.Marshal(src, group)
					return b
				}},
				// Flood of forged high-priority adverts: bounded to 5000
				// packets in at most 2 s.
				{"bad_ttl", 1, 5000, func(int) []byte { return good(254) }},
			}
			want := map[string]uint64{}
			for _, c := range cases {
				// A flood can overrun the socket's receive buffer on a
				// loaded machine; the kernel counts those drops per socket
				// and they never reach haldir. Every packet must be one or
				// the other, and haldir must count no more than it got.
				kernel0 := rawSocketDrops(t, r2.h, f.name == "ipv6")
				sent, took := sendForged(t, att, group, c.ttl, c.n, c.gen)
				if sent < c.n/2 {
					t.Fatalf("%s: only %d of %d packets sent within the 2s bound", c.reason, sent, c.n)
				}
				want[c.reason] += uint64(sent)
				w := want[c.reason]
				var kernel uint64
				waitFor(t, fmt.Sprintf("%d %s drops counted", w, c.reason), settle, func() bool {
					kernel = rawSocketDrops(t, r2.h, f.name == "ipv6") - kernel0
					return r2.in.Status().Drops[c.reason]+kernel >= w
				})
				if got := r2.in.Status().Drops[c.reason]; got > w || got+kernel != w {
					t.Fatalf("%s: %d drops counted and %d dropped by the kernel, want %d in all", c.reason, got, kernel, w)
				}
				if c.n >= 1000 {
					t.Logf("flood: %d packets in %v, master kept its state; %d overran the socket buffer", sent, took, kernel)
				}
			}
			close(stop)
			if msg, ok := <-bad; ok {
				t.Fatal(msg)
			}
			assertSteady(t, r2, all, 300*time.Millisecond)
			// Every drop reason but the ones injected stayed zero at the
			// master (a checksum error would hide a codec bug).
			for reason, n := range r2.in.Status().Drops {
				if n != want[reason] {
					t.Errorf("drop %s = %d, want %d", reason, n, want[reason])
				}
			}
		})
	}
}

func linkLocal(t testing.TB, h *lab.Host) netip.Addr {
	t.Helper()
	var ll netip.Addr
	waitFor(t, h.Name()+" link-local address", settle, func() bool {
		addrs, err := h.Addrs(lanIf)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if a.Addr().IsLinkLocalUnicast() {
				ll = a.Addr()
				return true
			}
		}
		return false
	})
	return ll
}

// rawSocketDrops sums the kernel's drop counters of h's raw sockets for
// IP protocol 112 (VRRP), from /proc/net/raw or raw6 of h's namespace
// (read through thread-self: /proc/self/net is the main thread's).
func rawSocketDrops(t testing.TB, h *lab.Host, v6 bool) uint64 {
	t.Helper()
	name := "/proc/thread-self/net/raw"
	if v6 {
		name += "6"
	}
	var b []byte
	if err := h.Do(func() (err error) { b, err = os.ReadFile(name); return err }); err != nil {
		t.Fatal(err)
	}
	var sum, sockets uint64
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// "sl local_address:proto rem_address:port st ... drops": for a
		// raw socket the local "port" is the protocol, in hex.
		if len(f) < 2 || !strings.HasSuffix(f[1], ":0070") {
			continue
		}
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("%s: drops of %q: %v", name, line, err)
		}
		sum += n
		sockets++
	}
	if sockets == 0 {
		t.Fatalf("%s lists no VRRP socket:\n%s", name, b)
	}
	return sum
}
