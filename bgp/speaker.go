package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/fifo"
)

// GracefulShutdown is the well-known community GRACEFUL_SHUTDOWN
// (RFC 8326), 65535:0: a router that honours it lowers the route's
// preference to the lowest, so it moves the traffic to the other
// directors' equal routes before this one withdraws.
const GracefulShutdown uint32 = 0xFFFF0000

// DefaultGracefulWait is how long a route stands with GRACEFUL_SHUTDOWN
// before it is withdrawn. The router only has to receive one UPDATE and
// recompute one prefix's best paths: milliseconds on a healthy router. A
// second covers a busy one several hundred times over while keeping a
// maintenance or a stop short; a router that ignores the community loses
// nothing by the wait (the withdraw comes anyway).
const DefaultGracefulWait = time.Second

// connectRetry is how often a peer that is not established is dialled
// again (GoBGP's default is 120 s): a restarted router gets its routes
// back within seconds.
const connectRetry = 5 * time.Second

// Options are what the speaker needs besides its [bgp] configuration.
type Options struct {
	Logger *slog.Logger // default slog.Default()
	// OnPeer hears every peer session state change. It runs on GoBGP's
	// goroutine and must not block (the daemon queues it for its loop).
	OnPeer func(PeerEvent)
	// GracefulWait is how long a graceful withdraw announces
	// GRACEFUL_SHUTDOWN first (default DefaultGracefulWait).
	GracefulWait time.Duration
	// ReadPassword reads a peer's password_file; default ReadPasswordFile
	// (root-owned, not readable by others).
	ReadPassword func(path string) (string, error)
}

// PeerEvent is one peer's session state change.
type PeerEvent struct {
	Peer  netip.Addr
	State string // "established", "idle", "active", "connect", "opensent", "openconfirm"
	// Reason is why a session went down, as GoBGP tells it; "" otherwise.
	Reason string
	At     time.Time
}

// PeerStatus is one configured peer as the speaker sees it now.
type PeerStatus struct {
	Address netip.Addr
	ASN     uint32
	State   string
	// Up is since when the session is established; zero while it is not.
	Up time.Time
	// LocalAddress is the session's own end, the next hop its routes get.
	LocalAddress netip.Addr
	// BFD is the BFD session's state ("up", "down", "init", "admin down");
	// "" when the peer has no BFD.
	BFD string
}

// Speaker is an embedded GoBGP speaker: its peers, and the routes the
// Announcer's actions ask for. GoBGP runs on its own goroutines; the
// speaker's one goroutine (run) carries the actions out in order, so a
// graceful withdraw's wait never holds its caller.
type Speaker struct {
	log  *slog.Logger
	opts Options
	bgp  *server.BgpServer
	spec conf.BGPSpec
	// peers are the peers GoBGP has, by address, as it was given them.
	peers map[netip.Addr]*api.Peer

	cmds     *fifo.Queue[command]
	cancel   context.CancelFunc // ends the peer watch
	done     chan struct{}      // closed when run has ended
	stopOnce sync.Once
}

// command is one request to run: actions to carry out, or stop (its
// channel closed once every route is withdrawn).
type command struct {
	actions []Action
	stop    chan struct{}
}

// Start starts a speaker for spec: GoBGP with spec's ASN and router ID,
// listening on spec.ListenPort (0: not at all), with spec's peers. Nothing
// is announced until Apply. routerID is the router ID to use (see
// RouterID).
func Start(spec conf.BGPSpec, routerID netip.Addr, opts Options) (*Speaker, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.GracefulWait <= 0 {
		opts.GracefulWait = DefaultGracefulWait
	}
	if opts.ReadPassword == nil {
		opts.ReadPassword = ReadPasswordFile
	}
	if !routerID.Is4() {
		return nil, fmt.Errorf("bgp: router_id %v is not an IPv4 address", routerID)
	}
	// GoBGP logs every session step at info; haldir logs the state
	// changes itself (OnPeer), so only GoBGP's warnings and errors pass.
	gl := slog.New(minLevel{h: opts.Logger.Handler(), min: slog.LevelWarn})
	s := &Speaker{log: opts.Logger, opts: opts, spec: spec, peers: map[netip.Addr]*api.Peer{},
		bgp: server.NewBgpServer(server.LoggerOption(gl, nil)), cmds: fifo.New[command](), done: make(chan struct{})}
	go s.bgp.Serve()
	listen := int32(spec.ListenPort)
	if listen == 0 {
		listen = -1 // GoBGP: no listener
	}
	err := s.bgp.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: spec.ASN, RouterId: routerID.String(), ListenPort: listen,
	}})
	if err != nil {
		s.bgp.Stop()
		return nil, fmt.Errorf("bgp: starting the speaker (asn %d, router_id %v, listen_port %d): %w", spec.ASN, routerID, spec.ListenPort, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.bgp.WatchEvent(ctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.peerUpdate}, server.WatchPeer()); err != nil {
		cancel()
		s.bgp.Stop()
		return nil, fmt.Errorf("bgp: watching the peers: %w", err)
	}
	if err := s.SetPeers(spec.Peers); err != nil {
		cancel()
		s.bgp.Stop()
		return nil, err
	}
	go s.run()
	return s, nil
}

