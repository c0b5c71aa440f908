package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/haldir-lb/haldir/conf"
)

// The cluster: every director gossips its own state (hashicorp/memberlist,
// encrypted with the shared key) and so each one holds a view of all of
// them, from which it reports two problems an operator must hear about at
// once: split brain (two live directors master for the same virtual
// router) and configuration drift (sections that must be equal are not).

// InstanceState is one VRRP instance as its director reports it.
type InstanceState struct {
	Name     string
	VRID     int
	Family   int // 4 or 6
	State    string
	Priority int
	// Source is the address the instance advertises from: a planned
	// handoff's old master waits for an advert from it (vrrp.EvYield).
	Source netip.Addr `json:",omitzero"`
	// Changed is when the instance last changed state, on the sender's
	// clock, and Why why: a drill's timeline shows the peers' side.
	Changed time.Time `json:",omitzero"`
	Why     string    `json:",omitempty"`
}

// NodeState is what a director tells the others about itself.
type NodeState struct {
	Name    string
	Version string
	// Config holds a short hash per configuration section that must be
	// the same on every director (conf.Spec.Hashes).
	Config map[string]string
	VRRP   []InstanceState
	// Incarnation tells one run of a director's process from the next:
	// its start time in nanoseconds. It orders before Seq, which starts
	// again at 1 in every run: without it, a director restarted after a
	// crash would be stale to the others until its new Seq passed the
	// old one, and they would keep its last state from before the crash
	// (a master that is now backup: a false split brain).
	Incarnation uint64
	// Seq orders a run's updates; a lower one is stale.
	Seq uint64
	// Maintenance: the director is in haldir maintenance (its VRRP
	// instances run at priority 1), for MaintenanceReason.
	Maintenance       bool   `json:",omitempty"`
	MaintenanceReason string `json:",omitempty"`
	// Sync is this director's side of connection sync; nil without
	// [sync] (and until the daemon's first refresh).
	Sync *ConnSync `json:",omitempty"`
	// BGPAnnounced are the prefixes the director announces over BGP now
	// (its [bgp] announcements whose virtual servers have quorum there).
	BGPAnnounced []netip.Prefix `json:",omitempty"`
	// Recent are the director's last events (VRRP state changes,
	// announcements, conn-sync roles), oldest first, at most MaxRecent,
	// on its own clock: a drill's timeline shows every director's side.
	Recent []Event `json:",omitempty"`
}

// Event is one thing a director did, when (its clock).
type Event struct {
	At   time.Time
	What string
}

// MaxRecent bounds NodeState.Recent.
const MaxRecent = 16

// ConnSync is what a director tells the others about connection sync, so
// that each can tell whether the backups receive what the master sends:
// the kernel sync daemon it runs and the connections its kernel holds for
// the virtual servers (active and inactive; on a backup they are the ones
// the master's sync daemon sent, so a backup far below the master is not
// receiving).
type ConnSync struct {
	Role  string // master, backup, master+backup (N-way: both all the time), or none
	Conns uint64
	// Services holds the count of each virtual server that holds any
	// connection, by its IPVS key ("TCP 192.0.2.1:80", "FWM 5").
	Services map[string]uint64 `json:",omitempty"`
	// At is when Conns was read, by the director's own clock.
	At time.Time
}

// ConnSyncRefresh is how often a director refreshes its ConnSync (the
// daemon's loop does): the counts the others see are this old at most,
// plus the gossip's delay. A refresh that changes nothing spreads nothing.
const ConnSyncRefresh = 5 * time.Second

// newer reports whether st supersedes old: a later run of the director
// always does, whatever its Seq; within one run, a higher Seq does.
func newer(st, old NodeState) bool {
	if st.Incarnation != old.Incarnation {
		return st.Incarnation > old.Incarnation
	}
	return st.Seq > old.Seq
}

// Member is one director in the view.
type Member struct {
	NodeState
	Addr   string
	Status string // alive, or gone (left or failed)
	Self   bool
	// Clock is the member's clock offset from this director's, from
	// memberlist's probes; nil until one was answered.
	Clock *ClockEstimate `json:",omitempty"`
}

