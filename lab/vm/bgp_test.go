package vm_test

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestBGPLabInVM brings the BGP lab up inside the VM guest (where the
// end-to-end BGP tests find a real IPVS) with FRRouting copied in: FRR
// stand-ins announce the VIP from the three directors and the router's FIB
// gets three equal next hops; every director runs the same LVS-DR service
// (mh with mh-port, the real servers in one order, sloppy_tcp), and new
// connections from the client reach every real server through all three
// directors, the replies going back via the router's back leg. A
// director's cut link takes exactly its next hop away (BFD), and its
// connections survive on the other directors without any shared state:
// their IPVS schedules the mid-stream packets (sloppy_tcp) to the same
// real servers (the same Maglev table). This is the mechanism haldir's
// BGP mode builds on, shown with the kernel alone.
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
	vip := netip.PrefixFrom(lab.BGPVIP4, 32)
	b := lab.NewBGPT(t, lab.BGPOptions{RealVIPs: []netip.Prefix{vip}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const port = 7
	for _, r := range b.Reals() {
		if _, err := r.ServeEcho(netip.AddrPortFrom(netip.IPv4Unspecified(), port).String()); err != nil {
			t.Fatal(err)
		}
	}
	var svcs [3]*ipvs.Handle
	svc := &ipvs.Service{
		Address: lab.BGPVIP4.AsSlice(), Protocol: unix.IPPROTO_TCP, Port: port,
		SchedName: "mh", AddressFamily: unix.AF_INET, Netmask: 0xffffffff,
		// mh-port: hash the source port too, so one client's flows spread
		// (mh alone hashes the source address only).
		Flags: ipvsSchedFlagMHPort,
	}
	for i, d := range b.Directors() {
		if err := d.AddAddr("lo", vip); err != nil {
			t.Fatal(err)
		}
		if err := d.Sysctl("net.ipv4.vs.sloppy_tcp", "1"); err != nil {
			t.Fatal(err)
		}
		h, err := ipvs.New(d.NetNSPath())
		if err != nil {
			t.Fatalf("ipvs.New in %s: %v", d, err)
		}
		defer h.Close()
		svcs[i] = h
		if err := h.NewService(svc); err != nil {
			t.Fatalf("%s: NewService: %v", d, err)
		}
		for j := range b.Real {
			dst := &ipvs.Destination{
				Address: netip.AddrFrom4([4]byte{10, 0, 1, byte(21 + j)}).AsSlice(), Port: port, Weight: 1,
				ConnectionFlags: ipvs.ConnectionFlagDirectRoute, AddressFamily: unix.AF_INET,
			}
			if err := h.NewDestination(svc, dst); err != nil {
				t.Fatalf("%s: NewDestination real%d: %v", d, j+1, err)
			}
		}
	}

	start := time.Now()
	if _, err := b.StartStandIns(ctx, vip); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	all := lab.DirectorEdges4()
	if _, err := b.Router.WaitNextHops(ctx, vip, all...); err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	t.Logf("three next hops for %v %v after the stand-ins started", vip, time.Since(start).Round(time.Millisecond))

	const flows = 60
	got, err := b.Client.Greetings(ctx, netip.AddrPortFrom(lab.BGPVIP4, port), flows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d connections through the directors' LVS-DR answered by %v", flows, got)
	for _, r := range b.Reals() {
		if got[r.Name()] == 0 {
			t.Errorf("no connection reached %s: %v", r.Name(), got)
		}
	}
	for i, h := range svcs {
		dsts, err := h.GetDestinations(svc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range dsts {
			n += d.ActiveConnections + d.InactiveConnections
		}
		t.Logf("director%d scheduled %d of the connections", i+1, n)
		if n == 0 {
			t.Errorf("director%d's IPVS scheduled none of %d connections: the router's ECMP did not use it", i+1, flows)
		}
	}

	held, err := b.Client.HoldConns(ctx, netip.AddrPortFrom(lab.BGPVIP4, port), lab.HoldOptions{Conns: 30, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Stop()
	poll.Until(t, 30*time.Second, "every held connection busy", func() (bool, any) {
		r := held.Report()
		for _, c := range r.Conns {
			if c.Broken || c.RoundTrips < 3 {
				return false, r
			}
		}
		return true, nil
	})
	held.ResetStalls()
	start = time.Now()
	if err := b.Director[1].Link("eth0").Cut(); err != nil {
		t.Fatal(err)
	}
	seen, err := b.Router.WaitNextHops(ctx, vip, all[0], all[2])
	if err != nil {
		t.Fatalf("%v\n%s", err, b.RouterFRR.Logs())
	}
	t.Logf("director2's link cut: its next hop gone after %v (BFD 100ms x3)", seen.Sub(start).Round(time.Millisecond))
	// Every connection completes round trips after the route change.
	after := held.Report()
	poll.Until(t, 30*time.Second, "every held connection past the cut", func() (bool, any) {
		r := held.Report()
		for i, c := range r.Conns {
			if c.Broken || c.RoundTrips < after.Conns[i].RoundTrips+3 {
				return false, r
			}
		}
		return true, nil
	})
	t.Logf("director2's link cut: %v", held.Stop())
}

// ipvsSchedFlagMHPort is IP_VS_SVC_F_SCHED_MH_PORT (IP_VS_SVC_F_SCHED2).
const ipvsSchedFlagMHPort = 0x0010
