// Package daemon runs haldir's components as one event loop: it starts
// what a configuration asks for (director, health checks, VRRP, conn sync,
// cluster) and joins them in one select over health transitions, the
// director's quorum changes, VRRP state changes, reloads, control requests,
// signals and the systemd watchdog. Every hop of the data flow is a
// message to that loop: components share no lock, and none ever waits on
// another's work (a VRRP instance only queues its state changes).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/drill"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/internal/fifo"
	"github.com/haldir-lb/haldir/internal/memtune"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/metrics"
	"github.com/haldir-lb/haldir/vrrp"
)

// Options are what the daemon needs besides its configuration.
type Options struct {
	// Path is the configuration file, re-read on reload.
	Path    string
	Version string
	Logger  *slog.Logger // default slog.Default()
	// Level, when set, is the logger's level: global.log_level at start
	// and after every reload, or LevelOverride when that is set.
	Level         *slog.LevelVar
	LevelOverride string

	// Notify tells the service manager (sd_notify); default the real one,
	// a no-op outside systemd.
	Notify func(state string)
	// NewKernel opens the IPVS backend; default the kernel's (netlink).
	NewKernel func() (ipvs.Kernel, func(), error)
	// Sysctls are the kernel settings [bgp] needs (connsync.BGPSettings);
	// default /proc/sys with the default NewKernel, else none are set.
	Sysctls connsync.Sysctls
	// VRRPDo, when set, runs VRRP's socket and netlink work in another
	// network namespace (vrrp.Options.Do); tests use a lab host.
	VRRPDo func(func() error) error
	// BGPDo, when set, runs the netlink work of [bgp]'s device (the
	// dummy device and its addresses) in another network namespace;
	// tests use a lab host. GoBGP's own sockets stay in this one.
	BGPDo func(func() error) error
	// BGPGracefulWait is how long a graceful withdraw announces
	// GRACEFUL_SHUTDOWN first (default bgp.DefaultGracefulWait).
	BGPGracefulWait time.Duration
	// Probes are asked by the watchdog besides the components.
	Probes []Probe
	// ConnSyncRefresh is how often the connections the kernel holds are
	// counted for the cluster view (default cluster.ConnSyncRefresh).
	ConnSyncRefresh time.Duration
}

// Probe is one check of the watchdog: nil when the part answers before
// ctx ends.
type Probe struct {
	Name  string
	Check func(ctx context.Context) error
}

// Daemon is haldir's running configuration and components. Everything
// below is owned by the loop (Run) once it runs; other goroutines reach it
// through call.
type Daemon struct {
	opts Options
	log  *slog.Logger
	// watchdog is systemd's WatchdogSec (WATCHDOG_USEC), 0 when off: the
	// loop sends WATCHDOG=1 every half of it while alive says so.
	watchdog time.Duration
	stalled  bool // the watchdog holds back

	cfg               *conf.Config
	started, loadedAt time.Time
	lastStatus        string
	reloadFailed      bool

	// stateDir is global.state_dir as the daemon started with it (a
	// reload does not move it); op is the operator's state kept there
	// (operator.go).
	stateDir string
	op       operatorState

	// The components. ctx ends the loops goRun started.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	kernel   ipvs.Kernel
	closeK   func()
	dir      *director.Reconciler
	hc       *healthcheck.Scheduler
	vrrp     *vrrp.Runner
	cluster  *cluster.Cluster // nil without [cluster]
	follower *connsync.Follower
	// syncInstance is the VRRP instance whose role the follower takes.
	syncInstance string
	syncStop     func()
	// connSync is what this director last gossiped of its conn sync.
	connSync *cluster.ConnSync
	// bgp is the running [bgp] speaker (bgp.go); nil without one.
	bgp      *bgpState
	stopOnce sync.Once

	// configWarnings are the configuration's warnings (bgpMode).
	configWarnings []string

	// subs are the (service, real) pairs each probe key judges.
	subs map[string][]director.Verdict
	// quorum is the last quorum the director reported per virtual server.
	quorum map[string]bool
	// vsNames are the configured virtual servers, for the status line.
	vsNames []string
	// vrrpStates is each instance's last state change: what the cluster
	// hears and the status line shows.
	vrrpStates map[string]vrrp.StateChange
	// recent are the last maxRecent events a drill's timeline shows
	// (VRRP state changes, conn-sync roles wanted), oldest first.
	recent []drill.Event
	// lastDrill is the newest kept drill report's summary, nil when none
	// (lastdrill.go).
	lastDrill *control.DrillSummary
	// notRunning says which configured components failed and why; dead
	// are the goRun loops that ended with an error.
	notRunning map[string]string
	dead       []string

	// The loop's inputs from other goroutines.
	quorums *fifo.Queue[director.QuorumState] // the director's reports
	// takeovers are other directors' planned handoffs to this one.
	takeovers *fifo.Queue[cluster.TakeOverRequest]
	// bgpPeers are the BGP peers' session state changes.
	bgpPeers *fifo.Queue[bgp.PeerEvent]
	died     chan died     // a component loop ended with an error
	reqs     chan func()   // control requests
	done     chan struct{} // closed when the loop has ended
	// controlDown holds why the control server stopped serving.
	controlDown atomic.Pointer[error]
}

