package lab

import (
	"net/netip"
	"testing"
)

// RoutersT builds, for a test, a lab of n hosts r1, r2, ... with eth0 on
// one switch "lan" at 192.0.2.11/24, .12, ...: the routers of the daemon
// and command tests. It skips the test when not root.
func RoutersT(t *testing.T, name string, n int) *Lab {
	t.Helper()
	SkipIfNotRoot(t)
	topo := Topology{Switches: []string{"lan"}}
	for i := range n {
		topo.Hosts = append(topo.Hosts, HostSpec{Name: "r" + string(rune('1'+i)), Links: []LinkSpec{{
			Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), 24)},
		}}})
	}
	return BuildT(t, name, topo)
}
