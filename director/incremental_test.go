package director

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// bigTable is n services of ten real servers, the benchmark's table.
func bigTable(n int) []conf.VirtualServer {
	vss := make([]conf.VirtualServer, n)
	for i := range vss {
		rs := make([]conf.RealServer, 10)
		for j := range rs {
			rs[j] = conf.RealServer{Address: netip.AddrFrom4([4]byte{10, 20, byte(i / 25), byte(i%25*10 + j + 1)}), Port: 8080, Weight: j + 1,
				Check: &conf.Check{Type: "tcp"}}
		}
		vss[i] = conf.VirtualServer{Address: netip.AddrFrom4([4]byte{10, 10, byte(i / 250), byte(i%250 + 1)}), Port: 80,
			Protocol: "tcp", Scheduler: "wlc", Forwarding: "nat", RealServers: rs}
	}
	return vss
}

// TestChangesDiffOnlyDirtyServices: on a 1,000-service table, a reload of
// one weight rebuilds one model and diffs one service, and so does a
// verdict; a full pass still diffs them all.
func TestChangesDiffOnlyDirtyServices(t *testing.T) {
	k := ipvstest.New()
	vss := bigTable(1000)
	r := newRec(t, k, cfgOf(vss...))
	reconcile(t, r)
	if r.diffed != 1000 {
		t.Fatalf("first pass diffed %d services, want 1000", r.diffed)
	}
	before := slices.Clone(r.model)

	// Edited in place, as a caller may: the reconciler kept its own copy.
	vss[500].RealServers[5].Weight = 77
	if err := r.SetConfig(specOf(cfgOf(vss...))); err != nil {
		t.Fatal(err)
	}
	rebuilt := 0
	for i := range r.model {
		if &r.model[i].reals[0] != &before[i].reals[0] {
			rebuilt++
		}
	}
	if rebuilt != 1 {
		t.Fatalf("reload of one weight rebuilt %d virtual servers, want 1", rebuilt)
	}
	k.ResetWrites()
	changes(t, r)
	wantOps(t, k.Writes(), "update_destination tcp 10.10.2.1:80 10.20.20.6:8080 w=77 fwd=nat")
	if r.diffed != 1 {
		t.Fatalf("reload of one weight diffed %d services, want 1", r.diffed)
	}

	key := mustKey(t, vss[7])
	r.SetHealth(Verdict{Service: key, Real: netip.AddrPortFrom(vss[7].RealServers[0].Address, 8080), Up: false})
	k.ResetWrites()
	changes(t, r)
	wantOps(t, k.Writes(), "del_destination tcp 10.10.0.8:80 10.20.0.71:8080")
	if r.diffed != 1 {
		t.Fatalf("one verdict diffed %d services, want 1", r.diffed)
	}
	s := r.Snapshot()
	if got := s[7].Reals[0]; got.Healthy || got.InKernel || !got.HealthKnown {
		t.Fatalf("snapshot of the failed real server: %+v", got)
	}
	if got := s[500].Reals[5]; got.KernelWeight != 77 || got.ConfiguredWeight != 77 {
		t.Fatalf("snapshot of the reweighted real server: %+v", got)
	}

	k.ResetWrites()
	changes(t, r)
	if r.diffed != 0 || len(k.Writes()) != 0 {
		t.Fatalf("nothing changed: diffed %d, wrote %v", r.diffed, opStrings(k.Writes()))
	}
	if res := reconcile(t, r); res.Writes != 0 || r.diffed != 1000 {
		t.Fatalf("full pass: diffed %d, wrote %v", r.diffed, opStrings(res.Applied))
	}
}

// twin is a reconciler with its own fake kernel and the quorum reports of
// its last pass.
type twin struct {
	k      *ipvstest.Kernel
	r      *Reconciler
	quorum []QuorumState
}

func newTwin() *twin {
	tw := &twin{k: ipvstest.New()}
	tw.r = New(tw.k, Options{Logger: quiet(), OnQuorum: func(q QuorumState) { tw.quorum = append(tw.quorum, q) }})
	return tw
}

// kernelTable is the fake kernel's table, comparable across twins.
func kernelTable(t *testing.T, k *ipvstest.Kernel) map[ipvs.ServiceKey][]ipvs.DestInfo {
	t.Helper()
	svcs, err := k.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	out := map[ipvs.ServiceKey][]ipvs.DestInfo{}
	for _, s := range svcs {
		ds, err := k.GetDestinations(s.Key)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ds, func(a, b ipvs.DestInfo) int { return a.Addr.Compare(b.Addr) })
		out[s.Key] = ds
	}
	return out
}

