package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/bgpha"
	"github.com/haldir-lb/haldir/lab/pair"
)

// The pair's timing: VRRP at 100 ms, HTTP checks every 300 ms (timeout
// 250 ms, rise 1, fall 2), as in `make demo`.
const (
	advertInterval = 100 * time.Millisecond
	checkInterval  = 300 * time.Millisecond
	checkTimeout   = 250 * time.Millisecond
	checkFall      = 2
	prio1, prio2   = 150, 100
	metricsAddr    = "127.0.0.1:9100"
	// settleLimit bounds the return to the steady state after a fault.
	settleLimit = 30 * time.Second
)

// masterDown is RFC 5798's Master_Down_Interval of a backup of priority
// p: three adverts and its skew time.
func masterDown(p int) time.Duration {
	return 3*advertInterval + time.Duration(256-p)*advertInterval/256
}

// Options say what to soak, how long, and the schedule's seed.
type Options struct {
	Mode     Mode // ModePair when empty
	Duration time.Duration
	Seed     uint64
	Kinds    []Kind // only these kinds of fault; empty: all of the mode's
	// MinFaults of the schedule's first faults are injected even when
	// settling after the earlier ones outlasted Duration (a starved host
	// makes a short soak take longer, not test less), for at most
	// Duration more.
	MinFaults int
}

func (o Options) mode() Mode {
	if o.Mode == "" {
		return ModePair
	}
	return o.Mode
}

// daemon is haldir on one director.
type daemon struct {
	name string
	// index is the director's in the BGP cluster (0-2).
	index int
	host  *lab.Host
	cfg   pair.Config
	proc  *lab.Proc
	// expectExit is set while the soak itself stops the process; ended
	// lists every process the soak stopped.
	expectExit bool
	ended      map[*lab.Proc]bool
	stopped    bool // SIGSTOPped by the soak
	client     *control.Client
	starts     int
}

// soak is one run's state. mu guards everything the monitors and the
// schedule share.
type soak struct {
	opts   Options
	out    io.Writer
	start  time.Time
	haldir string
	dir    string
	s      *lab.Standard
	reals  [3]*realServer
	cg     *cgroups // nil when cgroup v2 is not available
	// bgp is the BGP mode's cluster (nil in the pair's).
	bgp *bgpha.Cluster
	// realDown are the BGP mode's real servers' spells without their
	// link, by name.
	realDown map[string]*spells
	// routes is what the router's next hops should be (BGP mode).
	routes           [3]routeWant
	withdraws, joins []time.Duration
	stallLosses      []time.Duration // next hops lost in a measured stall, until back
	cmdTaken         []time.Duration // operator commands' start to the daemon taking them

	mu        sync.Mutex
	daemons   map[string]*daemon
	linkDown  map[string]bool // "director1/eth0": cut or detached by the soak
	faults    []*faultRecord
	inv       map[string]*invariant
	truthAt   time.Time // last change of what the IPVS table should be
	gaps      []time.Duration
	duals     []time.Duration
	conns     connCounts
	metrics   map[string][]metricSample // per daemon pid ("director1#3")
	stall     *pair.StallMeter
	growth    []growth
	warnLines map[string]int
	errLines  map[string]int // explained ERROR lines by fault kind
	// errFirst is the first whole line of each errLines key: the
	// message alone does not say what failed.
	errFirst map[string]string
	leftOut  []string
	tracked  map[netip.AddrPort]*tracked // the long-lived connections
	syncLat  []time.Duration             // their open to both tables holding them
	progress progress
	stuck    atomic.Bool
}

