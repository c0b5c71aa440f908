package director

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

var (
	vip   = netip.MustParseAddr("192.0.2.10")
	vip6  = netip.MustParseAddr("2001:db8::10")
	rs1   = netip.MustParseAddr("198.51.100.1")
	rs2   = netip.MustParseAddr("198.51.100.2")
	rs3   = netip.MustParseAddr("198.51.100.3")
	sorry = netip.MustParseAddr("198.51.100.99")
	rs61  = netip.MustParseAddr("2001:db8:1::1")
	rs62  = netip.MustParseAddr("2001:db8:1::2")
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// webVS is a tcp/80 NAT service with two checked real servers.
func webVS() conf.VirtualServer {
	return conf.VirtualServer{
		Name: "web", Address: vip, Port: 80, Protocol: "tcp", Scheduler: "wrr", Forwarding: "nat",
		Check: &conf.Check{Type: "tcp"},
		RealServers: []conf.RealServer{
			{Name: "a", Address: rs1, Port: 8080, Weight: 10, Check: &conf.Check{Type: "tcp"}},
			{Name: "b", Address: rs2, Port: 8080, Weight: 20, Check: &conf.Check{Type: "tcp"}},
		},
	}
}

func cfgOf(vss ...conf.VirtualServer) *conf.Config { return &conf.Config{VirtualServers: vss} }

func mustKey(t *testing.T, vs conf.VirtualServer) ipvs.ServiceKey {
	t.Helper()
	return Key(&specOf(cfgOf(vs)).VirtualServers[0])
}

func newRec(t *testing.T, k ipvs.Kernel, c *conf.Config) *Reconciler {
	t.Helper()
	r := New(k, Options{Logger: quiet()})
	if c != nil {
		if err := r.SetConfig(specOf(c)); err != nil {
			t.Fatalf("SetConfig: %v", err)
		}
	}
	return r
}

func reconcile(t *testing.T, r *Reconciler) Result {
	t.Helper()
	res, err := r.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return res
}

func opStrings(ops []ipvs.Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.String()
	}
	return out
}

func wantOps(t *testing.T, got []ipvs.Op, want ...string) {
	t.Helper()
	g := opStrings(got)
	if !slices.Equal(g, want) {
		t.Fatalf("ops:\n got  %q\n want %q", g, want)
	}
}

func TestFirstPassOrder(t *testing.T) {
	k := ipvstest.New()
	r := newRec(t, k, cfgOf(webVS()))
	res := reconcile(t, r)
	wantOps(t, k.Writes(),
		"new_service tcp 192.0.2.10:80 sched=wrr flags=0x0 timeout=0 mask=32",
		"new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat",
		"new_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=nat",
	)
	if res.Writes != 3 || len(res.Applied) != 3 || len(res.Failed) != 0 {
		t.Fatalf("result %+v", res)
	}
	// A second pass over an unchanged table writes nothing.
	k.ResetWrites()
	if res := reconcile(t, r); res.Writes != 0 || len(k.Writes()) != 0 {
		t.Fatalf("steady state wrote %v", k.Writes())
	}
}

// TestRestartAdoptsWithZeroWrites: a new Reconciler (a restarted haldir)
// over a kernel that already matches issues no write at all.
func TestRestartAdoptsWithZeroWrites(t *testing.T) {
	k := ipvstest.New()
	fw := conf.VirtualServer{Fwmark: 7, Family: "inet6", Scheduler: "mh", SchedulerFlags: []string{"mh-port"},
		PersistenceTimeout: conf.Duration(300 * time.Second), PersistenceGranularity: 64, Forwarding: "dr",
		RealServers: []conf.RealServer{{Address: rs61, Weight: 1}}}
	c := cfgOf(webVS(), fw)
	reconcile(t, newRec(t, k, c))
	k.ResetWrites()
	r2 := newRec(t, k, c)
	res := reconcile(t, r2)
	if res.Writes != 0 || len(k.Writes()) != 0 {
		t.Fatalf("restart wrote %v", k.Writes())
	}
	if len(r2.Foreign()) != 0 {
		t.Fatalf("adopted services reported foreign: %v", r2.Foreign())
	}
	if got := r2.Counters().Writes; len(got) != 0 {
		t.Fatalf("write counters %v", got)
	}
}

