package lab

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
)

// Addresses of the standard lab. Only documentation ranges (RFC 5737,
// RFC 3849) and 10.0.0.0/8 inside the lab's own namespaces are used.
var (
	FrontNet4 = netip.MustParsePrefix("192.0.2.0/24")
	FrontNet6 = netip.MustParsePrefix("2001:db8:1::/64")
	BackNet4  = netip.MustParsePrefix("10.0.1.0/24")
	BackNet6  = netip.MustParsePrefix("2001:db8:2::/64")
	SyncNet4  = netip.MustParsePrefix("10.0.0.0/24")

	// VIP4 and VIP6 are the virtual service addresses the directors'
	// VRRP instance is meant to hold on the front switch.
	VIP4 = netip.MustParseAddr("192.0.2.1")
	VIP6 = netip.MustParseAddr("2001:db8:1::1")
	// BackGW4 and BackGW6 are the floating gateway the real servers route
	// through (held by the VRRP master on the back switch, as LVS-NAT needs).
	BackGW4 = netip.MustParseAddr("10.0.1.1")
	BackGW6 = netip.MustParseAddr("2001:db8:2::1")
)

// StandardOptions tune the standard lab. The zero value is a plain LVS-NAT
// layout with no servers running.
type StandardOptions struct {
	// HTTPPort, if non-zero, starts Host.ServeHTTP on every real server on
	// that port (all addresses), answering with the real server's name.
	HTTPPort int
	// RealVIPs are added to the real servers' loopback (for LVS-DR or
	// tunnelling, where the real servers accept traffic for the VIP).
	// arp_ignore=1 and arp_announce=2 are set on the real servers in any
	// case, so a VIP on loopback is never answered for on the wire.
	RealVIPs []netip.Prefix
}

// Standard is the two-director, three-real-server, one-client lab that
// `make demo` and the end-to-end tests use:
//
//	client ─eth0─ [front] ─eth0─ director1 ─eth1─ [back] ─eth0─ real1, real2, real3
//	                      └eth0─ director2 ─eth1┘
//	              director1 ─eth2─ [sync] ─eth2─ director2
//
// Addresses (hosts get .11/.12 (directors), .21-.23 (reals), .100 (client)):
//
//	front 192.0.2.0/24, 2001:db8:1::/64   client .100, director1 .11, director2 .12, VIP .1
//	back  10.0.1.0/24, 2001:db8:2::/64    director1 .11, director2 .12, real1-3 .21-.23, gateway .1
//	sync  10.0.0.0/24                     director1 .11, director2 .12
//
// Directors forward IPv4 and IPv6. Real servers route by default via
// BackGW4/BackGW6. No VIP or gateway address is assigned: that is the
// directors' (haldir's or keepalived's) job.
type Standard struct {
	*Lab
	Director1, Director2 *Host
	Real                 [3]*Host
	Client               *Host
	Front, Back, Sync    *Switch
	// HTTP holds the real servers' web servers when HTTPPort was set.
	HTTP [3]*HTTPServer
}

// Directors returns both directors.
func (s *Standard) Directors() []*Host { return []*Host{s.Director1, s.Director2} }

// Reals returns the three real servers.
func (s *Standard) Reals() []*Host { return s.Real[:] }

// hostAddr gives host number last in n. In IPv6 the decimal digits are
// reused as hex digits so that host .11 is ::11 in both families.
func hostAddr(n netip.Prefix, last byte) netip.Prefix {
	if n.Addr().Is4() {
		a4 := n.Addr().As4()
		a4[3] = last
		return netip.PrefixFrom(netip.AddrFrom4(a4), n.Bits())
	}
	v, _ := strconv.ParseUint(strconv.Itoa(int(last)), 16, 16)
	a := n.Addr().As16()
	a[14], a[15] = byte(v>>8), byte(v)
	return netip.PrefixFrom(netip.AddrFrom16(a), n.Bits())
}

// directorSpec is a director of the shaped labs: front (the standard lab's
// "front", the BGP lab's "edge"; same addresses), back and sync links,
// forwarding on.
func directorSpec(i int, front string) HostSpec {
	last := byte(11 + i)
	return HostSpec{
		Name: fmt.Sprintf("director%d", i+1),
		Links: []LinkSpec{
			{Iface: "eth0", Switch: front, Addrs: []netip.Prefix{hostAddr(FrontNet4, last), hostAddr(FrontNet6, last)}},
			{Iface: "eth1", Switch: "back", Addrs: []netip.Prefix{hostAddr(BackNet4, last), hostAddr(BackNet6, last)}},
			{Iface: "eth2", Switch: "sync", Addrs: []netip.Prefix{hostAddr(SyncNet4, last)}},
		},
		Sysctls: forwarding,
	}
}

