package director

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// vmKernel opens the IPVS of a fresh lab namespace, so the test never
// touches the table of the namespace it runs in.
func vmKernel(t *testing.T) *ipvs.Client {
	lab.SkipIfNotRoot(t)
	h, err := lab.NewT(t, "director").AddHost("d")
	if err != nil {
		t.Fatal(err)
	}
	return ipvstest.Open(t, h.NetNSPath())
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
	if err := r.SetConfig(specOf(c)); err != nil {
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
	if err := r2.SetConfig(specOf(c)); err != nil {
		t.Fatal(err)
	}
	if res, err := r2.Reconcile(context.Background()); err != nil || res.Writes != 0 {
		t.Fatalf("restart: %d writes %v (%v)", res.Writes, opStrings(res.Applied), err)
	}
	c.VirtualServers[0].RealServers[1].Weight = 7
	if err := r2.SetConfig(specOf(c)); err != nil {
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
