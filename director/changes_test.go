package director

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// countReads makes k count the reads it answers (GetServices and
// GetDestinations) and fail the writes fault selects.
func countReads(k *ipvstest.Kernel, fault func(ipvs.Op) error) *atomic.Int64 {
	var n atomic.Int64
	k.SetFault(func(o ipvs.Op) error {
		if !o.Kind.IsWrite() {
			n.Add(1)
			return nil
		}
		if fault != nil {
			return fault(o)
		}
		return nil
	})
	return &n
}

func changes(t *testing.T, r *Reconciler) Result {
	t.Helper()
	res, err := r.ReconcileChanges(context.Background())
	if err != nil {
		t.Fatalf("ReconcileChanges: %v", err)
	}
	return res
}

// TestReconcileChangesWritesWithoutReading: after a full pass, a reload or
// a verdict costs its own writes and not a single read.
func TestReconcileChangesWritesWithoutReading(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	reads := countReads(k, nil)
	cases := []struct {
		name   string
		change func()
		want   []string
	}{
		{"reload one weight", func() {
			vs.RealServers = slices.Clone(vs.RealServers)
			vs.RealServers[1].Weight = 25
			if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
				t.Fatal(err)
			}
		}, []string{"update_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=25 fwd=nat"}},
		{"down verdict", func() { health(t, r, vs, rs1, 8080, false) }, []string{"del_destination tcp 192.0.2.10:80 198.51.100.1:8080"}},
		{"up verdict", func() { health(t, r, vs, rs1, 8080, true) }, []string{"new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat"}},
		{"nothing changed", func() {}, nil},
		{"service added", func() {
			udp := conf.VirtualServer{Address: vip, Port: 53, Protocol: "udp", Scheduler: "rr",
				RealServers: []conf.RealServer{{Address: rs3, Port: 53, Weight: 1}}}
			if err := r.SetConfig(specOf(cfgOf(vs, udp))); err != nil {
				t.Fatal(err)
			}
		}, []string{
			"new_service udp 192.0.2.10:53 sched=rr flags=0x0 timeout=0 mask=32",
			"new_destination udp 192.0.2.10:53 198.51.100.3:53 w=1 fwd=nat",
		}},
		{"service dropped", func() {
			if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
				t.Fatal(err)
			}
		}, []string{
			"del_destination udp 192.0.2.10:53 198.51.100.3:53",
			"del_service udp 192.0.2.10:53",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			k.ResetWrites()
			reads.Store(0)
			res := changes(t, r)
			if len(tc.want) == 0 {
				if len(k.Writes()) != 0 || res.Writes != 0 {
					t.Fatalf("wrote %v", opStrings(k.Writes()))
				}
			} else {
				wantOps(t, k.Writes(), tc.want...)
			}
			if n := reads.Load(); n != 0 {
				t.Fatalf("%d kernel reads, want none", n)
			}
		})
	}
	// The table it trusted is the kernel's: a full pass finds nothing to do.
	k.ResetWrites()
	if res := reconcile(t, r); res.Writes != 0 {
		t.Fatalf("full pass after the changes wrote %v", opStrings(res.Applied))
	}
}

// TestReconcileChangesFallsBackToFullPass: with no pass before, or after a
// pass that had an error, ReconcileChanges reads the whole table.
func TestReconcileChangesFallsBackToFullPass(t *testing.T) {
	t.Run("no pass yet", func(t *testing.T) {
		k := ipvstest.New()
		reads := countReads(k, nil)
		r := newRec(t, k, cfgOf(webVS()))
		if res := changes(t, r); res.Writes != 3 {
			t.Fatalf("first pass wrote %v", opStrings(res.Applied))
		}
		if reads.Load() == 0 {
			t.Fatal("no kernel read before the first pass's writes")
		}
	})
	t.Run("after a failed write", func(t *testing.T) {
		k := ipvstest.New()
		var failing atomic.Bool
		failing.Store(true)
		reads := countReads(k, func(o ipvs.Op) error {
			if o.Kind == ipvs.OpNewDest && failing.Load() {
				return syscall.EBUSY
			}
			return nil
		})
		r := newRec(t, k, cfgOf(webVS()))
		if _, err := r.Reconcile(context.Background()); !errors.Is(err, syscall.EBUSY) {
			t.Fatalf("err = %v, want EBUSY", err)
		}
		failing.Store(false)
		reads.Store(0)
		k.ResetWrites()
		changes(t, r)
		if reads.Load() == 0 {
			t.Fatal("retry after an error trusted the old table instead of reading the kernel")
		}
		if len(k.Writes()) != 2 {
			t.Fatalf("retry wrote %v, want the two destinations", opStrings(k.Writes()))
		}
	})
}

