package vrrp_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// The e2e tests run Instances in-process inside lab hosts (network
// namespaces on one switch). They need root and skip otherwise.

const (
	fast   = 100 * time.Millisecond // v3 advert interval for quick tests
	vrid   = 42
	lanIf  = "eth0"
	lanSw  = "lan"
	settle = 10 * time.Second // generous deadline for anything that should take < 1s
)

var (
	vip4 = netip.MustParsePrefix("192.0.2.1/24")
	vip6 = netip.MustParsePrefix("2001:db8:1::1/64")
)

// family selects addresses for one IP family.
type family struct {
	name string
	vip  netip.Prefix
	host func(n byte) netip.Prefix
}

var (
	v4 = family{"ipv4", vip4, func(n byte) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, n}), 24) }}
	v6 = family{"ipv6", vip6, func(n byte) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: n}), 64)
	}}
)

// buildLAN makes hosts r1..rN (addresses .11, .12, ...) plus "attacker"
// (.99) on one switch, each with an IPv4 and an IPv6 address.
func buildLAN(t testing.TB, n int) *lab.Lab {
	t.Helper()
	topo := lab.Topology{Switches: []string{lanSw}}
	add := func(name string, last byte) {
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: name, Links: []lab.LinkSpec{{
			Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(last), v6.host(last)},
		}}})
	}
	for i := 1; i <= n; i++ {
		add(fmt.Sprintf("r%d", i), byte(10+i))
	}
	add("attacker", 99)
	return lab.BuildT(t, "vrrp-"+strings.ReplaceAll(t.Name(), "/", "-"), topo)
}

func instanceConfig(name string, prio int, f family) conf.VRRPInstance {
	return conf.VRRPInstance{
		Name: name, Interface: lanIf, VRID: vrid, Priority: prio, Version: 3,
		AdvertInterval: conf.Duration(fast), Preempt: true,
		VirtualAddresses: []netip.Prefix{f.vip},
		GARP:             conf.GARP{Repeat: 2},
	}
}

type router struct {
	t      testing.TB
	h      *lab.Host
	in     *vrrp.Instance
	cancel context.CancelFunc
	done   chan error
	vip    netip.Prefix
	iface  string
	ctx    context.Context
	once   sync.Once
	ran    bool
}

type testWriter struct {
	t  testing.TB
	mu sync.Mutex
	on bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.on {
		w.t.Log(string(bytes.TrimRight(b, "\n")))
	}
	return len(b), nil
}

func startRouter(t testing.TB, h *lab.Host, cfg conf.VRRPInstance) *router {
	t.Helper()
	r := newRouter(t, h, cfg)
	r.run()
	return r
}

// newRouter builds the instance without starting it (sync groups are
// formed in between).
func newRouter(t testing.TB, h *lab.Host, cfg conf.VRRPInstance) *router {
	t.Helper()
	w := &testWriter{t: t, on: true}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("host", h.Name())
	in := vrrp.NewInstance(specOf(cfg), vrrp.Options{Do: h.Do, Logger: log, NotifyTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	r := &router{t: t, h: h, in: in, cancel: cancel, done: make(chan error, 1), vip: cfg.VirtualAddresses[0], ctx: ctx, iface: cfg.Interface}
	t.Cleanup(func() {
		r.stop()
		w.mu.Lock()
		w.on = false
		w.mu.Unlock()
	})
	return r
}

func (r *router) run() {
	r.ran = true
	go func() { r.done <- r.in.Run(r.ctx) }()
}

// stop is SIGTERM: it returns once the instance has resigned and removed
// its addresses.
func (r *router) stop() { r.once.Do(r.doStop) }

func (r *router) doStop() {
	r.cancel()
	if !r.ran {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("%s: Run: %v", r.h.Name(), err)
		}
	case <-time.After(settle):
		r.t.Errorf("%s: instance did not stop", r.h.Name())
	}
}

func (r *router) hasVIP() bool {
	addrs, err := r.h.Addrs(r.iface)
	if err != nil {
		r.t.Fatal(err)
	}
	return slices.Contains(addrs, r.vip)
}

func (r *router) state() vrrp.State { return r.in.Status().State }

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) time.Time {
	t.Helper()
	return poll.True(t, d, what, cond)
}

// holders returns the routers holding the VIP.
func holders(rs []*router) []string {
	var out []string
	for _, r := range rs {
		if r.hasVIP() {
			out = append(out, r.h.Name())
		}
	}
	return out
}