// View is the cluster as this director sees it.
type View struct {
	Members  []Member
	Problems []string // split brain and drift, sorted; empty when all is well
	// Malformed counts gossiped states dropped because they did not decode.
	Malformed uint64
	// Since holds when each of Problems was first seen (it is reported
	// once it has lasted the hold time).
	Since map[string]time.Time `json:",omitempty"`
}

// Backups are the live directors other than this one whose instance of
// virtual router vrid (IP version family, 4 or 6) is backup: those a
// master can hand over to.
func (v View) Backups(vrid, family int) []Member {
	var out []Member
	for _, m := range v.Members {
		if m.Self || m.Status != "alive" {
			continue
		}
		for _, in := range m.VRRP {
			if in.VRID == vrid && in.Family == family && in.State == "backup" {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// ReadSecret reads the gossip encryption key: 16, 24 or 32 bytes (AES-128,
// -192, -256), given raw or in base64 (as `openssl rand -base64 32`
// writes it). Like ssh with its keys, it refuses a file others may read.
func ReadSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster.secret_file %s: mode %04o lets others read the key; chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	txt := bytes.TrimSpace(raw)
	if k, err := base64.StdEncoding.DecodeString(string(txt)); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(raw)) {
		return raw, nil
	}
	return nil, fmt.Errorf("cluster.secret_file %s: want a key of 16, 24 or 32 bytes, raw or base64; got %d bytes", path, len(raw))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// ClusterOptions are the parts of a cluster that are not in [cluster].
type ClusterOptions struct {
	Version string
	Logger  *slog.Logger
	// Fast shortens memberlist's timers for tests (a LAN's defaults take
	// seconds to notice a dead member).
	Fast bool
	// OnTakeOver receives the takeover requests other directors send
	// (SendTakeOver), on memberlist's goroutine: it must not block.
	OnTakeOver func(TakeOverRequest)
	// pushPull overrides memberlist's push/pull interval (tests).
	pushPull time.Duration
}

// Cluster is this director's membership in the gossip cluster.
type Cluster struct {
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	left  sync.Once
	// leaving is set when Leave begins: memberlist's own goroutines may
	// still gossip on the socket Shutdown closes (slogWriter).
	leaving atomic.Bool
	log     *slog.Logger
	name    string

	// hold is how long a problem must last before it is reported: gossip
	// about a director that has just been cut off is stale for a moment,
	// and a failover overlaps two masters for a moment; neither is a split
	// brain.
	hold time.Duration
	stop chan struct{}

	mu        sync.Mutex
	local     NodeState
	states    map[string]NodeState // by member name, the others' last state
	status    map[string]string    // member name -> alive or gone
	addrs     map[string]string
	pending   map[string]time.Time // problems seen, since when
	problems  []string             // problems reported (held long enough)
	malformed uint64
	clocks    map[string][]clockSample // by member name, the last probes (clock.go)

	onTakeOver func(TakeOverRequest)

	// big is the latest state too large for a gossip packet, waiting for
	// the sender (sendBigStates); bigReady signals it.
	big      []byte
	bigReady chan struct{}
}

// DefaultProblemHold is how long a split brain or drift must last before
// it is reported (ClusterOptions.Fast: a tenth of it).
const DefaultProblemHold = 3 * time.Second

// DefaultRejoinInterval is how often a director tries to join the
// configured peers and the members that went, while they are not alive
// (ClusterOptions.Fast: a twenty-fifth of it).
const DefaultRejoinInterval = 5 * time.Second

// newCluster is the Cluster before its memberlist exists. memberlist
// answers pings (and asks the delegate for broadcasts) from inside
// memberlist.Create, so everything the delegates use must be ready first:
// the broadcast queue counts members through started, set once Create
// has returned.
func newCluster(c conf.Cluster, initial NodeState, o ClusterOptions, started *atomic.Pointer[memberlist.Memberlist]) *Cluster {
	cl := &Cluster{log: o.Logger, name: c.Name, states: map[string]NodeState{}, status: map[string]string{}, addrs: map[string]string{},
		pending: map[string]time.Time{}, hold: DefaultProblemHold, stop: make(chan struct{}), onTakeOver: o.OnTakeOver,
		bigReady: make(chan struct{}, 1)}
	if o.Fast {
		cl.hold = DefaultProblemHold / 10
	}
	if cl.log == nil {
		cl.log = slog.Default()
	}
	initial.Name, initial.Version = c.Name, o.Version
	// The start time orders this run after every earlier one, provided
	// the clock has not stepped back past the previous run's start.
	initial.Incarnation, initial.Seq = uint64(time.Now().UnixNano()), 0
	cl.local = initial
	cl.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: 3, NumNodes: func() int {
		if ml := started.Load(); ml != nil {
			return ml.NumMembers()
		}
		return 1 // still starting: only this director
	}}
	return cl
}

// JoinCluster starts gossip on c.Bind and joins c.Peers. A peer that does
// not answer is logged, not fatal: the first director has no one to join.
func JoinCluster(c conf.Cluster, key []byte, initial NodeState, o ClusterOptions) (*Cluster, error) {
	var started atomic.Pointer[memberlist.Memberlist]
	cl := newCluster(c, initial, o, &started)
	mc := memberlist.DefaultLANConfig()
	rejoinEvery := DefaultRejoinInterval
	if o.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval, mc.ProbeTimeout = 100*time.Millisecond, 50*time.Millisecond
		mc.GossipInterval, mc.PushPullInterval = 20*time.Millisecond, time.Second
		mc.SuspicionMult = 2
		mc.GossipToTheDeadTime = time.Second
		rejoinEvery = DefaultRejoinInterval / 25
	}
	if o.pushPull > 0 {
		mc.PushPullInterval = o.pushPull
	}
	mc.Name = c.Name
	mc.BindAddr, mc.BindPort = c.Bind.Addr().String(), int(c.Bind.Port())
	adv := c.Advertise
	if !adv.IsValid() {
		adv = c.Bind
	}
	mc.AdvertiseAddr, mc.AdvertisePort = adv.Addr().String(), int(adv.Port())
	mc.SecretKey = key
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*delegate)(cl)
	mc.Events = (*events)(cl)
	mc.Ping = (*pingDelegate)(cl)
	mc.Logger = log.New(&slogWriter{log: cl.log, leaving: &cl.leaving}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: listening on %s: %w", c.Bind, err)
	}
	started.Store(ml)
	cl.ml = ml
	// Problems held back are reported when their time comes, even if no
	// gossip arrives then.
	go cl.every(cl.hold/4, cl.check)
	go cl.sendBigStates()
	if len(c.Peers) > 0 {
		if n, err := ml.Join(c.Peers); err != nil {
			cl.log.Warn("cluster: no peer answered yet; will keep trying", "peers", strings.Join(c.Peers, ","), "error", err)
		} else {
			cl.log.Info("cluster: joined", "peers_reached", n)
		}
	}
	go cl.every(rejoinEvery, func() { cl.rejoin(c.Peers) })
	return cl, nil
}