// TestReconcileChangesTrustsUntilResync pins down what a changes pass does
// not see: an edit behind haldir's back waits for the next full pass, and
// when it makes a write fail, the pass after reads everything again.
func TestReconcileChangesTrustsUntilResync(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	key := mustKey(t, vs)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)
	a, b := netip.AddrPortFrom(rs1, 8080), netip.AddrPortFrom(rs2, 8080)
	if err := k.UpdateDestination(key, ipvs.Destination{Addr: a, DestSettings: ipvs.DestSettings{Weight: 99}}); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	if res := changes(t, r); res.Writes != 0 {
		t.Fatalf("changes pass wrote %v", opStrings(res.Applied))
	}
	reconcile(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=10 fwd=nat")

	// b deleted behind our back, then a reload changes b's weight.
	if err := k.DelDestination(key, b); err != nil {
		t.Fatal(err)
	}
	vs.RealServers = slices.Clone(vs.RealServers)
	vs.RealServers[1].Weight = 30
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	if _, err := r.ReconcileChanges(context.Background()); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err = %v, want ENOENT from updating the missing destination", err)
	}
	k.ResetWrites()
	changes(t, r)
	wantOps(t, k.Writes(), "new_destination tcp 192.0.2.10:80 198.51.100.2:8080 w=30 fwd=nat")
}

