package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// components are the running parts of the daemon and the glue between them:
// health transitions become director verdicts; the director's quorum of
// each virtual server feeds VRRP's track_virtual_server; VRRP state changes
// are logged (and, with the sync issue, drive the conn-sync daemon).
type components struct {
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// VRRP instances run one by one so that a reload can stop, start or
	// update each in place (vrrp.PlanReload). Guarded by mu.
	vrrpRuns   map[string]*vrrpRun
	vrrpOrder  []string                // instance names in configuration order, for status
	vrrpGroups map[*vrrp.SyncGroup]int // running sync groups, and how many members run
	vrrpCfg    *conf.Config            // the configuration the VRRP instances run

	hc  *healthcheck.Scheduler
	dir *director.Reconciler
	// kernel is the IPVS backend the director writes; the sync follower
	// runs the kernel's sync daemons through it.
	kernel ipvs.Kernel
	// follower runs the conn-sync daemon in the role of syncInstance's
	// VRRP state; guarded by mu.
	follower     *connsync.Follower
	syncInstance string
	syncStop     func()
	// cluster is this director's gossip membership; nil without [cluster].
	cluster *cluster.Cluster
	// vrrpStates is each instance's last state change (guarded by mu),
	// what the cluster hears; tellMu orders the cluster updates so that
	// a later state is never overwritten by an earlier snapshot.
	vrrpStates map[string]vrrp.StateChange
	tellMu     sync.Mutex
	// newKernel opens the IPVS backend; tests swap in the fake.
	newKernel func() (ipvs.Kernel, func(), error)
	closeK    func()
	// vrrpDo, when set, runs VRRP's socket and netlink work in another
	// network namespace (vrrp.Options.Do); tests use a lab host.
	vrrpDo func(func() error) error

	stopOnce sync.Once

	mu   sync.Mutex
	subs map[string][]director.Verdict // probe key -> the (service, real) pairs it judges
	// quorum is the last quorum the director reported per virtual server
	// name, replayed to VRRP instances that start after the report.
	quorum map[string]bool
	// vsNames are the configured virtual servers, for the status line.
	vsNames []string
	// dead are the goRun components whose loop ended with an error.
	dead []string
	// statusKick holds one pending "the one-line status may have
	// changed" (a VRRP state, a virtual server's quorum) for the daemon's
	// main loop, which computes and sends it: the VRRP goroutine that
	// reports a transition only drops a token here.
	statusKick chan struct{}
	// notRunning says which configured components failed and why, for
	// status, metrics and the start-up warning. A component the file
	// does not ask for is not listed: it is not a fault.
	notRunning map[string]string
}

func newComponents(log *slog.Logger) *components {
	return &components{
		log: log,
		newKernel: func() (ipvs.Kernel, func(), error) {
			k, err := ipvs.Open("")
			if err != nil {
				return nil, nil, err
			}
			return k, k.Close, nil
		},
		subs:       map[string][]director.Verdict{},
		quorum:     map[string]bool{},
		notRunning: map[string]string{},
		vrrpRuns:   map[string]*vrrpRun{},
		vrrpGroups: map[*vrrp.SyncGroup]int{},
		vrrpCfg:    &conf.Config{},
		vrrpStates: map[string]vrrp.StateChange{},
		statusKick: make(chan struct{}, 1),
	}
}

// vrrpRun is one running VRRP instance.
type vrrpRun struct {
	in     *vrrp.Instance
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
}

