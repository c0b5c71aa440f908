package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP router state (RFC 5798 §6.4), plus Fault, which haldir
// and keepalived enter while a tracked interface or script with weight 0
// fails.
type State int

// States. StateInit is both "not started yet" and "stopped".
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
)

func (s State) String() string {
	switch s {
	case StateInit:
		return "init"
	case StateBackup:
		return "backup"
	case StateMaster:
		return "master"
	case StateFault:
		return "fault"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// OwnerPriority is the priority of the router that owns the virtual
// addresses; it takes over at once and always preempts.
const OwnerPriority = 255

// MachineConfig is what the state machine needs from the configuration.
type MachineConfig struct {
	Version      int           // 2 or 3
	Priority     int           // configured priority, 1..255
	Interval     time.Duration // our advertisement interval
	Preempt      bool          // ignored (always true) for the owner
	PreemptDelay time.Duration // how long a lower-priority master is tolerated before preempting
	// Primary is our address in adverts; the higher one wins a priority tie.
	Primary netip.Addr
	// AlignAdverts puts a master's Adver_Timer on the instants that are
	// multiples of Interval in Unix time (nextAdvert), so that masters
	// with one interval advertise together. Instance sets it; without it
	// adverts are timed from the takeover, which the protocol's tests
	// spell out.
	AlignAdverts bool
}

// Event is an input of Machine.Handle.
type Event interface{ isEvent() }

// EvStartup starts the machine (RFC 5798 §6.4.1 "Startup event").
type EvStartup struct{}

// EvAdvert is a received advert that passed Decoder.Decode.
type EvAdvert struct {
	Src      netip.Addr
	Priority uint8
	Interval time.Duration
	// At is when it arrived (zero: now). The driver hands the Machine
	// this time, not the time it was handled (see routineFilter).
	At time.Time
	// quiet: it waited in the quiet socket (Status.AdvertsQuiet).
	quiet bool
}

// EvTimer reports that the deadline last set with ActSetTimer has passed.
type EvTimer struct{}

// EvTracking reports the combined state of tracked interfaces and scripts:
// Fault when any weight-0 item fails, Delta the sum of the weights of the
// failing weighted items. Cause names the items that cause the fault, for
// the transition's reason; it is not compared. Lowest (haldir
// maintenance) sets the effective priority to 1 whatever the delta: the
// router stays backup while any other router is alive, and still takes
// over when none is, so the addresses are never left without a master.
type EvTracking struct {
	Fault  bool
	Delta  int
	Lowest bool
	Cause  string
}

// EvShutdown stops the machine (RFC 5798 §6.4 "Shutdown event").
type EvShutdown struct{}

// EvResign makes a master hand over the VRRP way, as on shutdown but
// staying in the running: it sends priority 0 (a backup takes over after
// its Skew_Time), drops the addresses and becomes backup. Why is the
// transition's reason. An address owner (255) does not resign.
type EvResign struct{ Why string }

// EvGroupFault reports whether another member of the instance's sync group
// has a tracking fault; the whole group is in Fault while one member is.
type EvGroupFault struct{ Fault bool }

// EvGroupState reports that another member of the sync group moved to To
// (StateMaster or StateBackup); the members follow so that all the group's
// addresses stay on one router.
type EvGroupState struct{ To State }

// EvReconfigure carries a reload's new priority, preempt and preempt_delay
// to a running machine (never a priority to or from the owner's 255: that
// is a restart). Like a tracking change, a new priority takes effect in the
// next advert (master) or the next comparison (backup), with no transition
// of its own.
type EvReconfigure struct {
	Priority     int
	Preempt      bool
	PreemptDelay time.Duration
}

// EvTakeOver is a planned handoff's target side (haldir handoff): a backup
// becomes master at once, announcing its addresses while the old master
// still holds them, and until Until it does not step down for the old
// master's higher-priority adverts; the old master releases when it hears
// this router (EvYield). Make-before-break: both hold the addresses for a
// moment, nobody holds them never.
type EvTakeOver struct {
	Until time.Time
	Why   string
}

// EvYield is a planned handoff's old master side: it stays master until
// an advert from To (the target, now master too) arrives before Until;
// then it drops the addresses, without a priority-0 advert, becomes backup
// and holds back preemption (a lower-priority master is accepted) until
// mastership moves again: a takeover, a master-down timer, a restart. No
// advert from To by Until leaves it master (the handoff failed).
type EvYield struct {
	To    netip.Addr
	Until time.Time
}

// EvDrill starts (On) or ends a drill's simulated failure of this router
// (haldir drill run --kind failover|fault), so that the peers' detection
// is really exercised:
//   - DrillCrash: a master stops advertising without priority 0 and drops
//     the addresses, as a crashed one would; it stays a silent backup,
//     neither preempting nor taking over on its timer, until the end;
//   - DrillFault: the router enters Fault (a master sends priority 0 and
//     drops the addresses, as on a real fault) until the end.
//
// Until the end the machine observes the takeover (DrillObservation).
// At the end it is a backup again; unless Failback it holds back
// preemption as after a planned handoff (EvReleaseHold ends that), so the
// pair stays as the drill left it.
type EvDrill struct {
	Failure  DrillFailure
	On       bool
	Failback bool
}

// DrillFailure is what EvDrill simulates.
type DrillFailure int

// The failures a drill simulates.
const (
	DrillNone DrillFailure = iota
	DrillCrash
	DrillFault
)

func (f DrillFailure) String() string {
	switch f {
	case DrillCrash:
		return "crash"
	case DrillFault:
		return "fault"
	}
	return "none"
}

// DrillObservation is what a router under a drill's simulated failure saw
// of its peers' takeover, on its own clock: when it released, and when
// and from whom the first advert of a new master came (an upper bound of
// the peer's detection, by the one-way delay). Bound is how long the new
// master may take by the protocol: the peer's Master_Down_Interval after a
// crash, its Skew_Time after a fault's priority 0, each plus 10 ms.
type DrillObservation struct {
	Failure    DrillFailure
	Released   time.Time
	TakenAt    time.Time  `json:",omitzero"`
	By         netip.Addr `json:",omitzero"`
	ByPriority uint8      `json:",omitempty"`
	Bound      time.Duration
	WasMaster  bool
	Interval   time.Duration // the Master_Adver_Interval the peers use
	version    int
	ended      bool
}

// Gap is how long the addresses were without a master as observed: from
// the release to the new master's first advert; 0 until one came.
func (o DrillObservation) Gap() time.Duration {
	if o.TakenAt.IsZero() {
		return 0
	}
	return o.TakenAt.Sub(o.Released)
}

// drillSlack is what the verdict allows beyond the protocol's bound: the
// scheduling of two processes and one packet on a LAN.
const drillSlack = 10 * time.Millisecond

// bound is the protocol's bound on the takeover by a router of priority p.
func (o DrillObservation) bound(p uint8) time.Duration {
	skew := time.Duration(256-int(p)) * o.Interval / 256
	if o.version == 2 {
		skew = time.Duration(256-int(p)) * time.Second / 256
	}
	if o.Failure == DrillFault && o.WasMaster {
		return skew + drillSlack
	}
	return 3*o.Interval + skew + drillSlack
}

// EvReleaseHold ends the hold on preemption a handoff's release left
// (haldir maintenance off): a backup with the higher priority preempts
// again, which is make-before-break by itself: it announces the
// addresses before the lower master, hearing it, drops them.
type EvReleaseHold struct{}

func (EvReleaseHold) isEvent() {}
func (EvDrill) isEvent()       {}
func (EvTakeOver) isEvent()    {}
func (EvYield) isEvent()       {}
func (EvReconfigure) isEvent() {}
func (EvGroupFault) isEvent()  {}
func (EvGroupState) isEvent()  {}
func (EvStartup) isEvent()     {}
func (EvAdvert) isEvent()      {}
func (EvTimer) isEvent()       {}
func (EvTracking) isEvent()    {}
func (EvShutdown) isEvent()    {}
func (EvResign) isEvent()      {}

// Action is an output of Machine.Handle, carried out by the driver in order.
type Action interface{ isAction() }

// ActSendAdvert sends one advert with Priority.
type ActSendAdvert struct{ Priority uint8 }

// ActAddVIPs adds the virtual addresses to the interface.
type ActAddVIPs struct{}

// ActRemoveVIPs removes the virtual addresses from the interface.
type ActRemoveVIPs struct{}

// ActAnnounce starts gratuitous ARP / unsolicited NA for the virtual
// addresses (the driver applies the configured delay, repeat and refresh
// until the next ActRemoveVIPs). With Lead the first frame of the first
// burst is sent before the driver carries out the next action.
type ActAnnounce struct{ Lead bool }

// ActSetTimer (re)arms the machine's single timer; a zero At cancels it.
type ActSetTimer struct{ At time.Time }

// ActNotify runs the notify command for State (StateInit means stop).
type ActNotify struct{ State State }

// ActStateChange reports a transition, with what caused it and a reason
// for the log.
type ActStateChange struct {
	From, To State
	Cause    Cause
	Reason   string
}

// Cause is the kind of event that made a transition: a sync group
// forwards its members' own transitions, never those it forced
// (CauseGroupState).
type Cause int

// The causes, one per kind of event.
const (
	CauseStartup    Cause = iota // EvStartup
	CauseShutdown                // EvShutdown
	CauseTracking                // EvTracking: an own fault set or cleared
	CauseGroupFault              // EvGroupFault: another member's fault set or cleared
	CauseGroupState              // EvGroupState: the sync group made this member follow another
	CauseReload                  // EvReconfigure
	CauseTimer                   // EvTimer: master down
	CauseAdvert                  // EvAdvert: a higher-priority master
	CauseResign                  // EvResign: handed over (haldir maintenance)
	CauseHandoff                 // EvTakeOver, or EvYield's release: a planned handoff
	CauseDrill                   // EvDrill: a drill's simulated crash or fault, and its end
)

var causeNames = [...]string{CauseStartup: "startup", CauseShutdown: "shutdown", CauseTracking: "tracking",
	CauseGroupFault: "sync_group_fault", CauseGroupState: "sync_group_state", CauseReload: "reload",
	CauseTimer: "timer", CauseAdvert: "advert", CauseResign: "resign", CauseHandoff: "handoff", CauseDrill: "drill"}

func (c Cause) String() string {
	if c >= 0 && int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", int(c))
}

// causeOf is the cause of the transitions ev makes.
func causeOf(ev Event) Cause {
	switch ev.(type) {
	case EvShutdown:
		return CauseShutdown
	case EvTracking:
		return CauseTracking
	case EvGroupFault:
		return CauseGroupFault
	case EvGroupState:
		return CauseGroupState
	case EvReconfigure:
		return CauseReload
	case EvTimer:
		return CauseTimer
	case EvAdvert:
		return CauseAdvert
	case EvResign:
		return CauseResign
	case EvTakeOver:
		return CauseHandoff
	case EvDrill:
		return CauseDrill
	}
	return CauseStartup
}

func (ActSendAdvert) isAction()  {}
func (ActAddVIPs) isAction()     {}
func (ActRemoveVIPs) isAction()  {}
func (ActAnnounce) isAction()    {}
func (ActSetTimer) isAction()    {}
func (ActNotify) isAction()      {}
func (ActStateChange) isAction() {}

// IgnoreReason names why an event changed nothing; "" means it was acted on.
type IgnoreReason string

// Ignore reasons.
const (
	Handled              IgnoreReason = ""
	IgnoreLowerPriority  IgnoreReason = "lower_priority"      // backup with preempt sees a lower-priority master
	IgnoreStaleTimer     IgnoreReason = "stale_timer"         // a timer fired before its current deadline
	IgnoreFault          IgnoreReason = "fault"               // in Fault, adverts and timers are ignored
	IgnoreNotRunning     IgnoreReason = "not_running"         // event before startup or after shutdown
	IgnoreAlreadyRunning IgnoreReason = "already_running"     // startup twice
	IgnoreTrackingNoop   IgnoreReason = "tracking_unchanged"  // same tracking state again
	IgnoreGroupNoop      IgnoreReason = "group_noop"          // sync group state we are already in, or cannot follow
	IgnoreReconfigNoop   IgnoreReason = "reconfigure_noop"    // a reload changed nothing the machine holds
	IgnoreReconfigBad    IgnoreReason = "reconfigure_refused" // not changeable in place (priority to or from 255) or out of range
	IgnoreNotMaster      IgnoreReason = "resign_not_master"   // a resign while not master, or as address owner
	IgnoreTakeNotBackup  IgnoreReason = "takeover_not_backup" // a handoff's takeover while not backup
	IgnoreYieldNotMaster IgnoreReason = "yield_not_master"    // a handoff's yield while not master, or as address owner
	IgnoreTaking         IgnoreReason = "taking_over"         // a higher-priority advert from the old master during a takeover
	IgnoreNoHold         IgnoreReason = "no_hold"             // a hold released that was not held
	IgnoreDrillBad       IgnoreReason = "drill_refused"       // a drill's failure not applicable now (crash of a non-master or the owner, fault while not running, end without start)
	IgnoreDrill          IgnoreReason = "drill"               // a silent crashed router's timer, or a sync group or takeover move, during a drill
)

// Machine is the VRRP state machine of one virtual router. It does no I/O
// and reads no clock: Handle takes the current time and returns the actions
// to carry out. It is not safe for concurrent use; one driver owns it.
type Machine struct {
	cfg      MachineConfig
	state    State
	fault    bool // own tracking
	cause    string
	gfault   bool // sync group
	delta    int
	lowest   bool // EvTracking.Lowest
	deadline time.Time
	evCause  Cause // of the event being handled

	masterInterval time.Duration // Master_Adver_Interval
	masterAddr     netip.Addr    // source of the last accepted advert (or ours)
	lowerSince     time.Time     // when a lower-priority master was first seen (preempt_delay)

	// A planned handoff (EvTakeOver, EvYield): takeUntil holds a new
	// master against the old one's adverts, until takeHeard (the takeover,
	// or the last advert held against) is takeQuiet old: the old master
	// has released; yieldTo/yieldUntil are the old master waiting for the
	// target's advert; yielded holds back preemption after the release.
	takeUntil  time.Time
	takeHeard  time.Time
	yieldTo    netip.Addr
	yieldUntil time.Time
	yielded    bool

	// drilled is the simulated failure in force (EvDrill), obs what was
	// seen of the peers' takeover since the last one started.
	drilled DrillFailure
	obs     *DrillObservation
}

// NewMachine checks cfg and returns a machine in StateInit.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	switch {
	case cfg.Version != 2 && cfg.Version != 3:
		return nil, fmt.Errorf("vrrp: version %d, want 2 or 3", cfg.Version)
	case cfg.Priority < 1 || cfg.Priority > 255:
		return nil, fmt.Errorf("vrrp: priority %d, want 1..255", cfg.Priority)
	case cfg.Interval <= 0:
		return nil, fmt.Errorf("vrrp: advert interval %v must be positive", cfg.Interval)
	case cfg.PreemptDelay < 0:
		return nil, fmt.Errorf("vrrp: preempt delay %v is negative", cfg.PreemptDelay)
	case !cfg.Primary.IsValid():
		return nil, fmt.Errorf("vrrp: no primary address")
	}
	return &Machine{cfg: cfg, masterInterval: cfg.Interval}, nil
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority: the configured one plus the
// tracking delta, clamped to 1..254, or 1 while EvTracking.Lowest; an
// owner's 255 never changes.
func (m *Machine) Priority() uint8 {
	if m.cfg.Priority == OwnerPriority {
		return OwnerPriority
	}
	if m.lowest {
		return 1
	}
	return uint8(min(max(m.cfg.Priority+m.delta, 1), 254))
}

// SetPrimary changes the machine's own address (Primary_IP_Address): the
// interface address it advertised from was replaced. A master names it as
// the master's address from now on.
func (m *Machine) SetPrimary(a netip.Addr) {
	m.cfg.Primary = a
	if m.state == StateMaster {
		m.masterAddr = a
	}
}

// MasterAddr returns the address of the current master as last seen (our
// own primary address while we are master), or the zero Addr.
func (m *Machine) MasterAddr() netip.Addr { return m.masterAddr }

// MasterInterval returns Master_Adver_Interval.
func (m *Machine) MasterInterval() time.Duration { return m.masterInterval }

// Deadline returns the armed timer's deadline, or the zero time.
func (m *Machine) Deadline() time.Time { return m.deadline }

// Skew returns Skew_Time for the current effective priority: RFC 5798
// §6.1 for v3, RFC 3768 §6.1 ((256-p)/256 seconds) for v2.
func (m *Machine) Skew() time.Duration {
	p := time.Duration(256 - int(m.Priority()))
	if m.cfg.Version == 2 {
		return p * time.Second / 256
	}
	return p * m.masterInterval / 256
}

// MasterDownInterval returns 3 × Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterInterval + m.Skew()
}

