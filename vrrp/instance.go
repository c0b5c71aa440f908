package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options are the parts of an Instance that are not configuration.
type Options struct {
	// Do runs f with the calling OS thread in the network namespace the
	// instance works in (lab.Host.Do, for tests); nil runs f as it is.
	// Every socket is opened inside it and stays in that namespace.
	Do func(f func() error) error
	// NotifyTimeout kills a notify command that runs longer (default 10s).
	NotifyTimeout time.Duration
	// OnStateChange, when set, is called on the instance's goroutine after
	// every transition; it must return quickly (hand off to a channel).
	OnStateChange func(StateChange)
	Logger        *slog.Logger // default slog.Default()
}

// StateChange is one transition of an instance.
type StateChange struct {
	Instance string
	From, To State
	Priority uint8 // effective priority at the time
	Reason   string
	At       time.Time
}

// Status is a snapshot of an instance for the status command and metrics.
type Status struct {
	Name           string
	State          State
	Priority       uint8 // effective
	BasePriority   int   // configured
	Source         netip.Addr
	MasterAddr     netip.Addr // current master as last seen (ours when master)
	MasterInterval time.Duration
	AdvertsSent    uint64
	AdvertsRecv    uint64 // accepted by Decode
	SendErrors     uint64
	// SendErrorReasons counts the send errors per reason (SendErrorReason).
	SendErrorReasons map[string]uint64 `json:",omitempty"`
	// PriorityChanges counts the changes of the effective priority per
	// cause: "track_script:chk", "track_interface:eth1",
	// "track_virtual_server:web", "reload". A change with two causes counts
	// for each.
	PriorityChanges map[string]uint64 `json:",omitempty"`
	Transitions     uint64
	Drops           map[string]uint64 // per DropReason name
	Ignored         map[string]uint64 // per IgnoreReason
	LastChange      time.Time
	// Failing describes the tracked items now failing, which lower the
	// priority by their weight or hold the instance in Fault:
	// "track_script chk failing -10", "track_interface eth1 down (fault)",
	// "track_virtual_server web down -50", "interface eth0 down (fault)",
	// "unicast_source 10.0.0.1 is not an address of eth0 (it is on eth1)
	// (fault)".
	Failing []string `json:",omitempty"`
	// VMACInterface is the macvlan carrying the virtual MAC (use_vmac).
	VMACInterface string `json:",omitempty"`
}

// Instance drives one Machine with real sockets: raw VRRP, netlink for the
// VIPs and tracked links, ARP/NDP announcements, notify and track commands.
//
// Adverts and announcements leave with the interface's own MAC address, so
// peers learn the new master's MAC from the gratuitous ARP / unsolicited NA
// sent on takeover; with use_vmac they leave from a macvlan with the VRRP
// virtual MAC (VirtualMAC) that carries the VIPs, so the MAC of a VIP never
// changes (see vmac).
//
// The VIPs are ordinary local addresses, so the master always accepts
// traffic to them (accept_mode = true, the only mode conf accepts): IPVS
// takes the virtual servers' traffic in LOCAL_IN, after local delivery.
type Instance struct {
	cfg    conf.VRRPInstance
	opts   Options
	log    *slog.Logger
	family int // 4 or 6
	vips   []netip.Addr
	// excluded are excluded_addresses: added, removed and announced with
	// the VIPs, never in the adverts; either family.
	excluded []netip.Addr
	expect   Expect
	// addrs is the Expect the reader checks adverts against: expect with
	// the virtual addresses a reload may change in place.
	addrs atomic.Pointer[Expect]
	// pending is the configuration a reload handed over (Reconfigure),
	// taken by Run's loop on a kick.
	pendingMu sync.Mutex
	pending   *conf.VRRPInstance
	reconf    chan struct{}
	drops     DropCounters
	group     *SyncGroup
	// siblings are the VRIDs of the other instances on the same link and
	// family (NewSet; a reload replaces them while the reader runs).
	siblings atomic.Pointer[map[uint8]bool]
	groupCh  chan Event
	vs       *vsInputs
	stopped  chan struct{} // closed when Run returns
	ran      atomic.Bool
	// ping carries Ping's replies to Run's loop (the daemon's watchdog).
	ping chan chan struct{}

	mu     sync.Mutex
	status Status
}