type died struct {
	name string
	err  error
}

// New returns a daemon for cfg; Run starts it.
func New(cfg *conf.Config, opts Options) *Daemon {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Notify == nil {
		opts.Notify = func(state string) { _, _ = sddaemon.SdNotify(false, state) }
	}
	if opts.NewKernel == nil {
		if opts.Sysctls == nil {
			opts.Sysctls = connsync.ProcSysctls{}
		}
		opts.NewKernel = func() (ipvs.Kernel, func(), error) {
			k, err := ipvs.Open("")
			if err != nil {
				return nil, nil, err
			}
			return k, k.Close, nil
		}
	}
	d := &Daemon{
		opts: opts, log: opts.Logger, cfg: cfg,
		subs: map[string][]director.Verdict{}, quorum: map[string]bool{},
		vrrpStates: map[string]vrrp.StateChange{}, notRunning: map[string]string{},
		quorums: fifo.New[director.QuorumState](), died: make(chan died, 1), takeovers: fifo.New[cluster.TakeOverRequest](),
		bgpPeers: fifo.New[bgp.PeerEvent](),
		reqs:     make(chan func()), done: make(chan struct{}),
	}
	if wd, err := sddaemon.SdWatchdogEnabled(false); err == nil {
		d.watchdog = wd
	}
	d.vrrp = vrrp.NewRunner(vrrp.Options{Do: opts.VRRPDo, Logger: d.log.With("component", "vrrp")})
	d.setLevel(cfg)
	return d
}

