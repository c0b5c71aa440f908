package connsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// Kernel runs the IPVS sync daemons: the part of ipvs.Kernel the follower
// uses (ipvs.Client; ipvstest.Kernel in tests).
type Kernel interface {
	SyncDaemons() ([]ipvs.SyncDaemon, error)
	StartSyncDaemon(ipvs.SyncDaemon) error
	StopSyncDaemon(ipvs.SyncState) error
}

// Every ipvs.Kernel runs sync daemons: the daemon hands its kernel over
// without asking.
var _ Kernel = ipvs.Kernel(nil)

// Role is the sync daemon role for a VRRP state, keepalived's
// lvs_sync_daemon rule: the master sends its connections, every other
// state (backup, fault, not yet started) receives, so that whichever
// director becomes master already holds the connections.
func Role(s vrrp.State) ipvs.SyncState {
	if s == vrrp.StateMaster {
		return ipvs.SyncMaster
	}
	return ipvs.SyncBackup
}

// DaemonConfig turns [sync] into the daemon to run (State unset).
func DaemonConfig(c conf.ConnSyncSpec) ipvs.SyncDaemon {
	return ipvs.SyncDaemon{Interface: c.Interface, SyncID: c.SyncID, MaxLen: c.MaxLen,
		Group: c.McastGroup, Port: c.McastPort, TTL: c.McastTTL}
}

// RetryInterval is how often a failed reconcile is tried again.
const RetryInterval = 5 * time.Second

// Follower keeps the kernel's sync daemons running with the configured
// parameters: following a VRRP instance, exactly one, in the role of the
// state it was last given; N-way ([sync] without vrrp_instance, the BGP
// mode), the master and the backup both, all the time, whatever SetRole
// says: every director sends its connections and receives the others'
// (the kernel's master does not hear its own multicast: it turns
// IP_MULTICAST_LOOP off, and the backup keeps only messages of its
// syncid). It reads what the kernel runs and changes only what differs: a
// daemon of a role not wanted or with other parameters is stopped (the
// kernel cannot change one in place), a wanted one missing is started.
type Follower struct {
	k   Kernel
	log *slog.Logger

	mu    sync.Mutex
	want  ipvs.SyncDaemon // State: the role to follow (0: none)
	nway  bool
	kick  chan struct{}
	state Status
	// failing counts the reconciles in a row that failed (done).
	failing int
}

// Status is what the follower last did, for status and metrics.
type Status struct {
	Running []ipvs.SyncDaemon
	// Want is the wanted daemon; its State is the followed role, which
	// N-way sync ignores.
	Want ipvs.SyncDaemon
	// NWay: master and backup run together all the time ([sync] without
	// vrrp_instance).
	NWay     bool `json:",omitempty"`
	LastErr  string
	Changes  uint64 // daemons started or stopped
	Failures uint64
}

// Wanted are the roles the kernel should run, master first as the kernel
// lists them.
func (s Status) Wanted() []ipvs.SyncState {
	return wantedRoles(s.Want, s.NWay)
}

func wantedRoles(want ipvs.SyncDaemon, nway bool) []ipvs.SyncState {
	switch {
	case nway:
		return []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup}
	case want.State == 0:
		return nil
	}
	return []ipvs.SyncState{want.State}
}

// NWay reports whether cfg asks for N-way sync: no VRRP instance to
// follow (conf allows that only with [bgp]).
func NWay(cfg conf.ConnSyncSpec) bool { return cfg.VRRPInstance == "" }

// NewFollower returns a follower with cfg's parameters: N-way when cfg
// follows no VRRP instance, else wanting a backup daemon until the first
// SetRole.
func NewFollower(k Kernel, cfg conf.ConnSyncSpec, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	want := DaemonConfig(cfg)
	want.State = ipvs.SyncBackup
	return &Follower{k: k, log: log, want: want, nway: NWay(cfg), kick: make(chan struct{}, 1)}
}

// SetRole asks for the daemon role; it never blocks (Run applies it). N-way
// sync keeps it for a later reload that names an instance, and runs both.
func (f *Follower) SetRole(r ipvs.SyncState) {
	f.mu.Lock()
	f.want.State = r
	f.mu.Unlock()
	f.poke()
}

// SetConfig takes a reload's [sync]; a daemon restarts if its parameters
// changed, and a change between N-way and following an instance starts or
// stops the role that one needs and the other not.
func (f *Follower) SetConfig(cfg conf.ConnSyncSpec) {
	f.mu.Lock()
	st := f.want.State
	f.want = DaemonConfig(cfg)
	f.want.State = st
	f.nway = NWay(cfg)
	f.mu.Unlock()
	f.poke()
}