// Run runs the soak in the current kernel (which must have IPVS) with the
// haldir binary at haldirPath, printing progress and the report to out.
func Run(ctx context.Context, out io.Writer, haldirPath string, opts Options) (*Report, error) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return nil, errors.New("this kernel has no IPVS (/proc/net/ip_vs missing): run `go run ./lab/cmd/soak` without -guest to use the lab VM")
	}
	s := &soak{
		opts: opts, out: out, start: time.Now(), haldir: haldirPath,
		daemons: map[string]*daemon{}, linkDown: map[string]bool{}, inv: newInvariants(opts.mode()),
		metrics: map[string][]metricSample{}, tracked: map[netip.AddrPort]*tracked{}, warnLines: map[string]int{}, errLines: map[string]int{}, errFirst: map[string]string{},
	}
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	setup, monitors := s.setup, []func(context.Context){s.watchdog, s.watchVIPs, s.watchStatus, s.watchTable, s.loadNew, s.loadLongLived, s.watchConns}
	if opts.mode() == ModeBGP {
		setup, monitors = s.setupBGP, []func(context.Context){s.watchdog, s.watchRoutes, s.loadNew, s.loadHeld}
	}
	if err := setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	schedule := newSchedule(opts.Seed, opts.Duration, opts.mode(), s.cg != nil, opts.Kinds)
	s.printf("%s mode, seed %d: %d faults planned over %s (replay: %s)", opts.mode(), opts.Seed, len(schedule), opts.Duration, strings.Join(guestArgs(opts), " "))
	for i, f := range schedule {
		s.block(fmt.Sprintf("  %3d %s", i+1, f))
	}
	s.stall = pair.StartStallMeter()
	s.progress.tick()
	var wg sync.WaitGroup
	mctx, stopMonitors := context.WithCancel(ctx)
	for _, m := range monitors {
		wg.Go(func() { m(mctx) })
	}
	s.scrapeAll(ctx)
	end := time.Now().Add(opts.Duration)
	for i, f := range schedule {
		if ctx.Err() != nil || s.stuck.Load() {
			break
		}
		if now := time.Now(); now.After(end) {
			if i >= opts.MinFaults || now.After(end.Add(opts.Duration)) {
				break
			}
			s.printf("the window ended %s ago; fault %d of the first %d, which every run injects", now.Sub(end).Round(time.Millisecond), i+1, opts.MinFaults)
		}
		s.inject(ctx, i+1, f)
		s.scrapeAll(ctx)
	}
	stopMonitors()
	wg.Wait()
	s.stall.Halt()
	if ctx.Err() != nil {
		return s.report(), ctx.Err()
	}
	s.finalChecks()
	rep := s.report()
	s.block(rep.Text())
	return rep, nil
}