// waitMaster waits until want is master with the VIP and every other router
// is backup without it.
func waitMaster(t testing.TB, want *router, all []*router) time.Time {
	t.Helper()
	return waitFor(t, want.h.Name()+" as the only master", settle, func() bool {
		for _, r := range all {
			if r == want {
				if r.state() != vrrp.StateMaster || !r.hasVIP() {
					return false
				}
			} else if r.state() != vrrp.StateBackup || r.hasVIP() {
				return false
			}
		}
		return true
	})
}

// assertSteady samples for d that the VIP is on exactly the expected router
// and that it stays master.
func assertSteady(t testing.TB, want *router, all []*router, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n++ {
		if h := holders(all); len(h) != 1 || h[0] != want.h.Name() {
			for _, r := range all {
				t.Logf("%s: %+v", r.h.Name(), r.in.Status())
			}
			t.Fatalf("sample %d: VIP held by %v, want only %s", n, h, want.h.Name())
		}
		if s := want.state(); s != vrrp.StateMaster {
			t.Fatalf("sample %d: %s is %v, want master", n, want.h.Name(), s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGARP waits for a gratuitous ARP (IPv4) or unsolicited NA (IPv6) for
// the VIP from h's MAC, captured after seq.
func waitGARP(t testing.TB, obs *lab.Observer, after uint64, h *lab.Host, vip netip.Addr) {
	t.Helper()
	mac, err := h.HardwareAddr(lanIf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	if _, err = obs.WaitForAfter(ctx, after, announces(vip, mac)); err != nil {
		t.Fatalf("no gratuitous ARP/NA for %v from %s (%v): %v", vip, h.Name(), mac, err)
	}
}

// announces matches a gratuitous ARP (IPv4) or unsolicited NA (IPv6)
// saying that vip is at mac.
func announces(vip netip.Addr, mac net.HardwareAddr) func(lab.Record) bool {
	return func(r lab.Record) bool {
		switch {
		case r.ARP != nil:
			return r.ARP.Gratuitous && r.ARP.SenderIP == vip && bytes.Equal(r.ARP.SenderMAC, mac)
		case r.NA != nil:
			return !r.NA.Solicited && r.NA.Override && r.NA.Target == vip && bytes.Equal(r.NA.TargetMAC, mac)
		}
		return false
	}
}

func observe(t testing.TB, l *lab.Lab) *lab.Observer {
	t.Helper()
	obs, err := l.Switch(lanSw).Observe()
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func TestE2EElectByPriority(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 3)
			obs := observe(t, l)
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, f))
			r3 := startRouter(t, l.Host("r3"), instanceConfig("vi", 150, f))
			all := []*router{r1, r2, r3}
			waitMaster(t, r2, all)
			waitGARP(t, obs, 0, r2.h, f.vip.Addr())
			assertSteady(t, r2, all, time.Second)
			st := r1.in.Status()
			if st.MasterAddr != r2.in.Status().Source || st.Priority != 100 || st.AdvertsRecv == 0 {
				t.Fatalf("r1 status %+v: want master %v seen", st, r2.in.Status().Source)
			}
			// Why r1 is not master: the last advert came from r2 with 200.
			if st.PeerAddr != r2.in.Status().Source || st.PeerPriority != 200 || st.PeerSeen.IsZero() || !st.Preempt {
				t.Fatalf("r1 status %+v: want peer %v at 200 seen, preempt on", st, r2.in.Status().Source)
			}
			if m := r2.in.Status(); m.State != vrrp.StateMaster || m.LastReason == "" || m.LastChange.IsZero() {
				t.Fatalf("r2 status %+v: want master with the last transition's reason and time", m)
			}
		})
	}
}

func TestE2EElectVersion2(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	c1, c2 := instanceConfig("vi", 100, v4), instanceConfig("vi", 200, v4)
	for _, c := range []*conf.VRRPInstance{&c1, &c2} {
		c.Version = 2
		c.AdvertInterval = conf.Duration(time.Second)
		c.Auth = &conf.VRRPAuth{Type: "pass", Password: "s3cret"}
	}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), c2)
	waitMaster(t, r2, []*router{r1, r2})
	if d := r1.in.Status().Drops; d["auth_mismatch"] != 0 {
		t.Fatalf("auth drops %v", d)
	}
}

