package director

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// labNetns creates a private network namespace so the test never touches
// the IPVS table of the namespace it runs in (the host's, in native mode).
func labNetns(t *testing.T) string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	name := fmt.Sprintf("haldir-director-%d", os.Getpid())
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("creating netns %s: %v", name, err)
	}
	defer ns.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	// IPVS refuses an inet destination whose address type it cannot tell
	// (ip_vs_new_dest: inet_addr_type must be local or unicast), which is
	// the case while the namespace has no local routing table: bring lo up.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bringing lo up in %s: %v", name, err)
	}
	return "/run/netns/" + name
}

func vmKernel(t *testing.T) *MobyKernel {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and IPVS")
	}
	k, err := NewMobyKernel(labNetns(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func schedFlags(sched string) uint32 {
	switch sched {
	case "sh", "mh":
		return FlagSched1 | FlagSched2
	}
	return 0
}

// TestVMMobyEverySchedulerAndForwarding programs every scheduler, with one
// destination per forwarding method, through the moby backend into a real
// IPVS and reads everything back equal.
func TestVMMobyEverySchedulerAndForwarding(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	k := vmKernel(t)
	type entry struct {
		svc   Service
		dests []Destination
	}
	var entries []entry
	for i, sched := range Schedulers {
		svc := Service{
			Key:       ServiceKey{Protocol: TCP, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i))},
			Scheduler: sched, Flags: schedFlags(sched), NetmaskBits: 32,
		}
		if i%2 == 0 {
			svc.Flags |= FlagPersistent
			svc.Timeout, svc.NetmaskBits = uint32(60+i), 24
		}
		port := svc.Key.Addr.Port()
		entries = append(entries, entry{svc, []Destination{
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.1"), 8080), Weight: 1 + i, Forwarding: ForwardNAT, UpperThreshold: 100, LowerThreshold: 10},
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.2"), port), Weight: 0, Forwarding: ForwardDR},
			{Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.0.3"), port), Weight: 65535, Forwarding: ForwardTunnel},
		}})
	}
	entries = append(entries,
		entry{Service{Key: ServiceKey{Protocol: UDP, Addr: netip.MustParseAddrPort("10.0.0.1:53")}, Scheduler: "rr", Flags: FlagOnePacket, NetmaskBits: 32},
			[]Destination{{Addr: netip.MustParseAddrPort("10.1.0.1:53"), Weight: 1}}},
		entry{Service{Key: ServiceKey{Protocol: SCTP, Addr: netip.MustParseAddrPort("[fd00::1]:3868")}, Scheduler: "wlc", Flags: FlagPersistent, Timeout: 30, NetmaskBits: 64},
			[]Destination{{Addr: netip.MustParseAddrPort("[fd00:1::1]:3868"), Weight: 2, Forwarding: ForwardDR}}},
		entry{Service{Key: ServiceKey{Fwmark: 7}, Scheduler: "wrr", NetmaskBits: 32},
			[]Destination{{Addr: netip.MustParseAddrPort("10.1.0.1:0"), Weight: 3, Forwarding: ForwardDR}}},
		entry{Service{Key: ServiceKey{Fwmark: 7, V6: true}, Scheduler: "mh", Flags: FlagSched2, NetmaskBits: 128},
			[]Destination{{Addr: netip.MustParseAddrPort("[fd00:1::2]:0"), Weight: 4, Forwarding: ForwardTunnel}}},
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
		i := slices.IndexFunc(got, func(s Service) bool { return s.Key == e.svc.Key })
		if i < 0 {
			t.Fatalf("%s missing from the kernel", e.svc.Key)
		}
		if !got[i].sameConfig(e.svc) {
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
			j := slices.IndexFunc(ds, func(d Destination) bool { return d.Addr == want.Addr })
			if j < 0 || !ds[j].sameConfig(want) {
				t.Errorf("%s: destination %s read back as %+v, want %+v", e.svc.Key, want.Addr, ds, want)
			}
		}
	}

	// In-place updates: forwarding method, weight, thresholds, scheduler.
	e := programmed[0]
	d := e.dests[0]
	d.Forwarding, d.Weight, d.UpperThreshold, d.LowerThreshold = ForwardDR, 9, 0, 0
	if err := k.UpdateDestination(e.svc.Key, d); err != nil {
		t.Fatalf("UpdateDestination (nat -> dr): %v", err)
	}
	s := e.svc
	s.Scheduler, s.Flags, s.Timeout, s.NetmaskBits = "sh", FlagSched2, 0, 32
	if err := k.UpdateService(s); err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	ds, err := k.GetDestinations(e.svc.Key)
	if err != nil {
		t.Fatal(err)
	}
	if j := slices.IndexFunc(ds, func(x Destination) bool { return x.Addr == d.Addr }); j < 0 || !ds[j].sameConfig(d) {
		t.Errorf("after update: %+v, want %+v", ds, d)
	}
	svcs, _ := k.GetServices()
	if j := slices.IndexFunc(svcs, func(x Service) bool { return x.Key == s.Key }); j < 0 || !svcs[j].sameConfig(s) {
		t.Errorf("after update: %+v, want %+v", svcs, s)
	}

	// Kernel errnos match the fake's.
	if err := k.NewService(e.svc); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("duplicate service: %v, want EEXIST", err)
	}
	missing := ServiceKey{Protocol: TCP, Addr: netip.MustParseAddrPort("10.9.9.9:1")}
	if err := k.NewDestination(missing, d); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("destination in missing service: %v, want ESRCH", err)
	}
	if err := k.DelDestination(e.svc.Key, netip.MustParseAddrPort("10.9.9.9:1")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing destination: %v, want ENOENT", err)
	}
	bad := Service{Key: missing, Scheduler: "nosuch", NetmaskBits: 32}
	if err := k.NewService(bad); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("unknown scheduler: %v, want ENOENT", err)
	}

	// Tunnel types and mixed families, which moby/ipvs cannot express and
	// haldir's own destination codec does.
	tunnels := []Destination{
		{Addr: netip.MustParseAddrPort("10.1.0.9:1000"), Weight: 1, Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 6080, TunnelFlags: TunnelCsum},
		{Addr: netip.MustParseAddrPort("10.1.0.10:1000"), Weight: 2, Forwarding: ForwardTunnel, TunnelType: TunnelGRE, TunnelFlags: TunnelCsum},
		{Addr: netip.MustParseAddrPort("10.1.0.11:1000"), Weight: 3, Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 5555, TunnelFlags: TunnelRemCsum},
		{Addr: netip.MustParseAddrPort("[fd00:1::9]:1000"), Weight: 4, Forwarding: ForwardTunnel},
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
		j := slices.IndexFunc(ds, func(x Destination) bool { return x.Addr == want.Addr })
		if j < 0 || !ds[j].sameConfig(want) {
			t.Errorf("tunnel destination %s read back as %+v, want %+v", want.Addr, ds, want)
		}
	}
	// gue -> gre in place.
	g := tunnels[0]
	g.TunnelType, g.TunnelPort = TunnelGRE, 0
	if err := k.UpdateDestination(e.svc.Key, g); err != nil {
		t.Errorf("UpdateDestination gue -> gre: %v", err)
	}
	ds, _ = k.GetDestinations(e.svc.Key)
	if j := slices.IndexFunc(ds, func(x Destination) bool { return x.Addr == g.Addr }); j < 0 || !ds[j].sameConfig(g) {
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

// TestVMReconcileRealKernel checks the write-count promises against a real
// IPVS: a restart writes nothing, a one-weight reload writes once.
func TestVMReconcileRealKernel(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	k := vmKernel(t)
	vs := []conf.VirtualServer{
		{Name: "web", Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Protocol: "tcp", Scheduler: "wrr", Forwarding: "dr",
			PersistenceTimeout: conf.Duration(5 * time.Minute), PersistenceGranularity: 24,
			RealServers: []conf.RealServer{{Address: netip.MustParseAddr("10.1.0.1"), Port: 80, Weight: 1}, {Address: netip.MustParseAddr("10.1.0.2"), Port: 80, Weight: 2}}},
		{Name: "mark6", Fwmark: 3, Family: "inet6", Scheduler: "sh", SchedulerFlags: []string{"sh-port"}, Forwarding: "tun",
			RealServers: []conf.RealServer{{Address: netip.MustParseAddr("fd00:1::1"), Weight: 5}}},
		{Name: "gue", Address: netip.MustParseAddr("10.0.0.2"), Port: 443, Protocol: "udp", Scheduler: "rr", Forwarding: "tun",
			TunnelType: "gue", TunnelPort: 6080, TunnelChecksum: "remcsum",
			RealServers: []conf.RealServer{{Address: netip.MustParseAddr("10.1.0.5"), Port: 443, Weight: 1}}},
	}
	c := &conf.Config{VirtualServers: vs, IPVS: conf.IPVS{TimeoutTCP: conf.Duration(7200 * time.Second), TimeoutUDP: conf.Duration(60 * time.Second)}}
	r := New(k, Options{Logger: quiet()})
	if err := r.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 8 { // timeouts + 3 services + 4 destinations
		t.Fatalf("first pass: %d writes: %v", res.Writes, opStrings(res.Applied))
	}
	to, err := k.Timeouts()
	if err != nil || to.TCP != 7200*time.Second || to.UDP != 60*time.Second {
		t.Fatalf("timeouts %+v %v", to, err)
	}
	r2 := New(k, Options{Logger: quiet()})
	if err := r2.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if res, err := r2.Reconcile(context.Background()); err != nil || res.Writes != 0 {
		t.Fatalf("restart: %d writes %v (%v)", res.Writes, opStrings(res.Applied), err)
	}
	c.VirtualServers[0].RealServers[1].Weight = 7
	if err := r2.SetConfig(c); err != nil {
		t.Fatal(err)
	}
	if res, err := r2.Reconcile(context.Background()); err != nil || res.Writes != 1 {
		t.Fatalf("one-weight reload: %d writes %v (%v)", res.Writes, opStrings(res.Applied), err)
	}
	s := r2.Snapshot()
	if len(s) != 3 || !s[0].InKernel || s[0].Reals[1].KernelWeight != 7 {
		t.Fatalf("snapshot %+v", s)
	}
}
