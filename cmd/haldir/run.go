package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/metrics"
)

// runDaemon implements "haldir run". Logs go to logOut (stderr, which
// systemd sends to the journal). It returns when sigs delivers SIGTERM or
// SIGINT.
func runDaemon(args []string, logOut io.Writer, sigs <-chan os.Signal) int {
	return runDaemonWith(args, logOut, sigs, nil)
}

// runDaemonWith is runDaemon with a hook that adjusts the daemon before it
// starts (tests swap the IPVS kernel for the in-memory fake).
func runDaemonWith(args []string, logOut io.Writer, sigs <-chan os.Signal, setup func(*daemon)) int {
	fs, path, level := runFlags()
	if done, code := parseFlags(fs, "run", args, logOut, logOut); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(logOut, "haldir run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *level != "" {
		if _, err := parseLevel(*level); err != nil {
			fmt.Fprintf(logOut, "haldir run: -log-level: %v\n", err)
			return exitUsage
		}
	}

	c, err := conf.Load(*path)
	if err != nil {
		// Before the logger exists; still an error to journalctl -p err.
		fmt.Fprint(logOut, journalLines(logOut, sdErr, err.Error()+"\n"))
		return exitInvalid
	}
	d := newDaemon(*path, c, logOut, *level)
	if setup != nil {
		setup(d)
	}
	return d.serve(sigs)
}

// runFlags defines the flags of "haldir run".
func runFlags() (fs *flag.FlagSet, path, level *string) {
	fs = flag.NewFlagSet("haldir run", flag.ContinueOnError)
	path = fs.String("c", conf.DefaultPath, "configuration file")
	level = fs.String("log-level", "", "override global.log_level (debug, info, warn, error)")
	return fs, path, level
}

// daemon owns the running configuration. Components are wired in start,
// reload and stop.
type daemon struct {
	path          string
	cfg           *conf.Config
	log           *slog.Logger
	level         *slog.LevelVar
	levelOverride string // from -log-level; wins over global.log_level

	// notify reports state to the service manager (sd_notify).
	notify func(state string)
	// watchdog is systemd's WatchdogSec (WATCHDOG_USEC), 0 when off:
	// serve sends WATCHDOG=1 every half of it while alive says so.
	watchdog time.Duration
	// probes are what alive asks, besides the components (tests add a
	// stalled one).
	probes []liveProbe
	// stalled is set while the watchdog holds back (main loop only).
	stalled bool
	// controlDown holds why the control server stopped serving.
	controlDown atomic.Pointer[error]

	// statusMu guards the last STATUS= sent and the reload outcome it
	// carries.
	statusMu     sync.Mutex
	lastStatus   string
	reloadFailed bool

	comp *components

	// mu serialises reloads (SIGHUP and the control socket) and guards cfg.
	mu       sync.Mutex
	started  time.Time
	loadedAt time.Time
}

func newDaemon(path string, c *conf.Config, logOut io.Writer, levelOverride string) *daemon {
	d := &daemon{
		path:          path,
		cfg:           c,
		level:         new(slog.LevelVar),
		levelOverride: levelOverride,
		notify: func(state string) {
			// Outside systemd NOTIFY_SOCKET is unset and this is a no-op.
			_, _ = sddaemon.SdNotify(false, state)
		},
	}
	if wd, err := sddaemon.SdWatchdogEnabled(false); err == nil {
		d.watchdog = wd
	}
	d.setLevel(c)
	d.log = slog.New(newLogHandler(logOut, c.Global.LogFormat, &slog.HandlerOptions{Level: d.level}))
	d.comp = newComponents(d.log)
	return d
}

// liveProbe is one check of the watchdog: nil when the part answers
// before ctx ends.
type liveProbe struct {
	name  string
	check func(ctx context.Context) error
}