// TestE2ETieBreakByAddress: with equal priorities the tie is broken only
// between two masters (RFC 5798 §6.4.3): a backup accepts an equal-priority
// master whatever its address. So both routers first become master on
// their own, behind a partition; when it heals the higher primary address
// (.12, or the higher link-local for IPv6) stays master.
func TestE2ETieBreakByAddress(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			link := l.Host("r2").Link(lanIf)
			if err := link.Detach(); err != nil {
				t.Fatal(err)
			}
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, f))
			all := []*router{r1, r2}
			waitFor(t, "both masters while partitioned", settle, func() bool {
				return r1.state() == vrrp.StateMaster && r2.state() == vrrp.StateMaster
			})
			want, other := r2, r1
			if r1.in.Status().Source.Compare(r2.in.Status().Source) > 0 {
				want, other = r1, r2
			}
			if err := link.Attach(); err != nil {
				t.Fatal(err)
			}
			waitMaster(t, want, all)
			assertSteady(t, want, all, 500*time.Millisecond)
			if got := other.in.Status().MasterAddr; got != want.in.Status().Source {
				t.Fatalf("%s sees master %v, want %v", other.h.Name(), got, want.in.Status().Source)
			}
		})
	}
}

func TestE2EPreempt(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			obs := observe(t, l)
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			waitMaster(t, r1, []*router{r1})
			seq := obs.LastSeq()
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, f))
			all := []*router{r1, r2}
			waitMaster(t, r2, all)
			waitGARP(t, obs, seq, r2.h, f.vip.Addr())
			assertSteady(t, r2, all, 500*time.Millisecond)
			// r2 preempted by ignoring r1's lower adverts until its
			// master down timer fired; the ignored events are counted.
			if n := r2.in.Status().Ignored["lower_priority"]; n == 0 {
				t.Fatalf("r2 ignored no lower-priority advert: %v", r2.in.Status().Ignored)
			}
		})
	}
}

func TestE2ENoPreempt(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, v4))
	waitMaster(t, r1, []*router{r1})
	c2 := instanceConfig("vi", 200, v4)
	c2.Preempt = false
	r2 := startRouter(t, l.Host("r2"), c2)
	all := []*router{r1, r2}
	waitFor(t, "r2 backup", settle, func() bool { return r2.state() == vrrp.StateBackup })
	// Well past Master_Down_Interval (~0.32s): r2 accepts the lower master.
	assertSteady(t, r1, all, 1500*time.Millisecond)
	if st := r2.in.Status(); st.Preempt || st.PeerPriority != 100 || st.PeerAddr != r1.in.Status().Source {
		t.Fatalf("r2 status %+v: want preempt off under r1 at 100", st)
	}
	// When r1 goes away r2 takes over all the same.
	r1.stop()
	waitMaster(t, r2, []*router{r2})
}

func TestE2EPreemptDelay(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, v4))
	waitMaster(t, r1, []*router{r1})
	c2 := instanceConfig("vi", 200, v4)
	c2.PreemptDelay = conf.Duration(1500 * time.Millisecond)
	start := time.Now()
	r2 := startRouter(t, l.Host("r2"), c2)
	all := []*router{r1, r2}
	waitFor(t, "r2 backup", settle, func() bool { return r2.state() == vrrp.StateBackup })
	assertSteady(t, r1, all, time.Second)
	took := waitMaster(t, r2, all).Sub(start)
	if took < 1500*time.Millisecond {
		t.Fatalf("r2 preempted after %v, before preempt_delay 1.5s", took)
	}
	t.Logf("preempted after %v (preempt_delay 1.5s)", took)
}

func TestE2EHardFailover(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 3)
			obs := observe(t, l)
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, f))
			r3 := startRouter(t, l.Host("r3"), instanceConfig("vi", 150, f))
			all := []*router{r1, r2, r3}
			waitMaster(t, r2, all)

			// Pull r2's cable: it sees carrier loss and goes FAULT,
			// dropping the VIP; r3 (next priority) takes over.
			seq := obs.LastSeq()
			if err := l.Host("r2").Link(lanIf).Cut(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "r2 fault without VIP", settle, func() bool { return r2.state() == vrrp.StateFault && !r2.hasVIP() })
			waitMaster(t, r3, []*router{r1, r3})
			waitGARP(t, obs, seq, r3.h, f.vip.Addr())
			assertSteady(t, r3, all, 500*time.Millisecond)

			// Plug it back: r2 preempts.
			seq = obs.LastSeq()
			if err := l.Host("r2").Link(lanIf).Restore(); err != nil {
				t.Fatal(err)
			}
			waitMaster(t, r2, all)
			waitGARP(t, obs, seq, r2.h, f.vip.Addr())
			assertSteady(t, r2, all, 500*time.Millisecond)
		})
	}
}