// NewInstance checks cfg and returns an instance ready to Run. It does no
// I/O. cfg is expected to have passed conf's validation; the checks here
// are the ones the protocol itself needs.
func NewInstance(cfg conf.VRRPInstance, opts Options) (*Instance, error) {
	in := &Instance{cfg: cfg, opts: opts, log: opts.Logger, groupCh: make(chan Event, 16), vs: newVSInputs(), stopped: make(chan struct{}), ping: make(chan chan struct{})}
	if in.log == nil {
		in.log = slog.Default()
	}
	in.log = in.log.With("vrrp_instance", cfg.Name)
	where := fmt.Sprintf("vrrp instance %q", cfg.Name)
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%s: no interface", where)
	}
	if cfg.VRID < 1 || cfg.VRID > 255 {
		return nil, fmt.Errorf("%s: vrid %d, want 1..255", where, cfg.VRID)
	}
	if len(cfg.VirtualAddresses) == 0 {
		return nil, fmt.Errorf("%s: no virtual_addresses", where)
	}
	if cfg.UseVMAC && (cfg.VMACInterface == "" || cfg.VMACInterface == cfg.Interface) {
		return nil, fmt.Errorf("%s: use_vmac needs a vmac_interface other than %q", where, cfg.Interface)
	}
	for i, p := range cfg.VirtualAddresses {
		f := Family(p.Addr())
		if i == 0 {
			in.family = f
		} else if f != in.family {
			return nil, fmt.Errorf("%s: virtual_addresses[%d] %v: all addresses of an instance must be of one family", where, i, p)
		}
		in.vips = append(in.vips, p.Addr().Unmap())
	}
	for _, p := range cfg.ExcludedAddresses {
		in.excluded = append(in.excluded, p.Addr().Unmap())
	}
	if cfg.Version == 2 && in.family == 6 {
		return nil, fmt.Errorf("%s: version 2 is IPv4 only (RFC 3768); use version 3 for IPv6", where)
	}
	e := Expect{Version: cfg.Version, Addrs: in.vips, Interval: cfg.AdvertInterval.D()}
	for i, p := range cfg.UnicastPeers {
		if p.Is4() != (in.family == 4) {
			return nil, fmt.Errorf("%s: unicast_peers[%d] %v is not of the virtual addresses' family", where, i, p)
		}
		e.Peers = append(e.Peers, p.Unmap())
	}
	if cfg.Auth != nil && cfg.Version == 2 {
		switch cfg.Auth.Type {
		case "", "none":
		case "pass":
			if len(cfg.Auth.Password) > 8 {
				return nil, fmt.Errorf("%s: auth password longer than 8 bytes", where)
			}
			e.AuthType, e.AuthData = AuthPass, Password(cfg.Auth.Password)
		default:
			return nil, fmt.Errorf("%s: auth type %q, want none or pass", where, cfg.Auth.Type)
		}
	}
	in.expect = e
	in.addrs.Store(&e)
	in.reconf = make(chan struct{}, 1)
	// Check the rest (version, priority, interval) by building a machine
	// with a placeholder address and a trial advert.
	if _, err := NewMachine(in.machineConfig(netip.IPv4Unspecified())); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	trial := in.advert(0)
	src, dst := netip.MustParseAddr("192.0.2.1"), GroupV4
	if in.family == 6 {
		src, dst = netip.MustParseAddr("fe80::1"), GroupV6
	}
	if _, err := trial.Marshal(src, dst); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	in.status = Status{Name: cfg.Name, BasePriority: cfg.Priority, Priority: uint8(min(max(cfg.Priority, 0), 255)), Ignored: map[string]uint64{}}
	return in, nil
}

// SetVirtualServerUp reports whether the virtual server called name has
// its quorum on this director (director.Options.OnQuorum). Instances that
// track it (track_virtual_server) apply its weight while it does not; until
// the first report it counts as lost. It never blocks and may be called
// before Run and from any goroutine; names the instance does not track are
// ignored.
func (in *Instance) SetVirtualServerUp(name string, up bool) {
	for _, t := range in.cfg.TrackVirtualSrvs {
		if t.Name == name {
			in.vs.set(name, up)
			return
		}
	}
}

// Name returns the configured instance name.
func (in *Instance) Name() string { return in.cfg.Name }

// Drops returns the instance's drop counters (for the metrics exporter).
func (in *Instance) Drops() *DropCounters { return &in.drops }

