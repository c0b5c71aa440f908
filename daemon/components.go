package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/internal/memtune"
)

// start brings up every component cfg asks for. An error leaves nothing
// running.
func (d *Daemon) start(cfg *conf.Config) (err error) {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	spec := conf.Compile(cfg)
	d.loadOperator(cfg)
	d.loadLastDrill()
	// Hashed once, and only for a cluster: it joins with them and
	// tellCluster spreads them.
	var hashes map[string]string
	if cfg.Cluster != nil {
		hashes = clusterHashes(spec)
	}
	d.startCluster(cfg, hashes)
	d.setVSNames(spec)

	if len(cfg.VirtualServers) > 0 {
		k, closeK, err := d.opts.NewKernel()
		if err != nil {
			return fmt.Errorf("director: %w", err)
		}
		d.kernel, d.closeK = k, closeK
		// The director reports from its own goroutine; the loop takes it.
		d.dir = director.New(k, director.Options{Logger: d.log.With("component", "director"), OnQuorum: d.quorums.Put})
		if err := d.dir.SetConfig(spec); err != nil {
			return fmt.Errorf("director: %w", err)
		}
		// Before the director's first pass: a restart keeps a drained
		// real server drained.
		d.applyDrains(cfg)
		d.hc = healthcheck.New(healthcheck.Options{NotifyTimeout: spec.Global.NotifyTimeout, Logger: d.log.With("component", "healthcheck")})
		if err := d.updateChecks(spec); err != nil {
			return err
		}
		d.goRun("director", d.dir.Run)
		d.goRun("healthcheck", d.hc.Run)
	} else {
		d.applyDrains(cfg) // none can apply: dropped, and said so
	}

	// Before VRRP, so that the follower takes every state change.
	d.reloadSync(spec)
	// Before the instances start: a director restarted in maintenance
	// never takes mastership on the way.
	d.startMaintenance()
	// After the director: a prefix is announced once its virtual
	// servers are in the table with quorum.
	d.startBGP(spec)
	// After the director: an instance's addresses come up with their
	// virtual servers already in the table.
	d.vrrp.Apply(spec)
	d.tellCluster(hashes)
	d.startConnSyncRefresh()
	// Loading built every component at once: what that left behind goes
	// back to the kernel now, not whenever the paced collector gets to it.
	memtune.ReleaseAfterLoad(nil)
	return nil
}

// startCluster joins the gossip cluster of [cluster]. A cluster that
// cannot start (an unreadable key, a port in use) is reported and logged;
// the director and VRRP run without it.
func (d *Daemon) startCluster(cfg *conf.Config, hashes map[string]string) {
	if cfg.Cluster == nil {
		return
	}
	key, err := cluster.ReadSecret(cfg.Cluster.SecretFile)
	var cl *cluster.Cluster
	if err == nil {
		cl, err = cluster.JoinCluster(*cfg.Cluster, key, cluster.NodeState{Config: hashes},
			cluster.ClusterOptions{Version: d.opts.Version, Logger: d.log.With("component", "cluster"), OnTakeOver: d.takeovers.Put})
	}
	if err != nil {
		d.log.Error("cluster not started", "error", err)
		d.notRunning["cluster"] = err.Error()
		return
	}
	d.cluster = cl
}

// tellCluster spreads this director's VRRP states (the last state change
// of each instance) and, when not nil, its configuration hashes to the
// cluster.
func (d *Daemon) tellCluster(hashes map[string]string) {
	if d.cluster == nil {
		return
	}
	var states []cluster.InstanceState
	sources := map[string]netip.Addr{}
	for _, st := range d.vrrp.Status() {
		sources[st.Name] = st.Source
	}
	for _, name := range d.vrrp.Names() {
		sc, ok := d.vrrpStates[name]
		if !ok {
			continue
		}
		ic, _ := d.vrrp.InstanceConfig(name)
		states = append(states, cluster.InstanceState{Name: name, VRID: int(ic.VRID), Family: ic.Family.IPVersion(), State: sc.To.String(), Priority: int(sc.Priority),
			Source: sources[name], Changed: sc.At, Why: sc.Reason})
	}
	var recent []cluster.Event
	for _, e := range d.recent[max(0, len(d.recent)-cluster.MaxRecent):] {
		recent = append(recent, cluster.Event{At: e.At, What: e.What})
	}
	d.cluster.Update(func(s *cluster.NodeState) {
		s.VRRP = states
		s.Recent = recent
		s.BGPAnnounced = d.announcedPrefixes()
		s.Maintenance, s.MaintenanceReason = d.op.Maintenance != nil, ""
		if m := d.op.Maintenance; m != nil {
			s.MaintenanceReason = m.Reason
		}
		if hashes != nil {
			s.Config = hashes
		}
	})
}