func TestE2EGracefulFailover(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			obs := observe(t, l)
			// A 1s interval makes Master_Down_Interval (3.6s) clearly
			// longer than the skew (0.6s) a priority 0 advert allows.
			c1, c2 := instanceConfig("vi", 100, f), instanceConfig("vi", 200, f)
			c1.AdvertInterval, c2.AdvertInterval = conf.Duration(time.Second), conf.Duration(time.Second)
			r1 := startRouter(t, l.Host("r1"), c1)
			r2 := startRouter(t, l.Host("r2"), c2)
			waitMaster(t, r2, []*router{r1, r2})
			seq := obs.LastSeq()
			r2.stop()
			if r2.hasVIP() {
				t.Fatal("r2 kept the VIP after stopping")
			}
			ctx, cancel := context.WithTimeout(context.Background(), settle)
			defer cancel()
			resign, err := obs.WaitForAfter(ctx, seq, func(r lab.Record) bool {
				return r.VRRP != nil && r.VRRP.Priority == 0 && r.VRRP.VRID == vrid
			})
			if err != nil {
				t.Fatalf("no priority 0 advert from r2: %v", err)
			}
			took := waitMaster(t, r1, []*router{r1}).Sub(resign.Time)
			if took > 2*time.Second {
				t.Fatalf("r1 took over %v after the priority 0 advert; want about the skew (0.6s), well under Master_Down_Interval (3.6s)", took)
			}
			t.Logf("takeover %v after priority 0", took)
			waitGARP(t, obs, seq, r1.h, f.vip.Addr())
		})
	}
}

// TestE2ENotify checks that notify commands run as argv with the HALDIR_*
// environment.
func TestE2ENotify(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 1)
	dir := t.TempDir()
	c := instanceConfig("vi", 100, v4)
	script := func(name string) []string {
		return []string{"/bin/sh", "-c", `echo "$HALDIR_INSTANCE $HALDIR_STATE $HALDIR_PRIORITY" >> ` + dir + "/" + name, "notify"}
	}
	c.NotifyMaster, c.NotifyBackup, c.NotifyStop = script("log"), script("log"), script("log")
	r := startRouter(t, l.Host("r1"), c)
	waitMaster(t, r, []*router{r})
	r.stop()
	want := "vi BACKUP 100\nvi MASTER 100\nvi STOP 100\n"
	waitFor(t, "notify log", settle, func() bool {
		b, _ := os.ReadFile(dir + "/log")
		return string(b) == want
	})
}

// TestE2ETrackScript lowers the master's priority with a failing tracked
// script so that the backup preempts.
func TestE2ETrackScript(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	flag := t.TempDir() + "/ok"
	if err := os.WriteFile(flag, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	c1 := instanceConfig("vi", 200, v4)
	c1.TrackScripts = []conf.TrackScript{{Name: "chk", Command: []string{"/bin/test", "-e", flag},
		Interval: conf.Duration(50 * time.Millisecond), Timeout: conf.Duration(time.Second), Rise: 2, Fall: 2, Weight: -150}}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	all := []*router{r1, r2}
	waitMaster(t, r1, all)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r2, all)
	if p := r1.in.Status().Priority; p != 50 {
		t.Fatalf("r1 effective priority %d, want 50", p)
	}
	if err := os.WriteFile(flag, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r1, all)
}

// TestE2ETrackInterfaceWeight0 puts an instance in FAULT when a tracked
// interface goes down.
func TestE2ETrackInterfaceFault(t *testing.T) {
	lab.SkipIfNotRoot(t)
	topo := lab.Topology{Switches: []string{lanSw, "up"}}
	for i, n := range []string{"r1", "r2"} {
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: n, Links: []lab.LinkSpec{
			{Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(byte(11 + i))}},
			{Iface: "eth1", Switch: "up"},
		}})
	}
	l := lab.BuildT(t, "vrrp-track-iface", topo)
	c1 := instanceConfig("vi", 200, v4)
	c1.TrackInterfaces = []conf.TrackIface{{Name: "eth1"}}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	all := []*router{r1, r2}
	waitMaster(t, r1, all)
	if err := l.Host("r1").Link("eth1").Cut(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r1 fault", settle, func() bool { return r1.state() == vrrp.StateFault })
	waitMaster(t, r2, []*router{r2})
	if err := l.Host("r1").Link("eth1").Restore(); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r1, all)
}