func (m *Machine) owner() bool   { return m.cfg.Priority == OwnerPriority }
func (m *Machine) preempt() bool { return m.cfg.Preempt || m.owner() }

// Handle applies ev at time now and returns the actions to carry out, or
// the reason the event was ignored.
func (m *Machine) Handle(now time.Time, ev Event) ([]Action, IgnoreReason) {
	m.evCause = causeOf(ev)
	switch ev := ev.(type) {
	case EvStartup:
		if m.state != StateInit {
			return nil, IgnoreAlreadyRunning
		}
		if m.faulty() {
			return m.to(nil, StateFault, m.faultWhy("fault at startup")), Handled
		}
		return m.start(now, "startup"), Handled
	case EvShutdown:
		return m.shutdown()
	case EvResign:
		return m.resign(now, ev)
	case EvTakeOver:
		return m.takeOver(now, ev)
	case EvYield:
		return m.yield(now, ev)
	case EvDrill:
		return m.drill(now, ev)
	case EvReleaseHold:
		if !m.yielded {
			return nil, IgnoreNoHold
		}
		m.yielded = false
		return nil, Handled
	case EvTracking:
		return m.tracking(now, ev)
	case EvGroupFault:
		if ev.Fault == m.gfault {
			return nil, IgnoreGroupNoop
		}
		was := m.faulty()
		m.gfault = ev.Fault
		return m.faultChange(now, was, "sync group fault")
	case EvGroupState:
		return m.groupState(now, ev)
	case EvReconfigure:
		return m.reconfigure(ev)
	case EvTimer:
		return m.timer(now)
	case EvAdvert:
		return m.advert(now, ev)
	}
	return nil, Handled
}

