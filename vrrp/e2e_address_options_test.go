package vrrp_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
	"github.com/vishvananda/netlink"
)

// address_options (keepalived's `dev` and `label`): the VIP goes on eth1,
// where it is announced, with its label; the excluded address stays on the
// instance's eth0 with its own label; the adverts on eth0 still list the
// VIP. Giving up mastership removes both.
func TestE2EAddressOptions(t *testing.T) {
	lab.SkipIfNotRoot(t)
	topo := lab.Topology{Switches: []string{lanSw, "ext"}}
	for i := 1; i <= 2; i++ {
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: fmt.Sprintf("r%d", i), Links: []lab.LinkSpec{
			{Iface: lanIf, Switch: lanSw, Addrs: []netip.Prefix{v4.host(byte(10 + i))}},
			{Iface: "eth1", Switch: "ext", Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}), 24)}},
		}})
	}
	l := lab.BuildT(t, "vrrp-addropts", topo)
	lan, err := l.Switch(lanSw).Observe()
	if err != nil {
		t.Fatal(err)
	}
	ext, err := l.Switch("ext").Observe()
	if err != nil {
		t.Fatal(err)
	}
	ex := netip.MustParsePrefix("198.51.100.7/32")
	cfg := func(prio int) conf.VRRPInstance {
		c := instanceConfig("vi", prio, v4)
		c.ExcludedAddresses = []netip.Prefix{ex}
		c.AddressOptions = []conf.AddressOption{{Address: vip4.Addr(), Interface: "eth1", Label: "eth1:vip"}, {Address: ex.Addr(), Label: "eth0:ex"}}
		return c
	}
	r1 := startRouter(t, l.Host("r1"), cfg(200))
	r2 := startRouter(t, l.Host("r2"), cfg(100))
	// labelled lists iface's IPv4 addresses as "prefix label".
	labelled := func(r *router, iface string) []string {
		var out []string
		err := r.h.Do(func() error {
			link, err := netlink.LinkByName(iface)
			if err != nil {
				return err
			}
			as, err := netlink.AddrList(link, netlink.FAMILY_V4)
			for _, a := range as {
				out = append(out, a.IPNet.String()+" "+a.Label)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	placed := func(r *router) bool {
		return slices.Contains(labelled(r, "eth1"), vip4.String()+" eth1:vip") && slices.Contains(labelled(r, lanIf), ex.String()+" eth0:ex") &&
			!slices.ContainsFunc(labelled(r, lanIf), func(s string) bool { return strings.HasPrefix(s, vip4.String()+" ") })
	}
	waitFor(t, "r1 master with the VIP on eth1 and the excluded address on eth0, labelled", settle, func() bool {
		return r1.state() == vrrp.StateMaster && r2.state() == vrrp.StateBackup && placed(r1) && len(labelled(r2, "eth1")) == 1
	})
	mac, err := l.Host("r1").HardwareAddr("eth1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	if _, err := ext.WaitForAfter(ctx, 0, announces(vip4.Addr(), mac)); err != nil {
		t.Fatalf("no gratuitous ARP for %v on eth1's switch from %v: %v", vip4.Addr(), mac, err)
	}
	rec, err := lan.WaitForAfter(ctx, 0, func(r lab.Record) bool { return r.VRRP != nil && r.VRRP.VRID == vrid && r.VRRP.Priority == 200 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.VRRP.Addrs, []netip.Addr{vip4.Addr()}) {
		t.Fatalf("advert lists %v, want %v", rec.VRRP.Addrs, vip4.Addr())
	}
	r1.stop()
	waitFor(t, "r2 master with the addresses placed, r1 without them", settle, func() bool {
		return r2.state() == vrrp.StateMaster && placed(r2) && len(labelled(r1, "eth1")) == 1 && len(labelled(r1, lanIf)) == 1
	})
}