// TestE2EUnicast runs two routers with unicast peers and checks that an
// advert from a host that is not a peer is dropped as unknown_peer.
func TestE2EUnicast(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			c1, c2 := instanceConfig("vi", 100, f), instanceConfig("vi", 200, f)
			c1.UnicastPeers = []netip.Addr{f.host(12).Addr()}
			c2.UnicastPeers = []netip.Addr{f.host(11).Addr()}
			r1 := startRouter(t, l.Host("r1"), c1)
			r2 := startRouter(t, l.Host("r2"), c2)
			all := []*router{r1, r2}
			waitMaster(t, r2, all)
			if src := r2.in.Status().Source; src != f.host(12).Addr() {
				t.Fatalf("r2 sends from %v, want its address %v known to its peer", src, f.host(12).Addr())
			}
			sent, _ := sendForged(t, l.Host("attacker"), f.host(12).Addr(), 255, 10, func(i int) []byte {
				return advert(t, f, 3, 254, f.host(99).Addr(), f.host(12).Addr())
			})
			if sent != 10 {
				t.Fatalf("sent %d of 10 forged adverts within 2s", sent)
			}
			waitFor(t, "unknown_peer drops", settle, func() bool { return r2.in.Status().Drops["unknown_peer"] == 10 })
			assertSteady(t, r2, all, 300*time.Millisecond)
			r2.stop()
			waitMaster(t, r1, []*router{r1})
		})
	}
}

// TestE2ESyncGroup has two instances per router (front and back) in a sync
// group: when the master's back link fails, its back instance goes FAULT
// and the group takes the front instance with it, so the other router holds
// both addresses; when the link returns both move back.
func TestE2ESyncGroup(t *testing.T) {
	lab.SkipIfNotRoot(t)
	topo := lab.Topology{Switches: []string{lanSw, "back"}}
	for i, n := range []string{"r1", "r2"} {
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: n, Links: []lab.LinkSpec{
			{Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(byte(11 + i))}},
			{Iface: "eth1", Switch: "back", Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)}), 24)}},
		}})
	}
	l := lab.BuildT(t, "vrrp-sync-group", topo)
	var fronts, backs []*router
	for i, n := range []string{"r1", "r2"} {
		prio := 200 - 100*i
		front := instanceConfig("front", prio, v4)
		back := instanceConfig("back", prio, v4)
		back.Interface, back.VRID = "eth1", vrid+1
		back.VirtualAddresses = []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}
		rf, rb := newRouter(t, l.Host(n), front), newRouter(t, l.Host(n), back)
		g := vrrp.NewSyncGroup(conf.SyncGroupSpec{Name: "g", Instances: []string{"front", "back"}}, []*vrrp.Instance{rf.in, rb.in})
		t.Cleanup(g.Close)
		rf.run()
		rb.run()
		fronts, backs = append(fronts, rf), append(backs, rb)
	}
	waitMaster(t, fronts[0], fronts)
	waitMaster(t, backs[0], backs)

	if err := l.Host("r1").Link("eth1").Cut(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r1 front and back in fault", settle, func() bool {
		return fronts[0].state() == vrrp.StateFault && backs[0].state() == vrrp.StateFault
	})
	waitMaster(t, fronts[1], fronts[1:])
	waitMaster(t, backs[1], backs[1:])
	if fronts[0].hasVIP() || backs[0].hasVIP() {
		t.Fatal("r1 kept an address in fault")
	}

	if err := l.Host("r1").Link("eth1").Restore(); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, fronts[0], fronts)
	waitMaster(t, backs[0], backs)
}

// TestE2ESplitBrainHeals detaches the master from the switch with carrier
// still up (a silent partition): it cannot tell and keeps the VIP while the
// backup takes over, so both hold it. When the partition heals they hear
// each other and the lower priority gives way at once.
func TestE2ESplitBrainHeals(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, v4))
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, v4))
	all := []*router{r1, r2}
	waitMaster(t, r2, all)
	link := l.Host("r2").Link(lanIf)
	if err := link.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both masters during the partition", settle, func() bool {
		return r1.state() == vrrp.StateMaster && r2.state() == vrrp.StateMaster
	})
	if err := link.Attach(); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r2, all)
	assertSteady(t, r2, all, 500*time.Millisecond)
}

// specOf compiles one instance's raw configuration, as the daemon does the
// whole file.
func specOf(ic conf.VRRPInstance) conf.VRRPInstanceSpec {
	return conf.Compile(&conf.Config{VRRP: []conf.VRRPInstance{ic}}).VRRP[0]
}