func TestOneWeightReloadIsOneWrite(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.ResetWrites()
	vs.RealServers = slices.Clone(vs.RealServers)
	vs.RealServers[1].Weight = 5
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	res := reconcile(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=5 fwd=nat")
	if res.Writes != 1 {
		t.Fatalf("writes = %d", res.Writes)
	}
}

// TestDiffCases applies one config change to a reconciled table and asserts
// the exact write sequence.
func TestDiffCases(t *testing.T) {
	other := conf.VirtualServer{Name: "dns", Address: vip, Port: 53, Protocol: "udp", Scheduler: "rr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 53, Weight: 1}, {Address: rs2, Port: 53, Weight: 1}}}
	cases := []struct {
		name   string
		before []conf.VirtualServer
		after  func() []conf.VirtualServer
		want   []string
	}{
		{"add service", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer { return []conf.VirtualServer{webVS(), other} },
			[]string{
				"new_service udp 192.0.2.10:53 sched=rr flags=0x0 timeout=0 mask=32",
				"new_destination udp 192.0.2.10:53 198.51.100.1:53 w=1 fwd=nat",
				"new_destination udp 192.0.2.10:53 198.51.100.2:53 w=1 fwd=nat",
			}},
		{"remove service: destinations first", []conf.VirtualServer{webVS(), other}, func() []conf.VirtualServer { return []conf.VirtualServer{webVS()} },
			[]string{
				"del_destination udp 192.0.2.10:53 198.51.100.1:53",
				"del_destination udp 192.0.2.10:53 198.51.100.2:53",
				"del_service udp 192.0.2.10:53",
			}},
		{"change scheduler", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.Scheduler = "sh"
			v.SchedulerFlags = []string{"sh-port", "sh-fallback"}
			return []conf.VirtualServer{v}
		}, []string{"update_service tcp 192.0.2.10:80 sched=sh flags=0x18 timeout=0 mask=32"}},
		{"one-packet flag", []conf.VirtualServer{other}, func() []conf.VirtualServer {
			v := other
			v.SchedulerFlags = []string{"ops"}
			return []conf.VirtualServer{v}
		}, []string{"update_service udp 192.0.2.10:53 sched=rr flags=0x4 timeout=0 mask=32"}},
		{"persistence on", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.PersistenceTimeout = conf.Duration(360 * time.Second)
			v.PersistenceGranularity = 24
			return []conf.VirtualServer{v}
		}, []string{"update_service tcp 192.0.2.10:80 sched=wrr flags=0x1 timeout=360 mask=24"}},
		{"add destination", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.RealServers = append(slices.Clone(v.RealServers), conf.RealServer{Address: rs3, Port: 8080, Weight: 3})
			return []conf.VirtualServer{v}
		}, []string{"new_destination tcp 192.0.2.10:80 198.51.100.3:8080 w=3 fwd=nat"}},
		{"remove destination", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.RealServers = v.RealServers[1:]
			return []conf.VirtualServer{v}
		}, []string{"del_destination tcp 192.0.2.10:80 198.51.100.1:8080"}},
		{"re-weight destination", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.RealServers = slices.Clone(v.RealServers)
			v.RealServers[0].Weight = 0
			return []conf.VirtualServer{v}
		}, []string{"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=0 fwd=nat"}},
		{"forwarding change is an in-place update", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.RealServers = slices.Clone(v.RealServers)
			v.RealServers[1].Forwarding = "tun"
			return []conf.VirtualServer{v}
		}, []string{"update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=tun tun=ipip port=0 flags=0"}},
		{"tunnel type change", []conf.VirtualServer{func() conf.VirtualServer { v := webVS(); v.Forwarding = "tun"; return v }()}, func() []conf.VirtualServer {
			v := webVS()
			v.Forwarding, v.TunnelType, v.TunnelPort, v.TunnelChecksum = "tun", "gue", 6080, "csum"
			return []conf.VirtualServer{v}
		}, []string{
			"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=tun tun=gue port=6080 flags=1",
			"update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=tun tun=gue port=6080 flags=1",
		}},
		{"threshold change", []conf.VirtualServer{webVS()}, func() []conf.VirtualServer {
			v := webVS()
			v.RealServers = slices.Clone(v.RealServers)
			v.RealServers[0].UpperThreshold, v.RealServers[0].LowerThreshold = 100, 50
			return []conf.VirtualServer{v}
		}, []string{"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat u=100 l=50"}},
		{"port change is a new service", []conf.VirtualServer{other}, func() []conf.VirtualServer {
			v := other
			v.Port = 5353
			return []conf.VirtualServer{v}
		}, []string{
			"new_service udp 192.0.2.10:5353 sched=rr flags=0x0 timeout=0 mask=32",
			"new_destination udp 192.0.2.10:5353 198.51.100.1:53 w=1 fwd=nat",
			"new_destination udp 192.0.2.10:5353 198.51.100.2:53 w=1 fwd=nat",
			"del_destination udp 192.0.2.10:53 198.51.100.1:53",
			"del_destination udp 192.0.2.10:53 198.51.100.2:53",
			"del_service udp 192.0.2.10:53",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := ipvstest.New()
			r := newRec(t, k, cfgOf(tc.before...))
			reconcile(t, r)
			k.ResetWrites()
			if err := r.SetConfig(specOf(cfgOf(tc.after()...))); err != nil {
				t.Fatal(err)
			}
			reconcile(t, r)
			wantOps(t, k.Writes(), tc.want...)
			// And the result is stable.
			k.ResetWrites()
			reconcile(t, r)
			if w := k.Writes(); len(w) != 0 {
				t.Fatalf("second pass wrote %v", opStrings(w))
			}
		})
	}
}