// reloadSync starts, reconfigures or stops the conn-sync follower for
// spec's [sync].
func (d *Daemon) reloadSync(spec *conf.Spec) {
	d.bgpMode(spec)
	switch {
	case spec.Sync == nil && d.follower != nil:
		d.stopSync()
	case spec.Sync == nil:
		delete(d.notRunning, "sync")
	case d.follower != nil:
		d.follower.SetConfig(*spec.Sync)
		d.syncInstance = spec.Sync.VRRPInstance
		d.setSyncRole()
	default:
		if d.kernel == nil {
			d.notRunning["sync"] = "[sync] needs the IPVS kernel, which runs only with a virtual_server configured"
			return
		}
		f := connsync.NewFollower(d.kernel, *spec.Sync, d.log.With("component", "sync"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := f.Run(ctx); err != nil {
				d.log.Error("stopping the sync daemons", "error", err)
			}
		}()
		d.follower, d.syncInstance = f, spec.Sync.VRRPInstance
		if connsync.NWay(*spec.Sync) {
			d.remember(time.Now(), "conn sync: N-way, the kernel's master and backup sync daemons run together")
		}
		d.setSyncRole()
		d.syncStop = func() { cancel(); <-done }
		delete(d.notRunning, "sync")
	}
}

// setSyncRole gives the follower the role of its instance's last state
// change.
func (d *Daemon) setSyncRole() {
	if sc, ok := d.vrrpStates[d.syncInstance]; ok {
		d.follower.SetRole(connsync.Role(sc.To))
	}
}

// stopSync ends the follower, which stops the kernel's sync daemons.
func (d *Daemon) stopSync() {
	stop := d.syncStop
	d.follower, d.syncStop, d.syncInstance = nil, nil, ""
	if stop != nil {
		stop()
	}
}

// goRun runs a component's loop. One that ends with an error before the
// daemon stops is not running: the loop hears of it (status says so and
// the watchdog stops).
func (d *Daemon) goRun(name string, f func(context.Context) error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(d.ctx); err != nil && !errors.Is(err, context.Canceled) {
			select {
			case d.died <- died{name, err}:
			case <-d.ctx.Done():
			}
		}
	}()
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
			t := healthcheck.Target{Addr: addr, Check: rs.Check,
				Notify: healthcheck.Notify{VirtualServer: vs.Name, RealServer: rs.Name, Up: rs.NotifyUp, Down: rs.NotifyDown}}
			ts = append(ts, t)
			k := t.Key()
			subs[k] = append(subs[k], director.Verdict{Service: key, Real: addr})
		}
	}
	return ts, subs
}

// updateChecks points the scheduler at spec's targets; unchanged probes keep
// their state and history. The states it returns are handed to the director
// at once so a reload does not wait for the next transition.
func (d *Daemon) updateChecks(spec *conf.Spec) error {
	ts, subs := targets(spec)
	states, err := d.hc.Update(ts)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	d.subs = subs
	for _, st := range states {
		d.applyHealth(st)
	}
	return nil
}

// applyHealth hands one probe verdict to every virtual server that uses it.
func (d *Daemon) applyHealth(t healthcheck.Transition) {
	for _, v := range d.subs[t.Key] {
		v.Up, v.Weight, v.WeightSet = t.Up, t.Weight, t.Weight >= 0
		d.dir.SetHealth(v)
	}
}