// start is the Initialize state's startup handling (RFC 5798 §6.4.1).
func (m *Machine) start(now time.Time, why string) []Action {
	m.masterInterval = m.cfg.Interval
	m.lowerSince = time.Time{}
	if m.Priority() == OwnerPriority {
		return m.becomeMaster(now, nil, why+" as address owner")
	}
	m.masterAddr = netip.Addr{}
	acts := m.to(nil, StateBackup, why)
	return m.arm(acts, now.Add(m.MasterDownInterval()))
}

// becomeMaster makes the router master. It announces before its first
// advert: an old master still holding the addresses (a planned handoff,
// a preemption) releases the moment it hears that advert, and a host
// still holding the old MAC for a VIP would send its next SYN to a router
// that had just dropped the address (a second's stall until the SYN is
// retransmitted).
func (m *Machine) becomeMaster(now time.Time, acts []Action, why string) []Action {
	m.yielded = false // mastership moved again
	m.masterAddr = m.cfg.Primary
	m.masterInterval = m.cfg.Interval
	m.lowerSince = time.Time{}
	acts = append(acts, ActAddVIPs{}, ActAnnounce{Lead: true}, ActSendAdvert{Priority: m.Priority()})
	acts = m.to(acts, StateMaster, why)
	return m.arm(acts, m.nextAdvert(now))
}

