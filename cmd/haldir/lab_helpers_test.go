package main

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// routerLab is a lab whose hosts r1, r2, ... have eth0 on switch lan at
// 192.0.2.11/24, .12, ...: one per router the components test runs.
func routerLab(t *testing.T, name string, routers int) *lab.Lab {
	t.Helper()
	lab.SkipIfNotRoot(t)
	topo := lab.Topology{Switches: []string{"lan"}}
	for i := range routers {
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: "r" + string(rune('1'+i)), Links: []lab.LinkSpec{{
			Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), 24)},
		}}})
	}
	return lab.BuildT(t, name, topo)
}

// oneRouterLab is routerLab with r1 only.
func oneRouterLab(t *testing.T, name string) *lab.Lab { return routerLab(t, name, 1) }

// startComponents runs cfg's components with VRRP in host h of l and, when
// k is set, the in-memory IPVS kernel; they stop at the test's end.
func startComponents(t *testing.T, l *lab.Lab, h string, cfg *conf.Config, k *ipvstest.Kernel) (*components, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	c := newComponents(slog.New(slog.NewTextHandler(&logs, nil)))
	if k != nil {
		c.newKernel = func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }
	}
	c.vrrpDo = l.Host(h).Do
	if err := c.start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c, &logs
}