// reload applies a new, valid configuration: the director diffs the IPVS
// table, the scheduler keeps unchanged probes, VRRP changes only the
// instances that changed. It returns an error when a part could not take
// the new config; that part keeps the old one.
func (d *Daemon) reload(old, cfg *conf.Config) error {
	spec := conf.Compile(cfg)
	var errs []error
	switch {
	case d.dir != nil:
		if err := d.dir.SetConfig(spec); err != nil {
			errs = append(errs, fmt.Errorf("director: %w", err))
			break
		}
		// Kept across the reload, also when it changed their weights;
		// those of real servers it removed are dropped.
		d.applyDrains(cfg)
		if err := d.updateChecks(spec); err != nil {
			errs = append(errs, err)
		}
	case len(cfg.VirtualServers) > 0:
		d.log.Warn("virtual servers added to a configuration that had none take effect at restart")
	}
	if d.dir == nil {
		d.applyDrains(cfg)
	}
	d.setVSNames(spec)
	d.reloadSync(spec)
	d.reloadBGP(spec)
	// After the director: a new instance's addresses come up with their
	// virtual servers already in the table.
	d.vrrp.Apply(spec)
	if !reflect.DeepEqual(old.Cluster, cfg.Cluster) {
		d.log.Warn("cluster changes take effect at restart; the running cluster membership stays")
	}
	if d.cluster != nil {
		d.tellCluster(clusterHashes(spec))
	}
	return errors.Join(errs...)
}

// stop shuts down in order: BGP first (every prefix withdrawn, gracefully,
// so the routers move the traffic while this director still serves it),
// then VRRP (a master sends priority 0 so the backup takes over at once),
// then checks and the director. The IPVS table
// is left as it is, so a restart adopts it without resetting a connection.
func (d *Daemon) stop() { d.stopOnce.Do(d.stopNow) }

func (d *Daemon) stopNow() {
	d.stopBGP()
	d.vrrp.Stop()
	d.stopSync()
	if d.cluster != nil {
		if err := d.cluster.Leave(time.Second); err != nil {
			d.log.Warn("leaving the cluster", "error", err)
		}
	}
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	if d.closeK != nil {
		d.closeK()
	}
}

// notRunningNow names the configured components that are not running and
// why; a VRRP instance is "vrrp NAME".
func (d *Daemon) notRunningNow() map[string]string {
	out := maps.Clone(d.notRunning)
	for name, why := range d.vrrp.NotRunning() {
		out["vrrp "+name] = why
	}
	return out
}

func (d *Daemon) setVSNames(spec *conf.Spec) {
	d.vsNames = d.vsNames[:0]
	for _, vs := range spec.VirtualServers {
		d.vsNames = append(d.vsNames, vs.Name)
	}
}

// statusLine is the one-line state systemd shows (sd_notify STATUS=):
// each VRRP instance's state and how many virtual servers have quorum,
// "VI_1 master, VI_2 backup; 3 of 4 virtual servers up".
func (d *Daemon) statusLine() string {
	notRunning := d.notRunningNow()
	var vrrpParts []string
	for _, name := range d.vrrp.Names() {
		switch sc, ok := d.vrrpStates[name]; {
		case notRunning["vrrp "+name] != "":
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
	if n := len(d.vsNames); n > 0 {
		up := 0
		for _, name := range d.vsNames {
			if d.quorum[name] {
				up++
			}
		}
		parts = append(parts, fmt.Sprintf("%d of %d virtual servers up", up, n))
	}
	if len(notRunning) > 0 {
		parts = append(parts, fmt.Sprintf("%d not running", len(notRunning)))
	}
	if b := d.bgp; b != nil {
		st := b.announcer.State()
		n := 0
		for _, p := range st {
			if p.Announced {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("bgp: %d of %d prefixes announced", n, len(st)))
	}
	if m := d.maintenanceLine(); m != "" {
		parts = append(parts, m)
	}
	if len(parts) == 0 {
		return "nothing configured"
	}
	return strings.Join(parts, "; ")
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