// nextAdvert is when a master that sends an advert at now sends the next:
// one interval later, or with AlignAdverts the first multiple of the
// interval (in Unix time) after now, never more than an interval away.
// Every master with the same interval in a
// process, whenever it became master, then advertises on the same
// instants: their adverts leave on one wake-up and reach the backups in
// one burst (read with one recvmmsg). keepalived's instances drift into
// step on their own; with Adver_Timers armed from each takeover, 10
// masters at 100 ms woke haldir 69 times a second instead of 10. An
// advert earlier than an interval after the last (once, after a takeover)
// is harmless: backups wait three intervals.
func (m *Machine) nextAdvert(now time.Time) time.Time {
	d := m.cfg.Interval
	if !m.cfg.AlignAdverts {
		return now.Add(d)
	}
	off := time.Duration(now.UnixNano() % int64(d))
	if off < 0 {
		off += d
	}
	return now.Add(d - off)
}

// leaveMaster drops the addresses; resign sends priority 0 first so that a
// backup takes over after Skew_Time instead of Master_Down_Interval.
func (m *Machine) leaveMaster(acts []Action, resign bool) []Action {
	if resign {
		acts = append(acts, ActSendAdvert{Priority: 0})
	}
	return append(acts, ActRemoveVIPs{})
}

func (m *Machine) to(acts []Action, s State, why string) []Action {
	if s == m.state {
		return acts
	}
	from := m.state
	m.state = s
	if s != StateMaster {
		m.takeUntil, m.yieldTo, m.yieldUntil = time.Time{}, netip.Addr{}, time.Time{}
	}
	acts = append(acts, ActStateChange{From: from, To: s, Cause: m.evCause, Reason: why}, ActNotify{State: s})
	if s != StateBackup && s != StateMaster {
		m.deadline = time.Time{}
		acts = append(acts, ActSetTimer{})
	}
	return acts
}

