package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/pair"
)

// Demo parameters. The drill's numbers are bounded in count and time.
const (
	lbRequests     = 9                     // step 4: a multiple of 3, so rr is exactly even
	pollEvery      = 20 * time.Millisecond // failover drill: one new request this often
	pollTimeout    = 300 * time.Millisecond
	pollMaxCount   = 1500
	pollMaxTime    = 30 * time.Second
	demoMaxTime    = 100 * time.Second
	stepDeadline   = 10 * time.Second
	checkInterval  = "300ms"
	checkTimeout   = "250ms"
	advertInterval = "100ms"
)

var (
	vipURL = "http://" + lab.VIP4.String() + "/"
)

// Report is what the demo measured; TestVMDemo asserts on it.
type Report struct {
	Steps []Step
	// VIPAfter is haldir start to the VIP on director1.
	VIPAfter time.Duration
	// Tally counts which real server answered step 4's requests.
	Tally map[string]int
	// HealthDownAfter is real2's server stopping to its removal from
	// director1's IPVS table; HealthUpAfter the restart to its return.
	HealthDownAfter, HealthUpAfter time.Duration
	// HealthTally counts answers while real2 was down.
	HealthTally map[string]int
	// MasterKilled says how the master was killed.
	MasterKilled string
	// VIPMovedAfter is the cut to the VIP on director2.
	VIPMovedAfter time.Duration
	// FailoverOutage and FailbackOutage are the gaps between successful
	// requests around the cut and around the restore.
	FailoverOutage, FailbackOutage time.Duration
	// FailbackNote explains a failback outage longer than VRRP alone
	// makes it, when haldir's log shows why.
	FailbackNote string
	// Stall and MaxStall are how long this process went unscheduled during
	// the drill (total and longest, counting only pauses over 50ms): on a
	// busy host the TCG VM freezes now and then, and every outage
	// measured grows by as much.
	Stall, MaxStall time.Duration
	// Drill request counts.
	Requests, RequestsOK, RequestsFailed int
	// ConnSurvived says whether every long-lived connection opened before
	// the cut still worked after the failover; ConnDetail says what happened.
	ConnSurvived bool // every one of them
	ConnDetail   string
	// SyncedAfter is how long after the long-lived connections opened
	// director2's kernel held all of them (conn sync).
	SyncedAfter time.Duration
	// LongLived connections were open at the cut; Survived of them
	// carried another request after the failover.
	LongLived, Survived int
	// ClusterSeen is what each director's cluster last said of the other.
	ClusterSeen map[string]string
	// Handoff: haldir handoff there and back while the client polls and
	// long-lived connections stay open; what haldir reported for each, the
	// polls failed and the longest gap between successful ones, and the
	// long-lived connections that still worked after both.
	HandoffOut                        [2]string
	HandoffRequests, HandoffFailed    int
	HandoffGap                        time.Duration
	HandoffLongLived, HandoffSurvived int
	// Maintenance: haldir maintenance on and off on director1 while the
	// client polls; what haldir said, director1's status line while in
	// maintenance, the polls failed and the longest gap.
	MaintOut                   [2]string
	MaintStatus                string
	MaintRequests, MaintFailed int
	MaintGap                   time.Duration
	// GroupSkew is the longest a new master took between taking the sync
	// group's front and back instances in a handoff or maintenance move;
	// Overlap the longest both directors held an instance.
	GroupSkew, Overlap time.Duration
	// NotThereYet lists the components haldir reports as not running.
	NotThereYet []string
}

// Step is one section of the demo and how it went.
type Step struct {
	N    int
	Name string
	OK   bool
	Err  string
	Took time.Duration
}

// demo holds one run's state.
type demo struct {
	opts   Options
	out    io.Writer
	start  time.Time
	mu     sync.Mutex // serialises output and guards the maps below
	s      *lab.Standard
	haldir string
	dir    string
	rep    *Report
	hc     *http.Client

	states     map[string]string // "director1/front" -> "master"
	changes    map[string]int    // director -> VRRP state changes logged
	statusErr  string            // why `haldir status` failed, once it has
	notRunning map[string]string // component -> why (from haldir's log)
	// clusterSeen is each director's last word on its peer ("director1
	// sees director2" -> "alive" or "gone"), from the cluster's log.
	clusterSeen map[string]string
	quorumLost  map[string][]time.Time // director -> when it logged losing quorum
	procs       map[string]*lab.Proc
}

// Options change how the demo drives the lab.
type Options struct {
	// Staggered brings back the old workarounds for haldir's since-fixed
	// sync-group bugs: director2 starts only once director1 is master, and
	// director1's links are cut and restored in a careful order. The zero
	// value is the plain demo: both directors start at once and all three
	// links are cut at the same moment, as a dead director would.
	Staggered bool
	// BGP runs the BGP demo (RunBGPDemo) instead.
	BGP bool
}

// RunDemo runs the demo in the current kernel (which must have IPVS) with
// the haldir binary at haldirPath, printing to out. It returns what it
// measured, also when a step fails.
func RunDemo(ctx context.Context, out io.Writer, haldirPath string, opts Options) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, demoMaxTime)
	defer cancel()
	d := &demo{
		opts: opts, out: out, start: time.Now(), haldir: haldirPath, rep: &Report{},
		states: map[string]string{}, changes: map[string]int{}, notRunning: map[string]string{}, clusterSeen: map[string]string{}, quorumLost: map[string][]time.Time{}, procs: map[string]*lab.Proc{},
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return d.rep, errors.New("this kernel has no IPVS (/proc/net/ip_vs missing): run `go run ./lab/cmd/demo` without -guest to use the lab VM")
	}
	if _, err := os.Stat(haldirPath); err != nil {
		return d.rep, fmt.Errorf("haldir binary: %w", err)
	}
	defer func() {
		if d.s != nil {
			_ = d.s.Close()
		}
		if d.dir != "" {
			_ = os.RemoveAll(d.dir)
		}
	}()
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"build the standard lab", d.stepLab},
		{"configure haldir, start it on director1", d.stepHaldir},
		{"VRRP: director1 becomes master, director2 joins as backup", d.stepVRRP},
		{"load balancing through the VIP", d.stepLB},
		{"health checks: real2 goes away and comes back", d.stepHealth},
		{"failover drill: director1 dies, director2 takes over, director1 returns", d.stepDrill},
		{"planned handoff: director1 hands over to director2 and takes it back, make-before-break", d.stepHandoff},
		{"maintenance: director1 hands over, stays backup, and takes over again when it ends", d.stepMaintenance},
	}
	for i, st := range steps {
		d.section(i+1, st.name)
		t0 := time.Now()
		err := st.f(ctx)
		step := Step{N: i + 1, Name: st.name, OK: err == nil, Took: time.Since(t0)}
		if err != nil {
			step.Err = err.Error()
		}
		d.rep.Steps = append(d.rep.Steps, step)
		if err != nil {
			d.printf("FAILED: %v", err)
			d.dumpLogs()
			return d.rep, fmt.Errorf("step %d (%s): %w", i+1, st.name, err)
		}
	}
	d.section(len(steps)+1, "drill report")
	d.report()
	return d.rep, nil
}

