package bgp

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

func TestAddresses(t *testing.T) {
	vss := []conf.VirtualServerSpec{
		{Name: "web", Addr: netip.MustParseAddrPort("192.0.2.10:80")},
		{Name: "web-tls", Addr: netip.MustParseAddrPort("192.0.2.10:443")},
		{Name: "mail", Addr: netip.MustParseAddrPort("192.0.2.70:25")},
		{Name: "fw", Fwmark: 5},
		{Name: "dns", Addr: netip.MustParseAddrPort("[2001:db8::53]:53")},
	}
	spec := conf.BGPSpec{Announce: []conf.BGPAnnounceSpec{
		{Prefix: netip.MustParsePrefix("192.0.2.10/32"), VirtualServers: []string{"web", "web-tls"}},
		{Prefix: netip.MustParsePrefix("192.0.2.64/27"), VirtualServers: []string{"mail"}},
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), VirtualServers: []string{"fw"}},
		{Prefix: netip.MustParsePrefix("2001:db8::53/128"), VirtualServers: []string{"dns"}},
	}}
	var got []string
	for _, a := range Addresses(spec, vss) {
		got = append(got, a.String())
	}
	if want := []string{"192.0.2.10", "192.0.2.70", "198.51.100.7", "2001:db8::53"}; !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
}

// TestDevice puts addresses on a device in a lab namespace and takes them
// off again: on lo only its own (127.0.0.1 stays); a dummy device it
// creates goes at Close (skipped where the kernel has no dummy devices).
func TestDevice(t *testing.T) {
	l := lab.NewT(t, "haldir-bgpdev")
	h, err := l.AddHost("d1")
	if err != nil {
		t.Fatal(err)
	}
	addrs := func(dev string) (out []string) {
		t.Helper()
		err := h.Do(func() error {
			lk, err := netlink.LinkByName(dev)
			if err != nil {
				return err
			}
			as, err := netlink.AddrList(lk, unix.AF_UNSPEC)
			for _, a := range as {
				if ip, _ := netip.AddrFromSlice(a.IP); !ip.IsLinkLocalUnicast() {
					out = append(out, a.IPNet.String())
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		slices.Sort(out)
		return out
	}
	a, b, six := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("2001:db8::53")

	d, err := OpenDevice("lo", h.Do)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetAddrs([]netip.Addr{a, b, six}); err != nil {
		t.Fatal(err)
	}
	if got, want := addrs("lo"), []string{"127.0.0.1/8", "192.0.2.10/32", "192.0.2.11/32", "2001:db8::53/128", "::1/128"}; !slices.Equal(got, want) {
		t.Fatalf("lo: %v, want %v", got, want)
	}
	if err := d.SetAddrs([]netip.Addr{a}); err != nil {
		t.Fatal(err)
	}
	if got, want := addrs("lo"), []string{"127.0.0.1/8", "192.0.2.10/32", "::1/128"}; !slices.Equal(got, want) {
		t.Fatalf("lo after dropping two: %v, want %v", got, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := addrs("lo"), []string{"127.0.0.1/8", "::1/128"}; !slices.Equal(got, want) {
		t.Fatalf("lo after Close: %v, want %v", got, want)
	}

	d, err = OpenDevice("hd0", h.Do)
	if errors.Is(err, unix.EOPNOTSUPP) {
		if !strings.Contains(err.Error(), `set bgp.device = "lo"`) {
			t.Fatalf("error %v does not say what to do", err)
		}
		t.Skipf("dummy device: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetAddrs([]netip.Addr{a}); err != nil {
		t.Fatal(err)
	}
	if got := addrs("hd0"); !slices.Equal(got, []string{"192.0.2.10/32"}) {
		t.Fatalf("hd0: %v", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Do(func() error { _, err := netlink.LinkByName("hd0"); return err }); err == nil {
		t.Fatal("hd0 still there after Close")
	}
}