func (in *Instance) machineConfig(primary netip.Addr) MachineConfig {
	return MachineConfig{
		Version:      in.cfg.Version,
		Priority:     in.cfg.Priority,
		Interval:     in.cfg.AdvertInterval.D(),
		Preempt:      in.cfg.Preempt,
		PreemptDelay: in.cfg.PreemptDelay.D(),
		Primary:      primary,
	}
}

func (in *Instance) advert(prio uint8) Advert {
	return Advert{
		Version: in.cfg.Version, VRID: uint8(in.cfg.VRID), Priority: prio,
		Interval: in.cfg.AdvertInterval.D(), AuthType: in.expect.AuthType, AuthData: in.expect.AuthData,
		Addrs: in.vips,
	}
}

// Status returns a snapshot.
func (in *Instance) Status() Status {
	in.mu.Lock()
	s := in.status
	s.Failing = slices.Clone(in.status.Failing)
	s.SendErrorReasons = maps.Clone(in.status.SendErrorReasons)
	s.PriorityChanges = maps.Clone(in.status.PriorityChanges)
	s.Ignored = make(map[string]uint64, len(in.status.Ignored))
	for k, v := range in.status.Ignored {
		s.Ignored[k] = v
	}
	in.mu.Unlock()
	s.Drops = in.drops.Snapshot()
	return s
}

// runtime is what Run sets up: sockets and helpers in the target namespace.
type runtime struct {
	ifi      *net.Interface
	src      netip.Addr
	conn     advertConn // receives, and sends unless xmit is another socket
	xmit     advertConn // sends adverts: conn, or the virtual MAC's macvlan
	vmac     *vmac      // use_vmac
	vips     *vipManager
	announce *announcer
	path     *pathWatch
	linkStop func()
	initial  []trackUpdate
	log      *slog.Logger
}

func (in *Instance) do(f func() error) error {
	if in.opts.Do != nil {
		return in.opts.Do(f)
	}
	return f()
}

func (in *Instance) open(ctx context.Context, trackCh chan<- trackUpdate) (*runtime, error) {
	rt := &runtime{log: in.log}
	err := in.do(func() error {
		var err error
		rt.ifi, err = net.InterfaceByName(in.cfg.Interface)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: interface %q: %w", in.cfg.Name, in.cfg.Interface, err)
		}
		// NETLINK_ROUTE only: NewHandle() with no family also opens XFRM
		// and NETFILTER sockets, which fail ("protocol not supported") on
		// hosts that cannot load xfrm_user or nfnetlink.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: netlink: %w", in.cfg.Name, err)
		}
		rt.vips = &vipManager{h: h, ifindex: rt.ifi.Index, placed: map[netip.Addr]placement{}}
		rt.vips.vips = managed(in.cfg)
		// address_options: addresses on other interfaces are announced
		// there, by an announcer per interface.
		elsewhere := map[string][]netip.Addr{}
		var others []string
		for _, o := range in.cfg.AddressOptions {
			pl := placement{label: o.Label}
			if o.Interface != "" {
				ifi, err := net.InterfaceByName(o.Interface)
				if err != nil {
					return fmt.Errorf("vrrp instance %q: address_options %v: interface %q: %w", in.cfg.Name, o.Address, o.Interface, err)
				}
				pl.ifi = ifi
				if elsewhere[o.Interface] == nil {
					others = append(others, o.Interface)
				}
				elsewhere[o.Interface] = append(elsewhere[o.Interface], o.Address.Unmap())
			}
			rt.vips.placed[o.Address.Unmap()] = pl
		}
		if rt.src, err = in.source(ctx, h, rt.ifi); err != nil {
			return err
		}
		multicast := len(in.cfg.UnicastPeers) == 0
		if rt.conn, err = listenRaw(rt.ifi, rt.src, multicast); err != nil {
			return err
		}
		rt.xmit = rt.conn
		announceOn, ndpSrc := rt.ifi, netip.Addr{}
		if in.cfg.UseVMAC {
			rt.vmac, err = openVMAC(h, rt.ifi, in.cfg.VMACInterface, VirtualMAC(uint8(in.cfg.VRID), in.family == 6), in.family == 6)
			if err != nil {
				return fmt.Errorf("vrrp instance %q: use_vmac: %w", in.cfg.Name, err)
			}
			rt.vips.vmac, rt.vips.ifindex = rt.vmac, rt.vmac.ifi.Index
			announceOn = rt.vmac.ifi
			if in.family == 6 {
				ndpSrc = rt.src
				if rt.src.IsLinkLocalUnicast() {
					rt.vmac.linkLocal = rt.src
				}
			}
			// Multicast adverts leave from the macvlan, with the virtual
			// MAC. Unicast ones leave from the base interface (keepalived's
			// vmac_xmit_base): routing to a peer through the macvlan would
			// resolve the peer's address from the virtual MAC.
			if multicast {
				if rt.xmit, err = listenSendOnly(rt.vmac.ifi, rt.src); err != nil {
					return err
				}
			}
		}
		if rt.announce, err = newAnnouncer(announceOn, rt.vips.here(slices.Concat(in.vips, in.excluded)), ndpSrc); err != nil {
			return err
		}
		for _, name := range others {
			a, err := newAnnouncer(rt.vips.placed[elsewhere[name][0]].ifi, elsewhere[name], netip.Addr{})
			if err != nil {
				return err
			}
			rt.announce.others = append(rt.announce.others, a)
		}
		names := []string{in.cfg.Interface}
		for _, t := range in.cfg.TrackInterfaces {
			names = append(names, t.Name)
		}
		rt.initial, rt.linkStop, err = watchLinks(ctx, h, names, trackCh)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: link subscription: %w", in.cfg.Name, err)
		}
		var src trackUpdate
		rt.path, src, err = openPathWatch(rt.ifi, rt.src, in.cfg.UnicastSource.IsValid(), in.destinations())
		if err != nil {
			return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, err)
		}
		rt.initial = append(rt.initial, src)
		return nil
	})
	if err != nil {
		rt.close()
		return nil, err
	}
	return rt, nil
}