// every runs f every interval until the cluster is left: the one ticker
// loop for the cluster's periodic jobs.
func (cl *Cluster) every(interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-cl.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// rejoin tries (every rejoin interval) to join the configured peers and the
// members that went, each while it is not alive. memberlist stops probing
// a dead member and gossips to it only for GossipToTheDeadTime (30 s on a
// LAN), so two directors partitioned for longer, or a peer that started
// after this director and lists no peers itself, would otherwise never see
// each other again, and a split brain between them would go unreported.
func (cl *Cluster) rejoin(peers []string) {
	for _, addr := range cl.missing(peers) {
		if cl.join(addr, "rejoin") {
			cl.log.Info("cluster: rejoined", "addr", addr)
		}
	}
}

// missing lists the addresses to join: configured peers and members seen
// before whose address is not that of a live member (alive or suspect)
// nor this director's own. A peer given by host name is looked up each
// time, so a director that moved is found at its new address.
func (cl *Cluster) missing(peers []string) []string {
	live := map[netip.AddrPort]bool{}
	for _, n := range cl.ml.Members() {
		if a, ok := netip.AddrFromSlice(n.Addr); ok {
			live[netip.AddrPortFrom(a.Unmap(), n.Port)] = true
		}
	}
	cl.mu.Lock()
	cands := slices.Clone(peers)
	for name, st := range cl.status {
		if st == "gone" {
			cands = append(cands, cl.addrs[name])
		}
	}
	cl.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if !cl.isLive(c, live) {
			out = append(out, c)
		}
	}
	return out
}