// Unreachable are the prefixes of spec no peer of their family would
// hear of: an IPv6 prefix with IPv4 peers only, or the other way round.
func Unreachable(spec conf.BGPSpec) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range spec.Announce {
		if !slices.ContainsFunc(spec.Peers, func(p conf.BGPPeerSpec) bool { return p.Address.Is6() == a.Prefix.Addr().Is6() }) {
			out = append(out, a.Prefix)
		}
	}
	return out
}

// NeedsRestart says whether going from old to next needs a new speaker:
// GoBGP takes its ASN, router ID and listener only at start. Everything
// else (peers, announcements) a running speaker takes.
func NeedsRestart(old, next conf.BGPSpec) bool {
	return old.ASN != next.ASN || old.RouterID != next.RouterID || old.ListenPort != next.ListenPort
}

// peerUpdate turns GoBGP's peer event into a PeerEvent; on GoBGP's
// goroutine.
func (s *Speaker) peerUpdate(ev *apiutil.WatchEventMessage_PeerEvent, at time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE || s.opts.OnPeer == nil {
		return
	}
	st := ev.Peer.State
	pe := PeerEvent{Peer: st.NeighborAddress, State: fsmState(st.SessionState), At: at}
	if st.SessionState != bgppkt.BGP_FSM_ESTABLISHED && st.DisconnectReason != api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
		pe.Reason = strings.ToLower(strings.TrimPrefix(st.DisconnectReason.String(), "DISCONNECT_REASON_"))
		if st.DisconnectMessage != "" {
			pe.Reason += ": " + st.DisconnectMessage
		}
	}
	s.opts.OnPeer(pe)
}

// fsmState is GoBGP's state as haldir names it: "established".
func fsmState(st bgppkt.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "BGP_FSM_"))
}

// SetPeers makes GoBGP's peers equal to peers: new ones added, removed
// ones deleted (their sessions end with a NOTIFICATION), changed ones
// (also a password file whose key changed) replaced. A peer whose
// password file is unusable is not added, or, when it runs, kept as it
// is; the error names it, and the other peers are set.
func (s *Speaker) SetPeers(peers []conf.BGPPeerSpec) error {
	var errs []error
	want := map[netip.Addr]*api.Peer{}
	for _, p := range peers {
		ap, err := s.apiPeer(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: peer %v: %w", p.Address, err))
			if old, ok := s.peers[p.Address]; ok {
				want[p.Address] = old // runs on as it is
			}
			continue
		}
		want[p.Address] = ap
	}
	for addr, old := range s.peers {
		if ap, ok := want[addr]; ok && proto.Equal(old, ap) {
			continue
		}
		if err := s.bgp.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: removing peer %v: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
	}
	for _, p := range peers {
		ap, ok := want[p.Address]
		if _, running := s.peers[p.Address]; running || !ok {
			continue
		}
		if err := s.bgp.AddPeer(context.Background(), &api.AddPeerRequest{Peer: ap}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: peer %v: %w", p.Address, err))
			continue
		}
		s.peers[p.Address] = ap
	}
	return errors.Join(errs...)
}

// apiPeer is p as GoBGP's peer.
func (s *Speaker) apiPeer(p conf.BGPPeerSpec) (*api.Peer, error) {
	hold := uint64(p.HoldTime / time.Second)
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if p.Address.Is6() {
		family.Afi = api.Family_AFI_IP6
	}
	ap := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(hold/3, 1), ConnectRetry: uint64(connectRetry / time.Second),
			// GoBGP waits 30 s after a reset by default. FRR's bgpd
			// re-registers a peer's BFD session with the local address
			// it learns when the session comes up, and GoBGP takes the
			// router's BFD going down meanwhile for a failure and
			// resets: measured against FRR 8.4, the routes came after
			// 35 s instead of 2 s (7.6 s for three directors with 1 s).
			IdleHoldTimeAfterReset: 1,
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		// The peer's own family only: a route's next hop is the
		// session's local address, which cannot be the next hop of the
		// other family's prefixes (an IPv6 prefix needs an IPv6 peer).
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.Multihop > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	if p.PasswordFile != "" {
		pw, err := s.opts.ReadPassword(p.PasswordFile)
		if err != nil {
			return nil, err
		}
		ap.Conf.AuthPassword = pw
	}
	if b := p.BFD; b != nil {
		ap.Bfd = &api.BfdPeerConfig{Enabled: true,
			DesiredMinimumTxInterval: uint32(b.MinTx / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.MinRx / time.Microsecond),
			DetectionMultiplier:      uint32(b.Multiplier)}
	}
	return ap, nil
}