// TimerSlack is how much before its deadline the armed timer may fire: a
// hundredth of the advert interval, at most 1ms, for a master's
// Adver_Timer, so that the adverts of many instances go out on one
// wake-up (an advert that early is harmless: the backups wait three
// intervals); none for a backup's Master_Down_Timer, which must not
// declare a live master down early.
func (m *Machine) TimerSlack() time.Duration {
	if m.state != StateMaster {
		return 0
	}
	return min(m.cfg.Interval/100, time.Millisecond)
}

func (m *Machine) arm(acts []Action, at time.Time) []Action {
	m.deadline = at
	return append(acts, ActSetTimer{At: at})
}

// resign is EvResign: a master (not the address owner) sends priority 0,
// drops the addresses and waits as backup; with a priority that other
// routers beat (maintenance) it stays backup, and it takes over again
// after Master_Down_Interval when nobody else does.
func (m *Machine) resign(now time.Time, ev EvResign) ([]Action, IgnoreReason) {
	if m.state != StateMaster || m.owner() {
		return nil, IgnoreNotMaster
	}
	acts := m.leaveMaster(nil, true)
	m.masterAddr = netip.Addr{}
	acts = m.to(acts, StateBackup, ev.Why)
	return m.arm(acts, now.Add(m.MasterDownInterval())), Handled
}

