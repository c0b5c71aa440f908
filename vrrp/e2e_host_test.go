package vrrp_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/vrrp"
)

// netlinkSockets reads the netlink sockets of h's network namespace
// (/proc/net/netlink as seen from inside it): inode -> protocol.
func netlinkSockets(t testing.TB, h *lab.Host) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := h.Do(func() error {
		// thread-self: the namespace of this (locked) thread, not of the
		// process's main thread that /proc/self/net would show.
		f, err := os.Open("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 {
				return fmt.Errorf("short line %q", sc.Text())
			}
			proto, err := strconv.Atoi(fs[1])
			if err != nil {
				return fmt.Errorf("line %q: %w", sc.Text(), err)
			}
			out[fs[9]] = proto
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestE2ENetlinkRouteOnly checks that a running instance opens netlink
// sockets of the NETLINK_ROUTE family (protocol 0) only. A handle with every
// family (netlink.NewHandle()) also opens NETLINK_XFRM and
// NETLINK_NETFILTER, which fails with "protocol not supported" on hosts
// that cannot load xfrm_user or nfnetlink (kernel.modules_disabled=1,
// minimal kernels).
func TestE2ENetlinkRouteOnly(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 1)
			h := l.Host("r1")
			before := netlinkSockets(t, h)
			c := instanceConfig("vi", 100, f)
			c.UseVMAC, c.VMACInterface = true, vmacIf // the macvlan too goes through the handle
			r := startRouter(t, h, c)
			waitFor(t, "r1 master", settle, func() bool { return r.state() == vrrp.StateMaster })
			opened := 0
			for inode, proto := range netlinkSockets(t, h) {
				if _, ok := before[inode]; ok {
					continue
				}
				opened++
				if proto != 0 {
					t.Errorf("the instance holds a netlink socket of protocol %d (inode %s); want NETLINK_ROUTE (0) only", proto, inode)
				}
			}
			if opened == 0 {
				t.Fatal("no netlink socket of the instance found: the test does not see what it checks")
			}
		})
	}
}

// TestE2EUnicastSourceNotOnInterface configures r1 (the higher priority)
// with a unicast_source that is an address of its other interface, as the
// shipped example did. Its adverts would still leave through eth0 (the
// kernel assumes on-link for a bound socket) from an address r2 expects,
// so nothing looked wrong; the instance must be in Fault, saying why, and
// never master. Moving the address to eth0 clears the fault.
func TestE2EUnicastSourceNotOnInterface(t *testing.T) {
	lab.SkipIfNotRoot(t)
	other := func(n byte) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, n}), 24) }
	topo := lab.Topology{Switches: []string{lanSw, "other"}}
	topo.Hosts = []lab.HostSpec{
		{Name: "r1", Links: []lab.LinkSpec{
			{Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(11)}},
			{Iface: "eth1", Switch: "other", Addrs: []netip.Prefix{other(11)}},
		}},
		{Name: "r2", Links: []lab.LinkSpec{{Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(12), other(12)}}}},
	}
	l := lab.BuildT(t, "vrrp-usrc", topo)
	c1, c2 := instanceConfig("vi", 200, v4), instanceConfig("vi", 100, v4)
	c1.UnicastSource, c1.UnicastPeers = other(11).Addr(), []netip.Addr{other(12).Addr()}
	c2.UnicastSource, c2.UnicastPeers = other(12).Addr(), []netip.Addr{other(11).Addr()}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), c2)
	all := []*router{r1, r2}

	waitFor(t, "r1 in fault", settle, func() bool { return r1.state() == vrrp.StateFault })
	waitMaster(t, r2, []*router{r2})
	want := "unicast_source 198.51.100.11 is not an address of eth0 (it is on eth1) (fault)"
	if st := r1.in.Status(); !slices.Contains(st.Failing, want) {
		t.Fatalf("r1 status failing %q, want %q", st.Failing, want)
	}
	// Never master meanwhile: two masters is what this prevents.
	for end := time.Now().Add(5 * fast); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if s := r1.state(); s != vrrp.StateFault || r1.hasVIP() {
			t.Fatalf("r1 is %v (VIP %v) with its source on another interface", s, r1.hasVIP())
		}
	}

	if err := l.Host("r1").DelAddr("eth1", other(11)); err != nil {
		t.Fatal(err)
	}
	if err := l.Host("r1").AddAddr(lanIf, other(11)); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r1, all)
	if st := r1.in.Status(); len(st.Failing) != 0 {
		t.Fatalf("r1 master with failing %q", st.Failing)
	}
}