func (rt *runtime) close() {
	if rt.conn != nil {
		rt.conn.Close()
	}
	if rt.xmit != nil && rt.xmit != rt.conn {
		rt.xmit.Close()
	}
	if rt.announce != nil {
		rt.announce.close()
	}
	if rt.linkStop != nil {
		rt.linkStop()
	}
	if rt.path != nil {
		rt.path.close()
	}
	if rt.vmac != nil {
		if err := rt.vmac.remove(); err != nil {
			rt.log.Warn("removing the virtual MAC interface", "err", err)
		}
	}
	if rt.vips != nil {
		rt.vips.h.Close()
	}
}

// managed is every address the instance adds as master: the virtual
// addresses, then the excluded ones.
func managed(cfg conf.VRRPInstance) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range slices.Concat(cfg.VirtualAddresses, cfg.ExcludedAddresses) {
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	return out
}

// source picks the advert source: unicast_source when set; else the first
// IPv4 address of the interface that is not a VIP, or for IPv6 its
// link-local address (RFC 5798 §5.1.2.1) — a global one when unicasting to
// global peers — waiting briefly for duplicate address detection to finish.
func (in *Instance) source(ctx context.Context, h *netlink.Handle, ifi *net.Interface) (netip.Addr, error) {
	if in.cfg.UnicastSource.IsValid() {
		return in.cfg.UnicastSource.Unmap(), nil
	}
	l, err := h.LinkByIndex(ifi.Index)
	if err != nil {
		return netip.Addr{}, err
	}
	fam := netlink.FAMILY_V4
	if in.family == 6 {
		fam = netlink.FAMILY_V6
	}
	// Unicast to global IPv6 peers goes from a global address, so that the
	// peers can match our source against their unicast_peers.
	wantLL := len(in.expect.Peers) == 0 || in.expect.Peers[0].IsLinkLocalUnicast()
	want := map[bool]string{true: "a link-local address", false: "a global address for the unicast peers"}[wantLL]
	if in.family == 4 {
		want = "an IPv4 address"
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		addrs, err := h.AddrList(l, fam)
		if err != nil {
			return netip.Addr{}, err
		}
		tentative := false
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if slices.Contains(in.vips, ip) || slices.Contains(in.excluded, ip) {
				continue
			}
			if in.family == 4 {
				return ip, nil
			}
			if ip.IsLinkLocalUnicast() == wantLL {
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					tentative = true
					continue
				}
				return ip, nil
			}
		}
		if !tentative || time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("vrrp instance %q: interface %s has no usable IPv%d source address (want %s; or set unicast_source)",
				in.cfg.Name, ifi.Name, in.family, want)
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Run starts the instance and runs it until ctx is done; then it shuts
// down as on SIGTERM: a master sends priority 0 and removes its VIPs. It
// returns an error only when setup fails. An Instance runs once.
func (in *Instance) Run(ctx context.Context) error {
	if in.ran.Swap(true) {
		return fmt.Errorf("vrrp instance %q: Run called twice", in.cfg.Name)
	}
	defer close(in.stopped)
	trackCh := make(chan trackUpdate, 16)
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := in.open(runCtx, trackCh)
	if err != nil {
		return err
	}
	m, err := NewMachine(in.machineConfig(rt.src))
	if err != nil {
		rt.close()
		return err
	}
	in.mu.Lock()
	in.status.Source = rt.src
	if rt.vmac != nil {
		in.status.VMACInterface = rt.vmac.name
	}
	in.mu.Unlock()

	// A VIP left over from a crash must not stay up while we are backup.
	if err := rt.vips.remove(); err != nil {
		in.log.Warn("removing stale virtual addresses", "err", err)
	}

	notify := newNotifier(in.opts.NotifyTimeout, func(err error) { in.log.Warn("notify", "err", err) })
	var wg sync.WaitGroup
	var d *driver
	defer func() {
		// Order matters: the reader only returns once its socket is
		// closed, and the stop notification must be queued before the
		// notifier drains.
		if d != nil {
			d.stopAnnounce()
		}
		cancel()
		rt.close()
		wg.Wait()
		notify.close()
	}()

	pkts := make(chan EvAdvert, 64)
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.readLoop(runCtx, rt.conn, pkts)
	}()
	track := tracking{
		keySource: {desc: "advert source", down: "unusable"},
		keySend:   {desc: "advert sending", down: "failing"},
	}
	for _, t := range rt.initial {
		if it := track[t.key]; it != nil {
			it.failing, it.reason = t.failing, t.reason
			continue
		}
		track[t.key] = &trackItem{failing: t.failing, desc: "interface " + strings.TrimPrefix(t.key, "iface:"), down: "down"}
	}
	for _, t := range in.cfg.TrackInterfaces {
		if it := track["iface:"+t.Name]; it != nil {
			it.weight, it.desc = t.Weight, "track_interface "+t.Name
		}
	}
	for i, s := range in.cfg.TrackScripts {
		key := fmt.Sprintf("script:%d:%s", i, s.Name)
		track[key] = &trackItem{weight: s.Weight, desc: "track_script " + s.Name, down: "failing"}
		st := scriptTracker{key: key, argv: s.Command, interval: s.Interval.D(), timeout: s.Timeout.D(), rise: s.Rise, fall: s.Fall}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(runCtx, trackCh)
		}()
	}
	rt.path.start(runCtx, &wg, track[keySource].failing, trackCh)

	for _, v := range in.cfg.TrackVirtualSrvs {
		track[vsKeyPrefix+v.Name] = &trackItem{weight: v.Weight, desc: "track_virtual_server " + v.Name, down: "down"}
	}
	in.vs.apply(track)

	timer, err := newFDTimer()
	if err != nil {
		return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, err)
	}
	defer timer.close()
	d = &driver{in: in, m: m, rt: rt, notify: notify, timer: timer, track: track}
	d.applyTracking(track, true)
	d.handle(EvStartup{})
	for {
		select {
		case <-ctx.Done():
			d.handle(EvShutdown{})
			return nil
		case ev := <-pkts:
			d.handle(ev)
		case <-d.timer.C:
			d.timerFired(pkts)
		case u := <-trackCh:
			if it := track[u.key]; it != nil {
				it.failing, it.reason = u.failing, u.reason
			}
			d.tracked(track)
		case <-in.vs.kick:
			in.vs.apply(track)
			d.tracked(track)
		case ev := <-in.groupCh:
			d.handle(ev)
		case reply := <-in.ping:
			close(reply)
		case <-in.reconf:
			in.pendingMu.Lock()
			cfg := in.pending
			in.pending = nil
			in.pendingMu.Unlock()
			if cfg != nil {
				d.reconfigure(*cfg)
			}
		}
	}
}