// TestReconcileChangesAdoptsClaimedForeign: a foreign service the
// configuration then claims has its destinations read, and nothing else.
func TestReconcileChangesAdoptsClaimedForeign(t *testing.T) {
	k := ipvstest.New()
	fk := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.AddrPortFrom(vip, 443)}
	if err := k.NewService(ipvs.Service{Key: fk, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}}); err != nil {
		t.Fatal(err)
	}
	if err := k.NewDestination(fk, ipvs.Destination{Addr: netip.AddrPortFrom(rs3, 443), DestSettings: ipvs.DestSettings{Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	r := newRec(t, k, cfgOf(webVS()))
	if res := reconcile(t, r); !slices.Equal(res.Foreign, []ipvs.ServiceKey{fk}) {
		t.Fatalf("foreign %v", res.Foreign)
	}
	var destReads atomic.Int64
	k.SetFault(func(o ipvs.Op) error {
		switch o.Kind {
		case ipvs.OpGetDests:
			if o.Service.Key != fk {
				t.Errorf("read destinations of %s, only %s was unread", o.Service.Key, fk)
			}
			destReads.Add(1)
		case ipvs.OpGetServices:
			t.Error("read the service list")
		}
		return nil
	})
	tls := conf.VirtualServer{Address: vip, Port: 443, Protocol: "tcp", Scheduler: "rr",
		RealServers: []conf.RealServer{{Address: rs3, Port: 443, Weight: 1}}}
	if err := r.SetConfig(specOf(cfgOf(webVS(), tls))); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	res := changes(t, r)
	if res.Writes != 0 || len(res.Foreign) != 0 || destReads.Load() != 1 {
		t.Fatalf("adoption: writes %v, foreign %v, %d destination reads", opStrings(res.Applied), res.Foreign, destReads.Load())
	}
}

// TestRunAppliesVerdictsWithoutRereading: Run's passes woken by verdicts
// read nothing; its first pass and resyncs read the table.
func TestRunAppliesVerdictsWithoutRereading(t *testing.T) {
	k := ipvstest.New()
	reads := countReads(k, nil)
	vs := webVS()
	key := mustKey(t, vs)
	r := New(k, Options{Logger: quiet(), Resync: time.Hour})
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	defer runLoop(t, r)()
	has := func(a netip.AddrPort) bool {
		for _, s := range r.Snapshot() {
			for _, rs := range s.Reals {
				if rs.Addr == a && rs.InKernel {
					return true
				}
			}
		}
		return false
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		poll.True(t, 10*time.Second, what, cond)
	}
	a := netip.AddrPortFrom(rs1, 8080)
	waitUntil("the first pass", func() bool { return has(a) })
	first := reads.Load()
	if first == 0 {
		t.Fatal("the first pass read nothing")
	}
	for i, up := range []bool{false, true, false} {
		r.SetHealth(Verdict{Service: key, Real: a, Up: up})
		waitUntil("the verdict applied", func() bool { return has(a) == up })
		if n := reads.Load(); n != first {
			t.Fatalf("verdict %d: %d kernel reads since the first pass", i, n-first)
		}
	}
}

// BenchmarkOneWeightReload is the CPU side of a one-change reload of 1,000
// services × 10 real servers (SetConfig and ReconcileChanges, against the
// fake kernel): what bench/director measures against the real kernel.
func BenchmarkOneWeightReload(b *testing.B) {
	vss := make([]conf.VirtualServer, 1000)
	for i := range vss {
		rs := make([]conf.RealServer, 10)
		for j := range rs {
			rs[j] = conf.RealServer{Address: netip.AddrFrom4([4]byte{10, 20, byte(i / 25), byte(i%25*10 + j + 1)}), Port: 8080, Weight: j + 1}
		}
		vss[i] = conf.VirtualServer{Address: netip.AddrFrom4([4]byte{10, 10, byte(i / 250), byte(i%250 + 1)}), Port: 80,
			Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat", RealServers: rs}
	}
	k := ipvstest.New()
	r := New(k, Options{Logger: quiet()})
	if err := r.SetConfig(specOf(cfgOf(vss...))); err != nil {
		b.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	// The reloads alternate between two specs compiled beforehand: the
	// caller compiles a reload once, for every component.
	var specs [2]*conf.Spec
	for i := range specs {
		vss[500].RealServers[5].Weight = 100 + i
		specs[i] = specOf(cfgOf(vss...))
	}
	for i := 0; b.Loop(); i++ {
		if err := r.SetConfig(specs[i%2]); err != nil {
			b.Fatal(err)
		}
		res, err := r.ReconcileChanges(context.Background())
		if err != nil || res.Writes != 1 {
			b.Fatalf("%d writes, %v", res.Writes, err)
		}
	}
}

// TestLargePool runs a pool past the size where destinations are found by
// scanning (16) through the map path: programming, a weight
// change and removals.
func TestLargePool(t *testing.T) {
	const n = 40
	pool := func(n int) conf.VirtualServer {
		vs := conf.VirtualServer{Name: "big", Address: vip, Port: 80, Protocol: "tcp", Scheduler: "wrr"}
		for j := range n {
			vs.RealServers = append(vs.RealServers, conf.RealServer{Address: netip.AddrFrom4([4]byte{198, 51, 100, byte(j + 1)}), Port: 8080, Weight: j + 1})
		}
		return vs
	}
	k := ipvstest.New()
	vs := pool(n)
	r := newRec(t, k, cfgOf(vs))
	if res := reconcile(t, r); res.Writes != 1+n {
		t.Fatalf("first pass: %d writes", res.Writes)
	}
	vs.RealServers[30].Weight = 99
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	changes(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 192.0.2.10:80 198.51.100.31:8080 w=99 fwd=nat")
	vs.RealServers = vs.RealServers[:n-3]
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	k.ResetWrites()
	changes(t, r)
	wantOps(t, k.Writes(),
		"del_destination tcp 192.0.2.10:80 198.51.100.38:8080",
		"del_destination tcp 192.0.2.10:80 198.51.100.39:8080",
		"del_destination tcp 192.0.2.10:80 198.51.100.40:8080")
	s := r.Snapshot()
	if len(s) != 1 || len(s[0].Reals) != n-3 || !s[0].Reals[30].InKernel || s[0].Reals[30].KernelWeight != 99 {
		t.Fatalf("snapshot %+v", s)
	}
}

// runLoop runs r's Run loop and returns what stops it and reports its
// error.
func runLoop(t *testing.T, r *Reconciler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}
