package director

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// mhFlows sends one UDP datagram from each source port in ports to vip
// from inside h (vip is on h's lo, so IPVS schedules it on LOCAL_OUT and
// keeps a connection entry even though the real servers do not exist)
// and returns the real server IPVS chose for each port, read from the
// connection table.
func mhFlows(t *testing.T, h *lab.Host, vip netip.AddrPort, ports []uint16) map[uint16]netip.AddrPort {
	t.Helper()
	out := map[uint16]netip.AddrPort{}
	err := h.Do(func() error {
		for _, p := range ports {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(vip.Addr(), p)), net.UDPAddrFromAddrPort(vip))
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("flow"))
			c.Close()
			if err != nil {
				return fmt.Errorf("flow from port %d: %w", p, err)
			}
		}
		conns, err := ipvstest.ReadConns()
		for _, c := range conns {
			if c.Proto == "UDP" && c.Virtual == vip {
				out[c.Client.Port()] = c.Dest
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if _, ok := out[p]; !ok {
			t.Fatalf("%s: no connection entry for source port %d (entries: %d)", h.Name(), p, len(out))
		}
	}
	return out
}

// TestVMMHOrderAgrees is the director's part of N-way directors behind
// ECMP: two directors (two namespaces, each its own IPVS and Reconciler)
// with one mh service must send every flow to the same real server, also
// after a real server went down and came back on one of them only. The
// same down-and-up done naively (the destination added back at the end)
// is shown to make them disagree, and the reconciler to repair that.
func TestVMMHOrderAgrees(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	lab.SkipIfNotRoot(t)
	l := lab.NewT(t, "mhorder")
	vip := netip.MustParseAddrPort("10.0.0.1:53")
	vs := conf.VirtualServer{Name: "dns", Address: vip.Addr(), Port: int(vip.Port()), Protocol: "udp", Scheduler: "mh",
		SchedulerFlags: []string{"mh-port"}, Forwarding: "dr"}
	// Weights of 60..63 (gcd 1): each real server takes some 60 slots a
	// turn while ip_vs_mh fills its table, so the order decides about 4 %
	// of the flows (a simulation of the kernel's populate gave 0.1-0.2 %
	// for equal weights, which 1000 flows would not show reliably).
	for i := range 4 {
		vs.RealServers = append(vs.RealServers, conf.RealServer{Address: netip.AddrFrom4([4]byte{10, 1, 0, byte(1 + i)}), Port: 53,
			Weight: 60 + i, Check: &conf.Check{Type: "tcp"}})
	}
	rs2 := vs.RealServers[1].Address
	type director struct {
		h *lab.Host
		k *ipvs.Client
		r *Reconciler
	}
	var ds [2]director
	for i := range ds {
		h, err := l.AddHost(fmt.Sprintf("d%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.AddAddr("lo", netip.PrefixFrom(vip.Addr(), 32)); err != nil {
			t.Fatal(err)
		}
		k := ipvstest.Open(t, h.NetNSPath())
		ds[i] = director{h, k, newRec(t, k, cfgOf(vs))}
		reconcile(t, ds[i].r)
	}
	round := 0
	compare := func(what string, wantSame bool) {
		t.Helper()
		round++
		ports := make([]uint16, 1000)
		for i := range ports {
			ports[i] = uint16(10000*round + i)
		}
		a, b := mhFlows(t, ds[0].h, vip, ports), mhFlows(t, ds[1].h, vip, ports)
		differ := 0
		spread := map[netip.AddrPort]int{}
		for _, p := range ports {
			spread[a[p]]++
			if a[p] != b[p] {
				differ++
			}
		}
		if len(spread) != len(vs.RealServers) {
			t.Fatalf("%s: d1 spreads the flows over %v, want all %d real servers (is mh-port in force?)", what, spread, len(vs.RealServers))
		}
		t.Logf("%s: %d of %d flows on other real servers (d1 %v, d2 %v)", what, differ, len(ports),
			kernelOrder(t, ds[0].k, Key(&specOf(cfgOf(vs)).VirtualServers[0])), kernelOrder(t, ds[1].k, Key(&specOf(cfgOf(vs)).VirtualServers[0])))
		if (differ == 0) != wantSame {
			t.Fatalf("%s: %d of %d flows differ between the directors, want them the same: %v", what, differ, len(ports), wantSame)
		}
	}
	compare("both fresh", true)

	// d1 only: rs2 fails its check and comes back.
	health(t, ds[0].r, vs, rs2, 53, false)
	reconcile(t, ds[0].r)
	health(t, ds[0].r, vs, rs2, 53, true)
	if res := reconcile(t, ds[0].r); res.Writes != 5 { // rs2 added, rs3 and rs4 deleted and added behind it
		t.Fatalf("rs2 back: %d writes %q, want 5", res.Writes, opStrings(res.Applied))
	}
	compare("rs2 down and up on d1", true)

	// The same on d2 without the canonical order: rs2 back at the end.
	key := Key(&specOf(cfgOf(vs)).VirtualServers[0])
	back := ipvs.Destination{Addr: netip.AddrPortFrom(rs2, 53), DestSettings: ipvs.DestSettings{Weight: vs.RealServers[1].Weight, Forwarding: ipvs.ForwardDR}}
	if err := ds[1].k.DelDestination(key, back.Addr); err != nil {
		t.Fatal(err)
	}
	if err := ds[1].k.NewDestination(key, back); err != nil {
		t.Fatal(err)
	}
	compare("rs2 down and up on d2, added back at the end", false)

	// d2's reconciler puts its table back in order.
	if res := reconcile(t, ds[1].r); res.Writes != 4 {
		t.Fatalf("repair: %d writes %q, want 4", res.Writes, opStrings(res.Applied))
	}
	compare("d2 repaired", true)
}