// ReadPasswordFile reads a TCP MD5 key from path: the file must be owned
// by root and not readable or writable by group or others (mode 0600 or
// stricter), as the key is a secret. Trailing newlines are not part of
// the key.
func ReadPasswordFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return "", fmt.Errorf("password_file %s: owned by uid %d, must be owned by root", path, st.Uid)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return "", fmt.Errorf("password_file %s: mode %04o, must be 0600 or stricter (no access for group or others)", path, m)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password_file %s: empty", path)
	}
	if len(pw) > 80 { // TCP_MD5SIG_MAXKEYLEN
		return "", fmt.Errorf("password_file %s: the key is %d bytes, the kernel takes at most 80", path, len(pw))
	}
	return pw, nil
}

// Apply carries actions out in order, on the speaker's goroutine; it
// never blocks.
func (s *Speaker) Apply(actions []Action) {
	if len(actions) > 0 {
		s.cmds.Put(command{actions: slices.Clone(actions)})
	}
}

// Stop withdraws every route still announced, waiting for the graceful
// withdraws under way (bounded by the graceful wait), and stops GoBGP:
// its sessions end with a NOTIFICATION (cease), and the routers drop
// what is left at once.
// A second Stop returns at once.
func (s *Speaker) Stop() {
	s.stopOnce.Do(func() {
		stopped := make(chan struct{})
		s.cmds.Put(command{stop: stopped})
		<-stopped
		<-s.done
		s.cancel()
		s.bgp.Stop()
	})
}

// run owns what GoBGP announces: the routes (by prefix) and the graceful
// withdraws waiting for their time.
func (s *Speaker) run() {
	defer close(s.done)
	announced := map[netip.Prefix]Route{}
	pending := map[netip.Prefix]time.Time{} // graceful withdraws: when
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var stopping chan struct{}
	rearm := func() {
		timer.Stop()
		if len(pending) == 0 {
			return
		}
		next := time.Time{}
		for _, at := range pending {
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		timer.Reset(time.Until(next))
	}
	// sent is each established peer's count of UPDATEs sent before the
	// last withdraw while stopping (nil: none yet).
	var sent map[string]uint64
	withdrawDue := func(now time.Time) {
		for p, at := range pending {
			if !at.After(now) {
				if stopping != nil {
					sent = s.sentUpdates()
				}
				s.withdraw(announced[p])
				delete(announced, p)
				delete(pending, p)
			}
		}
	}
	for {
		select {
		case <-s.cmds.Ready():
			for _, c := range s.cmds.Take() {
				if c.stop != nil {
					stopping = c.stop
					continue
				}
				for _, a := range c.actions {
					s.do(a, announced, pending)
				}
			}
		case now := <-timer.C:
			withdrawDue(now)
		}
		if stopping != nil {
			// Nothing is announced after stop: what is left goes now,
			// except graceful withdraws, which keep their wait.
			for p, r := range announced {
				if _, ok := pending[p]; !ok {
					sent = s.sentUpdates()
					s.withdraw(r)
					delete(announced, p)
				}
			}
			if len(pending) == 0 {
				// GoBGP queues a withdraw for the session's writer,
				// and stopping it then drops what is queued: the
				// routers would learn of it only from the session's
				// end. The withdraw leaves first.
				s.waitSent(sent, flushWait)
				close(stopping)
				return
			}
		}
		rearm()
	}
}

// do carries one action out.
func (s *Speaker) do(a Action, announced map[netip.Prefix]Route, pending map[netip.Prefix]time.Time) {
	p := a.Route.Prefix
	switch {
	case a.Announce:
		delete(pending, p) // a graceful withdraw called off
		if err := s.announce(a.Route); err != nil {
			s.log.Error("bgp: announcing "+p.String(), "error", err)
			return
		}
		announced[p] = a.Route
	case !a.Graceful:
		if r, ok := announced[p]; ok {
			s.withdraw(r)
			delete(announced, p)
			delete(pending, p)
		}
	default:
		r, ok := announced[p]
		if _, waiting := pending[p]; !ok || waiting {
			return
		}
		gs := r
		gs.Communities = append(slices.Clone(r.Communities), GracefulShutdown)
		if err := s.announce(gs); err != nil {
			s.log.Error("bgp: announcing "+p.String()+" with GRACEFUL_SHUTDOWN; withdrawing now", "error", err)
			s.withdraw(r)
			delete(announced, p)
			return
		}
		pending[p] = time.Now().Add(s.opts.GracefulWait)
	}
}

// flushWait bounds how long a stop waits for its withdraws to be sent.
const flushWait = time.Second

// sentUpdates is the count of UPDATEs sent to each established peer.
func (s *Speaker) sentUpdates() map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), flushWait)
	defer cancel()
	out := map[string]uint64{}
	_ = s.bgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED {
			out[p.GetConf().GetNeighborAddress()] = p.GetState().GetMessages().GetSent().GetUpdate()
		}
	})
	return out
}

