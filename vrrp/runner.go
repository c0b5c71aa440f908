package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/fifo"
)

// Runner owns the VRRP side of the daemon, as director.Reconciler owns
// the IPVS table and healthcheck.Scheduler the probes: it runs the
// instances and sync groups of a configuration, takes a reload's
// difference in place (Apply, PlanReload), hands each virtual server's
// quorum to the instances that track it, and reports every state change in
// order without ever making an instance wait (Changed, TakeChanges).
//
// Apply and Stop are meant for one caller (the daemon's loop); the other
// methods may be called from any goroutine.
type Runner struct {
	opts Options
	log  *slog.Logger
	// changes carries every instance's state changes, in order, to the
	// consumer: an instance's goroutine only appends.
	changes *fifo.Queue[StateChange]

	mu   sync.Mutex
	runs map[string]*run
	// order is the instance names in configuration order, for Status.
	order []string
	// groups are the running sync groups and how many of their members
	// run: the last one to stop closes the group.
	groups map[*SyncGroup]int
	// cfg holds the VRRP instances and sync groups running.
	cfg *conf.Spec
	// quorum is the last quorum reported per virtual server, handed to
	// instances that start after the report.
	quorum map[string]bool
	// notRunning says why an instance of cfg is not running (its start
	// failed), per instance name.
	notRunning map[string]string
	// maint is haldir maintenance, for instances that start later.
	maint maintState
}

// run is one running instance.
type run struct {
	in     *Instance
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
}

// stopTimeout bounds how long Apply and Stop wait for an instance to hand
// over and stop.
const stopTimeout = 5 * time.Second

// NewRunner returns a Runner with nothing running. opts applies to every
// instance; its OnStateChange is the Runner's own (see Changed), and its
// NotifyTimeout defaults to each configuration's global.notify_timeout.
func NewRunner(opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Runner{
		opts: opts, log: opts.Logger, changes: fifo.New[StateChange](),
		runs: map[string]*run{}, groups: map[*SyncGroup]int{}, cfg: &conf.Spec{},
		quorum: map[string]bool{}, notRunning: map[string]string{},
	}
	r.opts.OnStateChange = r.changes.Put
	// Every instance the Runner ever starts shares the link sockets, so
	// a reload's new instances join the sockets of the ones they replace.
	r.opts.links = newLinkSockets(opts.Logger)
	r.opts.timers = newTimerSet()
	return r
}

// Changed receives after one or more state changes; TakeChanges returns
// them.
func (r *Runner) Changed() <-chan struct{} { return r.changes.Ready() }

// TakeChanges returns the state changes since the last call, in the order
// each instance made them (and, for members of a sync group, in the order
// the group saw them).
func (r *Runner) TakeChanges() []StateChange { return r.changes.Take() }

// Apply makes the running instances those of cfg, changing only what the
// difference asks for (PlanReload): unchanged instances run on untouched,
// a new priority, preemption or address list is taken in place, and only
// instances whose other settings changed, or that come or go, stop and
// start. The first Apply starts everything. cfg is conf.Compile's, of a
// validated file.
func (r *Runner) Apply(cfg *conf.Spec) {
	set := NewSet(cfg, r.opts)
	r.mu.Lock()
	old := r.cfg
	r.mu.Unlock()
	plan := PlanReload(old, cfg)

	// Stop first: a restarted instance's new self must not meet its old
	// self on the wire, nor race it for the addresses and the vmac.
	var stopping []*run
	r.mu.Lock()
	for _, p := range plan {
		if p.Change == Restart || p.Change == Remove {
			r.log.Info("vrrp reload: stopping instance", "instance", p.Name, "change", p.Change.String(), "why", p.Why)
			if x := r.runs[p.Name]; x != nil {
				stopping = append(stopping, x)
			}
			delete(r.runs, p.Name)
			delete(r.notRunning, p.Name)
		}
	}
	r.mu.Unlock()
	r.stopRuns(stopping)

	// The new configuration is in force from here.
	r.mu.Lock()
	r.cfg = &conf.Spec{VRRP: cfg.VRRP, SyncGroups: cfg.SyncGroups}
	r.order = r.order[:0]
	for _, ic := range cfg.VRRP {
		r.order = append(r.order, ic.Name)
	}
	r.mu.Unlock()

	used := map[*SyncGroup]bool{}
	for _, p := range plan {
		nin := set.Instance(p.Name)
		r.mu.Lock()
		x := r.runs[p.Name]
		r.mu.Unlock()
		if (p.Change == Keep || p.Change == Update) && x == nil {
			// Not ours to keep (it never started): start it.
			p.Change, p.Why = Restart, "it was not running"
		}
		if (p.Change == Keep || p.Change == Update) && x.ended() && nin.Group() == nil {
			// It failed to start (an interface missing, say): a reload is
			// the operator's way to try again. (A sync group's members
			// share their group; retrying one alone would split it.)
			p.Change, p.Why = Restart, "it was not running"
		}
		switch p.Change {
		case Keep:
		case Update:
			if err := x.in.Reconfigure(nin.cfg); err != nil {
				// PlanReload and Reconfigure agree on what changes in
				// place; this is a bug, not an operator's mistake.
				r.log.Error("vrrp reload: in-place update refused", "instance", p.Name, "error", err)
				continue
			}
			r.log.Info("vrrp reload: instance updated in place", "instance", p.Name, "why", p.Why)
		case Restart, Add:
			r.log.Info("vrrp reload: starting instance", "instance", p.Name, "change", p.Change.String(), "why", p.Why)
			if g := nin.Group(); g != nil {
				used[g] = true
			}
			r.start(nin)
		}
	}
	// The new set built a group for every sync group; those whose members
	// keep running keep their old one.
	for _, g := range set.Groups {
		if !used[g] {
			g.Close()
		}
	}
}