// timerFired handles the timer after the adverts already queued. Go's
// select picks at random among ready cases, and after a stall (a busy
// host, a paused VM) the timer and the adverts that would have stopped it
// are ready together: handled first, the master's advert re-arms the
// master down timer and the fire is stale (IgnoreStaleTimer), where the
// other order had a backup declare a live master down.
func (d *driver) timerFired(pkts <-chan EvAdvert) {
	for drained := false; !drained; {
		select {
		case ev := <-pkts:
			d.handle(ev)
		default:
			drained = true
		}
	}
	d.handle(EvTimer{})
}

// ErrStopped is Ping's answer once Run has returned.
var ErrStopped = errors.New("vrrp instance stopped")

// Ping returns once Run's event loop has answered: it is alive, not stuck
// in a handler. It fails with ctx's error when the loop does not answer in
// time (not started yet, or stalled), and with ErrStopped after Run.
func (in *Instance) Ping(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case in.ping <- reply:
	case <-in.stopped:
		return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, ErrStopped)
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %q: its loop does not answer: %w", in.cfg.Name, ctx.Err())
	}
	<-reply // closed at once by the loop that took it
	return nil
}

// tracked hands a tracking change to the machine and the sync group.
func (d *driver) tracked(t tracking) {
	d.applyTracking(t, false)
}