func TestForeignLeftAloneAndReported(t *testing.T) {
	k := ipvstest.New()
	foreignKey := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.AddrPortFrom(vip, 443)}
	if err := k.NewService(ipvs.Service{Key: foreignKey, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}}); err != nil {
		t.Fatal(err)
	}
	if err := k.NewDestination(foreignKey, ipvs.Destination{Addr: netip.AddrPortFrom(rs3, 443), DestSettings: ipvs.DestSettings{Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	r := newRec(t, k, cfgOf(webVS()))
	res := reconcile(t, r)
	for _, w := range k.Writes() {
		if w.Service.Key == foreignKey {
			t.Fatalf("wrote to foreign service: %v", w)
		}
	}
	if !slices.Equal(res.Foreign, []ipvs.ServiceKey{foreignKey}) || !slices.Equal(r.Foreign(), []ipvs.ServiceKey{foreignKey}) {
		t.Fatalf("foreign = %v / %v", res.Foreign, r.Foreign())
	}
	// An empty config still leaves it alone: never flush.
	if err := r.SetConfig(specOf(cfgOf())); err != nil {
		t.Fatal(err)
	}
	reconcile(t, r)
	ds, err := k.GetDestinations(foreignKey)
	if err != nil || len(ds) != 1 {
		t.Fatalf("foreign service damaged: %v %v", ds, err)
	}
}

// TestUnknownDestinationInManagedServiceRemoved: drift inside a managed
// service (someone ran ipvsadm -a) is repaired.
func TestDriftRepaired(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	key := mustKey(t, vs)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	stray := netip.AddrPortFrom(rs3, 8080)
	if err := k.NewDestination(key, ipvs.Destination{Addr: stray, DestSettings: ipvs.DestSettings{Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := k.UpdateDestination(key, ipvs.Destination{Addr: netip.AddrPortFrom(rs1, 8080), DestSettings: ipvs.DestSettings{Weight: 99}}); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	reconcile(t, r)
	wantOps(t, k.Writes(),
		"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat",
		"del_destination tcp 192.0.2.10:80 198.51.100.3:8080",
	)
	// Service deleted behind our back: recreated.
	if err := k.DelService(key); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	reconcile(t, r)
	if n := len(k.Writes()); n != 3 {
		t.Fatalf("recreate wrote %d ops: %v", n, opStrings(k.Writes()))
	}
}

func TestErrorRetriedAndCounted(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	other := conf.VirtualServer{Address: vip, Port: 53, Protocol: "udp", Scheduler: "rr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 53, Weight: 1}}}
	bad := netip.AddrPortFrom(rs1, 8080)
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpNewDest && o.Dest.Addr == bad {
			return syscall.ENOMEM
		}
		if o.Kind == ipvs.OpNewService && o.Service.Key.Protocol == ipvs.UDP {
			return syscall.EPERM
		}
		return nil
	})
	r := newRec(t, k, cfgOf(vs, other))
	res, err := r.Reconcile(context.Background())
	if err == nil {
		t.Fatal("want an error")
	}
	if !errors.Is(err, syscall.ENOMEM) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("error does not wrap the errnos: %v", err)
	}
	// The other destination of the tcp service still went in.
	wantOps(t, res.Applied,
		"new_service tcp 192.0.2.10:80 sched=wrr flags=0x0 timeout=0 mask=32",
		"new_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=nat",
	)
	if len(res.Failed) != 2 || res.Skipped != 1 {
		t.Fatalf("failed=%v skipped=%d", res.Failed, res.Skipped)
	}
	c := r.Counters()
	if c.Errors[ErrorKey{ipvs.OpNewDest, "ENOMEM"}] != 1 || c.Errors[ErrorKey{ipvs.OpNewService, "EPERM"}] != 1 || c.FailedPasses != 1 {
		t.Fatalf("counters %+v", c)
	}
	// Fault cleared: the next pass applies exactly what is missing.
	k.SetFault(nil)
	k.ResetWrites()
	reconcile(t, r)
	wantOps(t, k.Writes(),
		"new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat",
		"new_service udp 192.0.2.10:53 sched=rr flags=0x0 timeout=0 mask=32",
		"new_destination udp 192.0.2.10:53 198.51.100.1:53 w=1 fwd=nat",
	)
	c = r.Counters()
	if c.Passes != 2 || c.FailedPasses != 1 || c.Writes[ipvs.OpNewDest] != 4 || c.Writes[ipvs.OpNewService] != 3 {
		t.Fatalf("counters %+v", c)
	}
}

func TestReadErrorAbortsPass(t *testing.T) {
	k := ipvstest.New()
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpGetServices {
			return syscall.EAGAIN
		}
		return nil
	})
	r := newRec(t, k, cfgOf(webVS()))
	if _, err := r.Reconcile(context.Background()); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("err = %v", err)
	}
	if len(k.Writes()) != 0 {
		t.Fatal("wrote without reading")
	}
	if r.Counters().Errors[ErrorKey{ipvs.OpGetServices, "EAGAIN"}] != 1 {
		t.Fatalf("counters %+v", r.Counters())
	}
}

