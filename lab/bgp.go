package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Addresses of the BGP lab (documentation ranges and 10.0.0.0/8 only, like
// the standard lab's; the edge, back and sync nets reuse the standard lab's
// front, back and sync numbering so a director is .11-.13 everywhere).
var (
	// ClientNet4/6: the client net behind the router.
	ClientNet4 = netip.MustParsePrefix("198.51.100.0/24")
	ClientNet6 = netip.MustParsePrefix("2001:db8:100::/64")
	// EdgeNet4/6: the router and the directors (FrontNet4/6 of the
	// standard lab).
	EdgeNet4 = FrontNet4
	EdgeNet6 = FrontNet6

	// RouterEdge4/6 is the router's address on the edge net: the
	// directors' BGP peer and default gateway.
	RouterEdge4 = netip.MustParseAddr("192.0.2.1")
	RouterEdge6 = netip.MustParseAddr("2001:db8:1::1")
	// RouterClient4/6 is the router's address on the client net: the
	// client's default gateway.
	RouterClient4 = netip.MustParseAddr("198.51.100.1")
	RouterClient6 = netip.MustParseAddr("2001:db8:100::1")
	// BGPClient4/6 is the client's address.
	BGPClient4 = netip.MustParseAddr("198.51.100.100")
	BGPClient6 = netip.MustParseAddr("2001:db8:100::100")

	// BGPVIP4 and BGPVIP6 are the service addresses the directors are
	// meant to announce (as /32 and /128), outside every lab net so the
	// router reaches them only through a BGP route (RFC 5737 TEST-NET-3).
	BGPVIP4 = netip.MustParseAddr("203.0.113.10")
	BGPVIP6 = netip.MustParseAddr("2001:db8:ff::10")
)

// ASNs of the BGP lab: the router's, and the one its neighbor statements
// expect of every director (private 16-bit ASNs, RFC 6996).
const (
	RouterASN   = 65000
	DirectorASN = 65010
)

// BGPOptions tune the BGP lab. The zero value is the lab with BFD at 100 ms
// x 3, IPv4 peering only, and no servers running.
type BGPOptions struct {
	// HTTPPort, if non-zero, starts Host.ServeHTTP on every real server on
	// that port, answering with the real server's name.
	HTTPPort int
	// RealVIPs are added to the real servers' loopback (LVS-DR, tunnels).
	RealVIPs []netip.Prefix
	// DirectorASN is the AS the router expects of the directors; 0 means
	// DirectorASN (eBGP). Set it to RouterASN for iBGP.
	DirectorASN uint32
	// BFDInterval and BFDMultiplier are the router's BFD timers toward
	// each director (transmit and receive interval, detect multiplier);
	// 0 means 100 ms and 3. NoBFD turns BFD off.
	BFDInterval   time.Duration
	BFDMultiplier int
	NoBFD         bool
	// IPv6 also configures the router to peer with each director over
	// IPv6 (edge addresses), for the IPv6 unicast family.
	IPv6 bool
	// NoRouter leaves FRR unstarted (BGP.RouterFRR is nil until
	// StartRouter).
	NoRouter bool
	// RealsViaDirectors routes the real servers by default over the three
	// directors (LVS-NAT) instead of via the router's back leg.
	RealsViaDirectors bool
}

func (o BGPOptions) directorASN() uint32 {
	if o.DirectorASN != 0 {
		return o.DirectorASN
	}
	return DirectorASN
}

func (o BGPOptions) bfd() (time.Duration, int) {
	iv, m := o.BFDInterval, o.BFDMultiplier
	if iv == 0 {
		iv = 100 * time.Millisecond
	}
	if m == 0 {
		m = 3
	}
	return iv, m
}

// BGP is the standard BGP lab: an upstream router running FRRouting with
// ECMP toward three directors, each director on a back net with three real
// servers, and a client behind the router:
//
//	client ─eth0─ [clients] ─eth1─ router ─eth0─ [edge] ─eth0─ director1 ─eth1─ [back] ─eth0─ real1, real2, real3
//	                                 │                 ├eth0─ director2 ─eth1┤
//	                                 │                 └eth0─ director3 ─eth1┤
//	                                 └eth2──────────────────────────────────┘
//	                              director1, director2, director3 ─eth2─ [sync]
//
// Addresses (directors .11-.13 on every net, reals .21-.23):
//
//	clients 198.51.100.0/24, 2001:db8:100::/64  router .1, client .100
//	edge    192.0.2.0/24, 2001:db8:1::/64       router .1, director1-3 .11-.13
//	back    10.0.1.0/24, 2001:db8:2::/64        router .1 (BackGW4/6), director1-3 .11-.13, real1-3 .21-.23
//	sync    10.0.0.0/24                         director1-3 .11-.13
//	VIP     203.0.113.10/32, 2001:db8:ff::10/128 (BGPVIP4/6: for the directors to announce)
//
// The router (AS 65000) runs zebra, bgpd and bfdd with a neighbor statement
// for every director's edge address (AS 65010 by default), BFD toward each,
// `maximum-paths 16` (eBGP and iBGP) and L4 multipath hashing
// (fib_multipath_hash_policy=1), so flows to an address three directors
// announce spread over them. It also connects out every second, so
// directors that only connect out and directors that only listen both
// peer. Routes tagged GRACEFUL_SHUTDOWN (65535:0) get local preference 0,
// which takes them out of the multipath set before their withdrawal
// (RFC 8326). The directors forward and route by default via the router.
// The real servers route by default via the router's back leg, as LVS-DR
// and tunnelling want (a reply from the VIP must not pass a director: the
// VIP is local there, so the director would drop it as a martian); with
// RealsViaDirectors, for LVS-NAT, over all three directors instead (one
// ECMP route: a reply must pass a director that knows its connection).
type BGP struct {
	*Lab
	Router   *Host
	Director [3]*Host
	Real     [3]*Host
	Client   *Host
	// Clients is the net of the client and the router's client side; Edge
	// that of the router and the directors.
	Clients, Edge, Back, Sync *Switch
	// RouterFRR runs the router's daemons (nil with NoRouter until
	// StartRouter).
	RouterFRR *FRR
	// HTTP holds the real servers' web servers when HTTPPort was set.
	HTTP [3]*HTTPServer

	opts BGPOptions
}

// Directors returns the three directors.
func (b *BGP) Directors() []*Host { return b.Director[:] }

// Reals returns the three real servers.
func (b *BGP) Reals() []*Host { return b.Real[:] }

// DirectorEdge4 returns director i's (0-based) IPv4 address on the edge
// net: its BGP session address and the router's next hop toward it.
func DirectorEdge4(i int) netip.Addr { return hostAddr(EdgeNet4, byte(11+i)).Addr() }

// DirectorEdge6 is DirectorEdge4 for IPv6.
func DirectorEdge6(i int) netip.Addr { return hostAddr(EdgeNet6, byte(11+i)).Addr() }

// DirectorEdges4 returns the three directors' IPv4 edge addresses.
func DirectorEdges4() []netip.Addr {
	return []netip.Addr{DirectorEdge4(0), DirectorEdge4(1), DirectorEdge4(2)}
}

// DirectorEdges6 returns the three directors' IPv6 edge addresses.
func DirectorEdges6() []netip.Addr {
	return []netip.Addr{DirectorEdge6(0), DirectorEdge6(1), DirectorEdge6(2)}
}

// BGPTopology returns the topology of the BGP lab (without FRR and the
// options, which NewBGP applies afterwards).
func BGPTopology() Topology {
	t := Topology{Switches: []string{"clients", "edge", "back", "sync"}}
	t.Hosts = append(t.Hosts, HostSpec{
		Name: "router",
		Links: []LinkSpec{
			{Iface: "eth0", Switch: "edge", Addrs: []netip.Prefix{netip.PrefixFrom(RouterEdge4, 24), netip.PrefixFrom(RouterEdge6, 64)}},
			{Iface: "eth1", Switch: "clients", Addrs: []netip.Prefix{netip.PrefixFrom(RouterClient4, 24), netip.PrefixFrom(RouterClient6, 64)}},
			{Iface: "eth2", Switch: "back", Addrs: []netip.Prefix{netip.PrefixFrom(BackGW4, 24), netip.PrefixFrom(BackGW6, 64)}},
		},
		Sysctls: append(slices.Clone(forwarding),
			// L4 hashing: flows of one client spread over the next hops.
			Sysctl{"net.ipv4.fib_multipath_hash_policy", "1"},
			Sysctl{"net.ipv6.fib_multipath_hash_policy", "1"},
			// Replies from the VIP arrive on the back leg (LVS-DR) while
			// the route to the VIP points at the edge: no reverse path
			// filter, whatever a new namespace inherits from the host's
			// (the effective value is the larger of all's and the
			// interface's).
			Sysctl{"net.ipv4.conf.all.rp_filter", "0"},
			Sysctl{"net.ipv4.conf.eth0.rp_filter", "0"},
			Sysctl{"net.ipv4.conf.eth1.rp_filter", "0"},
			Sysctl{"net.ipv4.conf.eth2.rp_filter", "0"},
		),
	})
	for i := range 3 {
		d := directorSpec(i, "edge")
		d.Routes = []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: RouterEdge4},
			{Dst: netip.MustParsePrefix("::/0"), Via: RouterEdge6},
		}
		t.Hosts = append(t.Hosts, d)
	}
	for i := range 3 {
		// applyBGP adds the default routes (over all directors with
		// RealsViaDirectors: a Route has one gateway).
		t.Hosts = append(t.Hosts, realSpec(i, nil))
	}
	t.Hosts = append(t.Hosts, HostSpec{
		Name: "client",
		Links: []LinkSpec{
			{Iface: "eth0", Switch: "clients", Addrs: []netip.Prefix{netip.PrefixFrom(BGPClient4, 24), netip.PrefixFrom(BGPClient6, 64)}},
		},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: RouterClient4},
			{Dst: netip.MustParsePrefix("::/0"), Via: RouterClient6},
		},
	})
	return t
}

