package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/bgp/bgptest"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// deviceAddrs lists the addresses of device dev in host h, or why not.
func deviceAddrs(h *lab.Host, dev string) (out []string, err error) {
	err = h.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, unix.AF_UNSPEC)
		for _, a := range as {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return err
	})
	return out, err
}

// bgpLab is a director for [bgp] tests: host r1 of a lab holds the
// device's addresses (lo: the host kernel has no dummy devices), a real
// server listens on loopback for the checked virtual server web (down
// until its first check passes; mail is unchecked), and the peers are
// GoBGP routers on loopback.
type bgpLab struct {
	h    *lab.Host
	ln   net.Listener
	real netip.AddrPort
	logs syncBuffer
}

func newBGPLab(t *testing.T, name string) *bgpLab {
	t.Helper()
	h := lab.RoutersT(t, name, 1).Host("r1") // eth0 192.0.2.11/24, for VRRP beside
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &bgpLab{h: h, ln: ln, real: netip.MustParseAddrPort(ln.Addr().String())}
}

// config is the director's configuration with [bgp] router_id, a peer
// per router (asn 65000, this end 127.0.0.1) and announce, the
// [[bgp.announce]] tables.
func (b *bgpLab) config(t *testing.T, routerID string, peers []*bgptest.Router, announce string) *conf.Config {
	t.Helper()
	src := fmt.Sprintf(`
[global]
router_id = "d1"
[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80
check = { type = "tcp", interval = "50ms", timeout = "40ms", rise = 1, fall = 1, initial_state = "down" }
[[virtual_server.real_server]]
address = "%[1]s"
port = %[2]d
[[virtual_server]]
name = "mail"
address = "192.0.2.25"
port = 25
[[virtual_server.real_server]]
address = "%[1]s"
port = %[2]d
[bgp]
asn = 65010
router_id = "%[3]s"
device = "lo"
`, b.real.Addr(), b.real.Port(), routerID)
	for i, r := range peers {
		src += fmt.Sprintf("[[bgp.peer]]\naddress = \"10.0.0.%d\"\nasn = 65000\nport = %d\n", i+1, r.Port)
	}
	cfg, err := conf.Parse([]byte(src+announce), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range peers { // loopback, which the file refuses
		cfg.BGP.Peers[i].Address, cfg.BGP.Peers[i].LocalAddress = r.Addr, netip.MustParseAddr("127.0.0.1")
	}
	return cfg
}

// start runs the daemon's loop on cfg with the in-memory IPVS kernel.
func (b *bgpLab) start(t *testing.T, cfg *conf.Config, gracefulWait time.Duration) *Daemon {
	t.Helper()
	return startLoop(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&b.logs, nil)), Notify: func(string) {},
		BGPDo: b.h.Do, VRRPDo: b.h.Do, BGPGracefulWait: gracefulWait,
		NewKernel: func() (ipvs.Kernel, func(), error) { return ipvstest.New(), func() {}, nil }})
}

// routes waits until r holds exactly want (Update.String, any order).
func (b *bgpLab) routes(t *testing.T, r *bgptest.Router, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	poll.Until(t, 20*time.Second, what, func() (bool, any) {
		var got []string
		for _, u := range r.Routes() {
			got = append(got, u.String())
		}
		slices.Sort(got)
		return slices.Equal(got, want), got
	}, b.logs.String)
}

