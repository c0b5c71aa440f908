package vrrp

import (
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/fifo"
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

	// host opens the instance's I/O (default openHost); tests give fakes.
	host hostOpener
	// links shares the raw sockets of a Runner's or a Set's instances
	// (one per link and family); nil: the instance has its own.
	links *linkSockets
	// timers runs the protocol timers of a Runner's or a Set's instances
	// on one timerfd; nil: the instance has its own.
	timers *timerSet
}

// StateChange is one transition of an instance.
type StateChange struct {
	Instance string
	From, To State
	Priority uint8 // effective priority at the time
	Cause    Cause
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
	// AdvertsQuiet counts those of AdvertsRecv that waited in the quiet
	// socket (routineFilter): handled when the Master_Down_Timer came
	// due, not when they came, so that a backup wakes once per
	// Master_Down_Interval rather than once per advert.
	AdvertsQuiet uint64
	SendErrors   uint64
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
	// LastReason is why the last state change happened (the reason it
	// was logged with): "master down timer expired", "higher priority
	// advert from 10.0.0.2", "track_script chk failing".
	LastReason string `json:",omitempty"`
	// Preempt is the configured preempt: a backup with it off stays
	// backup under a lower-priority master.
	Preempt bool
	// Yielded: this router handed mastership over in a planned handoff
	// (haldir handoff) and holds back preemption until mastership moves
	// again, so a lower-priority master is accepted.
	Yielded bool `json:",omitempty"`
	// Drill is what the last drill's simulated crash or fault of this
	// router observed of the peers' takeover (haldir drill).
	Drill DrillObservation `json:",omitzero"`
	// PeerAddr, PeerPriority and PeerSeen are the last advert accepted
	// from another router: who, with what priority, when (zero when none
	// came since the start). They answer "why is this one (not) master".
	PeerAddr     netip.Addr `json:",omitzero"`
	PeerPriority uint8      `json:",omitempty"`
	PeerSeen     time.Time  `json:",omitzero"`
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
	// queued counts the adverts handed to Run's loop through its channel
	// and not handled yet (timerFired).
	queued atomic.Int64
	cfg    conf.VRRPInstanceSpec
	opts   Options
	host   hostOpener
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
	pending   *conf.VRRPInstanceSpec
	reconf    chan struct{}
	drops     DropCounters
	group     *SyncGroup
	// sink decodes and queues received adverts for Run's loop
	// (advertSink), set by Run before it opens the sockets.
	sink func(Received)
	// decode is sink's decoding (advertDecoder), for a driver that reads
	// what waits (driver.readWaiting).
	decode func(Received) (EvAdvert, bool)
	// inbox holds what the sync group posts, in order (post).
	inbox   *fifo.Queue[Event]
	vs      *vsInputs
	maint   maintInput
	stopped chan struct{} // closed when Run returns
	ran     atomic.Bool
	// ping carries Ping's replies to Run's loop (the daemon's watchdog).
	ping chan chan struct{}

	mu     sync.Mutex
	status Status
}

// SetVirtualServerUp reports whether the virtual server called name has
// its quorum on this director (director.Options.OnQuorum). Instances that
// track it (track_virtual_server) apply its weight while it does not; until
// the first report it counts as lost. It never blocks and may be called
// before Run and from any goroutine; names the instance does not track are
// ignored.
func (in *Instance) SetVirtualServerUp(name string, up bool) {
	for _, t := range in.cfg.TrackVirtualServers {
		if t.Name == name {
			in.vs.set(name, up)
			return
		}
	}
}

// Name returns the configured instance name.
func (in *Instance) Name() string { return in.cfg.Name }

func (in *Instance) machineConfig(primary netip.Addr) MachineConfig {
	return MachineConfig{
		Version:      int(in.cfg.Version),
		Priority:     int(in.cfg.Priority),
		Interval:     in.cfg.AdvertInterval,
		Preempt:      in.cfg.Preempt,
		PreemptDelay: in.cfg.PreemptDelay,
		Primary:      primary,
		AlignAdverts: true,
	}
}

func (in *Instance) advert(prio uint8) Advert {
	return Advert{
		Version: int(in.cfg.Version), VRID: in.cfg.VRID, Priority: prio,
		Interval: in.cfg.AdvertInterval, AuthType: in.expect.AuthType, AuthData: in.expect.AuthData,
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