// pairWithR1Master runs r1 (priority 200) and r2 (100) on one LAN, their
// advert sources picked from eth0, and waits for r1 to be master.
func pairWithR1Master(t *testing.T) (l *lab.Lab, r1, r2 *router, all []*router) {
	t.Helper()
	lab.SkipIfNotRoot(t)
	l = buildLAN(t, 2)
	r1 = startRouter(t, l.Host("r1"), instanceConfig("vi", 200, v4))
	r2 = startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	all = []*router{r1, r2}
	waitMaster(t, r1, all)
	return l, r1, r2, all
}

// TestE2ESourceAddressRemoved removes the master's own address (its advert
// source, picked at start) from its interface: its adverts cannot leave as
// before, so it goes to Fault with the reason and r2 takes over; with the
// address back it recovers and, with the higher priority, takes over again.
func TestE2ESourceAddressRemoved(t *testing.T) {
	l, r1, r2, all := pairWithR1Master(t)

	if err := l.Host("r1").DelAddr(lanIf, v4.host(11)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r1 in fault", settle, func() bool { return r1.state() == vrrp.StateFault })
	waitMaster(t, r2, []*router{r2})
	st := r1.in.Status()
	if len(st.Failing) == 0 || !strings.Contains(strings.Join(st.Failing, "; "), "192.0.2.11") {
		t.Fatalf("r1 in fault, failing %q: want the source address named", st.Failing)
	}

	if err := l.Host("r1").AddAddr(lanIf, v4.host(11)); err != nil {
		t.Fatal(err)
	}
	waitMaster(t, r1, all)
	if st := r1.in.Status(); len(st.Failing) != 0 {
		t.Fatalf("r1 master with failing %q", st.Failing)
	}
}

// TestE2ESourceAddressReplaced: an instance without unicast_source whose
// advert source is replaced on its interface (a new address added, the
// old one removed: re-addressing, a DHCP renewal) picks the new one and
// carries on as master, where before it stayed in Fault until a restart;
// the peer sees the master's new address.
func TestE2ESourceAddressReplaced(t *testing.T) {
	l, r1, r2, all := pairWithR1Master(t)

	// Removing the primary address of a subnet takes its secondaries,
	// the VIP among them, with it unless promote_secondaries is on (as on
	// a director that re-addresses in place).
	if err := l.Host("r1").Sysctl("net/ipv4/conf/"+lanIf+"/promote_secondaries", "1"); err != nil {
		t.Fatal(err)
	}
	next := v4.host(21)
	if err := l.Host("r1").AddAddr(lanIf, next); err != nil {
		t.Fatal(err)
	}
	if err := l.Host("r1").DelAddr(lanIf, v4.host(11)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "r1 advertising from its new address", settle, func() bool {
		return r1.in.Status().Source == next.Addr() && r2.in.Status().MasterAddr == next.Addr()
	})
	waitMaster(t, r1, all)
	if st := r1.in.Status(); len(st.Failing) != 0 {
		t.Fatalf("r1 master with failing %q", st.Failing)
	}
}

// TestVMElectionMinimalKernel runs an election and a failover in the lab
// VM, whose kernel has xfrm_user and nfnetlink as modules that the VM does
// not load (lab/vm IPVSModules): as on a hardened host
// (kernel.modules_disabled=1), opening a NETLINK_XFRM or NETLINK_NETFILTER
// socket fails there with "protocol not supported", so the instances only
// run when they open NETLINK_ROUTE alone. Natively (a host kernel with
// IPVS) it runs here.
func TestVMElectionMinimalKernel(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	before := netlinkSockets(t, l.Host("r1")) // the kernel's own (audit, uevent, ...)
	c1 := instanceConfig("vi", 200, v4)
	c1.TrackInterfaces = []conf.TrackIface{{Name: lanIf, Weight: -10}}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	waitMaster(t, r1, []*router{r1, r2})
	for inode, proto := range netlinkSockets(t, l.Host("r1")) {
		if _, ok := before[inode]; !ok && proto != 0 {
			t.Errorf("r1 holds a netlink socket of protocol %d (inode %s)", proto, inode)
		}
	}
	r1.stop()
	waitMaster(t, r2, []*router{r2})
}