// start brings up every component cfg asks for. An error leaves nothing
// running.
func (c *components) start(cfg *conf.Config) (err error) {
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	c.startCluster(cfg)
	c.setVSNames(cfg)

	if len(cfg.VirtualServers) > 0 {
		k, closeK, err := c.newKernel()
		if err != nil {
			return fmt.Errorf("director: %w", err)
		}
		c.kernel, c.closeK = k, closeK
		c.dir = director.New(k, director.Options{Logger: c.log.With("component", "director"), OnQuorum: c.quorumChanged})
		spec := conf.Compile(cfg)
		if err := c.dir.SetConfig(spec); err != nil {
			return fmt.Errorf("director: %w", err)
		}
		c.hc = healthcheck.New(healthcheck.Options{NotifyTimeout: cfg.Global.NotifyTimeout.D(), Logger: c.log.With("component", "healthcheck")})
		if err := c.updateChecks(spec); err != nil {
			return err
		}
		c.goRun("director", c.dir.Run)
		c.goRun("healthcheck", c.hc.Run)
		c.goRun("health transitions", c.followTransitions)
	}

	// Before VRRP, so that the follower sees every state change.
	c.reloadSync(cfg)
	if err := c.reloadVRRP(cfg); err != nil {
		return err
	}
	// Whatever the instances reported while they started, the cluster
	// hears the whole state once.
	c.tellCluster(cfg)
	return nil
}

// startCluster joins the gossip cluster of [cluster]. A cluster that
// cannot start (an unreadable key, a port in use) is reported and logged;
// the director and VRRP run without it.
func (c *components) startCluster(cfg *conf.Config) {
	if cfg.Cluster == nil {
		return
	}
	key, err := cluster.ReadSecret(cfg.Cluster.SecretFile)
	var cl *cluster.Cluster
	if err == nil {
		cl, err = cluster.JoinCluster(*cfg.Cluster, key, cluster.NodeState{Config: conf.Compile(cfg).Hashes()},
			cluster.ClusterOptions{Version: version, Logger: c.log.With("component", "cluster")})
	}
	if err != nil {
		c.log.Error("cluster not started", "error", err)
		c.notRunning["cluster"] = err.Error()
		return
	}
	c.cluster = cl
}

// tellCluster spreads this director's VRRP states (the last state change
// of each instance: an instance's status lags behind its OnStateChange),
// and with cfg its configuration hashes, to the cluster.
func (c *components) tellCluster(cfg *conf.Config) {
	c.tellMu.Lock()
	defer c.tellMu.Unlock()
	c.mu.Lock()
	cl, vc := c.cluster, c.vrrpCfg
	var states []cluster.InstanceState
	for _, name := range c.vrrpOrder {
		sc, ok := c.vrrpStates[name]
		if !ok {
			continue
		}
		ic := configOf(vc, name)
		fam := 4
		if len(ic.VirtualAddresses) > 0 {
			fam = vrrp.Family(ic.VirtualAddresses[0].Addr())
		}
		states = append(states, cluster.InstanceState{Name: name, VRID: ic.VRID, Family: fam, State: sc.To.String(), Priority: int(sc.Priority)})
	}
	c.mu.Unlock()
	if cl == nil {
		return
	}
	cl.Update(func(s *cluster.NodeState) {
		s.VRRP = states
		if cfg != nil {
			s.Config = conf.Compile(cfg).Hashes()
		}
	})
}