// printf prints one timestamped line.
func (s *soak) printf(format string, args ...any) {
	fmt.Fprintf(s.out, "[%8.3fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// block prints text indented.
func (s *soak) block(text string) {
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(s.out, "            %s\n", l)
	}
}

func (s *soak) close() {
	if s.s != nil {
		_ = s.s.Close()
	}
	if s.bgp != nil {
		_ = s.bgp.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// setup builds the lab, starts the real servers and haldir on both
// directors and waits for the steady state.
func (s *soak) setup(ctx context.Context) error {
	st, err := lab.NewStandard("soak", lab.StandardOptions{})
	if err != nil {
		return err
	}
	s.s = st
	for i := range s.reals {
		r, err := startReal(st.Real[i])
		if err != nil {
			return err
		}
		s.reals[i] = r
	}
	if s.dir, err = os.MkdirTemp("", "haldir-soak-"); err != nil {
		return err
	}
	if err := pair.WriteKey(s.dir); err != nil {
		return err
	}
	s.useCgroups("director1", "director2")
	for _, d := range []struct {
		h    *lab.Host
		prio int
	}{{st.Director1, prio1}, {st.Director2, prio2}} {
		name := d.h.Name()
		s.daemons[name] = &daemon{name: name, host: d.h, cfg: pair.Config{
			Name: name, Priority: d.prio, Dir: s.dir, MetricsListen: metricsAddr,
			AdvertInterval: advertInterval.String(), CheckInterval: checkInterval.String(), CheckTimeout: checkTimeout.String(),
			Weights: map[string]int{},
		}}
		if err := s.writeConfig(s.daemons[name]); err != nil {
			return err
		}
	}
	for _, name := range []string{"director1", "director2"} {
		if err := s.startDaemon(ctx, s.daemons[name]); err != nil {
			return err
		}
	}
	s.printf("haldir runs on both directors; waiting for director1 to be master with every real server in its table")
	if why := s.waitSteady(ctx); why != "" {
		return fmt.Errorf("the pair never reached its steady state: %s", why)
	}
	s.printf("steady: director1 master, director2 backup, real1-3 in the table")
	return nil
}

// useCgroups makes the directors' cgroups, or notes why not.
func (s *soak) useCgroups(directors ...string) {
	cg, why := newCgroups(directors...)
	s.cg = cg
	if cg == nil {
		s.leftOut = append(s.leftOut, "cpu-starve and mem-pressure: "+why)
		s.printf("no cgroup v2 here (%s): CPU starvation and memory pressure are left out", why)
	}
}

// writeConfig writes a daemon's configuration file.
func (s *soak) writeConfig(d *daemon) error {
	return os.WriteFile(d.cfg.Path(), []byte(d.cfg.TOML()), 0o644)
}

var startedLine = regexp.MustCompile(`haldir started`)

// startDaemon starts haldir on d's director, waits until it has started
// and follows its log.
func (s *soak) startDaemon(ctx context.Context, d *daemon) error {
	if s.bgp != nil {
		if err := s.bgp.StartDirector(ctx, d.index); err != nil {
			return err
		}
		s.adopt(ctx, d, s.bgp.Proc[d.index])
		return nil
	}
	p, err := d.host.Start(ctx, []string{s.haldir, "run", "-c", d.cfg.Path()}, nil)
	if err != nil {
		return err
	}
	s.adopt(ctx, d, p)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := p.WaitForLine(wctx, startedLine); err != nil {
		return fmt.Errorf("%s: haldir did not start: %w\n%s", d.name, err, p.Output())
	}
	// The control socket may come up just after the start line.
	var c *control.Client
	for {
		if c, err = control.Dial(d.cfg.Socket()); err == nil {
			break
		}
		if wctx.Err() != nil {
			return fmt.Errorf("%s: control socket: %w\n%s", d.name, err, p.Output())
		}
		sleep(wctx, 20*time.Millisecond)
	}
	s.mu.Lock()
	d.client = c
	s.mu.Unlock()
	return nil
}

// adopt makes p d's running haldir: into its cgroup, its log followed.
func (s *soak) adopt(ctx context.Context, d *daemon, p *lab.Proc) {
	s.mu.Lock()
	d.proc, d.expectExit, d.stopped = p, false, false
	d.starts++
	s.mu.Unlock()
	if s.cg != nil {
		if err := s.cg.place(d.name, p.Pid()); err != nil {
			s.printf("cgroup: %v", err)
		}
	}
	go s.follow(ctx, d, p)
}

// directorNames are the daemons' directors' names, sorted.
func (s *soak) directorNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.daemons))
}

// logLine is what the soak looks at in haldir's log.
var logLine = regexp.MustCompile(`level=(ERROR|WARN)|^panic:|fatal error:|^goroutine \d+ \[|DATA RACE`)

var msgField = regexp.MustCompile(`msg="((?:[^"\\]|\\.)*)"|msg=(\S+)`)

// follow reads a daemon's log for errors and panics, and notices an exit
// the soak did not cause.
func (s *soak) follow(ctx context.Context, d *daemon, p *lab.Proc) {
	p.Follow(ctx, logLine, func(l lab.Line) { s.logged(d.name, l) })
	if ctx.Err() != nil {
		return
	}
	s.checked(invNoCrash)
	s.mu.Lock()
	expected := d.ended[p]
	s.mu.Unlock()
	if !expected {
		s.violate(invNoCrash, 0, fmt.Sprintf("%s: haldir exited without the soak stopping it: %v; last lines:\n%s", d.name, p.Wait(), tail(p, 15)))
	}
}

// logged judges one log line.
func (s *soak) logged(who string, l lab.Line) {
	text := l.Text
	switch {
	case strings.Contains(text, "level=WARN"):
		s.mu.Lock()
		s.warnLines[msgOf(text)]++
		s.mu.Unlock()
	case strings.Contains(text, "level=ERROR"):
		s.checked(invErrorsExplained)
		if f := s.faultAt(l.Time, 5*time.Second); f != nil {
			key := f.Kind.String() + ": " + msgOf(text)
			s.mu.Lock()
			if s.errLines[key]++; s.errLines[key] == 1 {
				s.errFirst[key] = who + ": " + text
			}
			s.mu.Unlock()
			return
		}
		s.violate(invErrorsExplained, 0, who+": "+text)
	default:
		s.violate(invNoCrash, 0, who+": "+text)
	}
}