// printf prints one timestamped line.
func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.printfLocked(format, args...)
}

func (d *demo) printfLocked(format string, args ...any) {
	fmt.Fprintf(d.out, "[%7.3fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// block prints a multi-line text indented under a timestamp.
func (d *demo) block(text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(d.out, "            %s\n", l)
	}
}

func (d *demo) section(n int, title string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "\n== %d. %s ==\n", n, title)
}

// ---- step 1 ----

func (d *demo) stepLab(ctx context.Context) error {
	s, err := lab.NewStandard("demo", lab.StandardOptions{HTTPPort: 80})
	if err != nil {
		return err
	}
	d.s = s
	// Every request opens a new connection from the client's namespace, so
	// each one is scheduled by IPVS afresh.
	d.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.Client.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	d.block(`client ─eth0─ [front] ─eth0─ director1 ─eth1─ [back] ─eth0─ real1, real2, real3
                      └eth0─ director2 ─eth1┘
              director1 ─eth2─ [sync] ─eth2─ director2
front 192.0.2.0/24: client .100, director1 .11, director2 .12, VIP 192.0.2.1 (VRRP)
back  10.0.1.0/24:  director1 .11, director2 .12, real1-3 .21-.23, gateway 10.0.1.1 (VRRP, LVS-NAT)`)
	for i, r := range s.Real {
		d.printf("%s serves HTTP on 10.0.1.%d:80 (listening on %s), answering %q", r.Name(), 21+i, s.HTTP[i].Addr(), r.Name())
	}
	d.printf("lab %s up: namespaces %s-*", s.ID(), s.ID())
	return nil
}

// ---- step 2 ----

// config is a director's haldir configuration; dir holds its control
// socket and the cluster's shared key.
func config(name string, priority int, dir string) string {
	return pair.Config{Name: name, Priority: priority, Dir: dir, AdvertInterval: advertInterval, CheckInterval: checkInterval, CheckTimeout: checkTimeout}.TOML()
}

// interesting are the haldir log lines the demo shows as they happen.
var interesting = regexp.MustCompile(`vrrp state change|health transition|component not running|quorum changed|haldir started|sync daemon (started|stopped)|cluster: (member|split|config|resolved)|level=(WARN|ERROR)`)

var (
	stateLine         = regexp.MustCompile(`msg="vrrp state change".* vrrp_instance=(\S+) from=(\S+) to=(\S+)`)
	quorumLostLine    = regexp.MustCompile(`msg="virtual server quorum changed".* quorum_up=false`)
	clusterMemberLine = regexp.MustCompile(`msg="cluster: member (\S+)".* member=(\S+)`)
	notRunningLine    = regexp.MustCompile(`msg="component not running" component=(\S+) why="((?:[^"\\]|\\.)*)"`)
	timeField         = regexp.MustCompile(`^time=\S+ `)
)

func (d *demo) stepHaldir(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "haldir-demo-")
	if err != nil {
		return err
	}
	d.dir = dir
	if err := pair.WriteKey(dir); err != nil {
		return err
	}
	for _, h := range []struct {
		host *lab.Host
		prio int
	}{{d.s.Director1, 150}, {d.s.Director2, 100}} {
		name := h.host.Name()
		path := filepath.Join(dir, name+".toml")
		// Both daemons share the file system: each needs its own socket and
		// state directory.
		cfg := config(name, h.prio, dir)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return err
		}
		if name == "director1" {
			d.printf("%s: director1's configuration (director2's differs in router_id, priority 100, socket and cluster addresses):", path)
			d.block(cfg)
		}
		out, err := h.host.Run(ctx, []string{d.haldir, "check", "-c", path}, nil)
		if err != nil {
			return fmt.Errorf("haldir check on %s: %w\n%s", name, err, out)
		}
		if name == "director1" {
			d.printf("haldir check -c %s:", path)
			d.block(out)
		}
	}
	// Both directors start at the same moment, as after a power cut; with
	// Staggered, director2 waits until director1 is master (step 3), the
	// workaround for a since-fixed sync-group bug (members re-posting
	// state changes the group itself caused).
	if err := d.startHaldir(ctx, d.s.Director1); err != nil {
		return err
	}
	if !d.opts.Staggered {
		return d.startHaldir(ctx, d.s.Director2)
	}
	return nil
}

// startHaldir runs haldir on a director and waits until it has started.
func (d *demo) startHaldir(ctx context.Context, h *lab.Host) error {
	path := filepath.Join(d.dir, h.Name()+".toml")
	p, err := h.Start(ctx, []string{d.haldir, "run", "-c", path}, nil)
	if err != nil {
		return err
	}
	d.procs[h.Name()] = p
	d.printf("%s: haldir run -c %s (pid %d)", h.Name(), path, p.Pid())
	go d.follow(ctx, h.Name(), p)
	wctx, cancel := context.WithTimeout(ctx, stepDeadline)
	defer cancel()
	if _, err := p.WaitForLine(wctx, regexp.MustCompile(`haldir started`)); err != nil {
		return fmt.Errorf("%s: haldir did not start: %w\n%s", h.Name(), err, p.Output())
	}
	return nil
}

