package director

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// applyOrder plays ops on a list of addresses in the kernel's order of
// addition, as the kernel would.
func applyOrder(have []netip.AddrPort, ops []ipvs.Op) []netip.AddrPort {
	out := slices.Clone(have)
	for _, o := range ops {
		switch o.Kind {
		case ipvs.OpNewDest:
			out = append(out, o.Dest.Addr)
		case ipvs.OpDelDest:
			out = slices.DeleteFunc(out, func(a netip.AddrPort) bool { return a == o.Dest.Addr })
		}
	}
	return out
}

// TestPlanOrdered: the destinations of an order-sensitive service end in
// want's order by the fewest writes adds-at-the-end allow, and never with
// the service emptier than it must be.
func TestPlanOrdered(t *testing.T) {
	d := planDest
	mh := planSvc(planA, ipvs.ServiceSettings{Scheduler: "mh", NetmaskBits: 32})
	sh := planSvc(planA, ipvs.ServiceSettings{Scheduler: "sh", NetmaskBits: 32})
	for _, tc := range []struct {
		name string
		svc  ipvs.Service
		have []ipvs.Destination
		want []ipvs.Destination
		ops  []string
	}{
		{"in order: nothing", mh, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)}, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)}, nil},
		{"the last one back: one add", mh, []ipvs.Destination{d(1, 1), d(2, 1)}, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)},
			[]string{"new_destination tcp 192.0.2.1:80 198.51.100.3:80 w=1 fwd=nat"}},
		{"the first one back: the later ones re-added behind it", mh, []ipvs.Destination{d(2, 1), d(3, 1)}, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)},
			[]string{"new_destination tcp 192.0.2.1:80 198.51.100.1:80 w=1 fwd=nat",
				"del_destination tcp 192.0.2.1:80 198.51.100.2:80", "new_destination tcp 192.0.2.1:80 198.51.100.2:80 w=1 fwd=nat",
				"del_destination tcp 192.0.2.1:80 198.51.100.3:80", "new_destination tcp 192.0.2.1:80 198.51.100.3:80 w=1 fwd=nat"}},
		{"one out of place: moved alone", sh, []ipvs.Destination{d(1, 1), d(3, 1), d(2, 1)}, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)},
			[]string{"del_destination tcp 192.0.2.1:80 198.51.100.3:80", "new_destination tcp 192.0.2.1:80 198.51.100.3:80 w=1 fwd=nat"}},
		{"a weight change in place, unwanted last", sh, []ipvs.Destination{d(1, 1), d(2, 1), d(9, 1)}, []ipvs.Destination{d(1, 4), d(2, 1)},
			[]string{"update_destination tcp 192.0.2.1:80 198.51.100.1:80 w=4 fwd=nat", "del_destination tcp 192.0.2.1:80 198.51.100.9:80"}},
		{"mh: to weight 0 is a re-add (no slot, as when added at 0)", mh, []ipvs.Destination{d(1, 1), d(2, 1), d(3, 1)}, []ipvs.Destination{d(1, 1), d(2, 0), d(3, 1)},
			[]string{"del_destination tcp 192.0.2.1:80 198.51.100.2:80", "new_destination tcp 192.0.2.1:80 198.51.100.2:80 w=0 fwd=nat",
				"del_destination tcp 192.0.2.1:80 198.51.100.3:80", "new_destination tcp 192.0.2.1:80 198.51.100.3:80 w=1 fwd=nat"}},
		{"mh: from weight 0 in place", mh, []ipvs.Destination{d(1, 1), d(2, 0)}, []ipvs.Destination{d(1, 1), d(2, 3)},
			[]string{"update_destination tcp 192.0.2.1:80 198.51.100.2:80 w=3 fwd=nat"}},
		{"sh: to weight 0 in place (sh reads the current weight)", sh, []ipvs.Destination{d(1, 1), d(2, 1)}, []ipvs.Destination{d(1, 1), d(2, 0)},
			[]string{"update_destination tcp 192.0.2.1:80 198.51.100.2:80 w=0 fwd=nat"}},
		{"pool for the sorry server: added before the pool goes", mh, []ipvs.Destination{d(1, 1), d(2, 1)}, []ipvs.Destination{d(50, 1)},
			[]string{"new_destination tcp 192.0.2.1:80 198.51.100.50:80 w=1 fwd=nat",
				"del_destination tcp 192.0.2.1:80 198.51.100.1:80", "del_destination tcp 192.0.2.1:80 198.51.100.2:80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := inKernel(tc.svc, true, tc.have...).dests
			ops := planOrdered(nil, tc.svc, have, tc.want)
			if got := opStrings(ops); !slices.Equal(got, tc.ops) {
				t.Fatalf("ops\n got %q\nwant %q", got, tc.ops)
			}
			var before, want []netip.AddrPort
			for _, h := range tc.have {
				before = append(before, h.Addr)
			}
			for _, w := range tc.want {
				want = append(want, w.Addr)
			}
			if got := applyOrder(before, ops); !slices.Equal(got, want) {
				t.Fatalf("kernel order after the ops %v, want %v", got, want)
			}
		})
	}
}