// applyTracking is tracked; it also logs and counts a change of the
// effective priority with its causes. At startup (initial) a machine with
// nothing failing is left alone.
func (d *driver) applyTracking(t tracking, initial bool) {
	causes := t.changes(d.lastTrack)
	d.lastTrack = t.snapshot()
	old := d.m.Priority()
	d.in.mu.Lock()
	d.in.status.Failing = t.failing()
	d.in.mu.Unlock()
	ev := t.event()
	if !initial || ev != (EvTracking{}) {
		d.handle(ev)
	}
	if d.in.group != nil {
		d.in.group.memberFault(d.in, ev.Fault)
	}
	d.priorityChanged(old, causes)
}

// priorityChanged logs and counts a change of the effective priority from
// old, once, with what caused it.
func (d *driver) priorityChanged(old uint8, causes []priorityCause) {
	now := d.m.Priority()
	if now == old {
		return
	}
	if len(causes) == 0 {
		causes = []priorityCause{{label: "unknown", text: "unknown"}}
	}
	texts := make([]string, len(causes))
	d.in.mu.Lock()
	if d.in.status.PriorityChanges == nil {
		d.in.status.PriorityChanges = map[string]uint64{}
	}
	for i, c := range causes {
		texts[i] = c.text
		d.in.status.PriorityChanges[c.label]++
	}
	base := d.in.status.BasePriority
	d.in.mu.Unlock()
	d.in.log.Info("priority change", "from", old, "to", now, "base", base,
		"cause", strings.Join(texts, "; "), "state", d.m.State().String())
}

func (in *Instance) readLoop(ctx context.Context, c advertConn, out chan<- EvAdvert) {
	vrid := uint8(in.cfg.VRID)
	dec := Decoder{Routers: map[uint8]Expect{}, Drops: &in.drops}
	var expect *Expect
	buf := make([]byte, 1500)
	for {
		r, err := c.Read(buf)
		if e := in.addrs.Load(); e != expect {
			expect, dec.Routers[vrid] = e, *e
		}
		if p := in.siblings.Load(); p != nil {
			dec.Others = *p
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			in.log.Warn("reading adverts", "err", err)
			continue
		}
		a, reason := dec.Decode(r)
		if reason != DropNone {
			in.log.Debug("advert dropped", "reason", reason.String(), "src", r.Src)
			continue
		}
		select {
		case out <- EvAdvert{Src: r.Src, Priority: a.Priority, Interval: a.Interval}:
		case <-ctx.Done():
			return
		}
	}
}

// driver carries out a Machine's actions.
type driver struct {
	in     *Instance
	m      *Machine
	rt     *runtime
	notify *notifier
	timer  *fdTimer

	announceCancel context.CancelFunc
	announceDone   chan struct{}

	lastTrack map[string]bool // tracking.snapshot at the last tracked
	// track is Run's tracking; handle sets its keySend item when a send
	// broke the path (sendFault), before anything else happens.
	track     tracking
	sendFault *sendFailure
}