func TestKernelValidationSurfaces(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.Scheduler = "nosuch"
	r := newRec(t, k, cfgOf(vs))
	_, err := r.Reconcile(context.Background())
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("unknown scheduler: err = %v", err)
	}
	if r.Counters().Errors[ErrorKey{ipvs.OpNewService, "ENOENT"}] != 1 {
		t.Fatalf("counters %+v", r.Counters())
	}
}

func health(t *testing.T, r *Reconciler, vs conf.VirtualServer, rs netip.Addr, port int, up bool) {
	t.Helper()
	r.SetHealth(Verdict{Service: mustKey(t, vs), Real: netip.AddrPortFrom(rs, uint16(port)), Up: up})
}

func TestHealthRemovesAndRestores(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.ResetWrites()
	health(t, r, vs, rs1, 8080, false)
	reconcile(t, r)
	wantOps(t, k.Writes(), "del_destination tcp 192.0.2.10:80 198.51.100.1:8080")
	k.ResetWrites()
	health(t, r, vs, rs1, 8080, true)
	reconcile(t, r)
	wantOps(t, k.Writes(), "new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat")
}

func TestInhibitOnFailure(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.InhibitOnFailure = true
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.ResetWrites()
	health(t, r, vs, rs2, 8080, false)
	reconcile(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=0 fwd=nat")
	st := r.Snapshot()[0].Reals[1]
	if st.Healthy || !st.InKernel || st.EffectiveWeight != 0 || st.KernelWeight != 0 || st.ConfiguredWeight != 20 {
		t.Fatalf("snapshot %+v", st)
	}
}

func TestInitialStateAndUnchecked(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.RealServers = slices.Clone(vs.RealServers)
	vs.RealServers[0].Check = &conf.Check{Type: "http", InitialState: "down"}
	vs.RealServers[1].Check = nil
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	// rs1 starts down (initial_state), rs2 has no check and is always up.
	wantOps(t, k.Writes(),
		"new_service tcp 192.0.2.10:80 sched=wrr flags=0x0 timeout=0 mask=32",
		"new_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=nat",
	)
	k.ResetWrites()
	health(t, r, vs, rs2, 8080, false) // ignored: no check
	health(t, r, vs, rs1, 8080, true)
	reconcile(t, r)
	wantOps(t, k.Writes(), "new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat")
}

func TestDynamicWeight(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	key := mustKey(t, vs)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.ResetWrites()
	r.SetHealth(Verdict{Service: key, Real: netip.AddrPortFrom(rs1, 8080), Up: true, Weight: 3, WeightSet: true})
	reconcile(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=3 fwd=nat")
	s := r.Snapshot()[0]
	if s.Reals[0].EffectiveWeight != 3 || s.Reals[0].ConfiguredWeight != 10 || s.AliveWeight != 23 {
		t.Fatalf("snapshot %+v", s)
	}
	// Dropping the dynamic weight returns to the configured one.
	k.ResetWrites()
	r.SetHealth(Verdict{Service: key, Real: netip.AddrPortFrom(rs1, 8080), Up: true})
	reconcile(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat")
}

// TestQuorumHysteresisSorry walks alive weight through the hysteresis band.
// Weights 10+20, quorum 25, hysteresis 5: lost below 20, regained at >= 30.
func TestQuorumHysteresisSorry(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.Quorum, vs.Hysteresis = 25, 5
	vs.SorryServer = netip.AddrPortFrom(sorry, 80)
	vs.SorryServerWeight = 2
	key := mustKey(t, vs)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	if s := r.Snapshot()[0]; !s.QuorumUp || s.SorryActive || s.AliveWeight != 30 {
		t.Fatalf("start: %+v", s)
	}
	set := func(w int) {
		r.SetHealth(Verdict{Service: key, Real: netip.AddrPortFrom(rs2, 8080), Up: true, Weight: w, WeightSet: true})
	}
	steps := []struct {
		w2      int // dynamic weight of rs2 (rs1 stays at 10)
		quorum  bool
		writes  []string
		comment string
	}{
		{12, true, []string{"update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=12 fwd=nat"}, "alive 22 in band: stays up"},
		{9, false, []string{
			"new_destination tcp 192.0.2.10:80 198.51.100.99:80 w=2 fwd=nat",
			"del_destination tcp 192.0.2.10:80 198.51.100.1:8080",
			"del_destination tcp 192.0.2.10:80 198.51.100.2:8080",
		}, "alive 19 < 20: lost, sorry replaces pool"},
		{15, false, nil, "alive 25 in band: stays down"},
		{20, true, []string{
			"new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat",
			"new_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=20 fwd=nat",
			"del_destination tcp 192.0.2.10:80 198.51.100.99:80",
		}, "alive 30 >= 30: regained"},
	}
	for _, s := range steps {
		t.Run(s.comment, func(t *testing.T) {
			k.ResetWrites()
			set(s.w2)
			reconcile(t, r)
			wantOps(t, k.Writes(), s.writes...)
			snap := r.Snapshot()[0]
			if snap.QuorumUp != s.quorum || snap.SorryActive != !s.quorum {
				t.Fatalf("snapshot %+v", snap)
			}
			last := snap.Reals[len(snap.Reals)-1]
			if !last.Sorry || last.InKernel != !s.quorum {
				t.Fatalf("sorry status %+v", last)
			}
		})
	}
}

func TestQuorumLostWithoutSorryKeepsPool(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.Quorum = 25
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.ResetWrites()
	health(t, r, vs, rs2, 8080, false)
	reconcile(t, r)
	wantOps(t, k.Writes(), "del_destination tcp 192.0.2.10:80 198.51.100.2:8080")
	if s := r.Snapshot()[0]; s.QuorumUp || s.SorryActive {
		t.Fatalf("snapshot %+v", s)
	}
}

func TestFwmarkAndIPv6(t *testing.T) {
	k := ipvstest.New()
	fw4 := conf.VirtualServer{Fwmark: 1, Scheduler: "rr", Forwarding: "dr",
		RealServers: []conf.RealServer{{Address: rs1, Weight: 1}}}
	fw6 := conf.VirtualServer{Fwmark: 1, Family: "inet6", Scheduler: "rr", Forwarding: "dr",
		PersistenceTimeout: conf.Duration(60 * time.Second),
		RealServers:        []conf.RealServer{{Address: rs61, Weight: 1}}}
	v6 := conf.VirtualServer{Address: vip6, Port: 443, Protocol: "sctp", Scheduler: "lc", Forwarding: "tun",
		RealServers: []conf.RealServer{{Address: rs61, Port: 443, Weight: 1}, {Address: rs62, Weight: 2}}}
	r := newRec(t, k, cfgOf(fw4, fw6, v6))
	reconcile(t, r)
	wantOps(t, k.Writes(),
		"new_service fwmark 1 inet sched=rr flags=0x0 timeout=0 mask=32",
		"new_destination fwmark 1 inet 198.51.100.1:0 w=1 fwd=dr",
		"new_service fwmark 1 inet6 sched=rr flags=0x1 timeout=60 mask=128",
		"new_destination fwmark 1 inet6 [2001:db8:1::1]:0 w=1 fwd=dr",
		"new_service sctp [2001:db8::10]:443 sched=lc flags=0x0 timeout=0 mask=128",
		"new_destination sctp [2001:db8::10]:443 [2001:db8:1::1]:443 w=1 fwd=tun tun=ipip port=0 flags=0",
		"new_destination sctp [2001:db8::10]:443 [2001:db8:1::2]:443 w=2 fwd=tun tun=ipip port=0 flags=0",
	)
	k.ResetWrites()
	reconcile(t, newRec(t, k, cfgOf(fw4, fw6, v6)))
	if len(k.Writes()) != 0 {
		t.Fatalf("restart wrote %v", opStrings(k.Writes()))
	}
}

func TestSnapshotCounters(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	key := mustKey(t, vs)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	k.SetConns(key, netip.AddrPortFrom(rs1, 8080), 7, 3)
	reconcile(t, r)
	s := r.Snapshot()
	if len(s) != 1 || !s[0].InKernel || s[0].Name != "web" {
		t.Fatalf("snapshot %+v", s)
	}
	a := s[0].Reals[0]
	if a.Name != "a" || !a.InKernel || a.ActiveConns != 7 || a.InactiveConns != 3 || a.Stats.Conns != 10 || a.KernelWeight != 10 || !a.Healthy || a.HealthKnown {
		t.Fatalf("real status %+v", a)
	}
}

// TestDuplicateServiceRefused: conf refuses two virtual servers of one
// service; a spec that has them anyway is refused whole, naming both.
func TestDuplicateServiceRefused(t *testing.T) {
	r := New(ipvstest.New(), Options{Logger: quiet()})
	err := r.SetConfig(specOf(cfgOf(webVS(), webVS())))
	if err == nil || !strings.Contains(err.Error(), `virtual_server[1] "web": service tcp 192.0.2.10:80 already defined by virtual_server[0] "web"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRunLoopReactsToVerdicts(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	r := New(k, Options{Logger: quiet(), Resync: time.Hour, RetryMin: 10 * time.Millisecond})
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		poll.True(t, 5*time.Second, what, cond, func() string { return "writes: " + strings.Join(opStrings(k.Writes()), "; ") })
	}
	inKernel := func(a netip.AddrPort) bool {
		ds, _ := k.GetDestinations(mustKey(t, vs))
		return slices.ContainsFunc(ds, func(d ipvs.DestInfo) bool { return d.Addr == a })
	}
	a := netip.AddrPortFrom(rs1, 8080)
	waitFor("initial programming", func() bool { return inKernel(a) })
	health(t, r, vs, rs1, 8080, false)
	waitFor("removal after down verdict", func() bool { return !inKernel(a) })
	// A transient kernel error is retried with backoff without any new event.
	var failures int
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpNewDest && failures < 2 {
			failures++
			return syscall.EBUSY
		}
		return nil
	})
	health(t, r, vs, rs1, 8080, true)
	waitFor("retry after errors", func() bool { return inKernel(a) })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	if r.Counters().Errors[ErrorKey{ipvs.OpNewDest, "EBUSY"}] != 2 {
		t.Fatalf("counters %+v", r.Counters())
	}
}

// timeoutSets counts the set_timeouts writes the fake received.
func timeoutSets(k *ipvstest.Kernel) int {
	n := 0
	for _, op := range k.Writes() {
		if op.Kind == ipvs.OpSetTimeouts {
			n++
		}
	}
	return n
}

func TestTimeoutsWrittenOnlyWhenDifferent(t *testing.T) {
	k := ipvstest.New() // the kernel's defaults: tcp 900s, tcpfin 120s, udp 300s
	c := cfgOf()
	r := newRec(t, k, c)
	reconcile(t, r)
	if timeoutSets(k) != 0 {
		t.Fatal("unset timeouts were written")
	}
	c.IPVS.TimeoutUDP = conf.Duration(300 * time.Second) // already the kernel's
	if err := r.SetConfig(specOf(c)); err != nil {
		t.Fatal(err)
	}
	if res := reconcile(t, r); timeoutSets(k) != 0 || res.Writes != 0 {
		t.Fatalf("equal timeout written (%d sets)", timeoutSets(k))
	}
	c.IPVS.TimeoutTCP = conf.Duration(2 * time.Hour)
	if err := r.SetConfig(specOf(c)); err != nil {
		t.Fatal(err)
	}
	res := reconcile(t, r)
	cur, _ := k.Timeouts()
	if timeoutSets(k) != 1 || res.Writes != 1 || cur.TCP != 2*time.Hour || cur.TCPFin != 120*time.Second {
		t.Fatalf("sets=%d writes=%d timeouts=%+v", timeoutSets(k), res.Writes, cur)
	}
	reconcile(t, New(k, Options{Logger: quiet()})) // no config yet: nothing to do
	r2 := newRec(t, k, c)
	if res := reconcile(t, r2); res.Writes != 0 || timeoutSets(k) != 1 {
		t.Fatalf("restart rewrote timeouts: %d", timeoutSets(k))
	}
}

// TestDestinationReadFailureIsolated: when one service's destinations
// cannot be read, that service is left as it is and the others converge.
func TestDestinationReadFailureIsolated(t *testing.T) {
	k := ipvstest.New()
	web := webVS()
	dns := conf.VirtualServer{Address: vip, Port: 53, Protocol: "udp", Scheduler: "rr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 53, Weight: 1}}}
	r := newRec(t, k, cfgOf(web, dns))
	reconcile(t, r)
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpGetDests && o.Service.Key.Protocol == ipvs.TCP {
			return syscall.EIO
		}
		return nil
	})
	web.RealServers = web.RealServers[:1]
	dns.RealServers = append(slices.Clone(dns.RealServers), conf.RealServer{Address: rs2, Port: 53, Weight: 1})
	if err := r.SetConfig(specOf(cfgOf(web, dns))); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	res, err := r.Reconcile(context.Background())
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v", err)
	}
	wantOps(t, k.Writes(), "new_destination udp 192.0.2.10:53 198.51.100.2:53 w=1 fwd=nat")
	if res.Skipped != 1 || r.Counters().Errors[ErrorKey{ipvs.OpGetDests, "EIO"}] != 1 {
		t.Fatalf("skipped=%d counters=%+v", res.Skipped, r.Counters())
	}
	k.SetFault(nil)
	k.ResetWrites()
	reconcile(t, r)
	wantOps(t, k.Writes(), "del_destination tcp 192.0.2.10:80 198.51.100.2:8080")
}

// TestReloadDuringPass: a SetConfig arriving while a pass runs takes effect
// in the next pass, and the snapshot stays consistent with the pass.
func TestReloadDuringPass(t *testing.T) {
	k := ipvstest.New()
	r := newRec(t, k, cfgOf(webVS()))
	other := conf.VirtualServer{Name: "dns", Address: vip, Port: 53, Protocol: "udp", Scheduler: "rr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 53, Weight: 1}}}
	var once bool
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpNewService && !once {
			once = true
			if err := r.SetConfig(specOf(cfgOf(other))); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	reconcile(t, r)
	if s := r.Snapshot(); len(s) != 1 || s[0].Name != "web" || !s[0].InKernel {
		t.Fatalf("snapshot of the first pass %+v", s)
	}
	k.ResetWrites()
	reconcile(t, r)
	wantOps(t, k.Writes(),
		"new_service udp 192.0.2.10:53 sched=rr flags=0x0 timeout=0 mask=32",
		"new_destination udp 192.0.2.10:53 198.51.100.1:53 w=1 fwd=nat",
		"del_destination tcp 192.0.2.10:80 198.51.100.1:8080",
		"del_destination tcp 192.0.2.10:80 198.51.100.2:8080",
		"del_service tcp 192.0.2.10:80",
	)
	if s := r.Snapshot(); len(s) != 1 || s[0].Name != "dns" {
		t.Fatalf("snapshot %+v", s)
	}
}