func (f *Follower) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Status returns a snapshot.
func (f *Follower) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.state
	s.Running = append([]ipvs.SyncDaemon(nil), s.Running...)
	s.Want, s.NWay = f.want, f.nway
	return s
}

// Run reconciles at once, then on every change and, after a failure,
// every RetryInterval. When ctx ends it stops the daemons it runs (a
// stopped haldir neither sends nor receives connection state).
func (f *Follower) Run(ctx context.Context) error {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		if err := f.Reconcile(); err != nil {
			retry.Reset(RetryInterval)
		}
		select {
		case <-ctx.Done():
			return f.stopAll()
		case <-f.kick:
		case <-retry.C:
		}
	}
}

// Reconcile makes the kernel run the wanted daemons and no other.
func (f *Follower) Reconcile() error {
	f.mu.Lock()
	want, nway := f.want, f.nway
	f.mu.Unlock()
	roles := wantedRoles(want, nway)
	running, err := f.k.SyncDaemons()
	if err != nil {
		return f.done(nil, fmt.Errorf("listing sync daemons: %w", err))
	}
	var errs []error
	have := map[ipvs.SyncState]bool{}
	for _, d := range running {
		wanted := slices.Contains(roles, d.State)
		if wanted && matches(d, want) {
			have[d.State] = true
			continue
		}
		why := "configuration changed"
		if !wanted {
			why = "role " + want.State.String() + " wanted"
		}
		if err := f.k.StopSyncDaemon(d.State); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("stopping the %s sync daemon: %w", d.State, err))
			continue
		}
		f.changed()
		f.log.Info("sync daemon stopped", "daemon", d.String(), "why", why)
	}
	for _, r := range roles {
		if have[r] {
			continue
		}
		d := want
		d.State = r
		if err := f.k.StartSyncDaemon(d); err != nil {
			errs = append(errs, fmt.Errorf("starting the %s: %w", d, err))
			continue
		}
		f.changed()
		if nway {
			f.log.Info("sync daemon started", "daemon", d.String(), "mode", "n-way")
		} else {
			f.log.Info("sync daemon started", "daemon", d.String())
		}
	}
	now, lerr := f.k.SyncDaemons()
	if lerr != nil {
		now = nil
	}
	return f.done(now, errors.Join(errs...))
}

// matches says whether running d has want's configured parameters. The
// kernel reports its defaults (port 8848, TTL 1, 224.0.0.81, a computed
// maximum length) for what was left unset: only set ones count.
func matches(d, want ipvs.SyncDaemon) bool {
	return d.Interface == want.Interface && d.SyncID == want.SyncID &&
		(!want.Group.IsValid() || d.Group == want.Group) &&
		(want.Port == 0 || d.Port == want.Port) &&
		(want.TTL == 0 || d.TTL == want.TTL) &&
		(want.MaxLen == 0 || d.MaxLen == want.MaxLen)
}

func (f *Follower) changed() {
	f.mu.Lock()
	f.state.Changes++
	f.mu.Unlock()
}

func (f *Follower) done(running []ipvs.SyncDaemon, err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if running != nil {
		f.state.Running = running
	}
	f.state.LastErr = ""
	if err == nil {
		if f.failing > 0 {
			f.log.Info("sync daemon as wanted again", "failed_attempts", f.failing)
		}
		f.failing = 0
		return nil
	}
	f.state.LastErr = err.Error()
	f.state.Failures++
	f.failing++
	// One failed attempt is a warning: a kernel that did not answer in
	// time (a stalled host: stopping a sync thread waits for it) usually
	// does on the retry. Still failing at the retry, it is an error:
	// connection state is not being synchronised as the role wants.
	if f.failing == 1 {
		f.log.Warn("sync daemon not as wanted; retrying", "retry_in", RetryInterval, "error", err)
	} else {
		f.log.Error("sync daemon", "error", err, "failed_attempts", f.failing)
	}
	return err
}

func (f *Follower) stopAll() error {
	running, err := f.k.SyncDaemons()
	if err != nil {
		return fmt.Errorf("listing sync daemons: %w", err)
	}
	var errs []error
	for _, d := range running {
		if err := f.k.StopSyncDaemon(d.State); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, err)
			continue
		}
		f.log.Info("sync daemon stopped", "daemon", d.String(), "why", "shutting down")
	}
	return errors.Join(errs...)
}