// reloadSync starts, reconfigures or stops the conn-sync follower for
// cfg's [sync].
func (c *components) reloadSync(cfg *conf.Config) {
	c.mu.Lock()
	f := c.follower
	c.mu.Unlock()
	switch {
	case cfg.Sync == nil && f != nil:
		c.stopSync()
	case cfg.Sync == nil:
		c.mu.Lock()
		delete(c.notRunning, "sync")
		c.mu.Unlock()
	case f != nil:
		f.SetConfig(*cfg.Sync)
		c.mu.Lock()
		c.syncInstance = cfg.Sync.VRRPInstance
		c.setSyncRoleLocked(f)
		c.mu.Unlock()
	default:
		if c.kernel == nil {
			c.mu.Lock()
			c.notRunning["sync"] = "[sync] needs the IPVS kernel, which runs only with a virtual_server configured"
			c.mu.Unlock()
			return
		}
		f = connsync.NewFollower(c.kernel, *cfg.Sync, c.log.With("component", "sync"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := f.Run(ctx); err != nil {
				c.log.Error("stopping the sync daemons", "error", err)
			}
		}()
		c.mu.Lock()
		c.follower, c.syncInstance = f, cfg.Sync.VRRPInstance
		c.setSyncRoleLocked(f)
		c.syncStop = func() { cancel(); <-done }
		delete(c.notRunning, "sync")
		c.mu.Unlock()
	}
}

// setSyncRoleLocked gives f the role of its instance's last state change.
// Called with mu held, as OnStateChange's SetRole is, so that the two
// cannot cross and leave an older role in place.
func (c *components) setSyncRoleLocked(f *connsync.Follower) {
	if sc, ok := c.vrrpStates[c.syncInstance]; ok {
		f.SetRole(connsync.Role(sc.To))
	}
}

// stopSync ends the follower, which stops the kernel's sync daemons.
func (c *components) stopSync() {
	c.mu.Lock()
	stop := c.syncStop
	c.follower, c.syncStop, c.syncInstance = nil, nil, ""
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (c *components) syncFollower() *connsync.Follower {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.follower
}

// goRun runs a component's loop. One that ends with an error before the
// daemon stops is not running: status says so and the watchdog stops.
func (c *components) goRun(name string, f func(context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := f(c.ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Error("component stopped", "component", name, "error", err)
			c.mu.Lock()
			c.notRunning[name] = "stopped: " + err.Error()
			c.dead = append(c.dead, name)
			c.mu.Unlock()
		}
	}()
}

// reloadVRRP makes the running VRRP instances those of cfg, changing only
// what the difference asks for (vrrp.PlanReload): unchanged instances run
// on untouched, a new priority or preemption is taken in place, and only
// instances whose other settings changed, or that come or go, stop and
// start. An invalid set leaves every instance as it was.
func (c *components) reloadVRRP(cfg *conf.Config) error {
	set, err := vrrp.NewSet(cfg, vrrp.Options{
		Do:     c.vrrpDo,
		Logger: c.log.With("component", "vrrp"),
		OnStateChange: func(sc vrrp.StateChange) {
			// The instance logs the transition itself ("vrrp state
			// change"); once is enough.
			c.mu.Lock()
			c.vrrpStates[sc.Instance] = sc
			if f := c.follower; f != nil && c.syncInstance == sc.Instance {
				f.SetRole(connsync.Role(sc.To)) // never blocks
			}
			c.mu.Unlock()
			c.tellCluster(nil)
			c.statusChanged()
		},
	})
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	c.mu.Lock()
	old := c.vrrpCfg
	c.mu.Unlock()
	plan := vrrp.PlanReload(old, cfg)

	// Stop first: a restarted instance's new self must not meet its old
	// self on the wire, nor race it for the addresses and the vmac.
	var stopping []*vrrpRun
	for _, p := range plan {
		if p.Change == vrrp.Restart || p.Change == vrrp.Remove {
			c.log.Info("vrrp reload: stopping instance", "instance", p.Name, "change", p.Change.String(), "why", p.Why)
			c.mu.Lock()
			r := c.vrrpRuns[p.Name]
			delete(c.vrrpRuns, p.Name)
			delete(c.notRunning, "vrrp "+p.Name)
			c.mu.Unlock()
			if r != nil {
				stopping = append(stopping, r)
			}
		}
	}
	c.stopRuns(stopping)
	// The new configuration is in force from here: the state changes of
	// the instances about to start report against it (tellCluster).
	c.mu.Lock()
	c.vrrpCfg = &conf.Config{VRRP: cfg.VRRP, VRRPSyncGroups: cfg.VRRPSyncGroups}
	c.vrrpOrder = nil
	for _, ic := range cfg.VRRP {
		c.vrrpOrder = append(c.vrrpOrder, ic.Name)
	}
	c.mu.Unlock()

	used := map[*vrrp.SyncGroup]bool{}
	for _, p := range plan {
		nin := set.Instance(p.Name)
		c.mu.Lock()
		r := c.vrrpRuns[p.Name]
		c.mu.Unlock()
		if (p.Change == vrrp.Keep || p.Change == vrrp.Update) && r == nil {
			// Not ours to keep (it never started): start it.
			p.Change, p.Why = vrrp.Restart, "it was not running"
		}
		if (p.Change == vrrp.Keep || p.Change == vrrp.Update) && ended(r) && nin.Group() == nil {
			// It failed to start (an interface missing, say): a reload is
			// the operator's way to try again. (A sync group's members
			// share their group; retrying one alone would split it.)
			c.mu.Lock()
			delete(c.notRunning, "vrrp "+p.Name)
			c.mu.Unlock()
			p.Change, p.Why = vrrp.Restart, "it was not running"
		}
		switch p.Change {
		case vrrp.Keep:
			r.in.SetSiblings(nin)
		case vrrp.Update:
			r.in.SetSiblings(nin)
			if err := r.in.Reconfigure(configOf(cfg, p.Name)); err != nil {
				// PlanReload and Reconfigure agree on what changes in
				// place; this is a bug, not an operator's mistake.
				c.log.Error("vrrp reload: in-place update refused", "instance", p.Name, "error", err)
				continue
			}
			c.log.Info("vrrp reload: instance updated in place", "instance", p.Name, "why", p.Why)
		case vrrp.Restart, vrrp.Add:
			c.log.Info("vrrp reload: starting instance", "instance", p.Name, "change", p.Change.String(), "why", p.Why)
			if g := nin.Group(); g != nil {
				used[g] = true
			}
			c.runInstance(nin)
		}
	}
	// The new set built a group for every sync group; those whose members
	// keep running keep their old one.
	for _, g := range set.Groups {
		if !used[g] {
			g.Close()
		}
	}
	return nil
}

// runInstance starts in with the quorum states reported so far. VRRP runs
// on its own contexts: on stop, masters must hand over (priority 0) before
// anything else goes away.
func (c *components) runInstance(in *vrrp.Instance) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &vrrpRun{in: in, cancel: cancel, done: make(chan struct{})}
	c.mu.Lock()
	for name, up := range c.quorum {
		in.SetVirtualServerUp(name, up)
	}
	c.vrrpRuns[in.Name()] = r
	if g := in.Group(); g != nil {
		c.vrrpGroups[g]++
	}
	c.mu.Unlock()
	go func() {
		defer close(r.done)
		if err := in.Run(ctx); err != nil {
			c.log.Error("vrrp instance failed to start", "instance", in.Name(), "error", err)
			c.mu.Lock()
			if c.vrrpRuns[in.Name()] == r {
				c.notRunning["vrrp "+in.Name()] = err.Error()
			}
			c.mu.Unlock()
		}
	}()
}

// stopRuns stops instances together (each master hands over) and closes
// the sync groups left without members.
func (c *components) stopRuns(runs []*vrrpRun) {
	for _, r := range runs {
		r.cancel()
	}
	deadline := time.After(5 * time.Second)
	for _, r := range runs {
		select {
		case <-r.done:
		case <-deadline:
			c.log.Error("vrrp instance did not stop within 5s", "instance", r.in.Name())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range runs {
		if g := r.in.Group(); g != nil {
			if c.vrrpGroups[g]--; c.vrrpGroups[g] == 0 {
				delete(c.vrrpGroups, g)
				g.Close()
			}
		}
	}
}

func ended(r *vrrpRun) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// vrrpInstances lists the running instances in configuration order.
func (c *components) vrrpInstances() []*vrrp.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*vrrp.Instance
	for _, name := range c.vrrpOrder {
		if r := c.vrrpRuns[name]; r != nil {
			out = append(out, r.in)
		}
	}
	return out
}

// vrrpInstance returns the running instance called name, or nil.
func (c *components) vrrpInstance(name string) *vrrp.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.vrrpRuns[name]; r != nil {
		return r.in
	}
	return nil
}

func configOf(cfg *conf.Config, name string) conf.VRRPInstance {
	for _, ic := range cfg.VRRP {
		if ic.Name == name {
			return ic
		}
	}
	return conf.VRRPInstance{}
}

// quorumChanged is the director's OnQuorum: it remembers the state and
// hands it to the VRRP instances that track the virtual server. It runs on
// the director's goroutine; the instances take it without blocking.
func (c *components) quorumChanged(q director.QuorumState) {
	c.log.Info("virtual server quorum", "virtual_server", q.Name, "up", q.Up, "alive_weight", q.AliveWeight, "quorum", q.Quorum)
	c.mu.Lock()
	c.quorum[q.Name] = q.Up
	for _, r := range c.vrrpRuns {
		r.in.SetVirtualServerUp(q.Name, q.Up)
	}
	c.mu.Unlock()
	c.statusChanged()
}

// targets lists one health-check target per (virtual server, checked real
// server) and who subscribes to each probe key.
func targets(spec *conf.Spec) ([]healthcheck.Target, map[string][]director.Verdict) {
	var ts []healthcheck.Target
	subs := map[string][]director.Verdict{}
	for i := range spec.VirtualServers {
		vs := &spec.VirtualServers[i]
		key := director.Key(vs)
		for _, rs := range vs.RealServers {
			if rs.Check == nil {
				continue
			}
			addr := rs.Addr
			t := healthcheck.Target{Addr: addr, Check: *rs.Check,
				Notify: healthcheck.Notify{VirtualServer: vs.Name, RealServer: rs.Name, Up: rs.NotifyUp, Down: rs.NotifyDown}}
			ts = append(ts, t)
			subs[t.Key()] = append(subs[t.Key()], director.Verdict{Service: key, Real: addr})
		}
	}
	return ts, subs
}

// updateChecks points the scheduler at spec's targets; unchanged probes keep
// their state and history. The states it returns are handed to the director
// at once so a reload does not wait for the next transition.
func (c *components) updateChecks(spec *conf.Spec) error {
	ts, subs := targets(spec)
	states, err := c.hc.Update(ts)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	c.mu.Lock()
	c.subs = subs
	c.mu.Unlock()
	for _, st := range states {
		c.apply(st)
	}
	return nil
}

// apply hands one probe verdict to every virtual server that uses it.
func (c *components) apply(t healthcheck.Transition) {
	c.mu.Lock()
	subs := c.subs[t.Key]
	c.mu.Unlock()
	for _, v := range subs {
		v.Up, v.Weight, v.WeightSet = t.Up, t.Weight, t.Weight >= 0
		c.dir.SetHealth(v)
	}
}

func (c *components) followTransitions(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-c.hc.Transitions():
			c.log.Info("health transition", "target", t.Target.Addr.String(), "check", t.Target.Check.Kind,
				"up", t.Up, "weight", t.Weight, "reason", t.Reason)
			c.apply(t)
		}
	}
}

