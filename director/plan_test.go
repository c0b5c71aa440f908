package director

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

var (
	planA  = ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	planB  = ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.2:80")}
	planRR = ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}
)

func planSvc(key ipvs.ServiceKey, set ipvs.ServiceSettings) ipvs.Service {
	return ipvs.Service{Key: key, ServiceSettings: set}
}

func planDest(last byte, weight int) ipvs.Destination {
	return ipvs.Destination{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, last}), 80),
		DestSettings: ipvs.DestSettings{Weight: weight}}
}

// inKernel is a kernel service as read, with its destinations.
func inKernel(svc ipvs.Service, read bool, ds ...ipvs.Destination) *kstate {
	st := &kstate{svc: ipvs.ServiceInfo{Service: svc, Stats: ipvs.Stats{Conns: 9}}, read: read}
	for _, d := range ds {
		st.dests = append(st.dests, ipvs.DestInfo{Destination: d, ActiveConns: 3, Stats: ipvs.Stats{Conns: 5}})
	}
	return st
}

func wantSvc(svc ipvs.Service, ds ...ipvs.Destination) *desiredSvc {
	return &desiredSvc{svc: svc, dests: ds}
}

// TestPlan: plan is the ordered minimal diff of a kernel table against the
// desired state, computed without a kernel.
func TestPlan(t *testing.T) {
	wrr := ipvs.ServiceSettings{Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 60, NetmaskBits: 24}
	tests := []struct {
		name      string
		cur       map[ipvs.ServiceKey]*kstate
		want      []*desiredSvc
		gone      []ipvs.ServiceKey
		ops       []string
		wantBlind int
	}{
		{name: "nothing", ops: nil},
		{name: "a new service, then its destinations",
			want: []*desiredSvc{wantSvc(planSvc(planA, planRR), planDest(1, 1), planDest(2, 2))},
			ops: []string{"new_service tcp 192.0.2.1:80 sched=rr flags=0x0 timeout=0 mask=32",
				"new_destination tcp 192.0.2.1:80 198.51.100.1:80 w=1 fwd=nat",
				"new_destination tcp 192.0.2.1:80 198.51.100.2:80 w=2 fwd=nat"}},
		{name: "counters differ, configuration equal: nothing",
			cur:  map[ipvs.ServiceKey]*kstate{planA: inKernel(planSvc(planA, planRR), true, planDest(1, 1))},
			want: []*desiredSvc{wantSvc(planSvc(planA, planRR), planDest(1, 1))}},
		{name: "other settings: an update in place",
			cur:  map[ipvs.ServiceKey]*kstate{planA: inKernel(planSvc(planA, planRR), true)},
			want: []*desiredSvc{wantSvc(planSvc(planA, wrr))},
			ops:  []string{"update_service tcp 192.0.2.1:80 sched=wrr flags=0x1 timeout=60 mask=24"}},
		{name: "additions, then updates, then removals",
			cur:  map[ipvs.ServiceKey]*kstate{planA: inKernel(planSvc(planA, planRR), true, planDest(1, 1), planDest(3, 1))},
			want: []*desiredSvc{wantSvc(planSvc(planA, planRR), planDest(1, 5), planDest(2, 1))},
			ops: []string{"new_destination tcp 192.0.2.1:80 198.51.100.2:80 w=1 fwd=nat",
				"update_destination tcp 192.0.2.1:80 198.51.100.1:80 w=5 fwd=nat",
				"del_destination tcp 192.0.2.1:80 198.51.100.3:80"}},
		{name: "destinations not read: the service only, the rest blind",
			cur:       map[ipvs.ServiceKey]*kstate{planA: inKernel(planSvc(planA, planRR), false)},
			want:      []*desiredSvc{wantSvc(planSvc(planA, wrr), planDest(1, 1), planDest(2, 1))},
			ops:       []string{"update_service tcp 192.0.2.1:80 sched=wrr flags=0x1 timeout=60 mask=24"},
			wantBlind: 2},
		{name: "gone services after the wanted ones, destinations first",
			cur:  map[ipvs.ServiceKey]*kstate{planB: inKernel(planSvc(planB, planRR), true, planDest(1, 1), planDest(2, 1))},
			want: []*desiredSvc{wantSvc(planSvc(planA, planRR))},
			gone: []ipvs.ServiceKey{planB},
			ops: []string{"new_service tcp 192.0.2.1:80 sched=rr flags=0x0 timeout=0 mask=32",
				"del_destination tcp 192.0.2.2:80 198.51.100.1:80",
				"del_destination tcp 192.0.2.2:80 198.51.100.2:80",
				"del_service tcp 192.0.2.2:80"}},
		{name: "services in the order wanted",
			want: []*desiredSvc{wantSvc(planSvc(planB, planRR)), wantSvc(planSvc(planA, planRR))},
			ops: []string{"new_service tcp 192.0.2.2:80 sched=rr flags=0x0 timeout=0 mask=32",
				"new_service tcp 192.0.2.1:80 sched=rr flags=0x0 timeout=0 mask=32"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.cur
			if cur == nil {
				cur = map[ipvs.ServiceKey]*kstate{}
			}
			before := len(cur)
			ops, blind := plan(cur, tc.want, tc.gone)
			if got := opStrings(ops); !slices.Equal(got, tc.ops) {
				t.Errorf("ops\n got %q\nwant %q", got, tc.ops)
			}
			if blind != tc.wantBlind {
				t.Errorf("blind %d, want %d", blind, tc.wantBlind)
			}
			if len(cur) != before {
				t.Errorf("plan changed the table it was given")
			}
		})
	}
}

