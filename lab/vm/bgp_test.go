package vm_test

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestBGPLabInVM brings the BGP lab up inside the VM guest (where the
// end-to-end BGP tests find a real IPVS) with FRRouting copied in: FRR
// stand-ins announce the VIP from the three directors, the router's FIB
// gets three equal next hops, and a director's cut link takes exactly its
// next hop away (BFD).
func TestBGPLabInVM(t *testing.T) {
	if !vm.InVM() {
		files, err := vm.FRRFiles()
		if err != nil {
			if os.Getenv(vm.ModeEnv) == "vm" {
				t.Fatalf("%s=vm: %v", vm.ModeEnv, err)
			}
			t.Skip(err)
		}
		if vm.RunInVMWith(t, vm.Options{Files: files}) {
			return
		}
	}
	b := lab.NewBGPT(t, lab.BGPOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	vip := netip.PrefixFrom(lab.BGPVIP4, 32)
	start := time.Now()
	if _, err := b.StartStandIns(ctx, vip); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	all := lab.DirectorEdges4()
	if _, err := b.Router.WaitNextHops(ctx, vip, all...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	t.Logf("three next hops for %v %v after the stand-ins started", vip, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if err := b.Director[2].Link("eth0").Cut(); err != nil {
		t.Fatal(err)
	}
	seen, err := b.Router.WaitNextHops(ctx, vip, all[:2]...)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	t.Logf("director3's link cut: its next hop gone after %v (BFD 100ms x3)", seen.Sub(start).Round(time.Millisecond))
}