// follow prints a director's interesting log lines as they come and keeps
// the VRRP states and the components haldir reports as not running.
func (d *demo) follow(ctx context.Context, name string, p *lab.Proc) {
	p.Follow(ctx, interesting, func(l lab.Line) {
		d.mu.Lock()
		if m := stateLine.FindStringSubmatch(l.Text); m != nil {
			d.states[name+"/"+m[1]] = m[3]
			d.changes[name]++
		}
		if m := notRunningLine.FindStringSubmatch(l.Text); m != nil {
			d.notRunning[m[1]] = strings.ReplaceAll(m[2], `\"`, `"`)
		}
		if m := clusterMemberLine.FindStringSubmatch(l.Text); m != nil {
			d.clusterSeen[name+" sees "+m[2]] = m[1]
		}
		if quorumLostLine.MatchString(l.Text) {
			d.quorumLost[name] = append(d.quorumLost[name], l.Time)
		}
		d.printfLocked("%s | %s", name, timeField.ReplaceAllString(l.Text, ""))
		d.mu.Unlock()
	})
}

// dumpLogs prints the tail of both daemons' logs after a failure.
func (d *demo) dumpLogs() {
	for _, name := range []string{"director1", "director2"} {
		p := d.procs[name]
		if p == nil {
			continue
		}
		lines := p.Lines()
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		d.printf("last %d log lines of haldir on %s:", len(lines), name)
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.Text + "\n")
		}
		d.block(b.String())
	}
}

// ---- step 3 ----

func (d *demo) state(host, instance string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.states[host+"/"+instance]; s != "" {
		return s
	}
	return "?"
}

// holdsVIPs reports whether h holds both the VIP and the back gateway.
func holdsVIPs(h *lab.Host) (bool, error) {
	a, err := pair.Holds(h, "eth0", pair.VIP)
	if err != nil || !a {
		return false, err
	}
	return pair.Holds(h, "eth1", pair.GW)
}

// holdsNone reports whether h holds neither the VIP nor the back gateway.
func holdsNone(h *lab.Host) (bool, error) {
	a, err := pair.Holds(h, "eth0", pair.VIP)
	if err != nil || a {
		return false, err
	}
	b, err := pair.Holds(h, "eth1", pair.GW)
	return !b, err
}

// waitFor polls cond every 10ms until it holds, failing after limit.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() (bool, error)) (time.Duration, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return time.Since(t0), nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return time.Since(t0), fmt.Errorf("%s: not after %s (last error: %v)", what, limit, last)
			}
			return time.Since(t0), fmt.Errorf("%s: not after %s", what, limit)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (d *demo) printStates() {
	for _, h := range d.s.Directors() {
		d.printf("%s: front=%s back=%s", h.Name(), d.state(h.Name(), "front"), d.state(h.Name(), "back"))
	}
}

func (d *demo) stepVRRP(ctx context.Context) error {
	t0 := d.start
	if ls := d.procs["director1"].Lines(); len(ls) > 0 {
		t0 = ls[0].Time
	}
	if _, err := waitFor(ctx, stepDeadline, "VIP 192.0.2.1 and gateway 10.0.1.1 on director1", func() (bool, error) { return holdsVIPs(d.s.Director1) }); err != nil {
		return err
	}
	d.rep.VIPAfter = time.Since(t0)
	d.printf("director1 holds 192.0.2.1/24 on eth0 and 10.0.1.1/24 on eth1, %s after haldir started", d.rep.VIPAfter.Round(time.Millisecond))
	if _, err := waitFor(ctx, stepDeadline, "director1 master for both instances", func() (bool, error) {
		return d.state("director1", "front") == "master" && d.state("director1", "back") == "master", nil
	}); err != nil {
		return err
	}
	if d.opts.Staggered {
		d.printf("director1 is master; now director2 joins")
		if err := d.startHaldir(ctx, d.s.Director2); err != nil {
			return err
		}
	}
	_, err := waitFor(ctx, stepDeadline, "director2 in backup for both instances without the addresses", func() (bool, error) {
		if d.state("director2", "front") != "backup" || d.state("director2", "back") != "backup" ||
			d.state("director1", "front") != "master" || d.state("director1", "back") != "master" {
			return false, nil
		}
		return holdsNone(d.s.Director2)
	})
	if err != nil {
		d.printStates()
		return err
	}
	// A backup hearing adverts every 100ms must stay put: watch it for
	// three master-down intervals.
	d.mu.Lock()
	before := d.changes["director2"]
	d.mu.Unlock()
	if err := pause(ctx, time.Second); err != nil {
		return err
	}
	d.mu.Lock()
	after := d.changes["director2"]
	d.mu.Unlock()
	d.printStates()
	if after != before {
		return fmt.Errorf("director2 changed VRRP state %d times in 1s while director1 was master: its sync-group members swap states with each other (vrrp/syncgroup.go memberChanged re-posts changes the group caused)", after-before)
	}
	d.printf("director2 holds neither address and stayed backup for 1s: it is the backup")
	return nil
}

// ---- step 4 ----

// get makes one request to the VIP on a new connection and returns the
// name of the real server that answered.
func (d *demo) get(ctx context.Context, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return lab.GetName(ctx, d.hc, vipURL)
}

// requests makes n sequential requests and tallies the answers.
func (d *demo) requests(ctx context.Context, n int) (map[string]int, error) {
	tally := map[string]int{}
	var seq []string
	for range n {
		who, err := d.get(ctx, 2*time.Second)
		if err != nil {
			return tally, fmt.Errorf("request to %s: %w", vipURL, err)
		}
		tally[who]++
		seq = append(seq, who)
	}
	d.printf("%d requests to %s, one connection each, answered by: %s", n, vipURL, strings.Join(seq, " "))
	d.printf("tally: %s", fmtTally(tally))
	return tally, nil
}

func fmtTally(t map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, t[k]))
	}
	return strings.Join(parts, " ")
}