// isLive says whether hostPort names a live member; a name that does not
// resolve counts as not live, so that joining it says why.
func (cl *Cluster) isLive(hostPort string, live map[netip.AddrPort]bool) bool {
	if ap, err := netip.ParseAddrPort(hostPort); err == nil {
		return live[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if live[netip.AddrPortFrom(a.Unmap(), uint16(p))] {
			return true
		}
	}
	return false
}

// maxGossipState is the largest state sent as a gossip broadcast: with
// memberlist's framing it must fit one UDP packet (1400 bytes).
const maxGossipState = 1000

// sendBigStates sends each state too large for gossip to every other
// member, reliably, one at a time (the latest), until the cluster is left.
func (cl *Cluster) sendBigStates() {
	for {
		select {
		case <-cl.stop:
			return
		case <-cl.bigReady:
		}
		cl.mu.Lock()
		b := cl.big
		cl.big = nil
		cl.mu.Unlock()
		if b == nil {
			continue
		}
		for _, n := range cl.ml.Members() {
			if n.Name == cl.name {
				continue
			}
			if err := cl.ml.SendReliable(n, b); err != nil {
				cl.log.Debug("cluster: state not sent; the next push/pull carries it", "member", n.Name, "error", err)
			}
		}
	}
}

// Leave tells the others this director is going, then stops gossip. Only
// the first call does anything.
func (cl *Cluster) Leave(timeout time.Duration) error {
	var err error
	cl.left.Do(func() {
		cl.leaving.Store(true)
		close(cl.stop)
		err = errors.Join(cl.ml.Leave(timeout), cl.ml.Shutdown())
	})
	return err
}

// Update changes this director's state and spreads it.
func (cl *Cluster) Update(f func(*NodeState)) {
	cl.mu.Lock()
	f(&cl.local)
	cl.local.Seq++
	b, err := json.Marshal(cl.local)
	cl.mu.Unlock()
	switch {
	case err != nil:
	case len(b) < maxGossipState:
		cl.queue.QueueBroadcast(&stateBroadcast{name: cl.name, msg: b})
	default:
		// Too large for one gossip packet (a few VRRP instances with
		// their reasons): sent to each member over TCP instead, or the
		// others would learn of the change only at the next push/pull,
		// 30 s away on a LAN. The latest state wins; a stale one that
		// arrives late is ignored by its Seq.
		cl.mu.Lock()
		cl.big = b
		cl.mu.Unlock()
		select {
		case cl.bigReady <- struct{}{}:
		default:
		}
	}
	cl.check()
}

// View returns the members, sorted by name, and the problems found.
func (cl *Cluster) View() View {
	// Before taking mu: memberlist calls our delegates with its own locks
	// held, so the order must never be mu, then memberlist.
	self := cl.ml.LocalNode().Address()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	v := View{Problems: slices.Clone(cl.problems), Malformed: cl.malformed}
	for _, p := range cl.problems {
		if v.Since == nil {
			v.Since = map[string]time.Time{}
		}
		v.Since[p] = cl.pending[p]
	}
	v.Members = append(v.Members, Member{NodeState: cl.local, Addr: self, Status: "alive", Self: true})
	for name, st := range cl.status {
		if name == cl.name {
			continue
		}
		m := Member{NodeState: cl.states[name], Addr: cl.addrs[name], Status: st, Clock: cl.clockOf(name)}
		m.Name = name
		v.Members = append(v.Members, m)
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return v
}

// check recomputes the problems and logs those that appear (once they
// have lasted cl.hold) or go.
func (cl *Cluster) check() { cl.checkAt(time.Now()) }

func (cl *Cluster) checkAt(t time.Time) {
	cl.mu.Lock()
	live := []NodeState{cl.local}
	for name, st := range cl.states {
		if cl.status[name] == "alive" {
			live = append(live, st)
		}
	}
	seen := Problems(live)
	var now []string
	for _, p := range seen {
		since, ok := cl.pending[p]
		if !ok {
			cl.pending[p], since = t, t
		}
		if t.Sub(since) >= cl.hold {
			now = append(now, p)
		}
	}
	for p := range cl.pending {
		if !slices.Contains(seen, p) {
			delete(cl.pending, p)
		}
	}
	before := cl.problems
	cl.problems = now
	cl.mu.Unlock()
	for _, p := range now {
		if !slices.Contains(before, p) {
			cl.log.Error("cluster: " + p)
		}
	}
	for _, p := range before {
		if !slices.Contains(now, p) {
			cl.log.Info("cluster: resolved: " + p)
		}
	}
}

// Problems finds split brain and drift among the live directors' states.
func Problems(live []NodeState) []string {
	var out []string
	type router struct{ vrid, family int }
	masters := map[router][]string{}
	for _, n := range live {
		for _, in := range n.VRRP {
			if in.State == "master" {
				k := router{in.VRID, in.Family}
				masters[k] = append(masters[k], n.Name+"/"+in.Name)
			}
		}
	}
	for k, who := range masters {
		if len(who) > 1 {
			slices.Sort(who)
			out = append(out, fmt.Sprintf("split brain: vrid %d (IPv%d) is master on %s", k.vrid, k.family, strings.Join(who, " and ")))
		}
	}
	sections := map[string]bool{}
	for _, n := range live {
		for s := range n.Config {
			sections[s] = true
		}
	}
	for s := range sections {
		byHash := map[string][]string{}
		for _, n := range live {
			byHash[n.Config[s]] = append(byHash[n.Config[s]], n.Name)
		}
		if len(byHash) < 2 {
			continue
		}
		var parts []string
		for h, names := range byHash {
			slices.Sort(names)
			if h == "" {
				h = "unknown"
			}
			parts = append(parts, strings.Join(names, ", ")+" ("+h+")")
		}
		slices.Sort(parts)
		out = append(out, fmt.Sprintf("config drift: %s differs: %s", s, strings.Join(parts, " vs ")))
	}
	slices.Sort(out)
	return out
}

// delegate is the Cluster's memberlist.Delegate.
type delegate Cluster

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == msgTakeOver {
		(*Cluster)(d).takeOverMsg(b[1:])
		return
	}
	(*Cluster)(d).merge(b, "gossip")
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, _ := json.Marshal(d.local)
	return b
}

func (d *delegate) MergeRemoteState(b []byte, _ bool) { (*Cluster)(d).merge(b, "push/pull") }

// merge takes a member's state unless it is stale or malformed (dropped
// and logged: memberlist already authenticated the sender).
func (cl *Cluster) merge(b []byte, via string) {
	var st NodeState
	if err := json.Unmarshal(b, &st); err != nil || st.Name == "" {
		cl.log.Warn("cluster: malformed state dropped", "via", via, "bytes", len(b), "error", err)
		cl.mu.Lock()
		cl.malformed++
		cl.mu.Unlock()
		return
	}
	cl.mu.Lock()
	if st.Name == cl.name {
		cl.mu.Unlock()
		return
	}
	if old, ok := cl.states[st.Name]; ok && !newer(st, old) {
		cl.mu.Unlock()
		return
	}
	cl.states[st.Name] = st
	cl.mu.Unlock()
	cl.check()
}

// events is the Cluster's memberlist.EventDelegate.
type events Cluster

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Cluster)(e).member(n, "alive") }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Cluster)(e).member(n, "alive") }