// takeOver is EvTakeOver: a backup becomes master now and holds on
// against the old master's adverts until ev.Until.
func (m *Machine) takeOver(now time.Time, ev EvTakeOver) ([]Action, IgnoreReason) {
	if m.state != StateBackup {
		return nil, IgnoreTakeNotBackup
	}
	if m.drilled != DrillNone {
		return nil, IgnoreDrill
	}
	why := "planned handoff: taking over"
	if ev.Why != "" {
		why += " (" + ev.Why + ")"
	}
	acts := m.becomeMaster(now, nil, why)
	m.takeUntil, m.takeHeard = ev.Until, now
	return acts, Handled
}

// yield is EvYield: a master waits for the target's advert (masterAdvert)
// until ev.Until.
func (m *Machine) yield(_ time.Time, ev EvYield) ([]Action, IgnoreReason) {
	if m.state != StateMaster || m.owner() || !ev.To.IsValid() {
		return nil, IgnoreYieldNotMaster
	}
	m.yieldTo, m.yieldUntil = ev.To.Unmap(), ev.Until
	return nil, Handled
}

// takeQuiet is how many advert intervals without an advert from the old
// master end a takeover's hold.
const takeQuiet = 3

// Yielded reports whether the machine released mastership in a planned
// handoff and holds back preemption until mastership moves again.
func (m *Machine) Yielded() bool { return m.yielded }

// Quiet reports whether an advert with a non-zero priority may wait to be
// handled until the Master_Down_Timer comes due or another event comes
// (routineFilter): true for a backup, whose adverts then only push the
// timer back from when they came. Not during a drill, whose observation
// needs the peer's first advert when it comes.
func (m *Machine) Quiet() bool {
	return m.state == StateBackup && m.drilled == DrillNone && (m.obs == nil || m.obs.ended)
}

func (m *Machine) shutdown() ([]Action, IgnoreReason) {
	var acts []Action
	switch m.state {
	case StateInit:
		return nil, IgnoreNotRunning
	case StateMaster:
		acts = m.leaveMaster(acts, true)
	}
	m.masterAddr = netip.Addr{}
	return m.to(acts, StateInit, "shutdown"), Handled
}

func (m *Machine) tracking(now time.Time, ev EvTracking) ([]Action, IgnoreReason) {
	if ev.Fault == m.fault && ev.Delta == m.delta && ev.Lowest == m.lowest {
		return nil, IgnoreTrackingNoop
	}
	was := m.faulty()
	m.fault, m.delta, m.lowest, m.cause = ev.Fault, ev.Delta, ev.Lowest, ev.Cause
	return m.faultChange(now, was, m.faultWhy("tracking fault"))
}

// faultWhy is why a transition to Fault happens: what, and the tracked
// items that cause the own fault when they are known.
func (m *Machine) faultWhy(what string) string {
	if m.fault && m.cause != "" {
		return what + ": " + m.cause
	}
	return what
}

// faultChange moves in or out of Fault after the own or group fault flag
// changed.
func (m *Machine) faultChange(now time.Time, wasFault bool, why string) ([]Action, IgnoreReason) {
	fault := m.faulty()
	switch {
	case m.state == StateInit:
		return nil, Handled // remembered for startup
	case fault && !wasFault:
		var acts []Action
		if m.state == StateMaster {
			acts = m.leaveMaster(acts, true)
		}
		m.masterAddr = netip.Addr{}
		return m.to(acts, StateFault, why), Handled
	case !fault && wasFault:
		return m.start(now, "fault cleared"), Handled
	}
	// A priority change alone takes effect in the next advert (master) or
	// the next comparison (backup), as in keepalived; the Backup's
	// Master_Down_Interval keeps its old skew until re-armed.
	return nil, Handled
}

func (m *Machine) reconfigure(ev EvReconfigure) ([]Action, IgnoreReason) {
	switch {
	case ev.Priority == m.cfg.Priority && ev.Preempt == m.cfg.Preempt && ev.PreemptDelay == m.cfg.PreemptDelay:
		return nil, IgnoreReconfigNoop
	case ev.Priority < 1 || ev.Priority >= OwnerPriority || m.owner() || ev.PreemptDelay < 0:
		return nil, IgnoreReconfigBad
	}
	m.cfg.Priority, m.cfg.Preempt, m.cfg.PreemptDelay = ev.Priority, ev.Preempt, ev.PreemptDelay
	m.lowerSince = time.Time{} // preempt_delay counts afresh under the new settings
	return nil, Handled
}

func (m *Machine) groupState(now time.Time, ev EvGroupState) ([]Action, IgnoreReason) {
	switch {
	case m.drilled == DrillCrash:
		return nil, IgnoreDrill // every member crashed together; none follows another back
	case ev.To == StateMaster && m.state == StateBackup:
		return m.becomeMaster(now, nil, "sync group member became master"), Handled
	case ev.To == StateBackup && m.state == StateMaster:
		acts := m.leaveMaster(nil, false)
		m.masterAddr = netip.Addr{}
		acts = m.to(acts, StateBackup, "sync group member became backup")
		return m.arm(acts, now.Add(m.MasterDownInterval())), Handled
	}
	return nil, IgnoreGroupNoop
}