// reload applies a new, valid configuration: the director diffs the IPVS
// table, the scheduler keeps unchanged probes, VRRP changes only the
// instances that changed. It returns an error when a part could not take
// the new config; that part keeps the old one.
func (c *components) reload(old, cfg *conf.Config) error {
	var errs []error
	switch {
	case c.dir != nil:
		spec := conf.Compile(cfg)
		if err := c.dir.SetConfig(spec); err != nil {
			errs = append(errs, fmt.Errorf("director: %w", err))
		} else if err := c.updateChecks(spec); err != nil {
			errs = append(errs, err)
		}
	case len(cfg.VirtualServers) > 0:
		c.log.Warn("virtual servers added to a configuration that had none take effect at restart")
	}
	c.setVSNames(cfg)
	c.reloadSync(cfg)
	// After the director: a new instance's addresses come up with their
	// virtual servers already in the table.
	if err := c.reloadVRRP(cfg); err != nil {
		errs = append(errs, err)
	}
	if !reflect.DeepEqual(old.Cluster, cfg.Cluster) {
		c.log.Warn("cluster changes take effect at restart; the running cluster membership stays")
	}
	c.tellCluster(cfg)
	return errors.Join(errs...)
}

// stop shuts down in order: VRRP first (a master sends priority 0 so the
// backup takes over at once), then checks and the director. The IPVS table
// is left as it is, so a restart adopts it without resetting a connection.
func (c *components) stop() { c.stopOnce.Do(c.stopNow) }