var forwarding = []Sysctl{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv6.conf.all.forwarding", "1"},
}

// realSpec is real server i (0-based) of the shaped labs on the back net,
// never answering ARP for addresses on its loopback, with routes.
func realSpec(i int, routes []Route) HostSpec {
	last := byte(21 + i)
	return HostSpec{
		Name: fmt.Sprintf("real%d", i+1),
		Links: []LinkSpec{
			{Iface: "eth0", Switch: "back", Addrs: []netip.Prefix{hostAddr(BackNet4, last), hostAddr(BackNet6, last)}},
		},
		Sysctls: []Sysctl{
			{"net.ipv4.conf.all.arp_ignore", "1"},
			{"net.ipv4.conf.all.arp_announce", "2"},
		},
		Routes: routes,
	}
}

// StandardTopology returns the topology of the standard lab (without the
// options, which NewStandard applies afterwards).
func StandardTopology() Topology {
	t := Topology{
		Switches: []string{"front", "back", "sync"},
		Hosts:    []HostSpec{directorSpec(0, "front"), directorSpec(1, "front")},
	}
	for i := range 3 {
		t.Hosts = append(t.Hosts, realSpec(i, []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: BackGW4},
			{Dst: netip.MustParsePrefix("::/0"), Via: BackGW6},
		}))
	}
	t.Hosts = append(t.Hosts, HostSpec{
		Name: "client",
		Links: []LinkSpec{
			{Iface: "eth0", Switch: "front", Addrs: []netip.Prefix{hostAddr(FrontNet4, 100), hostAddr(FrontNet6, 100)}},
		},
	})
	return t
}

// NewStandard builds the standard lab (see Standard). Close it with Close.
func NewStandard(name string, opts StandardOptions) (*Standard, error) {
	return newShaped(name, func(l *Lab) (*Standard, error) { return l.applyStandard(opts) })
}

// NewStandardT is NewStandard for tests: skip unless root, fail on error,
// close in t.Cleanup.
func NewStandardT(t testing.TB, opts StandardOptions) *Standard {
	t.Helper()
	return newShapedT(t, "standard lab", func(l *Lab) (*Standard, error) { return l.applyStandard(opts) })
}

// newShaped makes a lab and gives it a shape (the standard lab, the BGP
// lab), closing it when that fails.
func newShaped[T any](name string, shape func(*Lab) (T, error)) (T, error) {
	l, err := New(name)
	if err != nil {
		var zero T
		return zero, err
	}
	s, err := shape(l)
	if err != nil {
		_ = l.Close()
	}
	return s, err
}

// newShapedT is newShaped for tests: skip unless root, fail t on error,
// close in t.Cleanup.
func newShapedT[T any](t testing.TB, what string, shape func(*Lab) (T, error)) T {
	t.Helper()
	l := NewT(t, t.Name())
	s, err := shape(l)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return s
}

// setUpReals gives real servers the options both shaped labs share: VIPs
// on loopback and, with httpPort, a web server each (into servers).
func setUpReals(reals []*Host, vips []netip.Prefix, httpPort int, servers []*HTTPServer) error {
	for i, r := range reals {
		for _, v := range vips {
			if err := r.AddAddr("lo", v); err != nil {
				return err
			}
		}
		if httpPort != 0 {
			srv, err := r.ServeHTTP(fmt.Sprintf(":%d", httpPort), nil)
			if err != nil {
				return err
			}
			servers[i] = srv
		}
	}
	return nil
}

func (l *Lab) applyStandard(opts StandardOptions) (*Standard, error) {
	if err := l.Apply(StandardTopology()); err != nil {
		return nil, err
	}
	s := &Standard{
		Lab:       l,
		Director1: l.Host("director1"),
		Director2: l.Host("director2"),
		Client:    l.Host("client"),
		Front:     l.Switch("front"),
		Back:      l.Switch("back"),
		Sync:      l.Switch("sync"),
	}
	for i := range s.Real {
		s.Real[i] = l.Host(fmt.Sprintf("real%d", i+1))
	}
	if err := setUpReals(s.Real[:], opts.RealVIPs, opts.HTTPPort, s.HTTP[:]); err != nil {
		return nil, err
	}
	return s, nil
}