// alive says whether the daemon is alive, for the systemd watchdog: the
// control server still serves, every component is alive
// (components.alive: no loop died, each VRRP instance's loop answers) and
// every extra probe answers, all before ctx ends.
func (d *daemon) alive(ctx context.Context) error {
	if errp := d.controlDown.Load(); errp != nil {
		return fmt.Errorf("control socket: %w", *errp)
	}
	if err := d.comp.alive(ctx); err != nil {
		return err
	}
	for _, p := range d.probes {
		if err := p.check(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// pingWatchdog sends WATCHDOG=1 when the daemon is alive. A stall is
// logged once, when it starts, and once when it ends; while it lasts
// systemd hears nothing and restarts the service after WatchdogSec.
func (d *daemon) pingWatchdog() {
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
	d.notify("WATCHDOG=1")
}

// sendStatus tells systemd the one-line state (STATUS=, shown by
// systemctl status) when it changed: at start, after reloads, and from
// the main loop on VRRP transitions and quorum changes (statusKick).
func (d *daemon) sendStatus() {
	// Computed and sent under one lock: a line computed before a change
	// must not be sent after the line computed after it.
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	line := d.comp.statusLine()
	if d.reloadFailed {
		line += "; last reload failed, running the previous configuration"
	}
	if line != d.lastStatus {
		d.lastStatus = line
		d.notify("STATUS=" + line)
	}
}

func (d *daemon) setLevel(c *conf.Config) {
	name := c.Global.LogLevel
	if d.levelOverride != "" {
		name = d.levelOverride
	}
	if l, err := parseLevel(name); err == nil {
		d.level.Set(l)
	}
}

func parseLevel(s string) (slog.Level, error) {
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

// serve runs until SIGTERM or SIGINT and returns the exit status.
func (d *daemon) serve(sigs <-chan os.Signal) int {
	// Alone or not at all: a second daemon must fail before its VRRP
	// removes "stale" VIPs, its sync follower switches roles or its
	// notify commands run.
	lock, err := acquireLock(lockPath(d.cfg.Global.ControlSocket))
	if err != nil {
		d.log.Error("start refused", "error", err)
		return exitInvalid
	}
	defer lock.release()
	if err := d.start(); err != nil {
		d.log.Error("start failed", "error", err)
		return exitInvalid
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.serveControl(ctx); err != nil {
		d.log.Error("start failed", "error", err)
		d.stop()
		return exitInvalid
	}
	d.notify(sddaemon.SdNotifyReady)
	d.sendStatus()
	var tick <-chan time.Time
	if d.watchdog > 0 {
		t := time.NewTicker(d.watchdog / 2)
		defer t.Stop()
		tick = t.C
		d.log.Info("systemd watchdog on", "interval", d.watchdog.String())
		d.pingWatchdog()
	}
	for {
		var sig os.Signal
		select {
		case <-tick:
			d.pingWatchdog()
			continue
		case <-d.comp.statusKick:
			d.sendStatus()
			continue
		case s, ok := <-sigs:
			if !ok {
				d.stop()
				return exitOK
			}
			sig = s
		}
		switch sig {
		case syscall.SIGHUP:
			d.notify(sddaemon.SdNotifyReloading + "\n" + sddaemon.SdNotifyMonotonicUsec())
			_, _ = d.rereadConfig() // logged; the running config stays on error
			d.notify(sddaemon.SdNotifyReady)
		case syscall.SIGTERM, syscall.SIGINT:
			d.log.Info("shutting down", "signal", sig.String())
			d.notify(sddaemon.SdNotifyStopping)
			d.stop()
			d.log.Info("stopped")
			return exitOK
		}
	}
}

// serveControl opens the control socket (haldir status, haldir reload) and
// the metrics listener. Either failing to bind stops the start: a second
// daemon must not run beside a live one, and a missing metrics endpoint
// must not go unnoticed.
func (d *daemon) serveControl(ctx context.Context) error {
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
		go func() {
			if err := metrics.ServeListener(ctx, ln, metrics.NewRegistry(d.Status)); err != nil {
				d.log.Error("metrics listener stopped", "error", err)
			}
		}()
		d.log.Info("metrics ready", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	return nil
}

// start brings the configured components up.
func (d *daemon) start() error {
	c := d.cfg
	d.started, d.loadedAt = time.Now(), time.Now()
	if err := d.comp.start(c); err != nil {
		return err
	}
	d.log.Info("haldir started", "version", version, "config", d.path, "router_id", c.Global.RouterID,
		"vrrp_instances", len(c.VRRP), "virtual_servers", len(c.VirtualServers))
	for name, why := range d.comp.notRunningSnapshot() {
		d.log.Warn("component not running", "component", name, "why", why)
	}
	return nil
}

// rereadConfig loads and validates the file again. A bad file is logged
// error by error, returned for `haldir reload`, and the running
// configuration stays.
func (d *daemon) rereadConfig() (errs []string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := conf.Load(d.path)
	if err != nil {
		var es conf.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				d.log.Error("config error", "error", e.Error())
				errs = append(errs, e.Error())
			}
			d.log.Error("config reload failed; keeping the running configuration", "config", d.path, "errors", len(es))
		} else {
			errs = append(errs, err.Error())
			d.log.Error("config reload failed; keeping the running configuration", "error", err)
		}
		d.setReloadFailed(true)
		return errs, errors.New("invalid configuration; the running configuration stays")
	}
	if err := d.reload(c); err != nil {
		d.log.Error("config reload failed; keeping the running configuration", "error", err)
		d.setReloadFailed(true)
		return []string{err.Error()}, err
	}
	d.log.Info("config reloaded", "config", d.path)
	d.setReloadFailed(false)
	return nil, nil
}

func (d *daemon) setReloadFailed(failed bool) {
	d.statusMu.Lock()
	d.reloadFailed = failed
	d.statusMu.Unlock()
	d.sendStatus()
}

// reload switches the daemon to a new, valid configuration. Components
// apply the difference here. Called with d.mu held.
func (d *daemon) reload(c *conf.Config) error {
	if c.Global.LogFormat != d.cfg.Global.LogFormat {
		d.log.Warn("global.log_format changes take effect at restart", "running", d.cfg.Global.LogFormat, "new", c.Global.LogFormat)
	}
	if err := d.comp.reload(d.cfg, c); err != nil {
		return err
	}
	d.setLevel(c)
	d.cfg = c
	d.loadedAt = time.Now()
	return nil
}

// stop tears the components down.
func (d *daemon) stop() { d.comp.stop() }