func (m *Machine) timer(now time.Time) ([]Action, IgnoreReason) {
	switch m.state {
	case StateInit:
		return nil, IgnoreNotRunning
	case StateFault:
		return nil, IgnoreFault
	}
	if m.deadline.IsZero() || now.Before(m.deadline.Add(-m.TimerSlack())) {
		return nil, IgnoreStaleTimer
	}
	if m.state == StateBackup {
		if m.drilled == DrillCrash {
			return m.arm(nil, now.Add(m.MasterDownInterval())), IgnoreDrill
		}
		return m.becomeMaster(now, nil, "master down timer expired"), Handled
	}
	if m.yieldTo.IsValid() && !now.Before(m.yieldUntil) {
		// The target never advertised: the handoff failed, and this
		// router simply stays master.
		m.yieldTo, m.yieldUntil = netip.Addr{}, time.Time{}
	}
	if !m.takeUntil.IsZero() && now.Sub(m.takeHeard) >= takeQuiet*m.cfg.Interval {
		// The old master has released (it advertises every interval
		// while it holds on): the hold ends, or a later preemption by
		// it (maintenance off) would be ignored for the rest of the
		// handoff's window, both masters at once.
		m.takeUntil = time.Time{}
	}
	// Master: Adver_Timer. The next advert is due one interval after this
	// one was due, not after the timer was noticed: re-arming from now let
	// each wake-up's lateness accumulate (98 adverts/s at 10 ms). After a
	// stall longer than an interval it restarts from now rather than
	// sending the missed adverts in a burst.
	// A fire within the slack before the deadline (the timers of several
	// masters sharing a wake-up) moves this router's adverts to it, so
	// they share the next wake-ups too.
	// Aligned deadlines are on the grid already: an early fire keeps it.
	next := m.deadline.Add(m.cfg.Interval)
	if now.Before(m.deadline) && !m.cfg.AlignAdverts {
		next = now.Add(m.cfg.Interval)
	}
	if !next.After(now) {
		next = m.nextAdvert(now)
	}
	// Both actions in one literal: appending the timer grew a slice of
	// one, an allocation more on every advert sent.
	m.deadline = next
	return []Action{ActSendAdvert{Priority: m.Priority()}, ActSetTimer{At: next}}, Handled
}

func (m *Machine) advert(now time.Time, ev EvAdvert) ([]Action, IgnoreReason) {
	if o := m.obs; o != nil && !o.ended && o.TakenAt.IsZero() && ev.Priority > 0 && ev.Src.Unmap() != m.cfg.Primary.Unmap() {
		o.TakenAt, o.By, o.ByPriority = now, ev.Src, ev.Priority
		o.Bound = o.bound(ev.Priority)
	}
	switch m.state {
	case StateInit:
		return nil, IgnoreNotRunning
	case StateFault:
		return nil, IgnoreFault
	case StateBackup:
		return m.backupAdvert(now, ev)
	}
	return m.masterAdvert(now, ev)
}

// backupAdvert is RFC 5798 §6.4.2 "If an ADVERTISEMENT is received".
func (m *Machine) backupAdvert(now time.Time, ev EvAdvert) ([]Action, IgnoreReason) {
	if ev.Priority == 0 {
		m.masterAddr = netip.Addr{}
		return m.arm(nil, now.Add(m.Skew())), Handled
	}
	mine := m.Priority()
	if m.preempt() && !m.yielded && m.drilled == DrillNone && ev.Priority < mine {
		if m.cfg.PreemptDelay <= 0 || m.owner() {
			return nil, IgnoreLowerPriority
		}
		if m.lowerSince.IsZero() {
			m.lowerSince = now
		}
		if !now.Before(m.lowerSince.Add(m.cfg.PreemptDelay)) {
			return nil, IgnoreLowerPriority
		}
		// Still within preempt_delay: the lower-priority master is
		// accepted like any other, so the down timer is re-armed.
	} else {
		m.lowerSince = time.Time{}
	}
	if m.cfg.Version == 3 && ev.Interval > 0 {
		m.masterInterval = ev.Interval
	}
	m.masterAddr = ev.Src
	return m.arm(nil, now.Add(m.MasterDownInterval())), Handled
}

