package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
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

	vrrpSet    *vrrp.Set
	vrrpCancel context.CancelFunc
	vrrpWG     sync.WaitGroup

	hc  *healthcheck.Scheduler
	dir *director.Reconciler
	// newKernel opens the IPVS backend; tests swap in the fake.
	newKernel func() (director.Kernel, func(), error)
	closeK    func()
	// vrrpDo, when set, runs VRRP's socket and netlink work in another
	// network namespace (vrrp.Options.Do); tests use a lab host.
	vrrpDo func(func() error) error

	mu   sync.Mutex
	subs map[string][]director.Verdict // probe key -> the (service, real) pairs it judges
	// quorum is the last quorum the director reported per virtual server
	// name, replayed to VRRP instances that start after the report.
	quorum map[string]bool
	// notRunning says which components are off and why, for status.
	notRunning map[string]string
}

func newComponents(log *slog.Logger) *components {
	return &components{
		log: log,
		newKernel: func() (director.Kernel, func(), error) {
			k, err := director.NewMobyKernel("")
			if err != nil {
				return nil, nil, err
			}
			return k, k.Close, nil
		},
		subs:       map[string][]director.Verdict{},
		quorum:     map[string]bool{},
		notRunning: map[string]string{},
	}
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
	c.notRunning["sync"] = "kernel conn-sync is not implemented yet ([sync] is validated only)"
	c.notRunning["cluster"] = "the memberlist cluster is not implemented yet ([cluster] is validated only)"

	if len(cfg.VirtualServers) > 0 {
		k, closeK, err := c.newKernel()
		if err != nil {
			return fmt.Errorf("director: %w", err)
		}
		c.closeK = closeK
		c.dir = director.New(k, director.Options{Logger: c.log.With("component", "director"), OnQuorum: c.quorumChanged})
		if err := c.dir.SetConfig(cfg); err != nil {
			return fmt.Errorf("director: %w", err)
		}
		c.hc = healthcheck.New(healthcheck.Options{})
		if err := c.updateChecks(cfg); err != nil {
			return err
		}
		c.goRun("director", c.dir.Run)
		c.goRun("healthcheck", c.hc.Run)
		c.goRun("health transitions", c.followTransitions)
	} else {
		c.notRunning["director"] = "no virtual_server configured"
		c.notRunning["healthcheck"] = "no virtual_server configured"
	}

	if len(cfg.VRRP) > 0 {
		if err := c.startVRRP(cfg); err != nil {
			return err
		}
	} else {
		c.notRunning["vrrp"] = "no vrrp instance configured"
	}
	return nil
}

func (c *components) goRun(name string, f func(context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := f(c.ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Error("component stopped", "component", name, "error", err)
		}
	}()
}

func (c *components) startVRRP(cfg *conf.Config) error {
	set, err := vrrp.NewSet(cfg, vrrp.Options{
		Do:     c.vrrpDo,
		Logger: c.log.With("component", "vrrp"),
		OnStateChange: func(sc vrrp.StateChange) {
			c.log.Info("vrrp state change", "instance", sc.Instance, "from", sc.From.String(), "to", sc.To.String(),
				"priority", sc.Priority, "reason", sc.Reason)
		},
	})
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	c.mu.Lock()
	c.vrrpSet = set
	for name, up := range c.quorum {
		set.SetVirtualServerUp(name, up)
	}
	c.mu.Unlock()
	// VRRP gets its own context: on stop, masters must hand over (priority
	// 0) before anything else goes away.
	ctx, cancel := context.WithCancel(context.Background())
	c.vrrpCancel = cancel
	for _, in := range set.Instances {
		c.vrrpWG.Add(1)
		go func() {
			defer c.vrrpWG.Done()
			if err := in.Run(ctx); err != nil {
				c.log.Error("vrrp instance failed to start", "instance", in.Name(), "error", err)
				c.mu.Lock()
				c.notRunning["vrrp "+in.Name()] = err.Error()
				c.mu.Unlock()
			}
		}()
	}
	return nil
}

// quorumChanged is the director's OnQuorum: it remembers the state and
// hands it to the VRRP instances that track the virtual server. It runs on
// the director's goroutine; the instances take it without blocking.
func (c *components) quorumChanged(q director.QuorumState) {
	c.log.Info("virtual server quorum", "virtual_server", q.Name, "up", q.Up, "alive_weight", q.AliveWeight, "quorum", q.Quorum)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quorum[q.Name] = q.Up
	if c.vrrpSet != nil {
		c.vrrpSet.SetVirtualServerUp(q.Name, q.Up)
	}
}

// targets lists one health-check target per (virtual server, checked real
// server) and who subscribes to each probe key.
func targets(cfg *conf.Config) ([]healthcheck.Target, map[string][]director.Verdict, error) {
	var ts []healthcheck.Target
	subs := map[string][]director.Verdict{}
	for i, vs := range cfg.VirtualServers {
		key, err := director.Key(vs)
		if err != nil {
			return nil, nil, fmt.Errorf("virtual_server[%d]: %w", i, err)
		}
		for _, rs := range vs.RealServers {
			if rs.Check == nil {
				continue
			}
			addr := director.RealAddr(vs, rs)
			t := healthcheck.Target{Addr: addr, Check: *rs.Check}
			ts = append(ts, t)
			subs[t.Key()] = append(subs[t.Key()], director.Verdict{Service: key, Real: addr})
		}
	}
	return ts, subs, nil
}

// updateChecks points the scheduler at cfg's targets; unchanged probes keep
// their state and history. The states it returns are handed to the director
// at once so a reload does not wait for the next transition.
func (c *components) updateChecks(cfg *conf.Config) error {
	ts, subs, err := targets(cfg)
	if err != nil {
		return err
	}
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
			c.log.Info("health transition", "target", t.Target.Addr.String(), "check", t.Target.Check.Type,
				"up", t.Up, "weight", t.Weight, "reason", t.Reason)
			c.apply(t)
		}
	}
}

// reload applies a new, valid configuration: the director diffs the IPVS
// table, the scheduler keeps unchanged probes. It returns an error when a
// part could not take the new config; that part keeps the old one.
func (c *components) reload(old, cfg *conf.Config) error {
	if !reflect.DeepEqual(old.VRRP, cfg.VRRP) || !reflect.DeepEqual(old.VRRPSyncGroups, cfg.VRRPSyncGroups) {
		// Restarting instances would make a master hand over and take back
		// its VIPs; until instances can be updated in place, say so.
		c.log.Warn("vrrp changes take effect at restart; the running vrrp instances keep their configuration")
	}
	if c.dir == nil {
		if len(cfg.VirtualServers) > 0 {
			c.log.Warn("virtual servers added to a configuration that had none take effect at restart")
		}
		return nil
	}
	if err := c.dir.SetConfig(cfg); err != nil {
		return fmt.Errorf("director: %w", err)
	}
	return c.updateChecks(cfg)
}

// stop shuts down in order: VRRP first (a master sends priority 0 so the
// backup takes over at once), then checks and the director. The IPVS table
// is left as it is, so a restart adopts it without resetting a connection.
func (c *components) stop() {
	if c.vrrpCancel != nil {
		c.vrrpCancel()
		done := make(chan struct{})
		go func() { c.vrrpWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.log.Error("vrrp instances did not stop within 5s")
		}
		c.vrrpSet.Close()
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