// TestChangesMatchFullPass drives two reconcilers through the same random
// reloads and verdicts: one applies them with ReconcileChanges (diffing
// only the services they touched), the other with a full Reconcile. Every
// pass must write the same operations in the same order and leave the
// same kernel table, snapshot, quorum reports and counters; the model must
// be what a fresh conversion makes of the configuration, and the verdicts kept
// those SetConfig's rule keeps.
func TestChangesMatchFullPass(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { changesMatchFullPass(t, seed) })
	}
}

func changesMatchFullPass(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}) }
	const nAddrs = 6
	newVS := func(port int) conf.VirtualServer {
		vs := conf.VirtualServer{Name: fmt.Sprint("vs", port), Address: vip, Port: port, Protocol: "tcp", Scheduler: "wrr",
			Quorum: rng.IntN(30), Hysteresis: rng.IntN(5), InhibitOnFailure: rng.IntN(3) == 0}
		if rng.IntN(2) == 0 {
			vs.SorryServer = netip.AddrPortFrom(sorry, 8080)
			vs.SorryServerWeight = 1 + rng.IntN(3)
		}
		for j := range 1 + rng.IntN(4) {
			vs.RealServers = append(vs.RealServers, conf.RealServer{Address: addr(j), Port: 8080, Weight: 1 + rng.IntN(20),
				Check: &conf.Check{Type: "tcp"}})
		}
		return vs
	}
	ports := []int{80, 81, 82, 83, 84, 85}
	var vss []conf.VirtualServer
	for _, p := range ports[:4] {
		vss = append(vss, newVS(p))
	}
	changes, full := newTwin(), newTwin()
	oracle := map[healthKey]Verdict{} // the verdicts SetConfig's rule keeps
	setConfig := func() {
		cfg := cfgOf(vss...)
		e1, e2 := changes.r.SetConfig(specOf(cfg)), full.r.SetConfig(specOf(cfg))
		if fmt.Sprint(e1) != fmt.Sprint(e2) {
			t.Fatalf("SetConfig errors differ: %v / %v", e1, e2)
		}
		if e1 != nil {
			t.Fatalf("random configuration rejected: %v", e1)
		}
		m, _, err := rebuildModel(specOf(cfg).VirtualServers, nil)
		if err != nil {
			t.Fatal(err)
		}
		conf := map[healthKey]bool{}
		for i := range m {
			for _, rm := range m[i].reals {
				conf[healthKey{m[i].svc.Key, rm.tmpl.Addr}] = true
			}
		}
		maps.DeleteFunc(oracle, func(k healthKey, _ Verdict) bool { return !conf[k] })
		if got := changes.r.model; !reflect.DeepEqual(got, m) {
			t.Fatalf("model after a reload is not a fresh conversion's")
		}
	}
	setConfig()
	var diffedChanges, diffedFull int
	for step := range 300 {
		var did []string
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(vss))
			vs := &vss[i]
			op := rng.IntN(10)
			switch op {
			case 0, 1, 2, 3: // a verdict, sometimes for a target not configured
				key := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.AddrPortFrom(vip, uint16(ports[rng.IntN(len(ports))]))}
				v := Verdict{Service: key, Real: netip.AddrPortFrom(addr(rng.IntN(nAddrs)), 8080), Up: rng.IntN(2) == 0}
				if rng.IntN(4) == 0 {
					v.Weight, v.WeightSet = rng.IntN(30)-1, true
				}
				changes.r.SetHealth(v)
				full.r.SetHealth(v)
				oracle[healthKey{v.Service, v.Real}] = v
				did = append(did, fmt.Sprintf("verdict %+v", v))
				continue
			case 4: // a weight, edited in place
				vs.RealServers[rng.IntN(len(vs.RealServers))].Weight = rng.IntN(25)
			case 5: // a real server added or removed (a fresh slice: the caller's is shared with the reconcilers' last config)
				rs := slices.Clone(vs.RealServers)
				if n := len(rs); n > 1 && rng.IntN(2) == 0 {
					j := rng.IntN(n)
					rs = slices.Delete(rs, j, j+1)
				} else if n < nAddrs {
					a := addr(rng.IntN(nAddrs))
					if !slices.ContainsFunc(rs, func(x conf.RealServer) bool { return x.Address == a }) {
						rs = append(rs, conf.RealServer{Address: a, Port: 8080, Weight: 1 + rng.IntN(9), Check: &conf.Check{Type: "tcp"}})
					}
				}
				vs.RealServers = rs
			case 6: // service-level fields
				vs.Quorum, vs.Hysteresis, vs.InhibitOnFailure = rng.IntN(30), rng.IntN(5), !vs.InhibitOnFailure
				vs.Scheduler = []string{"wrr", "rr", "wlc"}[rng.IntN(3)]
			case 7: // a field the director does not read
				vs.RealServers[0].Check = &conf.Check{Type: "tcp", Interval: conf.Duration(time.Duration(1+rng.IntN(9)) * time.Second)}
			case 8: // a service added or removed (new slices)
				vss = slices.Clone(vss)
				if len(vss) > 1 && rng.IntN(2) == 0 {
					vss = slices.Delete(vss, i, i+1)
				} else {
					for _, p := range ports {
						if !slices.ContainsFunc(vss, func(x conf.VirtualServer) bool { return x.Port == p }) {
							vss = append(vss, newVS(p))
							break
						}
					}
				}
			case 9: // renamed, or two services swapped
				vss = slices.Clone(vss)
				if rng.IntN(2) == 0 {
					vss[i].Name = fmt.Sprint("renamed", step)
				} else {
					j := rng.IntN(len(vss))
					vss[i], vss[j] = vss[j], vss[i]
				}
			}
			did = append(did, fmt.Sprint("reload ", op))
			setConfig()
		}
		changes.quorum, full.quorum = nil, nil
		rc, err := changes.r.ReconcileChanges(context.Background())
		if err != nil {
			t.Fatalf("step %d: ReconcileChanges: %v", step, err)
		}
		rf, err := full.r.Reconcile(context.Background())
		if err != nil {
			t.Fatalf("step %d: Reconcile: %v", step, err)
		}
		diffedChanges += changes.r.diffed
		diffedFull += full.r.diffed
		fail := func(what string, a, b any) {
			t.Helper()
			t.Fatalf("step %d after %q: %s differ:\n changes %+v\n full    %+v", step, did, what, a, b)
		}
		if a, b := opStrings(rc.Applied), opStrings(rf.Applied); !slices.Equal(a, b) {
			fail("writes", a, b)
		}
		if a, b := kernelTable(t, changes.k), kernelTable(t, full.k); !reflect.DeepEqual(a, b) {
			fail("kernel tables", a, b)
		}
		if a, b := changes.r.Snapshot(), full.r.Snapshot(); !reflect.DeepEqual(a, b) {
			fail("snapshots", a, b)
		}
		if !reflect.DeepEqual(changes.quorum, full.quorum) {
			fail("quorum reports", changes.quorum, full.quorum)
		}
		if a, b := changes.r.Counters().Writes, full.r.Counters().Writes; !maps.Equal(a, b) {
			fail("write counters", a, b)
		}
		changes.r.mu.Lock()
		kept := maps.Clone(changes.r.health)
		changes.r.mu.Unlock()
		if !maps.Equal(kept, oracle) {
			fail("verdicts kept", kept, oracle)
		}
	}
	if diffedChanges >= diffedFull {
		t.Fatalf("changes passes diffed %d services in all, full passes %d: nothing was saved", diffedChanges, diffedFull)
	}
}

// BenchmarkOneVerdict is the CPU side of one health verdict on 1,000
// services × 10 real servers (SetHealth and ReconcileChanges against the
// fake kernel): a real server goes down, then up again, one write each.
func BenchmarkOneVerdict(b *testing.B) {
	vss := bigTable(1000)
	r := New(ipvstest.New(), Options{Logger: quiet()})
	if err := r.SetConfig(specOf(cfgOf(vss...))); err != nil {
		b.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	key := Key(&specOf(cfgOf(vss...)).VirtualServers[500])
	real := netip.AddrPortFrom(vss[500].RealServers[5].Address, 8080)
	for i := 0; b.Loop(); i++ {
		r.SetHealth(Verdict{Service: key, Real: real, Up: i%2 == 1})
		res, err := r.ReconcileChanges(context.Background())
		if err != nil || res.Writes != 1 {
			b.Fatalf("%d writes, %v", res.Writes, err)
		}
	}
}