// Run starts the components, the control socket and metrics, tells
// systemd it is ready and runs the loop until sigs delivers SIGTERM or
// SIGINT (or is closed); then it stops everything. It returns an error
// when the start fails, with nothing left running.
func (d *Daemon) Run(sigs <-chan os.Signal) error {
	if err := d.startAll(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.serveControl(ctx); err != nil {
		d.stop()
		return err
	}
	d.opts.Notify(sddaemon.SdNotifyReady)
	d.sendStatus()
	d.loop(context.Background(), sigs)
	return nil
}

// startAll brings the configured components up.
func (d *Daemon) startAll() error {
	c := d.cfg
	d.started, d.loadedAt = time.Now(), time.Now()
	if err := d.start(c); err != nil {
		return err
	}
	d.log.Info("haldir started", "version", d.opts.Version, "config", d.opts.Path, "router_id", c.Global.RouterID,
		"vrrp_instances", len(c.VRRP), "virtual_servers", len(c.VirtualServers))
	for name, why := range d.notRunningNow() {
		d.log.Warn("component not running", "component", name, "why", why)
	}
	return nil
}

// loop is the daemon: one select over everything that happens. It returns
// after stopping the components, on SIGTERM or SIGINT, when sigs is
// closed, or when ctx ends.
func (d *Daemon) loop(ctx context.Context, sigs <-chan os.Signal) {
	defer close(d.done)
	var tick <-chan time.Time
	if d.watchdog > 0 {
		t := time.NewTicker(d.watchdog / 2)
		defer t.Stop()
		tick = t.C
		d.log.Info("systemd watchdog on", "interval", d.watchdog.String())
		d.pingWatchdog()
	}
	for {
		var transitions <-chan healthcheck.Transition
		if d.hc != nil {
			transitions = d.hc.Transitions()
		}
		select {
		case <-tick:
			d.pingWatchdog()
		case t := <-transitions:
			d.log.Info("health transition", "target", t.Target.Addr.String(), "check", t.Target.Check.Kind,
				"up", t.Up, "weight", t.Weight, "reason", t.Reason)
			d.applyHealth(t)
		case <-d.takeovers.Ready():
			for _, req := range d.takeovers.Take() {
				d.takeOverRequested(req)
			}
		case <-d.bgpPeers.Ready():
			for _, e := range d.bgpPeers.Take() {
				d.bgpPeerChanged(e)
			}
		case <-d.quorums.Ready():
			for _, q := range d.quorums.Take() {
				d.quorumChanged(q)
			}
			d.sendStatus()
		case <-d.vrrp.Changed():
			for _, sc := range d.vrrp.TakeChanges() {
				d.vrrpChanged(sc)
			}
			d.tellCluster(nil)
			d.sendStatus()
		case x := <-d.died:
			d.log.Error("component stopped", "component", x.name, "error", x.err)
			d.notRunning[x.name] = "stopped: " + x.err.Error()
			d.dead = append(d.dead, x.name)
			d.sendStatus()
		case req := <-d.reqs:
			req()
		case <-ctx.Done():
			d.stop()
			return
		case sig, ok := <-sigs:
			switch {
			case !ok:
				d.stop()
				return
			case sig == syscall.SIGHUP:
				d.opts.Notify(sddaemon.SdNotifyReloading + "\n" + sddaemon.SdNotifyMonotonicUsec())
				_, _ = d.rereadConfig() // logged; the running config stays on error
				d.opts.Notify(sddaemon.SdNotifyReady)
			case sig == syscall.SIGTERM || sig == syscall.SIGINT:
				d.log.Info("shutting down", "signal", sig.String())
				d.opts.Notify(sddaemon.SdNotifyStopping)
				d.stop()
				d.log.Info("stopped")
				return
			}
		}
	}
}

// call runs f on the loop and waits for it; false when the loop has
// ended (f did not run).
func (d *Daemon) call(f func()) bool {
	finished := make(chan struct{})
	select {
	case d.reqs <- func() { f(); close(finished) }:
	case <-d.done:
		return false
	}
	<-finished
	return true
}

// vrrpChanged takes one VRRP state change: the conn-sync follower takes
// its instance's role, and the change is remembered for the cluster and
// the status line. The instance logs the transition itself.
func (d *Daemon) vrrpChanged(sc vrrp.StateChange) {
	d.vrrpStates[sc.Instance] = sc
	d.remember(sc.At, fmt.Sprintf("%s %s -> %s: %s", sc.Instance, sc.From, sc.To, sc.Reason))
	if sc.To == vrrp.StateMaster {
		// A takeover announces (gratuitous ARP / NA) before its first
		// advert, just before this change is reported.
		d.remember(sc.At, sc.Instance+": addresses added, gratuitous ARP / NA sent")
	}
	if d.follower != nil && d.syncInstance == sc.Instance {
		d.follower.SetRole(connsync.Role(sc.To)) // never blocks
		d.remember(time.Now(), fmt.Sprintf("conn sync: the kernel's sync daemon to %s (follows %s)", connsync.Role(sc.To), sc.Instance))
	}
}

// remember keeps an event for drill timelines; bounded.
func (d *Daemon) remember(at time.Time, what string) {
	if d.recent = append(d.recent, drill.Event{At: at, What: what}); len(d.recent) > maxRecent {
		d.recent = slices.Delete(d.recent, 0, len(d.recent)-maxRecent)
	}
}

// quorumChanged takes the director's report of a virtual server's quorum
// to the VRRP instances that track it and to the BGP announcer.
func (d *Daemon) quorumChanged(q director.QuorumState) {
	d.log.Info("virtual server quorum", "virtual_server", q.Name, "up", q.Up, "alive_weight", q.AliveWeight, "quorum", q.Quorum)
	d.quorum[q.Name] = q.Up
	d.vrrp.SetVirtualServerUp(q.Name, q.Up)
	d.decideBGP()
}

// alive says whether the daemon is alive, for the systemd watchdog: the
// control server still serves, no component loop has died, every running
// VRRP instance's loop answers a ping and every extra probe answers, all
// before ctx ends. An instance that failed to start is not running (status
// says so), not stalled.
func (d *Daemon) alive(ctx context.Context) error {
	if errp := d.controlDown.Load(); errp != nil {
		return fmt.Errorf("control socket: %w", *errp)
	}
	if len(d.dead) > 0 {
		return fmt.Errorf("%s stopped", joinNames(d.dead))
	}
	if err := d.vrrp.Alive(ctx); err != nil {
		return err
	}
	for _, p := range d.opts.Probes {
		if err := p.Check(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// pingWatchdog sends WATCHDOG=1 when the daemon is alive. A stall is
// logged once, when it starts, and once when it ends; while it lasts
// systemd hears nothing and restarts the service after WatchdogSec.
func (d *Daemon) pingWatchdog() {
	// A quarter of the interval: a ping every half leaves a quarter spare.
	ctx, cancel := context.WithTimeout(context.Background(), d.watchdog/4)
	defer cancel()
	if err := d.alive(ctx); err != nil {
		if !d.stalled {
			d.log.Error("watchdog: not alive, no longer telling systemd", "error", err, "watchdog", d.watchdog.String())
		}
		d.stalled = true
		return
	}
	if d.stalled {
		d.log.Info("watchdog: alive again")
		d.stalled = false
	}
	d.opts.Notify("WATCHDOG=1")
}

// sendStatus tells systemd the one-line state (STATUS=, shown by
// systemctl status) when it changed.
func (d *Daemon) sendStatus() {
	line := d.statusLine()
	if d.reloadFailed {
		line += "; last reload failed, running the previous configuration"
	}
	if line != d.lastStatus {
		d.lastStatus = line
		d.opts.Notify("STATUS=" + line)
	}
}

func (d *Daemon) setLevel(c *conf.Config) {
	if d.opts.Level == nil {
		return
	}
	name := c.Global.LogLevel
	if d.opts.LevelOverride != "" {
		name = d.opts.LevelOverride
	}
	if l, err := ParseLevel(name); err == nil {
		d.opts.Level.Set(l)
	}
}

// ParseLevel parses a log level name (global.log_level, -log-level).
func ParseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// ipvsScrapeTimeout bounds a scrape's wait for the kernel's IPVS table,
// well inside Prometheus's default 10 s scrape timeout.
const ipvsScrapeTimeout = 5 * time.Second

// serveControl opens the control socket (haldir status, haldir reload) and
// the metrics listener. Either failing to bind stops the start: a second
// daemon must not run beside a live one, and a missing metrics endpoint
// must not go unnoticed.
func (d *Daemon) serveControl(ctx context.Context) error {
	g := d.cfg.Global
	if g.ControlSocket != "" {
		srv, err := control.Listen(g.ControlSocket, d, d.log.With("component", "control"))
		if err != nil {
			return err
		}
		go func() {
			err := srv.Serve(ctx)
			if ctx.Err() != nil {
				return // shutting down
			}
			if err == nil {
				err = errors.New("stopped serving")
			}
			d.log.Error("control socket stopped", "error", err)
			d.controlDown.Store(&err)
		}()
		d.log.Info("control socket ready", "path", g.ControlSocket)
	}
	if g.MetricsListen != "" {
		ln, err := net.Listen("tcp", g.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics: listen %s: %w", g.MetricsListen, err)
		}
		reg := metrics.NewRegistry(d.Status)
		if d.kernel != nil {
			// The kernel's numbers, read at each scrape off the loop; a
			// hung read costs the scrape ipvsScrapeTimeout.
			reg.MustRegister(metrics.NewIPVS(d.kernel, func() (ipvs.Stats, error) { return ipvs.ReadTotals(ipvs.TotalsPath) }, ipvsScrapeTimeout, d.log.With("component", "metrics")))
		}
		go func() {
			if err := metrics.ServeListener(ctx, ln, reg); err != nil {
				d.log.Error("metrics listener stopped", "error", err)
			}
		}()
		d.log.Info("metrics ready", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	return nil
}

// rereadConfig loads and validates the file again. A bad file is logged
// error by error, returned for `haldir reload`, and the running
// configuration stays.
func (d *Daemon) rereadConfig() (errs []string, err error) {
	c, err := conf.Load(d.opts.Path)
	if err != nil {
		var es conf.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				d.log.Error("config error", "error", e.Error())
				errs = append(errs, e.Error())
			}
			d.log.Error("config reload failed; keeping the running configuration", "config", d.opts.Path, "errors", len(es))
		} else {
			errs = append(errs, err.Error())
			d.log.Error("config reload failed; keeping the running configuration", "error", err)
		}
		d.setReloadFailed(true)
		return errs, errors.New("invalid configuration; the running configuration stays")
	}
	if err := d.reloadWith(c); err != nil {
		d.log.Error("config reload failed; keeping the running configuration", "error", err)
		d.setReloadFailed(true)
		return []string{err.Error()}, err
	}
	d.log.Info("config reloaded", "config", d.opts.Path)
	d.setReloadFailed(false)
	memtune.ReleaseAfterLoad(nil) // the old configuration and the reload's garbage
	return nil, nil
}

func (d *Daemon) setReloadFailed(failed bool) {
	d.reloadFailed = failed
	d.sendStatus()
}

// reloadWith switches the daemon to a new, valid configuration: the
// components apply the difference.
func (d *Daemon) reloadWith(c *conf.Config) error {
	if c.Global.LogFormat != d.cfg.Global.LogFormat {
		d.log.Warn("global.log_format changes take effect at restart", "running", d.cfg.Global.LogFormat, "new", c.Global.LogFormat)
	}
	if c.Global.StateDir != d.cfg.Global.StateDir {
		d.log.Warn("global.state_dir changes take effect at restart; the operator state stays where it is", "running", d.stateDir, "new", c.Global.StateDir)
	}
	if err := d.reload(d.cfg, c); err != nil {
		return err
	}
	d.setLevel(c)
	d.cfg = c
	d.loadedAt = time.Now()
	return nil
}

// errStopping answers a reload that came after the loop ended.
var errStopping = errors.New("the daemon is stopping")