// masterAdvert is RFC 5798 §6.4.3 "If an ADVERTISEMENT is received".
func (m *Machine) masterAdvert(now time.Time, ev EvAdvert) ([]Action, IgnoreReason) {
	if ev.Priority == 0 {
		// Another router resigned; re-assert at once (RFC 5798 §6.4.3).
		return m.arm([]Action{ActSendAdvert{Priority: m.Priority()}}, m.nextAdvert(now)), Handled
	}
	if m.yieldTo.IsValid() && ev.Src.Unmap() == m.yieldTo && now.Before(m.yieldUntil) {
		// The target is master too: release, make-before-break.
		m.evCause = CauseHandoff
		acts := m.leaveMaster(nil, false)
		if m.cfg.Version == 3 && ev.Interval > 0 {
			m.masterInterval = ev.Interval
		}
		m.masterAddr = ev.Src
		acts = m.to(acts, StateBackup, fmt.Sprintf("planned handoff: %v is master", ev.Src))
		m.yielded = true
		return m.arm(acts, now.Add(m.MasterDownInterval())), Handled
	}
	mine := m.Priority()
	if now.Before(m.takeUntil) {
		m.takeHeard = now
		return nil, IgnoreTaking // the old master releases once it hears us
	}
	if ev.Priority > mine || ev.Priority == mine && ev.Src.Unmap().Compare(m.cfg.Primary.Unmap()) > 0 {
		acts := m.leaveMaster(nil, false)
		if m.cfg.Version == 3 && ev.Interval > 0 {
			m.masterInterval = ev.Interval
		}
		m.masterAddr = ev.Src
		why := fmt.Sprintf("higher priority %d from %v", ev.Priority, ev.Src)
		if ev.Priority == mine {
			why = fmt.Sprintf("equal priority %d from higher address %v", ev.Priority, ev.Src)
		}
		acts = m.to(acts, StateBackup, why)
		return m.arm(acts, now.Add(m.MasterDownInterval())), Handled
	}
	// Another router is master too and loses to us: it took over while
	// we could not speak (paused, starved, partitioned) and announced the
	// addresses, so the hosts' ARP/ND caches point at it, and they stay
	// there after it steps down on our advert: we never changed state,
	// so never announced again. Re-announce now, with an advert that
	// makes it step down at once (keepalived: garp_lower_prio_repeat).
	// Without this, replies of a NAT service went to the old backup for
	// the hosts' cache lifetime (15 s in the soak).
	return []Action{ActSendAdvert{Priority: mine}, ActAnnounce{}}, Handled
}

// faulty is whether the router must be in Fault: its own tracking, its
// sync group, or a drill.
func (m *Machine) faulty() bool { return m.fault || m.gfault || m.drilled == DrillFault }

// Drill returns what the last drill's simulated failure observed, and
// whether one ran since the start.
func (m *Machine) Drill() (DrillObservation, bool) {
	if m.obs == nil {
		return DrillObservation{}, false
	}
	return *m.obs, true
}

// drill is EvDrill.
func (m *Machine) drill(now time.Time, ev EvDrill) ([]Action, IgnoreReason) {
	if !ev.On {
		if m.drilled == DrillNone || m.drilled != ev.Failure {
			return nil, IgnoreDrillBad
		}
		was := m.drilled
		m.drilled = DrillNone
		m.obs.ended = true
		var acts []Action
		if was == DrillFault && !m.faulty() && m.state == StateFault {
			acts = m.start(now, "drill: fault ended")
		} else if m.state == StateBackup {
			acts = m.arm(nil, now.Add(m.MasterDownInterval()))
		}
		// Without failback the pair stays as the drill left it.
		m.yielded = !ev.Failback && m.obs.WasMaster && m.state == StateBackup
		return acts, Handled
	}
	if m.drilled != DrillNone {
		return nil, IgnoreDrillBad
	}
	o := &DrillObservation{Failure: ev.Failure, Released: now, WasMaster: m.state == StateMaster, Interval: m.cfg.Interval, version: m.cfg.Version}
	o.Bound = o.bound(1) // the loosest, until the new master's priority is known
	switch ev.Failure {
	case DrillCrash:
		if m.state != StateMaster || m.owner() {
			return nil, IgnoreDrillBad
		}
		m.drilled, m.obs = DrillCrash, o
		acts := m.leaveMaster(nil, false) // silent: no priority 0
		m.masterAddr = netip.Addr{}
		acts = m.to(acts, StateBackup, "drill: simulated crash (no priority 0; the peers must detect it)")
		return m.arm(acts, now.Add(m.MasterDownInterval())), Handled
	case DrillFault:
		if m.state == StateInit || m.state == StateFault {
			return nil, IgnoreDrillBad
		}
		m.drilled, m.obs = DrillFault, o
		return m.faultChange(now, false, "drill: forced fault")
	}
	return nil, IgnoreDrillBad
}

// MarshalText names the failure in status JSON.
func (f DrillFailure) MarshalText() ([]byte, error) { return []byte(f.String()), nil }
