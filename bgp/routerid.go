package bgp

import (
	"errors"
	"net"
	"net/netip"
)

// RouterID is configured when valid; otherwise the lowest global-unicast
// IPv4 address of the host's interfaces, so a restart picks the same one
// (the routers log a new router ID as a new speaker).
func RouterID(configured netip.Addr) (netip.Addr, error) {
	if configured.IsValid() {
		return configured, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, err
	}
	var as []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				as = append(as, ip.Unmap())
			}
		}
	}
	return LowestRouterID(as)
}

// LowestRouterID is the lowest global-unicast IPv4 address of as: the
// router ID when none is configured.
func LowestRouterID(as []netip.Addr) (netip.Addr, error) {
	var best netip.Addr
	for _, a := range as {
		if a.Is4() && a.IsGlobalUnicast() && (!best.IsValid() || a.Less(best)) {
			best = a
		}
	}
	if !best.IsValid() {
		return best, errors.New("bgp: no router_id set and the host has no global-unicast IPv4 address to take one from")
	}
	return best, nil
}