func (c *components) stopNow() {
	c.mu.Lock()
	var runs []*vrrpRun
	for _, r := range c.vrrpRuns {
		runs = append(runs, r)
	}
	clear(c.vrrpRuns)
	c.mu.Unlock()
	c.stopRuns(runs)
	c.stopSync()
	if c.cluster != nil {
		if err := c.cluster.Leave(time.Second); err != nil {
			c.log.Warn("leaving the cluster", "error", err)
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	if c.closeK != nil {
		c.closeK()
	}
}

func (c *components) notRunningSnapshot() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.notRunning)
}

func (c *components) setVSNames(cfg *conf.Config) {
	var names []string
	for _, vs := range cfg.VirtualServers {
		names = append(names, vs.Name)
	}
	c.mu.Lock()
	c.vsNames = names
	c.mu.Unlock()
}

func (c *components) statusChanged() {
	select {
	case c.statusKick <- struct{}{}:
	default: // one pending is enough: the line is computed when sent
	}
}

// statusLine is the one-line state systemd shows (sd_notify STATUS=):
// each VRRP instance's state and how many virtual servers have quorum,
// "VI_1 master, VI_2 backup; 3 of 4 virtual servers up".
func (c *components) statusLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var vrrpParts []string
	for _, name := range c.vrrpOrder {
		switch sc, ok := c.vrrpStates[name]; {
		case c.notRunning["vrrp "+name] != "":
			vrrpParts = append(vrrpParts, name+" not running")
		case ok:
			vrrpParts = append(vrrpParts, name+" "+sc.To.String())
		default:
			vrrpParts = append(vrrpParts, name+" starting")
		}
	}
	var parts []string
	if len(vrrpParts) > 0 {
		parts = append(parts, strings.Join(vrrpParts, ", "))
	}
	if n := len(c.vsNames); n > 0 {
		up := 0
		for _, name := range c.vsNames {
			if c.quorum[name] {
				up++
			}
		}
		parts = append(parts, fmt.Sprintf("%d of %d virtual servers up", up, n))
	}
	if len(c.notRunning) > 0 {
		parts = append(parts, fmt.Sprintf("%d not running", len(c.notRunning)))
	}
	if len(parts) == 0 {
		return "nothing configured"
	}
	return strings.Join(parts, "; ")
}

// alive says whether the components are alive, for the systemd watchdog:
// no component loop has died, and every running VRRP instance's event loop
// answers a ping before ctx ends. An instance that failed to start is not
// running (status says so), not stalled.
func (c *components) alive(ctx context.Context) error {
	c.mu.Lock()
	dead := slices.Clone(c.dead)
	var runs []*vrrpRun
	for _, name := range c.vrrpOrder {
		if r := c.vrrpRuns[name]; r != nil && !ended(r) {
			runs = append(runs, r)
		}
	}
	c.mu.Unlock()
	if len(dead) > 0 {
		return fmt.Errorf("%s stopped", strings.Join(dead, ", "))
	}
	for _, r := range runs {
		if err := r.in.Ping(ctx); err != nil && !errors.Is(err, vrrp.ErrStopped) {
			return err
		}
	}
	return nil
}