func (d *demo) stepLB(ctx context.Context) error {
	if err := d.show(ctx, "director1"); err != nil {
		return err
	}
	tally, err := d.requests(ctx, lbRequests)
	d.rep.Tally = tally
	if err != nil {
		return err
	}
	for _, r := range d.s.Real {
		if tally[r.Name()] != lbRequests/3 {
			return fmt.Errorf("round robin over 3 servers should give each %d of %d requests, got %s", lbRequests/3, lbRequests, fmtTally(tally))
		}
	}
	d.printf("round robin: exactly even")
	return nil
}

// ---- IPVS table ----

// realsIn lists the real server addresses of the VIP's service.
func realsIn(t []pair.Service) []string {
	var rs []string
	for _, s := range t {
		if !s.Svc.Address.Equal(lab.VIP4.AsSlice()) || s.Svc.Port != 80 {
			continue
		}
		for _, d := range s.Dests {
			if d.Weight > 0 {
				rs = append(rs, d.Address.String())
			}
		}
	}
	return rs
}

// show prints a director's state: `haldir status` when this haldir serves
// it, else the kernel's IPVS table read over netlink.
func (d *demo) show(ctx context.Context, host string) error {
	d.mu.Lock()
	tryStatus := d.statusErr == ""
	d.mu.Unlock()
	if tryStatus {
		h := d.s.Host(host)
		path := filepath.Join(d.dir, host+".toml")
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := h.Run(sctx, []string{d.haldir, "status", "-c", path}, nil)
		cancel()
		if err == nil {
			d.printf("haldir status -c %s (on %s):", path, host)
			d.block(out)
			return nil
		}
		why := strings.TrimSpace(out)
		if i := strings.IndexByte(why, '\n'); i >= 0 {
			why = why[:i]
		}
		d.mu.Lock()
		d.statusErr = why
		d.mu.Unlock()
		d.printf("haldir status did not answer (%s): showing the kernel's IPVS table instead", why)
	}
	return d.printIPVS(host)
}

func (d *demo) printIPVS(host string) error {
	h := d.s.Host(host)
	t, err := pair.IPVSTable(h)
	if err != nil {
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Prot\tVirtual / Real\tSched/Fwd\tWeight\tActive\tInactive")
	for _, s := range t {
		proto := map[uint16]string{6: "TCP", 17: "UDP", 132: "SCTP"}[s.Svc.Protocol]
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\n", proto, net.JoinHostPort(s.Svc.Address.String(), fmt.Sprint(s.Svc.Port)), s.Svc.SchedName)
		for _, ds := range s.Dests {
			fwd := map[uint32]string{ipvs.ConnectionFlagMasq: "Masq", ipvs.ConnectionFlagTunnel: "Tunnel", ipvs.ConnectionFlagDirectRoute: "Route"}[ds.ConnectionFlags&ipvs.ConnectionFlagFwdMask]
			fmt.Fprintf(tw, "\t  -> %s\t%s\t%d\t%d\t%d\n", net.JoinHostPort(ds.Address.String(), fmt.Sprint(ds.Port)), fwd, ds.Weight, ds.ActiveConnections, ds.InactiveConnections)
		}
	}
	_ = tw.Flush()
	d.printf("IPVS table on %s (read over netlink):", host)
	d.block(b.String())
	return nil
}

// ---- step 5 ----

func (d *demo) stepHealth(ctx context.Context) error {
	real2 := d.s.Real[1]
	d.printf("stopping real2's HTTP server (10.0.1.22:80 now refuses connections)")
	t0 := time.Now()
	if err := d.s.HTTP[1].Close(); err != nil {
		return fmt.Errorf("stopping real2's server: %w", err)
	}
	without := func(want bool) func() (bool, error) {
		return func() (bool, error) {
			t, err := pair.IPVSTable(d.s.Director1)
			if err != nil {
				return false, err
			}
			return slices.Contains(realsIn(t), "10.0.1.22") == want, nil
		}
	}
	if _, err := waitFor(ctx, stepDeadline, "haldir removing 10.0.1.22 from director1's IPVS table", without(false)); err != nil {
		return err
	}
	d.rep.HealthDownAfter = time.Since(t0)
	d.printf("haldir removed real2 from the IPVS table %s after its server stopped (check every %s, fall 2)", d.rep.HealthDownAfter.Round(time.Millisecond), checkInterval)
	if err := d.show(ctx, "director1"); err != nil {
		return err
	}
	tally, err := d.requests(ctx, 6)
	d.rep.HealthTally = tally
	if err != nil {
		return err
	}
	if tally["real2"] != 0 || tally["real1"] != 3 || tally["real3"] != 3 {
		return fmt.Errorf("with real2 down, 6 requests should go 3/3 to real1 and real3, got %s", fmtTally(tally))
	}
	d.printf("restarting real2's HTTP server")
	t1 := time.Now()
	srv, err := real2.ServeHTTP(":80", nil)
	if err != nil {
		return fmt.Errorf("restarting real2's server: %w", err)
	}
	d.s.HTTP[1] = srv
	if _, err := waitFor(ctx, stepDeadline, "haldir adding 10.0.1.22 back to director1's IPVS table", without(true)); err != nil {
		return err
	}
	d.rep.HealthUpAfter = time.Since(t1)
	d.printf("real2 is back in the IPVS table %s after its server restarted (rise 1)", d.rep.HealthUpAfter.Round(time.Millisecond))
	if err := d.show(ctx, "director1"); err != nil {
		return err
	}
	tally, err = d.requests(ctx, lbRequests)
	if err != nil {
		return err
	}
	if tally["real2"] == 0 {
		return fmt.Errorf("real2 is back but answered none of %d requests: %s", lbRequests, fmtTally(tally))
	}
	return nil
}

// ---- step 6 ----

// sample is one drill request.
type sample struct {
	start, end time.Time
	ok         bool
}

// poller sends a new short request to the VIP every pollEvery, each on its
// own connection and goroutine so that one lost SYN does not delay the next
// probe: the outage is measured to pollEvery, not to pollTimeout.
type poller struct {
	mu       sync.Mutex
	samples  []sample
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func (d *demo) startPoller(ctx context.Context) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(pollEvery)
		defer tick.Stop()
		deadline := time.After(pollMaxTime)
		for range pollMaxCount {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st := time.Now()
				_, err := d.get(ctx, pollTimeout)
				p.mu.Lock()
				p.samples = append(p.samples, sample{start: st, end: time.Now(), ok: err == nil})
				p.mu.Unlock()
			}()
			select {
			case <-tick.C:
			case <-p.stop:
				return
			case <-deadline:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

func (p *poller) snapshot() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.samples)
}

// okAfter reports whether a request started at or after t succeeded.
func (p *poller) okAfter(t time.Time) bool {
	for _, s := range p.snapshot() {
		if s.ok && !s.start.Before(t) {
			return true
		}
	}
	return false
}

// halt stops the poller (once: a step defers it and may call it first)
// and returns its samples.
func (p *poller) halt() []sample {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
	return p.snapshot()
}

// outage is the gap between the end of the last successful request started
// before t and the first successful request started at or after t.
func outage(ss []sample, t time.Time) (time.Duration, bool) {
	var last, first time.Time
	for _, s := range ss {
		if !s.ok {
			continue
		}
		if s.start.Before(t) && s.end.After(last) {
			last = s.end
		}
		if !s.start.Before(t) && (first.IsZero() || s.end.Before(first)) {
			first = s.end
		}
	}
	if last.IsZero() || first.IsZero() {
		return 0, false
	}
	return first.Sub(last), true
}

// longestGap is the longest time between consecutive successful
// completions from the last success before t on.
func longestGap(ss []sample, t time.Time) time.Duration {
	var ends []time.Time
	for _, s := range ss {
		if s.ok {
			ends = append(ends, s.end)
		}
	}
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ends); i++ {
		if ends[i].Before(t) {
			continue
		}
		gap = max(gap, ends[i].Sub(ends[i-1]))
	}
	return gap
}

