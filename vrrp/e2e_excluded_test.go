package vrrp_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/haldir-lb/haldir/lab"
)

// excluded_addresses (keepalived's virtual_ipaddress_excluded) move with
// mastership and are announced like the virtual addresses, but the adverts
// list the virtual addresses only; an IPv4 instance may carry IPv6 ones.
// A reload adds one in place.
func TestE2EExcludedAddresses(t *testing.T) {
	lab.SkipIfNotRoot(t)
	ex4 := netip.MustParsePrefix("198.51.100.7/32")
	ex6 := netip.MustParsePrefix("2001:db8:9::7/128")
	added := netip.MustParsePrefix("198.51.100.8/32")
	l := buildLAN(t, 2)
	obs := observe(t, l)
	cfg1 := instanceConfig("vi", 200, v4)
	cfg1.ExcludedAddresses = []netip.Prefix{ex4, ex6}
	cfg2 := instanceConfig("vi", 100, v4)
	cfg2.ExcludedAddresses = []netip.Prefix{ex4, ex6}
	r1 := startRouter(t, l.Host("r1"), cfg1)
	r2 := startRouter(t, l.Host("r2"), cfg2)
	all := []*router{r1, r2}
	has := func(r *router, p netip.Prefix) bool {
		addrs, err := r.h.Addrs(lanIf)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(addrs, p)
	}
	waitMaster(t, r1, all)
	waitFor(t, "the excluded addresses on r1 only", settle, func() bool {
		return has(r1, ex4) && has(r1, ex6) && !has(r2, ex4) && !has(r2, ex6)
	})
	waitGARP(t, obs, 0, r1.h, ex4.Addr())
	waitGARP(t, obs, 0, r1.h, ex6.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	rec, err := obs.WaitForAfter(ctx, 0, func(r lab.Record) bool { return r.VRRP != nil && r.VRRP.VRID == vrid && r.VRRP.Priority == 200 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.VRRP.Addrs, []netip.Addr{vip4.Addr()}) {
		t.Fatalf("advert lists %v, want only the virtual address %v", rec.VRRP.Addrs, vip4.Addr())
	}

	cfg1.ExcludedAddresses = append(cfg1.ExcludedAddresses, added)
	if err := r1.in.Reconfigure(specOf(cfg1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the added excluded address on r1", settle, func() bool { return has(r1, added) })
	waitGARP(t, obs, 0, r1.h, added.Addr())

	r1.stop()
	waitFor(t, "r2 master with the excluded addresses, r1 without", settle, func() bool {
		return r2.hasVIP() && has(r2, ex4) && has(r2, ex6) && !has(r1, ex4) && !has(r1, ex6) && !has(r1, added)
	})
}