// msgOf is a log line's message.
func msgOf(text string) string {
	m := msgField.FindStringSubmatch(text)
	if m == nil {
		return text
	}
	if m[1] != "" {
		return m[1]
	}
	return m[2]
}

func tail(p *lab.Proc, n int) string {
	ls := p.Lines()
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Text + "\n")
	}
	return b.String()
}

// stopDaemon stops haldir on d with sig and waits for it to exit.
func (s *soak) stopDaemon(d *daemon, sig syscall.Signal) error {
	s.mu.Lock()
	p := d.proc
	d.expectExit = true
	if d.ended == nil {
		d.ended = map[*lab.Proc]bool{}
	}
	d.ended[p] = true
	s.mu.Unlock()
	var err error
	if sig == syscall.SIGKILL {
		err = p.Kill()
	} else {
		err = p.Signal(sig)
	}
	if err != nil {
		return err
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(15 * time.Second):
		_ = p.Kill()
		<-p.Done()
		return fmt.Errorf("%s: haldir did not exit within 15s of %v", d.name, sig)
	}
}

// status asks a running daemon for its status, briefly.
func (s *soak) status(ctx context.Context, d *daemon) (control.Status, bool) {
	s.mu.Lock()
	c, stopped, exiting := d.client, d.stopped, d.expectExit
	s.mu.Unlock()
	if c == nil || stopped || exiting {
		return control.Status{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	st, err := c.Status(ctx)
	return st, err == nil
}

// seesPeer says what in st's cluster view is not yet peer alive with
// every instance in state; "" when it is.
func seesPeer(st control.Status, peer, state string) string {
	if st.Cluster == nil {
		return "no cluster view"
	}
	for _, m := range st.Cluster.Members {
		if m.Name != peer {
			continue
		}
		if m.Status != "alive" {
			return peer + " is " + m.Status
		}
		for _, in := range m.VRRP {
			if in.State != state {
				return fmt.Sprintf("%s's %s is %s", peer, in.Name, in.State)
			}
		}
		return ""
	}
	return peer + " not in it"
}

// vrrpStates is a status's instance states by name.
func vrrpStates(st control.Status) map[string]string {
	m := map[string]string{}
	for _, in := range st.VRRP {
		m[in.Name] = in.State.String()
	}
	return m
}

// waitSteady waits for the steady state: both daemons up, director1
// master of front and back and the only holder of both addresses,
// director2 backup, and director1's IPVS table as config and the real
// servers' health say. It returns "" or what was still wrong.
func (s *soak) waitSteady(ctx context.Context) string {
	t0 := time.Now()
	deadline, said := t0.Add(settleLimit), t0
	why := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s.progress.tick()
		if why = s.steady(ctx); why == "" {
			return ""
		}
		// A slow return is worth knowing about even within the limit.
		if time.Since(said) > 3*time.Second {
			said = time.Now()
			s.printf("settling for %v: %s", time.Since(t0).Round(time.Millisecond), why)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return why
}

func (s *soak) steady(ctx context.Context) string {
	if s.bgp != nil {
		return s.steadyBGP()
	}
	want := map[string]string{"director1": "master", "director2": "backup"}
	peer := map[string]string{"director1": "director2", "director2": "director1"}
	for _, name := range []string{"director1", "director2"} {
		st, ok := s.status(ctx, s.daemons[name])
		if !ok {
			return name + ": no status"
		}
		for in, state := range vrrpStates(st) {
			if state != want[name] {
				return fmt.Sprintf("%s: %s is %s", name, in, state)
			}
		}
		// The cluster has converged too: each sees the other alive in
		// its current states (a handoff right after a healed partition
		// is refused on a stale view, rightly).
		if why := seesPeer(st, peer[name], want[peer[name]]); why != "" {
			return name + "'s cluster view: " + why
		}
		for _, addr := range []struct {
			iface string
			p     netip.Prefix
		}{{"eth0", pair.VIP}, {"eth1", pair.GW}} {
			held, err := pair.Holds(s.daemons[name].host, addr.iface, addr.p)
			if err != nil {
				return err.Error()
			}
			if held != (name == "director1") {
				return fmt.Sprintf("%s holds %v: %v", name, addr.p, held)
			}
		}
	}
	if diff := s.tableDiff(s.s.Director1); diff != "" {
		return "director1's IPVS table: " + diff
	}
	return ""
}
