// Package bgptest runs a GoBGP router on loopback for tests of haldir's
// speaker: it accepts sessions from its peers and records every UPDATE it
// receives, in order, with its attributes.
//
// GoBGP keeps its route selection options in package variables that
// every BgpServer's start writes and every route change reads: in one
// process, start every speaker (routers and haldir's) while none carries
// routes, or the race detector reports the write. One director runs one
// speaker at a time, so only tests meet this.
package bgptest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Update is one prefix of one UPDATE as the router received it.
type Update struct {
	At          time.Time
	Prefix      netip.Prefix
	Withdraw    bool
	NextHop     netip.Addr
	Communities []uint32
	MED         uint32
	HasMED      bool
}

func (u Update) String() string {
	if u.Withdraw {
		return "withdraw " + u.Prefix.String()
	}
	var cs []string
	for _, c := range u.Communities {
		cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
	}
	return fmt.Sprintf("announce %s via %s med %d communities [%s]", u.Prefix, u.NextHop, u.MED, strings.Join(cs, " "))
}

// Router is a GoBGP speaker listening on Addr:Port for its peers.
type Router struct {
	Addr netip.Addr
	Port uint16
	ASN  uint32
	s    *server.BgpServer

	mu      sync.Mutex
	updates []Update
	states  []string // the peer session's states, in order
}

// Peer is the director a Router accepts.
type Peer struct {
	Addr     netip.Addr
	ASN      uint32
	Password string // TCP MD5; "" none
}

// Start runs a router with asn at addr on a free port for peers; it
// stops at the test's end.
func Start(t testing.TB, addr netip.Addr, asn uint32, peers ...Peer) *Router {
	t.Helper()
	port := freePort(t, addr)
	r := &Router{Addr: addr, Port: port, ASN: asn, s: server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), nil))}
	go r.s.Serve()
	t.Cleanup(r.s.Stop)
	err := r.s.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr.String(), ListenPort: int32(port), ListenAddresses: []string{addr.String()},
	}})
	if err != nil {
		t.Fatalf("bgptest: router %v: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err = r.s.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: r.onUpdate,
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type == apiutil.PEER_EVENT_STATE {
				r.mu.Lock()
				r.states = append(r.states, ev.Peer.State.SessionState.String())
				r.mu.Unlock()
			}
		},
	}, server.WatchUpdate(false, "", ""), server.WatchPeer())
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range peers {
		err = r.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: peer.Addr.String(), PeerAsn: peer.ASN, AuthPassword: peer.Password},
			Transport: &api.Transport{PassiveMode: true, LocalAddress: addr.String()},
			Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
			AfiSafis: []*api.AfiSafi{
				{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
				{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func freePort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func (r *Router) onUpdate(paths []*apiutil.Path, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		if u, ok := toUpdate(p, at); ok {
			r.updates = append(r.updates, u)
		}
	}
}

// toUpdate is p as an Update; false for what is not a prefix (End-of-RIB).
func toUpdate(p *apiutil.Path, at time.Time) (Update, bool) {
	if p.Nlri == nil {
		return Update{}, false
	}
	pfx, err := netip.ParsePrefix(p.Nlri.String())
	if err != nil {
		return Update{}, false
	}
	u := Update{At: at, Prefix: pfx, Withdraw: p.Withdrawal}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgppkt.PathAttributeNextHop:
			u.NextHop = a.Value
		case *bgppkt.PathAttributeMpReachNLRI:
			u.NextHop = a.Nexthop
		case *bgppkt.PathAttributeCommunities:
			u.Communities = slices.Clone(a.Value)
		case *bgppkt.PathAttributeMultiExitDisc:
			u.MED, u.HasMED = a.Value, true
		}
	}
	return u, true
}

// Updates are the prefixes received so far, in order.
func (r *Router) Updates() []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// States are the peer session's states so far ("BGP_FSM_ESTABLISHED"...).
func (r *Router) States() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

// Routes are the prefixes the router holds now (its RIB), each with its
// best path's attributes.
func (r *Router) Routes() map[netip.Prefix]Update {
	out := map[netip.Prefix]Update{}
	r.walk(func(u Update, best bool) {
		if best {
			out[u.Prefix] = u
		}
	})
	return out
}

// Recorded are the prefixes the UPDATEs received so far leave announced,
// each with its last announcement. The router's RIB (Routes) and this
// record are told apart by GoBGP, so a test that reads Updates after
// seeing a route waits for both; a session that ends leaves no withdraw
// here.
func (r *Router) Recorded() map[netip.Prefix]Update {
	out := map[netip.Prefix]Update{}
	for _, u := range r.Updates() {
		if u.Withdraw {
			delete(out, u.Prefix)
		} else {
			out[u.Prefix] = u
		}
	}
	return out
}

// Paths are every path the router holds now, from every peer, as
// Update.String, sorted: with several directors announcing a prefix,
// one per next hop.
func (r *Router) Paths() []string {
	var out []string
	r.walk(func(u Update, _ bool) { out = append(out, u.String()) })
	slices.Sort(out)
	return out
}

// walk calls f with every path of the router's RIB and whether it is
// the best.
func (r *Router) walk(f func(u Update, best bool)) {
	for _, fam := range []bgppkt.Family{bgppkt.RF_IPv4_UC, bgppkt.RF_IPv6_UC} {
		_ = r.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}, func(_ bgppkt.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if u, ok := toUpdate(p, time.Time{}); ok && !u.Withdraw {
					f(u, p.Best)
				}
			}
		})
	}
}

// Established says whether a session with a peer is up.
func (r *Router) Established() bool {
	up := false
	_ = r.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		up = up || p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	return up
}