// NotifyLeave cannot tell a member that left from one that failed:
// memberlist v0.7.0 hands over a Node whose State it has not updated.
func (e *events) NotifyLeave(n *memberlist.Node) { (*Cluster)(e).member(n, "gone") }

func (cl *Cluster) member(n *memberlist.Node, status string) {
	cl.mu.Lock()
	was := cl.status[n.Name]
	cl.status[n.Name] = status
	if status == "gone" {
		// Whatever it said is over: a member that comes back is a new run
		// whose state starts afresh, and one that does not must not be
		// remembered as master.
		delete(cl.states, n.Name)
	}
	cl.addrs[n.Name] = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	cl.mu.Unlock()
	if was == "gone" && status == "alive" && n.Name != cl.name {
		// It took its state with it when it went. The run that is back
		// sent its state when it joined, unless memberlist declared the
		// old run dead only after that (a restart faster than failure
		// detection): ask for it now rather than show a member without
		// state until its next update.
		go cl.join(n.Address(), "fetching a returning member's state")
	}
	if was != status && n.Name != cl.name {
		lvl := slog.LevelInfo
		if status == "gone" {
			lvl = slog.LevelWarn
		}
		cl.log.Log(context.Background(), lvl, "cluster: member "+status, "member", n.Name, "addr", n.Address())
	}
	cl.check()
}