func (d *demo) stepDrill(ctx context.Context) error {
	d1 := d.s.Director1
	sm := pair.StartStallMeter()
	defer func() {
		d.rep.Stall, d.rep.MaxStall = sm.Halt()
		if d.rep.Stall > 0 {
			d.printf("this process was not scheduled for %s during the drill (longest pause %s): a busy host stalls the VM, and the outages include that",
				d.rep.Stall.Round(time.Millisecond), d.rep.MaxStall.Round(time.Millisecond))
		}
	}()
	// Long-lived connections, spread over the real servers; keep-alive
	// lets each carry another request after the failover.
	var lcs []*lab.KeepAlive
	defer func() {
		for _, lc := range lcs {
			lc.Close()
		}
	}()
	spread := map[string]int{}
	for range longLived {
		lc, who, err := d.s.Client.DialKeepAlive(ctx, net.JoinHostPort(lab.VIP4.String(), "80"), 2*time.Second)
		if err != nil {
			return fmt.Errorf("opening long-lived connection %d: %w", len(lcs)+1, err)
		}
		lcs = append(lcs, lc)
		spread[who]++
	}
	d.rep.LongLived = len(lcs)
	d.printf("%d long-lived connections open through the VIP, answered by %s", len(lcs), fmtTally(spread))
	// The kernel's sync master sends a partly filled message after at most
	// 2 s (IPVS_SYNC_FLUSH_TIME): cutting director1 before director2 holds
	// the connections would drill the sync daemon's latency, not failover.
	took, err := d.waitSynced(ctx, lcs)
	if err != nil {
		return err
	}
	d.rep.SyncedAfter = took
	d.printf("director2's IPVS table holds all %d connections %s after they opened (kernel conn sync over eth2)", len(lcs), took.Round(time.Millisecond))

	p := d.startPoller(ctx)
	defer p.halt()
	d.printf("client polls %s every %s (new connection each, %s timeout)", vipURL, pollEvery, pollTimeout)
	if err := p.waitOK(ctx, 10, "before the cut"); err != nil {
		return err
	}

	tCut := time.Now()
	if err := d.killDirector1(ctx); err != nil {
		return err
	}
	if _, err := waitFor(ctx, stepDeadline, "director2 holding the VIP and gateway", func() (bool, error) { return holdsVIPs(d.s.Director2) }); err != nil {
		return err
	}
	d.rep.VIPMovedAfter = time.Since(tCut)
	d.printf("director2 holds 192.0.2.1 and 10.0.1.1, %s after the cut", d.rep.VIPMovedAfter.Round(time.Millisecond))
	if _, err := waitFor(ctx, stepDeadline, "a successful request through director2", func() (bool, error) { return p.okAfter(tCut), nil }); err != nil {
		return err
	}
	if o, ok := outage(p.snapshot(), tCut); ok {
		d.printf("service is back through director2: outage %s", o.Round(time.Millisecond))
	}
	if _, err := waitFor(ctx, stepDeadline, "director2 master for both instances", func() (bool, error) {
		return d.state("director2", "front") == "master" && d.state("director2", "back") == "master", nil
	}); err != nil {
		return err
	}
	d.printStates()
	if err := d.show(ctx, "director2"); err != nil {
		return err
	}

	// Each connection must carry on, answered by the real server it had.
	var lost []string
	for i, lc := range lcs {
		who2, err := lc.Get(2 * time.Second)
		switch {
		case err != nil:
			lost = append(lost, fmt.Sprintf("%s: %v", lc.LocalAddr(), err))
		default:
			d.rep.Survived++
			if i == 0 {
				d.rep.ConnDetail = "e.g. " + lc.LocalAddr().String() + " answered again by " + who2
			}
		}
	}
	d.rep.ConnSurvived = d.rep.Survived == len(lcs)
	if len(lost) > 0 {
		d.rep.ConnDetail = "lost: " + strings.Join(lost, "; ")
	}
	d.printf("long-lived connections that survived the failover: %d of %d — %s", d.rep.Survived, len(lcs), d.rep.ConnDetail)

	d.printf("RESTORE: plugging director1's links back in")
	tRestore := time.Now()
	if err := d.reviveDirector1(); err != nil {
		return err
	}
	d.printf("director1's links are up again")
	if _, err := waitFor(ctx, stepDeadline, "director1 taking the VIP and gateway back (preempt)", func() (bool, error) {
		ok, err := holdsVIPs(d1)
		if !ok || err != nil {
			return false, err
		}
		return holdsNone(d.s.Director2)
	}); err != nil {
		if f, b := d.state("director1", "front"), d.state("director1", "back"); f == "fault" || b == "fault" {
			err = fmt.Errorf("%w; director1 has an instance still in fault with every link up (front=%s back=%s): the sync-group fault bug (vrrp/syncgroup.go memberFault)", err, f, b)
		}
		return err
	}
	d.printf("director1 holds the addresses again, %s after the restore", time.Since(tRestore).Round(time.Millisecond))
	tBack := time.Now()
	if _, err := waitFor(ctx, stepDeadline, "a successful request after the failback", func() (bool, error) { return p.okAfter(tBack), nil }); err != nil {
		return err
	}
	// Keep polling a little so a late hiccup is counted too.
	if err := pause(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	ss := p.halt()
	d.printStates()
	// Both directors declared each other gone while director1 was cut
	// off; they rejoin by themselves (cluster.peers, retried every 5 s).
	if _, err := waitFor(ctx, stepDeadline, "each director's cluster view showing the other alive again", func() (bool, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.clusterSeen["director1 sees director2"] == "alive" && d.clusterSeen["director2 sees director1"] == "alive", nil
	}); err != nil {
		return err
	}
	d.printf("each director's cluster view shows the other alive, %s after the restore", time.Since(tRestore).Round(time.Millisecond))

	fo, ok := outage(ss, tCut)
	if !ok {
		return errors.New("no successful request on both sides of the cut: outage cannot be measured")
	}
	d.rep.FailoverOutage = fo
	d.rep.FailbackOutage = longestGap(ss, tRestore)
	d.rep.Requests = len(ss)
	for _, s := range ss {
		if s.ok {
			d.rep.RequestsOK++
		} else {
			d.rep.RequestsFailed++
		}
	}
	d.printf("drill: %d requests, %d ok, %d failed; failover outage %s, failback outage %s",
		d.rep.Requests, d.rep.RequestsOK, d.rep.RequestsFailed, fo.Round(time.Millisecond), d.rep.FailbackOutage.Round(time.Millisecond))
	d.mu.Lock()
	for _, t := range d.quorumLost["director1"] {
		// Quorum lost between the restore and the retake is what
		// track_virtual_server and preempt_delay are for; lost after the
		// retake means director1 served from an empty table.
		if t.After(tBack) {
			d.rep.FailbackNote = "director1 lost quorum after it took the VIP back: its health checks from while its links were cut reported late, so for a moment its IPVS service had no real server and refused connections"
			break
		}
	}
	d.mu.Unlock()
	if d.rep.FailbackNote != "" {
		d.printf("note: %s", d.rep.FailbackNote)
	}
	return nil
}

// waitSynced waits until director2's kernel holds every one of lcs (conn
// sync) and returns how long that took.
func (d *demo) waitSynced(ctx context.Context, lcs []*lab.KeepAlive) (time.Duration, error) {
	return waitFor(ctx, stepDeadline, "director2's kernel holding every long-lived connection (conn sync)", func() (bool, error) {
		for _, lc := range lcs {
			if ok, err := holdsConn(d.s.Director2, netip.MustParseAddrPort(lc.LocalAddr().String())); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// waitOK waits for n successful polls; when says before what.
func (p *poller) waitOK(ctx context.Context, n int, when string) error {
	_, err := waitFor(ctx, stepDeadline, fmt.Sprintf("%d successful polls %s", n, when), func() (bool, error) {
		ok := 0
		for _, s := range p.snapshot() {
			if s.ok {
				ok++
			}
		}
		return ok >= n, nil
	})
	return err
}

// killDirector1 makes director1 a dead director: none of its links passes
// a frame, and it sees carrier loss on all of them.
//
// All of director1's links die at the same moment. haldir's sync group
// can leave a member stuck in Fault when the members' faults start and
// clear in certain orders (vrrp/syncgroup.go memberFault: a member
// that faults first tells the others the group is faulty, but a member
// whose own fault clears first is never told the group recovered), and
// with all cables pulled at once which instance faults first is a
// race. So the front link is first silently unplugged from the switch
// (Detach: no frame passes, carrier stays up), and the back link cut
// in the same instant: the back instance faults first, every time,
// while nothing director1 sends (the front instance's priority-0
// resignation included) reaches anybody. Then the front's carrier
// goes too. On restore the back link returns last, the order that
// bug does not hit (see reviveDirector1). The plain demo (Staggered false) cuts all three
// links at once instead.
func (d *demo) killDirector1(ctx context.Context) error {
	d1 := d.s.Director1
	if !d.opts.Staggered {
		for _, ifc := range []string{"eth0", "eth1", "eth2"} {
			if err := d1.Link(ifc).Cut(); err != nil {
				return err
			}
		}
		d.printf("CUT: director1's eth0, eth1 and eth2 are cut: a dead director")
		d.rep.MasterKilled = "yes: all of director1's links cut at once (eth0, eth1, eth2)"
	} else {
		if err := d1.Link("eth0").Detach(); err != nil {
			return err
		}
		for _, ifc := range []string{"eth1", "eth2"} {
			if err := d1.Link(ifc).Cut(); err != nil {
				return err
			}
		}
		d.printf("CUT: director1's links are dead (eth1, eth2 cut, eth0 unplugged from the switch): a dead director")
		d.rep.MasterKilled = "yes: all of director1's links dead at once (eth1, eth2 cut; eth0 unplugged from the switch, then cut)"
	}
	if _, err := waitFor(ctx, stepDeadline, "director1 in fault for both instances after its links died", func() (bool, error) {
		return d.state("director1", "front") == "fault" && d.state("director1", "back") == "fault", nil
	}); err != nil {
		return err
	}
	if d.opts.Staggered {
		if err := d1.Link("eth0").Cut(); err != nil {
			return err
		}
	}
	return nil
}

// reviveDirector1 plugs director1's links back in.
func (d *demo) reviveDirector1() error {
	d1 := d.s.Director1
	order := []string{"eth0", "eth1", "eth2"}
	if d.opts.Staggered {
		if err := d1.Link("eth0").Attach(); err != nil {
			return err
		}
		order = []string{"eth0", "eth2", "eth1"}
	}
	for _, ifc := range order {
		if err := d1.Link(ifc).Restore(); err != nil {
			return err
		}
	}
	return nil
}

// ---- step 7 ----

func (d *demo) report() {
	r := d.rep
	d.mu.Lock()
	nr := maps.Clone(d.notRunning)
	d.mu.Unlock()
	// haldir's own word first; what the drill shows is missing either way.
	for _, k := range slices.Sorted(maps.Keys(nr)) {
		r.NotThereYet = append(r.NotThereYet, k+": "+nr[k])
	}
	d.mu.Lock()
	r.ClusterSeen = maps.Clone(d.clusterSeen)
	d.mu.Unlock()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	ms := func(x time.Duration) string { return fmt.Sprintf("%d ms", x.Milliseconds()) }
	rows := [][2]string{
		{"VIP on director1 after start", ms(r.VIPAfter)},
		{"round robin (9 requests)", fmtTally(r.Tally)},
		{"real2 removed after its server stopped", ms(r.HealthDownAfter)},
		{"real2 back after its server restarted", ms(r.HealthUpAfter)},
		{"master killed", r.MasterKilled},
		{"VIP on director2 after the cut", ms(r.VIPMovedAfter)},
		{"outage: failover", ms(r.FailoverOutage)},
		{"outage: failback (preempt)", ms(r.FailbackOutage)},
		{"VM/process stalls during the drill", fmt.Sprintf("%s (longest %s)", ms(r.Stall), ms(r.MaxStall))},
		{"drill requests ok / failed", fmt.Sprintf("%d / %d (of %d, one every %s)", r.RequestsOK, r.RequestsFailed, r.Requests, pollEvery)},
		{"connections synced to director2 after", ms(r.SyncedAfter)},
		{"long-lived connections survived", fmt.Sprintf("%d of %d", r.Survived, r.LongLived)},
		{"planned handoff there and back: requests ok / failed", fmt.Sprintf("%d / %d", r.HandoffRequests-r.HandoffFailed, r.HandoffFailed)},
		{"planned handoff: longest gap between successful requests", ms(r.HandoffGap)},
		{"planned handoff: long-lived connections survived", fmt.Sprintf("%d of %d", r.HandoffSurvived, r.HandoffLongLived)},
		{"maintenance on and off: requests ok / failed", fmt.Sprintf("%d / %d", r.MaintRequests-r.MaintFailed, r.MaintFailed)},
		{"maintenance on and off: longest gap between successful requests", ms(r.MaintGap)},
		{"moves: longest between the new master's front and back", ms(r.GroupSkew)},
		{"moves: longest both directors held an instance", ms(r.Overlap)},
		{"cluster: director1 sees director2", r.ClusterSeen["director1 sees director2"]},
		{"cluster: director2 sees director1", r.ClusterSeen["director2 sees director1"]},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	_ = tw.Flush()
	d.block(b.String())
	if len(r.NotThereYet) > 0 {
		d.block("not running (haldir's word):")
		for _, n := range r.NotThereYet {
			d.block("  - " + n)
		}
	}
	d.printf("demo passed")
}

// stepHandoff runs haldir handoff on the master, then on the new master
// to hand back, while the client polls through the VIP and long-lived
// connections stay open: make-before-break, nothing should notice.
func (d *demo) stepHandoff(ctx context.Context) error {
	var lcs []*lab.KeepAlive
	defer func() {
		for _, lc := range lcs {
			lc.Close()
		}
	}()
	for range longLived {
		lc, _, err := d.s.Client.DialKeepAlive(ctx, net.JoinHostPort(lab.VIP4.String(), "80"), 2*time.Second)
		if err != nil {
			return fmt.Errorf("opening long-lived connection %d: %w", len(lcs)+1, err)
		}
		lcs = append(lcs, lc)
	}
	d.rep.HandoffLongLived = len(lcs)
	if _, err := d.waitSynced(ctx, lcs); err != nil {
		return err
	}
	p := d.startPoller(ctx)
	defer p.halt()
	if err := p.waitOK(ctx, 10, "before the handoff"); err != nil {
		return err
	}
	t0 := time.Now()
	for i, from := range []struct {
		host *lab.Host
		name string
		to   string
	}{{d.s.Director1, "director1", "director2"}, {d.s.Director2, "director2", "director1"}} {
		argv := []string{d.haldir, "handoff", "--all", "--reason", "demo", "-s", filepath.Join(d.dir, from.name+".sock")}
		d.printf("$ haldir handoff --all   (on %s)", from.name)
		out, err := from.host.Run(ctx, argv, nil)
		d.rep.HandoffOut[i] = strings.TrimSpace(out)
		d.block(out)
		if err != nil {
			return fmt.Errorf("haldir handoff on %s: %w", from.name, err)
		}
		if !strings.Contains(out, "handed over to "+from.to+", make-before-break") {
			return fmt.Errorf("haldir handoff on %s did not hand over to %s make-before-break", from.name, from.to)
		}
		if err := d.moved(ctx, from.name, from.to); err != nil {
			return err
		}
		// A little polling at the new master before the next move.
		if err := pause(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	ss := p.halt()
	d.printStates()
	d.rep.HandoffRequests, d.rep.HandoffFailed, d.rep.HandoffGap = tally(ss, t0)
	for _, lc := range lcs {
		if _, err := lc.Get(2 * time.Second); err == nil {
			d.rep.HandoffSurvived++
		}
	}
	d.printf("planned handoff there and back: %d requests, %d failed, longest gap between successful ones %s; long-lived connections that still work: %d of %d",
		d.rep.HandoffRequests, d.rep.HandoffFailed, d.rep.HandoffGap.Round(time.Millisecond), d.rep.HandoffSurvived, d.rep.HandoffLongLived)
	return nil
}

// tally counts the polls that started at or after t0, those that failed,
// and the longest gap between successful ones.
func tally(ss []sample, t0 time.Time) (requests, failed int, gap time.Duration) {
	for _, s := range ss {
		if s.start.Before(t0) {
			continue
		}
		requests++
		if !s.ok {
			failed++
		}
	}
	return requests, failed, longestGap(ss, t0)
}

// moved waits until to is master of both instances, then prints how the
// move went (moveTimes).
func (d *demo) moved(ctx context.Context, from, to string) error {
	if _, err := waitFor(ctx, stepDeadline, to+" master of both instances", func() (bool, error) {
		return d.state(to, "front") == "master" && d.state(to, "back") == "master", nil
	}); err != nil {
		return err
	}
	d.moveTimes(ctx, from, to)
	return nil
}

// moveTimes prints, from both directors' status (the VM's one clock), how
// far apart the new master took the sync group's instances and how long
// both held each: a NAT service's replies come back through the back
// gateway, so while front and back are on different directors new
// connections fail.
func (d *demo) moveTimes(ctx context.Context, from, to string) {
	// The old master's release may come after the new master's takeover.
	if _, err := waitFor(ctx, stepDeadline, from+" backup of both instances", func() (bool, error) {
		return d.state(from, "front") == "backup" && d.state(from, "back") == "backup", nil
	}); err != nil {
		return
	}
	changed := func(name string) map[string]time.Time {
		out, err := d.hostOf(name).Run(ctx, []string{d.haldir, "status", "--json", "-s", filepath.Join(d.dir, name+".sock")}, nil)
		if err != nil {
			return nil
		}
		var st struct {
			VRRP []struct {
				Name       string    `json:"name"`
				LastChange time.Time `json:"last_change"`
			} `json:"vrrp"`
		}
		if json.Unmarshal([]byte(out), &st) != nil {
			return nil
		}
		m := map[string]time.Time{}
		for _, in := range st.VRRP {
			m[in.Name] = in.LastChange
		}
		return m
	}
	old, now := changed(from), changed(to)
	if old == nil || now == nil {
		return
	}
	ms := func(x time.Duration) string { return fmt.Sprintf("%.1f ms", float64(x.Microseconds())/1000) }
	d.printf("%s took front and back %s apart; %s released front %s and back %s after %s took each",
		to, ms(now["back"].Sub(now["front"]).Abs()), from, ms(old["front"].Sub(now["front"])), ms(old["back"].Sub(now["back"])), to)
	d.rep.GroupSkew = max(d.rep.GroupSkew, now["back"].Sub(now["front"]).Abs())
	d.rep.Overlap = max(d.rep.Overlap, old["front"].Sub(now["front"]), old["back"].Sub(now["back"]))
}

// hostOf is the director called name.
func (d *demo) hostOf(name string) *lab.Host {
	if name == "director2" {
		return d.s.Director2
	}
	return d.s.Director1
}

// stepMaintenance turns maintenance on on director1 (the master): it
// hands both instances over make-before-break and stays backup whatever
// its priority, as its status says, until maintenance is off, when
// preemption gives mastership back.
func (d *demo) stepMaintenance(ctx context.Context) error {
	p := d.startPoller(ctx)
	defer p.halt()
	if err := p.waitOK(ctx, 10, "before maintenance"); err != nil {
		return err
	}
	sock := filepath.Join(d.dir, "director1.sock")
	t0 := time.Now()
	for i, step := range []struct {
		args   []string
		master string
	}{
		{[]string{"maintenance", "on", "--reason", "demo: kernel upgrade"}, "director2"},
		{[]string{"maintenance", "off"}, "director1"},
	} {
		d.printf("$ haldir %s   (on director1)", strings.Join(step.args, " "))
		out, err := d.s.Director1.Run(ctx, append(append([]string{d.haldir}, step.args...), "-s", sock), nil)
		d.rep.MaintOut[i] = strings.TrimSpace(out)
		d.block(out)
		if err != nil {
			return fmt.Errorf("haldir %s: %w", strings.Join(step.args, " "), err)
		}
		if err := d.moved(ctx, map[string]string{"director1": "director2", "director2": "director1"}[step.master], step.master); err != nil {
			return err
		}
		if i == 0 {
			// Held as backup: more than director1's Master_Down_Interval
			// passes under director2's lower priority.
			if err := pause(ctx, time.Second); err != nil {
				return err
			}
			if d.state("director1", "front") != "backup" {
				return fmt.Errorf("director1 is %s in maintenance, want backup", d.state("director1", "front"))
			}
			out, err := d.s.Director1.Run(ctx, []string{d.haldir, "status", "-s", sock}, nil)
			if err != nil {
				return fmt.Errorf("haldir status: %w", err)
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "maintenance") {
					d.rep.MaintStatus = strings.TrimSpace(l)
					d.printf("$ haldir status | grep maintenance\n            %s", d.rep.MaintStatus)
					break
				}
			}
			if d.rep.MaintStatus == "" {
				return fmt.Errorf("haldir status on director1 does not show maintenance:\n%s", out)
			}
		}
	}
	if err := pause(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	ss := p.halt()
	d.printStates()
	d.rep.MaintRequests, d.rep.MaintFailed, d.rep.MaintGap = tally(ss, t0)
	d.printf("maintenance on and off: %d requests, %d failed, longest gap between successful ones %s",
		d.rep.MaintRequests, d.rep.MaintFailed, d.rep.MaintGap.Round(time.Millisecond))
	return nil
}

// pause waits for d or the end of ctx.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// longLived is how many keep-alive connections the drill holds open
// through the failover.
const longLived = 20

// holdsConn says whether h's IPVS connection table has an entry from
// client.
func holdsConn(h *lab.Host, client netip.AddrPort) (bool, error) {
	t, err := pair.ReadConns(h)
	return t.Holds(client), err
}