// kernelOrder is the fake kernel's destinations of key in the order of
// addition.
func kernelOrder(t *testing.T, k ipvs.Kernel, key ipvs.ServiceKey) []netip.AddrPort {
	t.Helper()
	ds, err := k.GetDestinations(key)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.AddrPort
	for _, d := range ds {
		out = append(out, d.Addr)
	}
	return out
}

// TestDirectorsAgreeOnOrder: two directors, each a reconciler on its own
// kernel and with its real servers listed in another order, end with the
// destinations of an mh or sh service in the same (canonical) order
// whatever one of them went through; with rr, which does not need it, the
// orders are left as the events made them and differ (so the comparison
// can fail).
func TestDirectorsAgreeOnOrder(t *testing.T) {
	rs4 := netip.MustParseAddr("198.51.100.4")
	vsOf := func(sched string, inhibit bool, reals ...netip.Addr) conf.VirtualServer {
		vs := conf.VirtualServer{Name: "web", Address: vip, Port: 80, Protocol: "tcp", Scheduler: sched, Forwarding: "dr",
			InhibitOnFailure: inhibit}
		for _, a := range reals {
			vs.RealServers = append(vs.RealServers, conf.RealServer{Address: a, Port: 8080, Weight: 1, Check: &conf.Check{Type: "tcp"}})
		}
		return vs
	}
	down := func(t *testing.T, r *Reconciler, vs conf.VirtualServer, a netip.Addr) {
		health(t, r, vs, a, 8080, false)
		reconcile(t, r)
	}
	up := func(t *testing.T, r *Reconciler, vs conf.VirtualServer, a netip.Addr) {
		health(t, r, vs, a, 8080, true)
		reconcile(t, r)
	}
	for _, tc := range []struct {
		name    string
		sched   string
		inhibit bool
		// events run on director A only, after both reconciled once.
		events func(t *testing.T, r *Reconciler, vs conf.VirtualServer)
		agree  bool
	}{
		{"mh: the second real server down and up", "mh", false, func(t *testing.T, r *Reconciler, vs conf.VirtualServer) {
			down(t, r, vs, rs2)
			up(t, r, vs, rs2)
		}, true},
		{"mh: two down, back in the other order", "mh", false, func(t *testing.T, r *Reconciler, vs conf.VirtualServer) {
			down(t, r, vs, rs1)
			down(t, r, vs, rs3)
			up(t, r, vs, rs3)
			up(t, r, vs, rs1)
		}, true},
		{"mh inhibited: down to weight 0 and up", "mh", true, func(t *testing.T, r *Reconciler, vs conf.VirtualServer) {
			down(t, r, vs, rs1)
			up(t, r, vs, rs1)
		}, true},
		{"sh: a reload drops the first and adds it back", "sh", false, func(t *testing.T, r *Reconciler, vs conf.VirtualServer) {
			less := vs
			less.RealServers = vs.RealServers[1:]
			if err := r.SetConfig(specOf(cfgOf(less))); err != nil {
				t.Fatal(err)
			}
			reconcile(t, r)
			if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
				t.Fatal(err)
			}
			reconcile(t, r)
		}, true},
		{"rr: order left alone, so they differ", "rr", false, func(t *testing.T, r *Reconciler, vs conf.VirtualServer) {
			down(t, r, vs, rs2)
			up(t, r, vs, rs2)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vsA := vsOf(tc.sched, tc.inhibit, rs1, rs2, rs3, rs4)
			vsB := vsOf(tc.sched, tc.inhibit, rs4, rs3, rs2, rs1) // the same servers, listed the other way round
			ka, kb := ipvstest.New(), ipvstest.New()
			ra, rb := newRec(t, ka, cfgOf(vsA)), newRec(t, kb, cfgOf(vsB))
			reconcile(t, ra)
			reconcile(t, rb)
			tc.events(t, ra, vsA)
			key := mustKey(t, vsA)
			a, b := kernelOrder(t, ka, key), kernelOrder(t, kb, key)
			if len(a) != 4 || len(b) != 4 {
				t.Fatalf("destinations: A %v, B %v; want all four on both", a, b)
			}
			if same := slices.Equal(a, b); same != tc.agree {
				t.Fatalf("A's order %v, B's %v: equal %v, want %v", a, b, same, tc.agree)
			}
			if tc.agree && !slices.IsSortedFunc(a, netip.AddrPort.Compare) {
				t.Fatalf("order %v is not the canonical (sorted) one", a)
			}
			// A restarted director adopts its table: nothing to write.
			ka.ResetWrites()
			reconcile(t, newRec(t, ka, cfgOf(vsA)))
			if w := ka.Writes(); len(w) != 0 {
				t.Fatalf("a restart wrote %q", opStrings(w))
			}
		})
	}
}