// NewBGP builds the BGP lab (see BGP) and starts the router's FRR, waiting
// until its daemons answer (not for any session: no director speaks BGP
// yet). Close it with Close.
func NewBGP(name string, opts BGPOptions) (*BGP, error) {
	return newShaped(name, func(l *Lab) (*BGP, error) { return l.applyBGP(opts) })
}

// NewBGPT is NewBGP for tests: skip unless root, skip when FRR is not
// installed, fail on error, close in t.Cleanup.
func NewBGPT(t testing.TB, opts BGPOptions) *BGP {
	t.Helper()
	SkipIfNotRoot(t)
	if err := FRRInstalled(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	return newShapedT(t, "BGP lab", func(l *Lab) (*BGP, error) { return l.applyBGP(opts) })
}

func (l *Lab) applyBGP(opts BGPOptions) (*BGP, error) {
	if err := l.Apply(BGPTopology()); err != nil {
		return nil, err
	}
	b := &BGP{
		Lab:     l,
		Router:  l.Host("router"),
		Client:  l.Host("client"),
		Clients: l.Switch("clients"),
		Edge:    l.Switch("edge"),
		Back:    l.Switch("back"),
		Sync:    l.Switch("sync"),
		opts:    opts,
	}
	var gw4, gw6 []netip.Addr
	for i := range b.Director {
		b.Director[i] = l.Host(fmt.Sprintf("director%d", i+1))
		gw4 = append(gw4, hostAddr(BackNet4, byte(11+i)).Addr())
		gw6 = append(gw6, hostAddr(BackNet6, byte(11+i)).Addr())
	}
	if !opts.RealsViaDirectors {
		gw4, gw6 = []netip.Addr{BackGW4}, []netip.Addr{BackGW6}
	}
	for i := range b.Real {
		r := l.Host(fmt.Sprintf("real%d", i+1))
		b.Real[i] = r
		if err := r.AddMultipathRoute(netip.MustParsePrefix("0.0.0.0/0"), gw4...); err != nil {
			return nil, err
		}
		if err := r.AddMultipathRoute(netip.MustParsePrefix("::/0"), gw6...); err != nil {
			return nil, err
		}
	}
	if err := setUpReals(b.Real[:], opts.RealVIPs, opts.HTTPPort, b.HTTP[:]); err != nil {
		return nil, err
	}
	if !opts.NoRouter {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.StartRouter(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// StartRouter starts the router's FRR (zebra, bgpd, bfdd) with
// RouterConfig when it was never started; after that use RouterFRR's
// Start, Stop and Restart.
func (b *BGP) StartRouter(ctx context.Context) error {
	if b.RouterFRR != nil {
		return fmt.Errorf("BGP lab %s: the router's FRR is already started", b.ID())
	}
	f, err := b.Router.StartFRR(ctx, b.RouterConfig())
	if err != nil {
		return fmt.Errorf("BGP lab %s: router: %w", b.ID(), err)
	}
	b.RouterFRR = f
	return nil
}

// bfdProfile is the name of the BFD profile in the lab's FRR configurations.
const bfdProfile = "lab"

// bfddConfig is a bfdd configuration with one profile for the given timers.
func bfddConfig(interval time.Duration, mult int) string {
	ms := interval.Milliseconds()
	return fmt.Sprintf("bfd\n profile %s\n  transmit-interval %d\n  receive-interval %d\n  detect-multiplier %d\n exit\nexit\n", bfdProfile, ms, ms, mult)
}

// neighbors writes the neighbor statements of a lab router bgp block:
// remote AS, a connect retry of one second (sessions come back at once
// after a restart on either side) and, unless NoBFD, the BFD profile.
func (b *BGP) neighbors(w *strings.Builder, peers []netip.Addr, asn uint32) {
	for _, p := range peers {
		fmt.Fprintf(w, " neighbor %v remote-as %d\n neighbor %v timers connect 1\n", p, asn, p)
		if !b.opts.NoBFD {
			fmt.Fprintf(w, " neighbor %v bfd profile %s\n", p, bfdProfile)
		}
	}
}

// frrConfig completes a lab FRR configuration around bgpd's: zebra's, and
// bfdd's with the lab's profile unless NoBFD.
func (b *BGP) frrConfig(bgpd string) FRRConfig {
	c := FRRConfig{Zebra: zebraConfig, BGPD: bgpd}
	if !b.opts.NoBFD {
		c.BFDD = bfddConfig(b.opts.bfd())
	}
	return c
}

// zebraConfig makes zebra install multipath routes as plain RTA_MULTIPATH
// routes (not nexthop objects), which Host.NextHops reads.
const zebraConfig = "no zebra nexthop kernel enable\n"

// RouterConfig returns the FRR configuration of the lab's router.
func (b *BGP) RouterConfig() FRRConfig {
	var bgp strings.Builder
	fmt.Fprintf(&bgp, `bgp community-list standard GSHUT seq 5 permit graceful-shutdown
route-map FROM-DIRECTOR permit 10
 match community GSHUT
 set local-preference 0
 set ipv6 next-hop prefer-global
exit
route-map FROM-DIRECTOR permit 20
 set ipv6 next-hop prefer-global
exit
router bgp %d
 bgp router-id %v
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 timers bgp 3 9
`, RouterASN, RouterEdge4)
	var peers4, peers6 []netip.Addr
	for i := range b.Director {
		peers4 = append(peers4, DirectorEdge4(i))
		if b.opts.IPv6 {
			peers6 = append(peers6, DirectorEdge6(i))
		}
	}
	b.neighbors(&bgp, append(append([]netip.Addr{}, peers4...), peers6...), b.opts.directorASN())
	for _, af := range []struct {
		name  string
		peers []netip.Addr
	}{{"ipv4", peers4}, {"ipv6", peers6}} {
		if len(af.peers) == 0 {
			continue
		}
		fmt.Fprintf(&bgp, " address-family %s unicast\n  maximum-paths 16\n  maximum-paths ibgp 16\n", af.name)
		for _, p := range af.peers {
			fmt.Fprintf(&bgp, "  neighbor %v activate\n  neighbor %v route-map FROM-DIRECTOR in\n", p, p)
		}
		bgp.WriteString(" exit-address-family\n")
	}
	bgp.WriteString("exit\n")
	return b.frrConfig(bgp.String())
}

// StandInConfig returns an FRR configuration that makes director i
// (0-based) announce prefixes to the router like a healthy haldir would:
// bgpd peering with the router from the director's edge address (IPv4
// prefixes over the IPv4 session, IPv6 ones over IPv6, which needs
// BGPOptions.IPv6), with the lab's BFD timers, connecting out every second.
// It is for testing the lab, and for comparing haldir with a plain routing
// daemon.
func (b *BGP) StandInConfig(i int, prefixes ...netip.Prefix) FRRConfig {
	var bgp strings.Builder
	fmt.Fprintf(&bgp, `router bgp %d
 bgp router-id %v
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 timers bgp 3 9
`, b.opts.directorASN(), DirectorEdge4(i))
	routers := []netip.Addr{RouterEdge4}
	if b.opts.IPv6 {
		routers = append(routers, RouterEdge6)
	}
	b.neighbors(&bgp, routers, RouterASN)
	for _, r := range routers {
		af := "ipv4"
		if r.Is6() {
			af = "ipv6"
		}
		fmt.Fprintf(&bgp, " address-family %s unicast\n  neighbor %v activate\n", af, r)
		for _, p := range prefixes {
			if p.Addr().Is6() == r.Is6() {
				fmt.Fprintf(&bgp, "  network %v\n", p.Masked())
			}
		}
		bgp.WriteString(" exit-address-family\n")
	}
	bgp.WriteString("exit\n")
	return b.frrConfig(bgp.String())
}

// StartStandIns starts FRR in every director with StandInConfig announcing
// prefixes, and waits until the router has a session (and, with BFD, a BFD
// session) with each, or ctx ends.
func (b *BGP) StartStandIns(ctx context.Context, prefixes ...netip.Prefix) ([3]*FRR, error) {
	var fs [3]*FRR
	for i, d := range b.Director {
		f, err := d.StartFRR(ctx, b.StandInConfig(i, prefixes...))
		if err != nil {
			return fs, fmt.Errorf("BGP lab %s: stand-in: %w", b.ID(), err)
		}
		fs[i] = f
	}
	if b.RouterFRR == nil {
		return fs, nil
	}
	peers := DirectorEdges4()
	if b.opts.IPv6 {
		peers = append(peers, DirectorEdges6()...)
	}
	if err := b.RouterFRR.WaitBGPEstablished(ctx, peers...); err != nil {
		return fs, err
	}
	if !b.opts.NoBFD {
		if err := b.RouterFRR.WaitBFDUp(ctx, peers...); err != nil {
			return fs, err
		}
	}
	return fs, nil
}