// join joins the member at addr, which also exchanges states with it (a
// memberlist push/pull), unless the cluster is stopping; a failure is
// logged at debug level under what, and join says whether it worked.
func (cl *Cluster) join(addr, what string) bool {
	select {
	case <-cl.stop:
		return false
	default:
	}
	if _, err := cl.ml.Join([]string{addr}); err != nil {
		cl.log.Debug("cluster: "+what, "addr", addr, "error", err)
		return false
	}
	return true
}

// stateBroadcast is one state update in memberlist's gossip queue; a newer
// one of the same director replaces it.
type stateBroadcast struct {
	name string
	msg  []byte
}

func (b *stateBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*stateBroadcast)
	return ok && ob.name == b.name
}
func (b *stateBroadcast) Message() []byte { return b.msg }
func (b *stateBroadcast) Finished()       {}

// slogWriter routes memberlist's own log lines (stdlib log, "[LEVEL]
// memberlist: ...") to slog at their level, so that its errors reach an
// operator who filters on level (journalctl -p err) and its chatter does
// not.
type slogWriter struct {
	log *slog.Logger
	// leaving, once true, turns a send on the closed socket into a
	// debug line: memberlist's gossip and probe goroutines race its
	// Shutdown, and a clean stop must not log errors.
	leaving *atomic.Bool
}

// memberlistLevels are the prefixes memberlist (and hashicorp's logutils)
// write, and what they mean to slog.
var memberlistLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE]", slog.LevelDebug},
	{"[DEBUG]", slog.LevelDebug},
	{"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError},
	{"[ERROR]", slog.LevelError},
}

// memberlistLevel splits a memberlist log line into its slog level and
// message; a line without a known prefix is kept whole, at info.
func memberlistLevel(line string) (slog.Level, string) {
	s := strings.TrimSpace(line)
	for _, l := range memberlistLevels {
		if rest, ok := strings.CutPrefix(s, l.prefix); ok {
			return l.level, strings.TrimSpace(rest)
		}
	}
	return slog.LevelInfo, s
}

func (w *slogWriter) Write(p []byte) (int, error) {
	lvl, msg := memberlistLevel(string(p))
	switch {
	case lvl > slog.LevelDebug && w.leaving != nil && w.leaving.Load() && strings.Contains(msg, net.ErrClosed.Error()):
		lvl = slog.LevelDebug
	case lvl > slog.LevelWarn && strings.Contains(msg, "i/o timeout"):
		// A peer that did not answer in time (stopped, starved, cut
		// off) is the peer's state, not an error of this daemon: the
		// cluster view marks it gone and reports what that breaks.
		// memberlist logs each timed-out probe at [ERR].
		lvl = slog.LevelWarn
	}
	w.log.Log(context.Background(), lvl, msg)
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
