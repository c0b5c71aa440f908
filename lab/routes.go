package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/nldump"
)

// NextHops returns the gateways of the host's main-table route to exactly
// prefix, sorted: one for a plain route, each hop of a multipath (ECMP)
// route, none when there is no such route. Routes a routing daemon
// installs as nexthop objects (nhid) are not resolved: the BGP lab's zebra
// is told to install plain multipath routes.
func (h *Host) NextHops(prefix netip.Prefix) ([]netip.Addr, error) {
	prefix = prefix.Masked()
	family := netlink.FAMILY_V4
	if prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: prefixToIPNet(prefix)}
	rs, err := nldump.Retry(func() ([]netlink.Route, error) {
		return h.nl.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: routes to %v: %w", h.name, prefix, err)
	}
	var out []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	for _, r := range rs {
		if r.Dst == nil {
			continue // the filter treats a nil Dst (default route) as matching any
		}
		if ones, _ := r.Dst.Mask.Size(); ones != prefix.Bits() {
			continue
		}
		if len(r.MultiPath) == 0 {
			add(r.Gw)
		}
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}

// WaitNextHops polls the host's route to prefix every 2 ms until its next
// hops are exactly want (in any order; none means no route) and returns
// when it saw them, for timing route changes. It fails when ctx ends.
func (h *Host) WaitNextHops(ctx context.Context, prefix netip.Prefix, want ...netip.Addr) (time.Time, error) {
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	var seen time.Time
	err := pollUntil(ctx, 2*time.Millisecond, func() (bool, string, error) {
		got, err := h.NextHops(prefix)
		if err != nil {
			return false, "", err
		}
		if slices.Equal(got, want) {
			seen = time.Now()
			return true, "", nil
		}
		return false, fmt.Sprint(got), nil
	}, func(last string) error {
		return fmt.Errorf("host %s: route to %v: next hops %s, want %v", h.name, prefix, last, want)
	})
	return seen, err
}

// AddMultipathRoute adds a route to dst over several gateways at once (an
// ECMP route), e.g. the real servers' default route over every director.
func (h *Host) AddMultipathRoute(dst netip.Prefix, vias ...netip.Addr) error {
	if len(vias) == 0 {
		return fmt.Errorf("host %s: multipath route to %v needs gateways", h.name, dst)
	}
	r := &netlink.Route{Dst: prefixToIPNet(dst.Masked())}
	for _, v := range vias {
		if v.Unmap().Is4() != dst.Addr().Unmap().Is4() {
			return fmt.Errorf("host %s: route to %v via %v mixes address families", h.name, dst, v)
		}
		r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{Gw: v.Unmap().AsSlice()})
	}
	if err := h.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("host %s: adding route to %v via %v: %w", h.name, dst, vias, err)
	}
	return nil
}