func (d *driver) handle(ev Event) {
	in := d.in
	now := time.Now()
	acts, reason := d.m.Handle(now, ev)
	_, isAdvert := ev.(EvAdvert)
	in.mu.Lock()
	if isAdvert {
		in.status.AdvertsRecv++
	}
	if reason != Handled {
		in.status.Ignored[string(reason)]++
	}
	in.mu.Unlock()
	for _, a := range acts {
		d.do(now, a)
	}
	in.mu.Lock()
	in.status.State = d.m.State()
	in.status.Priority = d.m.Priority()
	in.status.MasterAddr = d.m.MasterAddr()
	in.status.MasterInterval = d.m.MasterInterval()
	in.mu.Unlock()
	// A send that broke the path puts the instance in Fault now, not when
	// the path watch's report comes round: a master that cannot advertise
	// must not stay one.
	if f := d.sendFault; f != nil {
		d.sendFault = nil
		if it := d.track[keySend]; it != nil && !it.failing {
			it.failing, it.reason = true, f.why
			d.tracked(d.track)
		}
	}
}

func (d *driver) do(now time.Time, a Action) {
	in := d.in
	switch a := a.(type) {
	case ActSendAdvert:
		d.send(a.Priority)
	case ActAddVIPs:
		if err := d.rt.vips.add(); err != nil {
			in.log.Error("adding virtual addresses", "err", err)
		}
	case ActRemoveVIPs:
		d.stopAnnounce()
		if err := d.rt.vips.remove(); err != nil {
			in.log.Error("removing virtual addresses", "err", err)
		}
	case ActAnnounce:
		d.stopAnnounce()
		if d.sendFault != nil {
			// The advert before this failed: Fault follows at once;
			// announcing would pull the traffic here first.
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		d.announceCancel, d.announceDone = cancel, done
		g := in.cfg.GARP
		go func() {
			defer close(done)
			d.rt.announce.run(ctx, g.Repeat, g.Delay.D(), g.Refresh.D(), func(err error) { in.log.Warn("announce", "err", err) })
		}()
	case ActSetTimer:
		d.timer.stop()
		if !a.At.IsZero() {
			d.timer.reset(a.At.Sub(now))
		}
	case ActNotify:
		argv := map[State][]string{StateMaster: in.cfg.NotifyMaster, StateBackup: in.cfg.NotifyBackup, StateFault: in.cfg.NotifyFault, StateInit: in.cfg.NotifyStop}[a.State]
		d.notify.enqueue(notifyJob{argv: argv, instance: in.cfg.Name, state: a.State, priority: d.m.Priority()})
	case ActStateChange:
		in.log.Info("vrrp state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason, "priority", d.m.Priority())
		sc := StateChange{Instance: in.cfg.Name, From: a.From, To: a.To, Priority: d.m.Priority(), Reason: a.Reason, At: now}
		in.mu.Lock()
		in.status.Transitions++
		in.status.LastChange = now
		in.mu.Unlock()
		if in.opts.OnStateChange != nil {
			in.opts.OnStateChange(sc)
		}
		if in.group != nil {
			in.group.memberChanged(in, sc)
		}
	}
}

// destinations are where adverts go: the unicast peers or the group.
func (in *Instance) destinations() []netip.Addr {
	if len(in.expect.Peers) > 0 {
		return in.expect.Peers
	}
	if in.family == 6 {
		return []netip.Addr{GroupV6}
	}
	return []netip.Addr{GroupV4}
}

func (d *driver) send(prio uint8) {
	in := d.in
	a := in.advert(prio)
	for _, dst := range in.destinations() {
		b, err := a.Marshal(d.rt.src, dst)
		if err == nil {
			err = d.rt.xmit.Write(b, dst)
		}
		in.mu.Lock()
		if err != nil {
			in.status.SendErrors++
			if in.status.SendErrorReasons == nil {
				in.status.SendErrorReasons = map[string]uint64{}
			}
			in.status.SendErrorReasons[SendErrorReason(err)]++
		} else {
			in.status.AdvertsSent++
		}
		in.mu.Unlock()
		if err != nil {
			fault, routed := sendFault(err)
			in.log.Warn("sending advert", "dst", dst, "src", d.rt.src, "err", err, "fault", fault)
			if fault {
				f := sendFailure{why: fmt.Sprintf("adverts to %v from %v cannot be sent: %v", dst, d.rt.src, err), routed: routed}
				if d.sendFault == nil {
					d.sendFault = &f
				}
				if d.rt.path != nil {
					d.rt.path.sendFailed(f)
				}
			}
		}
	}
}

func (d *driver) stopAnnounce() {
	if d.announceCancel != nil {
		d.announceCancel()
		<-d.announceDone
		d.announceCancel, d.announceDone = nil, nil
	}
}