// start runs in with the quorum states reported so far. Instances run on
// their own contexts: on stop, masters hand over (priority 0) first.
func (r *Runner) start(in *Instance) {
	ctx, cancel := context.WithCancel(context.Background())
	x := &run{in: in, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	for name, up := range r.quorum {
		in.SetVirtualServerUp(name, up)
	}
	if r.maint.on {
		in.maint.set(true, r.maint.reason)
	}
	r.runs[in.Name()] = x
	delete(r.notRunning, in.Name())
	if g := in.Group(); g != nil {
		r.groups[g]++
	}
	r.mu.Unlock()
	go func() {
		defer close(x.done)
		if err := in.Run(ctx); err != nil {
			r.log.Error("vrrp instance failed to start", "instance", in.Name(), "error", err)
			r.mu.Lock()
			if r.runs[in.Name()] == x {
				r.notRunning[in.Name()] = err.Error()
			}
			r.mu.Unlock()
		}
	}()
}

// stopRuns stops instances together (each master hands over) and closes
// the sync groups left without members.
func (r *Runner) stopRuns(runs []*run) {
	for _, x := range runs {
		x.cancel()
	}
	deadline := time.After(stopTimeout)
	for _, x := range runs {
		select {
		case <-x.done:
		case <-deadline:
			r.log.Error("vrrp instance did not stop in time", "instance", x.in.Name(), "timeout", stopTimeout.String())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range runs {
		if g := x.in.Group(); g != nil {
			if r.groups[g]--; r.groups[g] == 0 {
				delete(r.groups, g)
				g.Close()
			}
		}
	}
}

// ended is whether the instance's Run has returned.
func (x *run) ended() bool {
	select {
	case <-x.done:
		return true
	default:
		return false
	}
}

// SetVirtualServerUp reports whether the virtual server called name has
// its quorum on this director (director.Options.OnQuorum). It is kept for
// instances that start later and handed to every running instance, which
// applies it if it tracks the virtual server. It never blocks.
func (r *Runner) SetVirtualServerUp(name string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.quorum[name] = up
	for _, x := range r.runs {
		x.in.SetVirtualServerUp(name, up)
	}
}

// Status returns a snapshot of every running instance, in configuration
// order.
func (r *Runner) Status() []Status {
	var out []Status
	for _, in := range r.instances() {
		out = append(out, in.Status())
	}
	return out
}

func (r *Runner) instances() []*Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Instance
	for _, name := range r.order {
		if x := r.runs[name]; x != nil {
			out = append(out, x.in)
		}
	}
	return out
}

// Instance returns the running instance called name, or nil. A restart
// makes a new one.
func (r *Runner) Instance(name string) *Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x := r.runs[name]; x != nil {
		return x.in
	}
	return nil
}

// Names lists the configured instances in configuration order.
func (r *Runner) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// NotRunning says, per instance name, why a configured instance is not
// running (its start failed). A reload tries it again.
func (r *Runner) NotRunning() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.notRunning)
}

// Alive returns nil when every running instance's event loop answers a
// ping before ctx ends (the daemon's watchdog). An instance that failed to
// start is not running (NotRunning), not stalled.
func (r *Runner) Alive(ctx context.Context) error {
	r.mu.Lock()
	var ins []*Instance
	for _, name := range r.order {
		if x := r.runs[name]; x != nil && !x.ended() {
			ins = append(ins, x.in)
		}
	}
	r.mu.Unlock()
	for _, in := range ins {
		if err := in.Ping(ctx); err != nil && !errors.Is(err, ErrStopped) {
			return err
		}
	}
	return nil
}

// Stop stops every instance together (a master sends priority 0 so a
// backup takes over at once, and removes its addresses) and closes the
// sync groups.
func (r *Runner) Stop() {
	r.mu.Lock()
	var runs []*run
	for _, x := range r.runs {
		runs = append(runs, x)
	}
	clear(r.runs)
	r.mu.Unlock()
	r.stopRuns(runs)
}

// InstanceConfig returns the running configuration of the instance called
// name, and whether there is one.
func (r *Runner) InstanceConfig(name string) (conf.VRRPInstanceSpec, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ic := range r.cfg.VRRP {
		if ic.Name == name {
			return ic, true
		}
	}
	return conf.VRRPInstanceSpec{}, false
}