// TestBGPDaemonAnnounces runs [bgp] in the daemon against a GoBGP router
// on loopback, with the in-memory IPVS kernel and the dummy device in a
// lab namespace: the prefix is announced once its virtual server has
// quorum, withdrawn within 1 s of its real server failing, announced again
// when it is back; maintenance withdraws gracefully (GRACEFUL_SHUTDOWN
// first) and off announces again; the stop withdraws before the address
// leaves the device.
func TestBGPDaemonAnnounces(t *testing.T) {
	b := newBGPLab(t, "haldir-bgp")
	h, parent := b.h, t
	director, router := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	r := bgptest.Start(t, router, 65000, bgptest.Peer{Addr: director, ASN: 65010})
	const wait = 300 * time.Millisecond
	d := b.start(t, b.config(t, "10.9.9.9", []*bgptest.Router{r},
		"[[bgp.announce]]\nprefix = \"192.0.2.10/32\"\nvirtual_servers = [\"web\"]\ncommunities = [\"65010:100\"]\nmed = 5\n"), wait)
	const announced = "announce 192.0.2.10/32 via 127.0.0.1 med 5 communities [65010:100]"
	// route waits for the router's RIB to hold want ("" none) and for
	// its record of UPDATEs to have caught up (it is told separately).
	route := func(what, want string) {
		t.Helper()
		if want == "" {
			b.routes(t, r, what)
		} else {
			b.routes(t, r, what, want)
		}
		poll.Until(t, 5*time.Second, what+" (recorded)", func() (bool, any) {
			ups := r.Updates()
			if len(ups) == 0 {
				return want == "", ups
			}
			last := ups[len(ups)-1]
			return want == "" && last.Withdraw || last.String() == want, ups
		})
	}
	route("the prefix announced", announced)
	if as, err := deviceAddrs(h, "lo"); err != nil || !slices.Contains(as, "192.0.2.10/32") {
		t.Fatalf("device lo: %v, %v; want the virtual server's address", as, err)
	}
	st := d.Status()
	if b := st.BGP; b == nil || len(b.Peers) != 1 || b.Peers[0].State != "established" || b.RouterID.String() != "10.9.9.9" ||
		len(b.Prefixes) != 1 || !b.Prefixes[0].Announced {
		t.Fatalf("status %+v", st.BGP)
	}

	t.Run("quorum lost withdraws within 1s", func(t *testing.T) {
		n := len(r.Updates())
		down := time.Now()
		b.ln.Close()
		route("the prefix withdrawn", "")
		ups := r.Updates()[n:]
		if len(ups) != 1 || !ups[0].Withdraw {
			t.Fatalf("updates %v, want the withdraw alone (no graceful shutdown for a failure)", ups)
		}
		if took := ups[0].At.Sub(down); took > time.Second {
			t.Fatalf("withdrawn %v after the real server went, want within 1s", took)
		}
		t.Logf("withdrawn %v after the real server went (check every 50 ms)", ups[0].At.Sub(down).Round(time.Millisecond))
		p := d.Status().BGP.Prefixes[0]
		if p.Announced || p.Reason != "quorum lost: web" || p.Withdrawals["quorum lost: web"] != 1 {
			t.Fatalf("prefix %+v", p)
		}
		if as, _ := deviceAddrs(h, "lo"); !slices.Contains(as, "192.0.2.10/32") {
			t.Fatalf("device lo: %v: the address must stay while the virtual server is configured", as)
		}
		ln, err := net.Listen("tcp", b.real.String())
		if err != nil {
			t.Fatal(err)
		}
		parent.Cleanup(func() { ln.Close() }) // the real server serves on
		route("the prefix back", announced)
	})

	t.Run("maintenance withdraws gracefully", func(t *testing.T) {
		n := len(r.Updates())
		if _, err := d.SetMaintenance(control.MaintenanceRequest{On: true, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		route("the prefix withdrawn", "")
		ups := r.Updates()[n:]
		if len(ups) != 2 || ups[0].String() != "announce 192.0.2.10/32 via 127.0.0.1 med 5 communities [65010:100 65535:0]" || !ups[1].Withdraw {
			t.Fatalf("updates %v, want GRACEFUL_SHUTDOWN, then the withdraw", ups)
		}
		if gap := ups[1].At.Sub(ups[0].At); gap < wait-50*time.Millisecond {
			t.Fatalf("withdrawn %v after the GRACEFUL_SHUTDOWN announce, want about %v", gap, wait)
		}
		if p := d.Status().BGP.Prefixes[0]; p.Reason != "maintenance" || p.Withdrawals["maintenance"] != 1 {
			t.Fatalf("prefix %+v", p)
		}
		if _, err := d.SetMaintenance(control.MaintenanceRequest{On: false}); err != nil {
			t.Fatal(err)
		}
		route("the prefix back", announced)
	})

	t.Run("stop withdraws, then the address goes", func(t *testing.T) {
		n := len(r.Updates())
		d.call(d.stop)
		if ups := r.Updates()[n:]; len(ups) == 0 || ups[0].String() != "announce 192.0.2.10/32 via 127.0.0.1 med 5 communities [65010:100 65535:0]" {
			t.Fatalf("updates %v, want GRACEFUL_SHUTDOWN first", ups)
		}
		route("nothing announced", "")
		if as, err := deviceAddrs(h, "lo"); err != nil || slices.Contains(as, "192.0.2.10/32") {
			t.Fatalf("device lo: %v, %v after the stop, want the address gone", as, err)
		}
	})
}

// TestBGPDaemonReload: a reload takes new peers, removed peers, a changed
// MED and new or removed prefixes in place (the session with a kept peer
// stays up), the addresses on the device follow the announce list, and a
// new router_id restarts the speaker.
func TestBGPDaemonReload(t *testing.T) {
	b := newBGPLab(t, "haldir-bgprl")
	director := netip.MustParseAddr("127.0.0.1")
	r1 := bgptest.Start(t, netip.MustParseAddr("127.0.0.2"), 65000, bgptest.Peer{Addr: director, ASN: 65010})
	r2 := bgptest.Start(t, netip.MustParseAddr("127.0.0.3"), 65000, bgptest.Peer{Addr: director, ASN: 65010})
	const web = "[[bgp.announce]]\nprefix = \"192.0.2.10/32\"\nvirtual_servers = [\"web\"]\nmed = %d\n"
	const mail = "[[bgp.announce]]\nprefix = \"192.0.2.25/32\"\nvirtual_servers = [\"mail\"]\n"
	cfg := b.config(t, "10.9.9.9", []*bgptest.Router{r1}, fmt.Sprintf(web, 1))
	d := b.start(t, cfg, 50*time.Millisecond)
	b.routes(t, r1, "r1 has web", "announce 192.0.2.10/32 via 127.0.0.1 med 1 communities []")
	reload := func(next *conf.Config) {
		t.Helper()
		if err := d.reloadOnLoop(cfg, next); err != nil {
			t.Fatal(err)
		}
		cfg = next
	}

	flaps := len(r1.States())
	reload(b.config(t, "10.9.9.9", []*bgptest.Router{r1, r2}, fmt.Sprintf(web, 2)+mail))
	both := []string{"announce 192.0.2.10/32 via 127.0.0.1 med 2 communities []", "announce 192.0.2.25/32 via 127.0.0.1 med 0 communities []"}
	b.routes(t, r1, "r1 has both, web with the new MED", both...)
	b.routes(t, r2, "r2, a new peer, has both", both...)
	if s := r1.States()[flaps:]; len(s) != 0 {
		t.Fatalf("r1's session changed state %v on a reload that kept it", s)
	}
	if as, _ := deviceAddrs(b.h, "lo"); !slices.Contains(as, "192.0.2.25/32") || !slices.Contains(as, "192.0.2.10/32") {
		t.Fatalf("lo: %v", as)
	}

	reload(b.config(t, "10.9.9.9", []*bgptest.Router{r2}, mail))
	b.routes(t, r2, "r2 has mail alone", "announce 192.0.2.25/32 via 127.0.0.1 med 0 communities []")
	poll.Until(t, 5*time.Second, "r1's session down", func() (bool, any) { return !r1.Established(), r1.States() })
	if as, _ := deviceAddrs(b.h, "lo"); slices.Contains(as, "192.0.2.10/32") || !slices.Contains(as, "192.0.2.25/32") {
		t.Fatalf("lo: %v, want web's address gone with its prefix", as)
	}

	// The restart with no route at r2: a speaker starts only while no
	// other carries routes (bgptest's doc says why).
	reload(b.config(t, "10.9.9.9", []*bgptest.Router{r2}, ""))
	b.routes(t, r2, "r2 has nothing")
	flaps = len(r2.States())
	reload(b.config(t, "10.9.9.8", []*bgptest.Router{r2}, ""))
	if st := d.Status(); st.BGP == nil || st.BGP.RouterID.String() != "10.9.9.8" {
		t.Fatalf("status after a new router_id: %+v", st.BGP)
	}
	poll.Until(t, 20*time.Second, "r2's session down and up again", func() (bool, any) {
		s := r2.States()[flaps:]
		return len(s) >= 2 && s[0] != "BGP_FSM_ESTABLISHED" && s[len(s)-1] == "BGP_FSM_ESTABLISHED", s
	})
	reload(b.config(t, "10.9.9.8", []*bgptest.Router{r2}, mail))
	b.routes(t, r2, "r2 has mail from the restarted speaker", "announce 192.0.2.25/32 via 127.0.0.1 med 0 communities []")
	waitFor(t, &b.logs, "restarting the speaker", 1)
}

// TestBGPDaemonCluster runs two directors announcing one prefix to one
// router, as in ECMP: the router holds a path through each; maintenance on
// one withdraws exactly its path, and both directors' cluster views show
// who announces the prefix.
func TestBGPDaemonCluster(t *testing.T) {
	b := newBGPLab(t, "haldir-bgpcl")
	h2, err := b.h.Lab().AddHost("d2")
	if err != nil {
		t.Fatal(err)
	}
	locals := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.4")}
	r := bgptest.Start(t, netip.MustParseAddr("127.0.0.2"), 65000, bgptest.Peer{Addr: locals[0], ASN: 65010}, bgptest.Peer{Addr: locals[1], ASN: 65010})
	secret := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := []int{freePort(t), freePort(t)}
	// Both speakers start before any route flows (bgptest's doc says
	// why): web starts down (initial_state) and its real server comes up
	// after.
	b.ln.Close()
	const web = "[[bgp.announce]]\nprefix = \"192.0.2.10/32\"\nvirtual_servers = [\"web\"]\n"
	var ds []*Daemon
	for i, h := range []*lab.Host{b.h, h2} {
		peers := ""
		if i == 1 {
			peers = fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		}
		cfg := b.config(t, fmt.Sprintf("10.9.9.%d", i+1), []*bgptest.Router{r},
			web+fmt.Sprintf("[cluster]\nname = \"d%d\"\nbind = \"127.0.0.1:%d\"\npeers = [%s]\nsecret_file = %q\n", i+1, ports[i], peers, secret))
		cfg.BGP.Peers[0].LocalAddress = locals[i]
		ds = append(ds, startLoop(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&b.logs, nil)), Notify: func(string) {},
			BGPDo: h.Do, BGPGracefulWait: 50 * time.Millisecond,
			NewKernel: func() (ipvs.Kernel, func(), error) { return ipvstest.New(), func() {}, nil }}))
	}
	ln, err := net.Listen("tcp", b.real.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	paths := func(what string, want ...string) {
		t.Helper()
		poll.Until(t, 20*time.Second, what, func() (bool, any) { return slices.Equal(r.Paths(), want), r.Paths() }, b.logs.String)
	}
	announcers := func(what, want string) {
		t.Helper()
		for _, d := range ds {
			poll.Until(t, 15*time.Second, what, func() (bool, any) {
				var got []string
				for _, m := range d.cluster.View().Members {
					for _, p := range m.BGPAnnounced {
						got = append(got, m.Name+"="+p.String())
					}
				}
				return strings.Join(got, " ") == want, got
			}, b.logs.String)
		}
	}
	paths("a path through each director",
		"announce 192.0.2.10/32 via 127.0.0.1 med 0 communities []", "announce 192.0.2.10/32 via 127.0.0.4 med 0 communities []")
	announcers("both announce", "d1=192.0.2.10/32 d2=192.0.2.10/32")

	if _, err := ds[0].SetMaintenance(control.MaintenanceRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	paths("d1's path gone, d2's kept", "announce 192.0.2.10/32 via 127.0.0.4 med 0 communities []")
	announcers("d2 alone announces", "d2=192.0.2.10/32")
}

// TestBGPDaemonBesideVRRP: one director moves one address by VRRP and
// announces another over BGP; maintenance lowers the instance and
// withdraws the prefix, and off brings both back.
func TestBGPDaemonBesideVRRP(t *testing.T) {
	b := newBGPLab(t, "haldir-bgpvrrp")
	r := bgptest.Start(t, netip.MustParseAddr("127.0.0.2"), 65000, bgptest.Peer{Addr: netip.MustParseAddr("127.0.0.1"), ASN: 65010})
	cfg := b.config(t, "10.9.9.9", []*bgptest.Router{r}, `[[bgp.announce]]
prefix = "192.0.2.10/32"
virtual_servers = ["web"]
[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.1/24"]
`)
	d := b.start(t, cfg, 50*time.Millisecond)
	const web = "announce 192.0.2.10/32 via 127.0.0.1 med 0 communities []"
	in := d.vrrp.Instance("vi")
	vrrpIs := func(what string, state vrrp.State, prio uint8) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, any) {
			st := in.Status()
			return st.State == state && st.Priority == prio, st
		}, b.logs.String)
	}
	vrrpIs("vi master at 150", vrrp.StateMaster, 150)
	b.routes(t, r, "web announced", web)
	if _, err := d.SetMaintenance(control.MaintenanceRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	b.routes(t, r, "web withdrawn")
	vrrpIs("vi at priority 1 (no backup: stays master)", vrrp.StateMaster, 1)
	if _, err := d.SetMaintenance(control.MaintenanceRequest{On: false}); err != nil {
		t.Fatal(err)
	}
	b.routes(t, r, "web announced again", web)
	vrrpIs("vi back at 150", vrrp.StateMaster, 150)
}