// waitSent waits until every peer of before that is still established
// has been sent an UPDATE more than before counts, at most limit.
func (s *Speaker) waitSent(before map[string]uint64, limit time.Duration) {
	if len(before) == 0 {
		return
	}
	deadline := time.Now().Add(limit)
	for {
		now := s.sentUpdates()
		done := true
		for peer, n := range before {
			if m, up := now[peer]; up && m <= n {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			s.log.Warn("bgp: stopping before every withdraw was sent; the routers drop the routes when the session ends")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Speaker) announce(r Route) error {
	path, err := apiPath(r, false)
	if err != nil {
		return err
	}
	_, err = s.bgp.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	return err
}

func (s *Speaker) withdraw(r Route) {
	path, err := apiPath(r, true)
	if err == nil {
		err = s.bgp.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
	}
	if err != nil {
		s.log.Error("bgp: withdrawing "+r.Prefix.String(), "error", err)
	}
}

// apiPath is r as a local path. Its next hop is unspecified: GoBGP then
// sends each peer the session's own local address as the next hop, so a
// director with sessions on two networks is reached on each one's.
func apiPath(r Route, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgppkt.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("prefix %v: %w", r.Prefix, err)
	}
	family, nh := bgppkt.RF_IPv4_UC, netip.IPv4Unspecified()
	if r.Prefix.Addr().Is6() {
		family, nh = bgppkt.RF_IPv6_UC, netip.IPv6Unspecified()
	}
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if family == bgppkt.RF_IPv4_UC {
		a, err := bgppkt.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		a, err := bgppkt.NewPathAttributeMpReachNLRI(family, []bgppkt.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	if r.MED != 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeMultiExitDisc(r.MED))
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgppkt.NewPathAttributeCommunities(r.Communities))
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

// Peers is every configured peer's session as GoBGP has it now; safe from
// any goroutine (GoBGP answers on its own). GoBGP's own call does not
// give up, so a speaker that does not answer before ctx ends is an error
// (its call is left to finish on its own).
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	type result struct {
		ps  []PeerStatus
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ps, err := s.listPeers(ctx)
		ch <- result{ps, err}
	}()
	select {
	case r := <-ch:
		return r.ps, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("bgp: the speaker did not answer: %w", ctx.Err())
	}
}

func (s *Speaker) listPeers(ctx context.Context) ([]PeerStatus, error) {
	var out []PeerStatus
	err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		ps := PeerStatus{}
		ps.Address, _ = netip.ParseAddr(p.GetConf().GetNeighborAddress())
		ps.ASN = p.GetConf().GetPeerAsn()
		ps.State = sessionState(p.GetState().GetSessionState())
		if ps.State == "established" {
			if up := p.GetTimers().GetState().GetUptime(); up != nil {
				ps.Up = up.AsTime()
			}
		}
		ps.LocalAddress, _ = netip.ParseAddr(p.GetTransport().GetLocalAddress())
		if p.GetBfd().GetEnabled() {
			ps.BFD = bfdState(p.GetState().GetBfdState().GetSessionState())
		}
		out = append(out, ps)
	})
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, err
}

// sessionState is GoBGP's API state as haldir names it: "established".
func sessionState(st api.PeerState_SessionState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "SESSION_STATE_"))
}

func bfdState(st api.BfdSessionState) string {
	switch st {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "admin down"
	}
	return "down"
}

// minLevel passes on the records of at least min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
