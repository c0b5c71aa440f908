package ipvs_test

import (
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// vmKernel opens the IPVS of a fresh lab namespace, so the test never
// touches the table of the namespace it runs in.
func vmKernel(t *testing.T) *ipvs.Client {
	lab.SkipIfNotRoot(t)
	h, err := lab.NewT(t, "ipvs").AddHost("k")
	if err != nil {
		t.Fatal(err)
	}
	return ipvstest.Open(t, h.NetNSPath())
}

func schedFlags(sched string) uint32 {
	switch sched {
	case "sh", "mh":
		return ipvs.FlagSched1 | ipvs.FlagSched2
	}
	return 0
}

// TestVMEverySchedulerAndForwarding programs every scheduler, with one
// destination per forwarding method, through Client into a real
// IPVS and reads everything back equal.
func TestVMEverySchedulerAndForwarding(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	k := vmKernel(t)
	type entry struct {
		svc   ipvs.Service
		dests []ipvs.Destination
	}
	var entries []entry
	for i, sched := range ipvs.Schedulers {
		svc := ipvs.Service{
			Key:             ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i))},
			ServiceSettings: ipvs.ServiceSettings{Scheduler: sched, Flags: schedFlags(sched), NetmaskBits: 32},
		}
		if i%2 == 0 {
			svc.Flags |= ipvs.FlagPersistent
			svc.Timeout, svc.NetmaskBits = uint32(60+i), 24
		}
		port := svc.Key.Addr.Port()
		entries = append(entries, entry{svc, []ipvs.Destination{
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.1"), 8080), DestSettings: ipvs.DestSettings{Weight: 1 + i, Forwarding: ipvs.ForwardNAT, UpperThreshold: 100, LowerThreshold: 10}},
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.2"), port), DestSettings: ipvs.DestSettings{Weight: 0, Forwarding: ipvs.ForwardDR}},
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.3"), port), DestSettings: ipvs.DestSettings{Weight: 65535, Forwarding: ipvs.ForwardTunnel}},
		}})
	}
	entries = append(entries,
		entry{ipvs.Service{Key: ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: netip.MustParseAddrPort("10.0.0.1:53")}, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", Flags: ipvs.FlagOnePacket, NetmaskBits: 32}},
			[]ipvs.Destination{{Addr: netip.MustParseAddrPort("10.1.0.1:53"), DestSettings: ipvs.DestSettings{Weight: 1}}}},
		entry{ipvs.Service{Key: ipvs.ServiceKey{Protocol: ipvs.SCTP, Addr: netip.MustParseAddrPort("[fd00::1]:3868")}, ServiceSettings: ipvs.ServiceSettings{Scheduler: "wlc", Flags: ipvs.FlagPersistent, Timeout: 30, NetmaskBits: 64}},
			[]ipvs.Destination{{Addr: netip.MustParseAddrPort("[fd00:1::1]:3868"), DestSettings: ipvs.DestSettings{Weight: 2, Forwarding: ipvs.ForwardDR}}}},
		entry{ipvs.Service{Key: ipvs.ServiceKey{Fwmark: 7}, ServiceSettings: ipvs.ServiceSettings{Scheduler: "wrr", NetmaskBits: 32}},
			[]ipvs.Destination{{Addr: netip.MustParseAddrPort("10.1.0.1:0"), DestSettings: ipvs.DestSettings{Weight: 3, Forwarding: ipvs.ForwardDR}}}},
		entry{ipvs.Service{Key: ipvs.ServiceKey{Fwmark: 7, V6: true}, ServiceSettings: ipvs.ServiceSettings{Scheduler: "mh", Flags: ipvs.FlagSched2, NetmaskBits: 128}},
			[]ipvs.Destination{{Addr: netip.MustParseAddrPort("[fd00:1::2]:0"), DestSettings: ipvs.DestSettings{Weight: 4, Forwarding: ipvs.ForwardTunnel}}}},
	)
	var programmed []entry
	for _, e := range entries {
		if err := k.NewService(e.svc); err != nil {
			if e.svc.Scheduler == "twos" && errors.Is(err, syscall.ENOENT) {
				t.Logf("kernel has no ip_vs_twos (it arrived in 6.2): %v", err)
				continue
			}
			t.Fatalf("NewService %s: %v", e.svc.Key, err)
		}
		for _, d := range e.dests {
			if err := k.NewDestination(e.svc.Key, d); err != nil {
				t.Fatalf("NewDestination %s %s: %v", e.svc.Key, d.Addr, err)
			}
		}
		programmed = append(programmed, e)
	}
	got, err := k.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(programmed) {
		t.Fatalf("kernel has %d services, programmed %d", len(got), len(programmed))
	}
	for _, e := range programmed {
		i := slices.IndexFunc(got, func(s ipvs.ServiceInfo) bool { return s.Key == e.svc.Key })
		if i < 0 {
			t.Fatalf("%s missing from the kernel", e.svc.Key)
		}
		if got[i].Service != e.svc {
			t.Errorf("service read back as %+v, programmed %+v", got[i], e.svc)
		}
		ds, err := k.GetDestinations(e.svc.Key)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != len(e.dests) {
			t.Fatalf("%s: %d destinations read back, want %d", e.svc.Key, len(ds), len(e.dests))
		}
		for _, want := range e.dests {
			j := slices.IndexFunc(ds, func(d ipvs.DestInfo) bool { return d.Addr == want.Addr })
			if j < 0 || ds[j].Destination != want {
				t.Errorf("%s: destination %s read back as %+v, want %+v", e.svc.Key, want.Addr, ds, want)
			}
		}
	}

	// In-place updates: forwarding method, weight, thresholds, scheduler.
	e := programmed[0]
	d := e.dests[0]
	d.Forwarding, d.Weight, d.UpperThreshold, d.LowerThreshold = ipvs.ForwardDR, 9, 0, 0
	if err := k.UpdateDestination(e.svc.Key, d); err != nil {
		t.Fatalf("UpdateDestination (nat -> dr): %v", err)
	}
	s := e.svc
	s.Scheduler, s.Flags, s.Timeout, s.NetmaskBits = "sh", ipvs.FlagSched2, 0, 32
	if err := k.UpdateService(s); err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	ds, err := k.GetDestinations(e.svc.Key)
	if err != nil {
		t.Fatal(err)
	}
	if j := slices.IndexFunc(ds, func(x ipvs.DestInfo) bool { return x.Addr == d.Addr }); j < 0 || ds[j].Destination != d {
		t.Errorf("after update: %+v, want %+v", ds, d)
	}
	svcs, _ := k.GetServices()
	if j := slices.IndexFunc(svcs, func(x ipvs.ServiceInfo) bool { return x.Key == s.Key }); j < 0 || svcs[j].Service != s {
		t.Errorf("after update: %+v, want %+v", svcs, s)
	}

	// Tunnel types and mixed families, which moby/ipvs cannot express and
	// haldir's own destination codec does.
	tunnels := []ipvs.Destination{
		{Addr: netip.MustParseAddrPort("10.1.0.9:1000"), DestSettings: ipvs.DestSettings{Weight: 1, Forwarding: ipvs.ForwardTunnel, TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelCsum}},
		{Addr: netip.MustParseAddrPort("10.1.0.10:1000"), DestSettings: ipvs.DestSettings{Weight: 2, Forwarding: ipvs.ForwardTunnel, TunnelType: ipvs.TunnelGRE, TunnelFlags: ipvs.TunnelCsum}},
		{Addr: netip.MustParseAddrPort("10.1.0.11:1000"), DestSettings: ipvs.DestSettings{Weight: 3, Forwarding: ipvs.ForwardTunnel, TunnelType: ipvs.TunnelGUE, TunnelPort: 5555, TunnelFlags: ipvs.TunnelRemCsum}},
		{Addr: netip.MustParseAddrPort("[fd00:1::9]:1000"), DestSettings: ipvs.DestSettings{Weight: 4, Forwarding: ipvs.ForwardTunnel}},
	}
	for _, d := range tunnels {
		if err := k.NewDestination(e.svc.Key, d); err != nil {
			t.Errorf("NewDestination %+v: %v", d, err)
		}
	}
	ds, err = k.GetDestinations(e.svc.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range tunnels {
		j := slices.IndexFunc(ds, func(x ipvs.DestInfo) bool { return x.Addr == want.Addr })
		if j < 0 || ds[j].Destination != want {
			t.Errorf("tunnel destination %s read back as %+v, want %+v", want.Addr, ds, want)
		}
	}
	// gue -> gre in place.
	g := tunnels[0]
	g.TunnelType, g.TunnelPort = ipvs.TunnelGRE, 0
	if err := k.UpdateDestination(e.svc.Key, g); err != nil {
		t.Errorf("UpdateDestination gue -> gre: %v", err)
	}
	ds, _ = k.GetDestinations(e.svc.Key)
	if j := slices.IndexFunc(ds, func(x ipvs.DestInfo) bool { return x.Addr == g.Addr }); j < 0 || ds[j].Destination != g {
		t.Errorf("after gue -> gre: %+v, want %+v", ds, g)
	}

	// Deleting a service takes its destinations with it.
	if err := k.DelService(e.svc.Key); err != nil {
		t.Fatal(err)
	}
	// (The kernel answers a dump of a missing service with nothing, not
	// an error; the fake does the same.)
	if ds, err := k.GetDestinations(e.svc.Key); err != nil || len(ds) != 0 {
		t.Errorf("destinations of a deleted service: %v, %v", ds, err)
	}
}