func TestPlanTimeouts(t *testing.T) {
	have := ipvs.Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}
	tests := []struct {
		name  string
		want  ipvs.Timeouts
		write bool
	}{
		{"none configured", ipvs.Timeouts{}, false},
		{"configured ones equal", ipvs.Timeouts{UDP: 300 * time.Second}, false},
		{"one differs", ipvs.Timeouts{TCP: time.Hour, UDP: 300 * time.Second}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := planTimeouts(have, tc.want)
			if tc.write != (len(ops) == 1) || len(ops) > 1 || (tc.write && (ops[0].Kind != ipvs.OpSetTimeouts || ops[0].Timeouts != tc.want)) {
				t.Fatalf("ops %+v, want a write: %v", ops, tc.write)
			}
		})
	}
}

// TestApplyDependencies: a destination write into a service whose creation
// failed is skipped and counted, the independent writes go ahead, the
// table follows the successful writes only, and nothing is written once
// the context is done.
func TestApplyDependencies(t *testing.T) {
	k := ipvstest.New()
	k.SetFault(func(op ipvs.Op) error {
		if op.Kind == ipvs.OpNewService && op.Service.Key == planA {
			return syscall.EEXIST
		}
		return nil
	})
	r := New(k, Options{Logger: quiet()})
	ops, _ := plan(map[ipvs.ServiceKey]*kstate{}, []*desiredSvc{
		wantSvc(planSvc(planA, planRR), planDest(1, 1), planDest(2, 1)),
		wantSvc(planSvc(planB, planRR), planDest(1, 1)),
	}, nil)
	cur, owned := map[ipvs.ServiceKey]*kstate{}, map[ipvs.ServiceKey]bool{}
	p := &pass{r: r}
	p.apply(context.Background(), k, ops, cur, owned)
	if p.res.Writes != 3 || p.res.Skipped != 2 || len(p.res.Applied) != 2 || len(p.res.Failed) != 1 {
		t.Fatalf("writes %d skipped %d applied %v failed %v", p.res.Writes, p.res.Skipped, opStrings(p.res.Applied), p.res.Failed)
	}
	if !errors.Is(p.res.Failed[0].Err, syscall.EEXIST) || cur[planA] != nil || owned[planA] {
		t.Fatalf("failed creation left %+v in the table (owned %v)", cur[planA], owned[planA])
	}
	if st := cur[planB]; st == nil || !owned[planB] || len(st.dests) != 1 || st.dests[0].Destination != planDest(1, 1) {
		t.Fatalf("table after apply: %+v", st)
	}
	if c := r.Counters(); c.Writes[ipvs.OpNewService] != 2 || c.Errors[ErrorKey{ipvs.OpNewService, "EEXIST"}] != 1 {
		t.Fatalf("counters %+v", c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k.ResetWrites()
	p = &pass{r: r}
	p.apply(ctx, k, ops, map[ipvs.ServiceKey]*kstate{}, map[ipvs.ServiceKey]bool{})
	if p.res.Writes != 0 || p.res.Skipped != len(ops) || len(k.Writes()) != 0 {
		t.Fatalf("after cancel: writes %d skipped %d, kernel saw %v", p.res.Writes, p.res.Skipped, opStrings(k.Writes()))
	}
}

// TestDesiredIsPure: computing the desired state twice from the same
// inputs gives the same result and changes neither the verdicts nor the
// quorum memory; recording the result is what moves the hysteresis.
func TestDesiredIsPure(t *testing.T) {
	vs := webVS()
	vs.Quorum, vs.Hysteresis = 2, 1
	m, _, err := rebuildModel(specOf(cfgOf(vs)).VirtualServers, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := m[0].svc.Key
	health := map[healthKey]Verdict{}
	for _, rm := range m[0].reals {
		health[healthKey{key, rm.tmpl.Addr}] = Verdict{Service: key, Real: rm.tmpl.Addr, Up: false}
	}
	q := quorumMemory{key: true}
	d1 := desired(&m[0], health, nil, q)
	d2 := desired(&m[0], health, nil, q)
	if d1.quorumUp || d2.quorumUp || d1.aliveWeight != 0 || !slices.Equal(d1.dests, d2.dests) {
		t.Fatalf("desired: %+v then %+v", d1, d2)
	}
	if !q[key] || len(q) != 1 || len(health) != len(m[0].reals) {
		t.Fatalf("desired changed its inputs: quorum %v", q)
	}
	if !q.record(d1) || q[key] || q.record(d2) {
		t.Fatalf("record: the first lost quorum is a change, the same again is not (memory %v)", q)
	}
}
