package failover

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/internal/benchenv"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
)

// BenchmarkFailover measures VRRP failover on the wire, haldir against
// keepalived 2.2.7 in the same lab layout and the same run (issue #4):
//
//   - hard: the master's cable is cut (its switch port goes down); the
//     backup takes over after Master_Down_Interval = 3 × interval + skew;
//   - graceful: the master gets SIGTERM and resigns with a priority-0
//     advert; the backup takes over after Skew_Time.
//
// The master is failed right after one of its adverts reached the tap, so
// a hard failover waits (nearly) the whole Master_Down_Interval: the worst
// case, and the same phase for both implementations (at a random phase the
// spread of the cut within the interval would swamp the difference
// between them). Each failover is timed from the cut / signal
// (time.Now() just before the netlink call or kill(2)) to the new master's
// first gratuitous ARP, as
// stamped by the kernel when it reached a tap host on the same switch
// (same clock, CLOCK_REALTIME). The new master's first advert, the old
// master's priority-0 advert and its last advert before a cut are recorded
// too, to tell timer error from send-path delay. It also measures CPU per
// router at 100 adverts/s.
//
// Both routers run at priority 100, so whichever is master after a round
// stays master and the next round fails it over the other way: no
// preemption wait between rounds, and Skew_Time is the same every round.
//
// Run (root): go test -run '^$' -bench Failover -benchtime 1x ./bench/vrrp/failover/
// with HALDIR_BENCH_INTERVALS (default 1s,100ms,10ms; none = only the CPU
// table), HALDIR_BENCH_PROFILE (a directory for the CPU table's haldir
// profiles), HALDIR_BENCH_ROUNDS
// (default 10), HALDIR_BENCH_CPU_WINDOW (default 10s, 0 = no CPU table),
// HALDIR_BENCH_CPU_LOADS (e.g. 1x10ms,10x100ms; default all three),
// HALDIR_BENCH_CPU_PIN (the CPU the CPU table's daemons run on; default
// the last, none: any) and
// HALDIR_BENCH_HALDIR (a haldir binary to measure instead of this tree's).
func BenchmarkFailover(b *testing.B) {
	lab.SkipIfNotRoot(b)
	p, err := parseFailoverParams(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	impls := benchImpls(b)
	var rep failoverReport
	for b.Loop() {
		rep = runFailoverBench(b, impls, p)
	}
	fmt.Fprint(os.Stdout, rep.String())
}

// Environment variables of BenchmarkFailover.
const (
	envBenchIntervals = "HALDIR_BENCH_INTERVALS"
	envBenchRounds    = "HALDIR_BENCH_ROUNDS"
	envBenchCPUWindow = "HALDIR_BENCH_CPU_WINDOW"
	// envBenchCPULoads narrows the CPU table to some loads, e.g.
	// "10x100ms" (instances x interval, comma-separated).
	envBenchCPULoads = "HALDIR_BENCH_CPU_LOADS"
	// envBenchCPUPin is the CPU every daemon of the CPU table runs on
	// (default the last; none: wherever the kernel puts them).
	envBenchCPUPin = "HALDIR_BENCH_CPU_PIN"
	// envBenchProfile names a directory where each haldir router of the
	// CPU table writes its CPU profile (haldir run -cpuprofile).
	envBenchProfile = "HALDIR_BENCH_PROFILE"
)

// failoverParams select what the benchmark runs.
type failoverParams struct {
	intervals []time.Duration
	rounds    int           // failovers per (interval, kind, implementation)
	cpuWindow time.Duration // 0: no CPU measurement
	cpuWarmup time.Duration // after the pair settles, before the window
	cpuLoads  []cpuLoad     // nil: every one of cpuLoads
	cpuPin    int           // the CPU table's daemons' CPU; -1: any
}

// parseFailoverParams reads the environment through get (os.Getenv).
func parseFailoverParams(get func(string) string) (failoverParams, error) {
	p := failoverParams{
		intervals: []time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond},
		rounds:    10,
		cpuWindow: 10 * time.Second,
		cpuWarmup: time.Second,
		cpuPin:    runtime.NumCPU() - 1,
	}
	if s := get(envBenchIntervals); s == "none" {
		p.intervals = nil // the CPU table only
	} else if s != "" {
		p.intervals = nil
		for f := range strings.SplitSeq(s, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil {
				return p, fmt.Errorf("%s=%q: %q is not a duration (want e.g. 1s,100ms,10ms)", envBenchIntervals, s, f)
			}
			// The VRRPv3 interval field counts 12 bits of centiseconds.
			if d < 10*time.Millisecond || d > 40950*time.Millisecond || d%(10*time.Millisecond) != 0 {
				return p, fmt.Errorf("%s=%q: %v is not a VRRPv3 interval (10ms..40.95s in 10ms steps)", envBenchIntervals, s, d)
			}
			p.intervals = append(p.intervals, d)
		}
	}
	if s := get(envBenchRounds); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return p, fmt.Errorf("%s=%q: want a whole number of failovers, 1..1000", envBenchRounds, s)
		}
		p.rounds = n
	}
	if s := get(envBenchCPUWindow); s != "" {
		d, err := time.ParseDuration(s)
		if s == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || d > 10*time.Minute {
			return p, fmt.Errorf("%s=%q: want a duration up to 10m, or 0 for no CPU measurement", envBenchCPUWindow, s)
		}
		p.cpuWindow = d
	}
	if s := get(envBenchCPUPin); s == "none" {
		p.cpuPin = -1
	} else if s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n >= runtime.NumCPU() {
			return p, fmt.Errorf("%s=%q: want a CPU number below %d, or none", envBenchCPUPin, s, runtime.NumCPU())
		}
		p.cpuPin = n
	}
	if s := get(envBenchCPULoads); s != "" {
		for f := range strings.SplitSeq(s, ",") {
			n, iv, ok := strings.Cut(strings.TrimSpace(f), "x")
			k, err := strconv.Atoi(n)
			d, err2 := time.ParseDuration(iv)
			// Masters' VIPs are 192.0.2.(100+i); the interval is VRRPv3's.
			if !ok || err != nil || err2 != nil || k < 1 || k > 155 || d < 10*time.Millisecond || d > 40950*time.Millisecond || d%(10*time.Millisecond) != 0 {
				return p, fmt.Errorf("%s=%q: %q is not INSTANCESxINTERVAL (1..155 instances, a VRRPv3 interval; e.g. 10x100ms)", envBenchCPULoads, s, f)
			}
			p.cpuLoads = append(p.cpuLoads, cpuLoad{instances: k, interval: d})
		}
	}
	return p, nil
}

// Failover kinds.
const (
	kindHard     = "hard"
	kindGraceful = "graceful"
)

// benchPriority is both routers' priority in the failover rounds.
const benchPriority = 100

// skewTime is RFC 5798 Skew_Time of a priority-p backup.
func skewTime(p int, interval time.Duration) time.Duration {
	return time.Duration(256-p) * interval / 256
}

// masterDown is RFC 5798 Master_Down_Interval.
func masterDown(p int, interval time.Duration) time.Duration {
	return 3*interval + skewTime(p, interval)
}

// failoverSample is one failover as seen on the wire.
type failoverSample struct {
	toGARP   time.Duration // event → new master's first gratuitous ARP
	toAdvert time.Duration // event → new master's first advert
	// sincePrev is how long after the master's advert (as the tap
	// stamped it) the event came: the bench waits for that advert.
	sincePrev time.Duration
	// toResign is, for graceful, SIGTERM → the old master's priority-0
	// advert.
	toResign time.Duration
	// late is how much later than the protocol allows the new master's
	// first advert came: after the old master's last advert (hard) or
	// its priority-0 advert (graceful), minus Master_Down_Interval or
	// Skew_Time. It is timer error plus the takeover's own work.
	late time.Duration
}

// failoverResult holds the samples of one cell of the table.
type failoverResult struct {
	interval time.Duration
	kind     string
	impl     string
	samples  []failoverSample
}

// cpuLoad is a configuration of 100 adverts/s.
type cpuLoad struct {
	instances int
	interval  time.Duration
}

func (c cpuLoad) String() string { return fmt.Sprintf("%d × %v", c.instances, c.interval) }

// cpuLoads make 100 adverts/s per master, and 1,000 with 100 instances
// (where per-instance costs, such as every instance reading every
// sibling's adverts, grow with the square of the instance count).
var cpuLoads = []cpuLoad{{1, 10 * time.Millisecond}, {10, 100 * time.Millisecond}, {100, 100 * time.Millisecond}}

// cpuResult is one implementation's CPU use under one load.
type cpuResult struct {
	load           cpuLoad
	impl           string
	window         time.Duration
	master, backup float64 // percent of one core
	adverts        float64 // the master's adverts per second on the wire
	bursts         float64 // per second: adverts less than 0.5 ms apart are one
	pids           [2]int  // processes counted (keepalived: parent + VRRP child)
	// The same over each part of the window (cpuParts), measured at the
	// same instants for every implementation.
	masterParts, backupParts []float64
}

// failoverReport is everything one run measured.
type failoverReport struct {
	rounds        int
	loadBefore    string
	loadAfter     string
	results       []failoverResult
	cpu           []cpuResult
	cpuPin        int // the CPU table's daemons' one CPU; -1: any
	unstampedSeen uint64
	haldirBin     string // set when $HALDIR_BENCH_HALDIR chose the binary
}

func runFailoverBench(tb testing.TB, impls []benchImpl, p failoverParams) failoverReport {
	rep := failoverReport{rounds: p.rounds, loadBefore: benchenv.LoadAverage(), cpuPin: p.cpuPin}
	for _, im := range impls {
		if im.name == implHaldir && os.Getenv(envBenchHaldir) != "" {
			rep.haldirBin = im.bin
		}
	}
	for _, iv := range p.intervals {
		for _, im := range impls {
			got, unstamped := runFailoverPair(tb, im, iv, p.rounds)
			rep.unstampedSeen += unstamped
			for _, kind := range []string{kindHard, kindGraceful} {
				rep.results = append(rep.results, failoverResult{interval: iv, kind: kind, impl: im.name, samples: got[kind]})
			}
		}
	}
	if p.cpuWindow > 0 {
		loads := p.cpuLoads
		if loads == nil {
			loads = cpuLoads
		}
		cpuImpls := append(slices.Clone(impls), bareImpl(tb))
		for _, load := range loads {
			rep.cpu = append(rep.cpu, measureCPU(tb, cpuImpls, load, p.cpuWarmup, p.cpuWindow, p.cpuPin)...)
		}
	}
	rep.loadAfter = benchenv.LoadAverage()
	return rep
}

// Addresses of the benchmark lab: r1 and r2 run the daemons, tap only
// listens. IPv6 is off so that a restored link is usable at once (no DAD)
// and no router solicitations or MLD reports cross the switch.
var benchAddrs = map[string]netip.Prefix{
	"r1": netip.MustParsePrefix("192.0.2.11/24"),
	"r2": netip.MustParsePrefix("192.0.2.12/24"),
	"c":  netip.MustParsePrefix("192.0.2.100/24"), // the handoff bench's client
}

// buildBenchLAN builds r1, r2 and the tap on one switch, and the extra
// hosts.
func buildBenchLAN(tb testing.TB, name string, extra ...string) *lab.Lab {
	tb.Helper()
	noV6 := []lab.Sysctl{
		{Key: "net.ipv6.conf.all.disable_ipv6", Value: "1"},
		{Key: "net.ipv6.conf.default.disable_ipv6", Value: "1"},
		{Key: "net.ipv6.conf." + lanIf + ".disable_ipv6", Value: "1"},
	}
	topo := lab.Topology{Switches: []string{lanSw}}
	for _, h := range append([]string{"r1", "r2", "tap"}, extra...) {
		ls := lab.LinkSpec{Iface: lanIf, Switch: lanSw}
		if a, ok := benchAddrs[h]; ok {
			ls.Addrs = []netip.Prefix{a}
		}
		topo.Hosts = append(topo.Hosts, lab.HostSpec{Name: h, Links: []lab.LinkSpec{ls}, Sysctls: noV6})
	}
	l, err := lab.Build(name, topo)
	if err != nil {
		tb.Fatalf("building the benchmark lab: %v", err)
	}
	return l
}

// advertFrom matches adverts of VRID vrid sent by src; priority 0 only
// when resign is set, else only non-zero priorities.
func advertFrom(src netip.Addr, vrid int, resign bool) func(lab.Record) bool {
	return func(r lab.Record) bool {
		v := r.VRRP
		return v != nil && v.Src == src && int(v.VRID) == vrid && (v.Priority == 0) == resign
	}
}

// garpFor matches gratuitous ARPs announcing vip.
func garpFor(vip netip.Addr) func(lab.Record) bool {
	return func(r lab.Record) bool { return r.ARP != nil && r.ARP.Gratuitous && r.ARP.SenderIP == vip }
}

// after restricts pred to frames the kernel received at or after t0.
func after(t0 time.Time, pred func(lab.Record) bool) func(lab.Record) bool {
	return func(r lab.Record) bool { return !r.Time.Before(t0) && pred(r) }
}

// slack widens a tap mark: frames received before an event may still sit
// in the socket queue when the mark is taken, so searches by time start a
// little earlier by sequence.
func slack(mark uint64) uint64 { return mark - min(mark, 256) }

// failoverPair is two daemons of one implementation and the tap.
type failoverPair struct {
	tb       testing.TB
	tap      *lab.Observer
	d        [2]*benchDaemon
	vip      netip.Prefix
	interval time.Duration
}

// runFailoverPair runs rounds hard and then rounds graceful failovers of
// one implementation at one interval, in a lab of its own that it tears
// down before returning (so its daemons do not load later measurements).
func runFailoverPair(tb testing.TB, im benchImpl, interval time.Duration, rounds int) (map[string][]failoverSample, uint64) {
	tb.Helper()
	l := buildBenchLAN(tb, fmt.Sprintf("vrrpbench-%s-%v", im.name, interval))
	defer l.Close()
	tap := newWireTap(tb, l)
	defer tap.Stop()
	ins := []benchInstance{{name: "vi", vrid: vrid, priority: benchPriority, interval: interval, vip: vip4}}
	p := &failoverPair{tb: tb, tap: tap, vip: vip4, interval: interval}
	for i, h := range []string{"r1", "r2"} {
		p.d[i] = startBenchDaemon(tb, im, l.Host(h), benchAddrs[h].Addr(), ins)
	}
	out := map[string][]failoverSample{}
	for _, kind := range []string{kindHard, kindGraceful} {
		for range rounds {
			out[kind] = append(out[kind], p.round(kind))
		}
	}
	for _, d := range p.d {
		d.stop()
	}
	return out, tap.Unstamped()
}

// steady waits until exactly one daemon holds the VIP, the other has
// logged entering Backup since its mark, and the tap has seen two adverts
// of the holder and none of the other; it returns the master's index.
func (p *failoverPair) steady() int {
	p.tb.Helper()
	master := -1
	what := fmt.Sprintf("%s pair at %v steady", p.d[0].im.name, p.interval)
	poll.UntilEvery(p.tb, settle+20*p.interval, 2*time.Millisecond, what, func() (bool, any) {
		var holders []int
		for i, d := range p.d {
			if d.holds(p.vip) {
				holders = append(holders, i)
			}
		}
		if len(holders) != 1 {
			return false, fmt.Sprintf("%d routers hold the VIP", len(holders))
		}
		m, b := p.d[holders[0]], p.d[1-holders[0]]
		if !b.loggedBackup() {
			return false, fmt.Sprintf("%s has not logged entering BACKUP", b)
		}
		mark := p.tap.LastSeq()
		ctx, cancel := context.WithTimeout(context.Background(), 3*p.interval+time.Second)
		_, err := p.tap.WaitN(ctx, mark, 2, advertFrom(m.addr, vrid, false))
		cancel()
		if err != nil {
			return false, fmt.Sprintf("adverts of %s: %v", m, err)
		}
		if n := len(p.tap.RecordsBetween(mark, p.tap.LastSeq(), advertFrom(b.addr, vrid, false))); n > 0 {
			return false, fmt.Sprintf("%s still advertises (%d adverts)", b, n)
		}
		if m.holds(p.vip) && !b.holds(p.vip) {
			master = holders[0]
			return true, nil
		}
		return false, "the VIP moved while waiting for adverts"
	})
	return master
}

// round runs one failover of kind and undoes it (restores the link, or
// restarts the stopped daemon).
func (p *failoverPair) round(kind string) failoverSample {
	tb := p.tb
	tb.Helper()
	mi := p.steady()
	master, backup := p.d[mi], p.d[1-mi]
	for _, d := range p.d {
		d.markLines()
	}
	link := master.h.Link(lanIf)
	what := fmt.Sprintf("%s failover %s → %s at %v", kind, master, backup, p.interval)
	// Fail the master right after one of its adverts: the backup then
	// has to wait out (nearly) all of Master_Down_Interval, the worst
	// case, and both implementations are measured at the same phase
	// instead of at a random point of the advert interval.
	ctx, cancel := context.WithTimeout(context.Background(), masterDown(benchPriority, p.interval)+settle)
	defer cancel()
	prev, err := p.tap.WaitForAfter(ctx, p.tap.LastSeq(), advertFrom(master.addr, vrid, false))
	if err != nil {
		tb.Fatalf("%s: no advert of the master before the event: %v", what, err)
	}
	mark := prev.Seq
	t0 := time.Now().Round(0) // wall clock, as the kernel stamps
	if kind == kindHard {
		err = link.Cut()
	} else {
		err = master.signal()
	}
	if err != nil {
		tb.Fatalf("%s failover of %s: %v", kind, master, err)
	}
	garp, err := p.tap.WaitForAfter(ctx, slack(mark), after(t0, garpFor(p.vip.Addr())))
	if err != nil {
		tb.Fatalf("%s: no gratuitous ARP for %v: %v", what, p.vip.Addr(), err)
	}
	if bytes.Equal(garp.Src, master.mac) {
		tb.Fatalf("%s: the gratuitous ARP came from the old master: %v", what, garp)
	}
	adv, err := p.tap.WaitForAfter(ctx, slack(mark), after(t0, advertFrom(backup.addr, vrid, false)))
	if err != nil {
		tb.Fatalf("%s: no advert from the new master: %v", what, err)
	}
	s := failoverSample{toGARP: garp.Time.Sub(t0), toAdvert: adv.Time.Sub(t0), sincePrev: t0.Sub(prev.Time)}
	if kind == kindHard {
		before := p.tap.RecordsBetween(0, adv.Seq, func(r lab.Record) bool {
			return r.Time.Before(t0) && advertFrom(master.addr, vrid, false)(r)
		})
		if len(before) == 0 {
			tb.Fatalf("%s: the tap kept no advert of the old master before the cut", what)
		}
		s.late = adv.Time.Sub(before[len(before)-1].Time) - masterDown(benchPriority, p.interval)
		if err := link.Restore(); err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		return s
	}
	resign, err := p.tap.WaitForAfter(ctx, slack(mark), after(t0, advertFrom(master.addr, vrid, true)))
	if err != nil {
		tb.Fatalf("%s: no priority-0 advert from the old master: %v", what, err)
	}
	s.toResign = resign.Time.Sub(t0)
	s.late = adv.Time.Sub(resign.Time) - skewTime(benchPriority, p.interval)
	master.waitExit()
	master.start()
	return s
}

// cpuPair is one implementation's pair under a CPU load, in its own lab.
type cpuPair struct {
	im             benchImpl
	l              *lab.Lab
	tap            *lab.Observer
	master, backup *benchDaemon
}

// startCPUPair starts im's pair under load (priority 200 master, 100
// backup, one VIP per instance), its daemons on CPU pin (-1: any), and
// waits for it to settle.
func startCPUPair(tb testing.TB, im benchImpl, load cpuLoad, pin int) *cpuPair {
	tb.Helper()
	p := &cpuPair{im: im, l: buildBenchLAN(tb, fmt.Sprintf("vrrpcpu-%s-%d", im.name, load.instances))}
	p.tap = newWireTap(tb, p.l)
	// A pair that fails to start (tb.Fatal) is torn down here; one that
	// starts is measureCPU's to close.
	started := false
	defer func() {
		if !started {
			p.close()
		}
	}()
	insFor := func(prio int) []benchInstance {
		var ins []benchInstance
		for i := 1; i <= load.instances; i++ {
			ins = append(ins, benchInstance{
				name: fmt.Sprintf("vi%d", i), vrid: i, priority: prio, interval: load.interval,
				vip: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}), 24),
			})
		}
		return ins
	}
	profile := func(role string) string {
		dir := os.Getenv(envBenchProfile)
		if dir == "" || im.name != implHaldir {
			return ""
		}
		return filepath.Join(dir, fmt.Sprintf("haldir-%dx%v-%s.pprof", load.instances, load.interval, role))
	}
	p.backup = startProfiledDaemon(tb, im, p.l.Host("r1"), benchAddrs["r1"].Addr(), insFor(100), profile("backup"), pin)
	p.master = startProfiledDaemon(tb, im, p.l.Host("r2"), benchAddrs["r2"].Addr(), insFor(200), profile("master"), pin)
	// keepalived brings 100 instances up one after the other, in
	// seconds; the bound grows with them.
	poll.True(tb, settle+5*load.interval+time.Duration(load.instances)*100*time.Millisecond,
		fmt.Sprintf("%s: %v with every VIP on the master", im.name, load), p.steady)
	started = true
	return p
}

func (p *cpuPair) steady() bool {
	if p.im.name == implBare {
		// No addresses to hold: the backup hears the master.
		return p.backup.loggedBackup()
	}
	for _, in := range p.master.ins {
		if !p.master.holds(in.vip) || p.backup.holds(in.vip) {
			return false
		}
	}
	return p.backup.loggedBackup()
}

func (p *cpuPair) close() {
	for _, d := range []*benchDaemon{p.master, p.backup} {
		if d != nil {
			d.stop()
		}
	}
	p.tap.Stop()
	p.l.Close()
}

// cpuParts is how many sub-windows a CPU window of at least
// cpuPartMin is cut into, each giving its own ratio.
const (
	cpuParts   = 5
	cpuPartMin = 2 * time.Second
)

// measureCPU runs every implementation's pair under load at the same
// time, each in its own lab, waits for them to settle and for warmup
// more, and measures each daemon's CPU time (processTreeCPU) over the same
// window, and over each of its parts. Run one after the other, the pairs
// met a host whose speed moved by 2.4× between windows of 10 s (a plain
// process waking 100 times a second measured 2.5, 4.8 and 6.0 % of a core
// in three consecutive windows): ratios between windows measured that,
// not the daemons. Side by side, both see the same host; the pairs'
// own load (a few percent of a core) is far from contending for it.
func measureCPU(tb testing.TB, impls []benchImpl, load cpuLoad, warmup, window time.Duration, pin int) []cpuResult {
	tb.Helper()
	var pairs []*cpuPair
	defer func() {
		for _, p := range pairs {
			p.close()
		}
	}()
	for _, im := range impls {
		pairs = append(pairs, startCPUPair(tb, im, load, pin))
	}
	// Start-up work (config parsing, first GARPs, the garbage they leave)
	// is not the steady state being measured.
	time.Sleep(warmup)

	parts := 1
	if window >= cpuParts*cpuPartMin {
		parts = cpuParts
	}
	type mark struct{ m, b time.Duration }
	marks := make([][]mark, len(pairs))
	var at []time.Time
	var pids [][2]int
	fromSeq := make([]uint64, len(pairs))
	for i, p := range pairs {
		fromSeq[i] = p.tap.LastSeq()
	}
	for k := 0; k <= parts; k++ {
		at = append(at, time.Now())
		for i, p := range pairs {
			m, mp, err0 := p.master.cpu()
			b, bp, err1 := p.backup.cpu()
			for _, err := range []error{err0, err1} {
				if err != nil {
					tb.Fatalf("%s CPU: %v (master %s, backup %s)", p.im.name, err, p.master.state(), p.backup.state())
				}
			}
			marks[i] = append(marks[i], mark{m, b})
			if k == 0 {
				pids = append(pids, [2]int{len(mp), len(bp)})
			}
		}
		if k < parts {
			time.Sleep(window / time.Duration(parts))
		}
	}
	w0, w1 := at[0], at[len(at)-1]
	elapsed := w1.Sub(w0)
	pct := func(d time.Duration, over time.Duration) float64 { return 100 * d.Seconds() / over.Seconds() }
	var out []cpuResult
	for i, p := range pairs {
		if !p.steady() {
			tb.Fatalf("%s: %v: the pair changed roles during the CPU window", p.im.name, load)
		}
		var adverts int
		var times []time.Time
		for _, in := range p.master.ins {
			rs := p.tap.RecordsBetween(fromSeq[i], p.tap.LastSeq(), func(r lab.Record) bool {
				return !r.Time.After(w1) && advertFrom(p.master.addr, in.vrid, false)(r)
			})
			adverts += len(rs)
			for _, r := range rs {
				times = append(times, r.Time)
			}
		}
		// The adverts of many masters that leave on one wake-up reach the
		// backup in one burst: one wake-up there too.
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		bursts := 0
		for j := range times {
			if j == 0 || times[j].Sub(times[j-1]) > 500*time.Microsecond {
				bursts++
			}
		}
		r := cpuResult{
			load: load, impl: p.im.name, window: elapsed,
			master:  pct(marks[i][parts].m-marks[i][0].m, elapsed),
			backup:  pct(marks[i][parts].b-marks[i][0].b, elapsed),
			adverts: float64(adverts) / elapsed.Seconds(),
			bursts:  float64(bursts) / elapsed.Seconds(),
			pids:    pids[i],
		}
		for k := 1; k <= parts; k++ {
			d := at[k].Sub(at[k-1])
			r.masterParts = append(r.masterParts, pct(marks[i][k].m-marks[i][k-1].m, d))
			r.backupParts = append(r.backupParts, pct(marks[i][k].b-marks[i][k-1].b, d))
		}
		out = append(out, r)
	}
	return out
}

// durationStats are the median and maximum of a sample.
func durationStats(d []time.Duration) (med, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[n-1]
}

func pick(ss []failoverSample, f func(failoverSample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// medMax formats "median / max ms".
func medMax(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	med, mx := durationStats(d)
	return ms(med) + " / " + ms(mx)
}

// goal returns issue #4's goal for a cell and whether haldir meets it:
// hard failover within 3 × interval + skew + 2ms and a median no slower
// than keepalived's; graceful within skew + 2ms.
func goal(kind string, interval time.Duration, haldir, keepalived []time.Duration) (string, string) {
	if len(haldir) == 0 {
		return "-", "-"
	}
	hMed, hMax := durationStats(haldir)
	var fails []string
	var text string
	switch kind {
	case kindHard:
		bound := masterDown(benchPriority, interval) + 2*time.Millisecond
		text = "max ≤ " + ms(bound) + ", median ≤ keepalived's"
		if hMax > bound {
			fails = append(fails, "max")
		}
		if len(keepalived) == 0 {
			fails = append(fails, "no keepalived median")
		} else if kMed, _ := durationStats(keepalived); hMed > kMed {
			fails = append(fails, "median")
		}
	default:
		bound := skewTime(benchPriority, interval) + 2*time.Millisecond
		text = "max ≤ " + ms(bound)
		if hMax > bound {
			fails = append(fails, "max")
		}
	}
	if len(fails) > 0 {
		return text, "FAIL (" + strings.Join(fails, ", ") + ")"
	}
	return text, "pass"
}

func (rep failoverReport) find(iv time.Duration, kind, impl string) []failoverSample {
	for _, r := range rep.results {
		if r.interval == iv && r.kind == kind && r.impl == impl {
			return r.samples
		}
	}
	return nil
}

// intervals returns the intervals measured, in run order.
func (rep failoverReport) intervals() []time.Duration {
	var out []time.Duration
	for _, r := range rep.results {
		if !slices.Contains(out, r.interval) {
			out = append(out, r.interval)
		}
	}
	return out
}

// String renders the failover table, the diagnostics table and the CPU
// table as Markdown.
func (rep failoverReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### VRRP failover, haldir vs keepalived 2.2.7 (same lab, same run; load average %s before, %s after)\n\n", rep.loadBefore, rep.loadAfter)
	fmt.Fprintf(&b, "VRRPv3/IPv4 multicast, 2 routers at priority %d (Skew_Time = %d/256 × interval), preempt on; "+
		"%d gratuitous ARPs on takeover, no second burst, no refresh (keepalived: garp_master_delay 0, garp_master_repeat %d, garp_master_refresh 0, default vrrp_garp_interval 0). "+
		"The master is cut off (its switch port set down) or sent SIGTERM right after one of its adverts reaches the tap, so a hard failover waits (nearly) the whole Master_Down_Interval. "+
		"Time from the cut or SIGTERM to the new master's first gratuitous ARP, kernel receive timestamps (SO_TIMESTAMPNS) at a tap host on the switch; "+
		"%d failovers per cell; times in ms.\n\n",
		benchPriority, 256-benchPriority, garpRepeat, garpRepeat, rep.rounds)
	if rep.haldirBin != "" {
		fmt.Fprintf(&b, "haldir binary: %s (from $%s, not built from this tree).\n\n", rep.haldirBin, envBenchHaldir)
	}
	if len(rep.results) == 0 {
		b.WriteString("No failovers this run (" + envBenchIntervals + "=none).\n")
	} else {
		rep.writeFailovers(&b)
	}
	if len(rep.cpu) > 0 {
		fmt.Fprintf(&b, "\n### CPU per router, the master sending 100 adverts/s (1,000 with 100 instances) (time on a CPU from /proc/PID/task/*/schedstat, in ns, over %v; keepalived counts its parent and VRRP child)\n\n", rep.cpu[0].window.Round(100*time.Millisecond))
		if rep.cpuPin >= 0 {
			fmt.Fprintf(&b, "Every daemon runs on CPU %d (taskset; %s=none lets them run anywhere): spread over the CPUs, the ratios between runs spread by half.\n\n", rep.cpuPin, envBenchCPUPin)
		}
		b.WriteString("| load (instances × interval) | implementation | master CPU % | backup CPU % | master adverts/s seen | in bursts/s | processes |\n|---|---|---|---|---|---|---|\n")
		for _, c := range rep.cpu {
			fmt.Fprintf(&b, "| %v | %s | %.2f | %.2f | %.1f | %.1f | %d + %d |\n", c.load, c.impl, c.master, c.backup, c.adverts, c.bursts, c.pids[0], c.pids[1])
		}
		for _, pair := range [][2]string{{implHaldir, implKeepalived}, {implBare, implKeepalived}, {implHaldir, implBare}} {
			fmt.Fprintf(&b, "\n%s / %s, the pairs measured side by side over the same window; parts: the median (min–max) of the ratios over each fifth of it\n\n", pair[0], pair[1])
			b.WriteString("| load | master CPU, window | master, parts | backup CPU, window | backup, parts |\n|---|---|---|---|---|\n")
			for _, load := range rep.cpuLoads() {
				h, k := rep.cpuOf(load, pair[0]), rep.cpuOf(load, pair[1])
				if h == nil || k == nil {
					continue
				}
				fmt.Fprintf(&b, "| %v | %s | %s | %s | %s |\n", load, cpuRatio(h.master, k.master), partRatios(h.masterParts, k.masterParts),
					cpuRatio(h.backup, k.backup), partRatios(h.backupParts, k.backupParts))
			}
		}
		fmt.Fprintf(&b, "\n%s: bench/vrrp/floor, a Go program doing only the wire work, woken as haldir is (one timerfd and a raw socket through Go's poller, raw system calls); "+
			"its master sends every instance's advert on one wake-up per interval, its backup reads each advert with one recvfrom and re-arms one timer per advert.\n", implBare)
	}
	return b.String()
}

// cpuLoads are the loads measured, in order.
func (rep failoverReport) cpuLoads() []cpuLoad {
	var out []cpuLoad
	for _, c := range rep.cpu {
		if !slices.Contains(out, c.load) {
			out = append(out, c.load)
		}
	}
	return out
}

// cpuOf is impl's CPU result under load, nil when not measured.
func (rep failoverReport) cpuOf(load cpuLoad, impl string) *cpuResult {
	for i := range rep.cpu {
		if rep.cpu[i].load == load && rep.cpu[i].impl == impl {
			return &rep.cpu[i]
		}
	}
	return nil
}

// cpuRatio is a/b, "-" without a b.
func cpuRatio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64)
}

// partRatios is the median (min–max) of the ratios part by part.
func partRatios(a, b []float64) string {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) < 2 {
		return "-"
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2f (%.2f–%.2f)", rs[len(rs)/2], rs[0], rs[len(rs)-1])
}

// writeFailovers writes the failover tables.
func (rep failoverReport) writeFailovers(b *strings.Builder) {
	b.WriteString("| interval | kind | haldir median / max | keepalived median / max | ratio (medians) | goal | pass/fail |\n|---|---|---|---|---|---|---|\n")
	toGARP := func(s failoverSample) time.Duration { return s.toGARP }
	for _, iv := range rep.intervals() {
		for _, kind := range []string{kindHard, kindGraceful} {
			h := pick(rep.find(iv, kind, implHaldir), toGARP)
			k := pick(rep.find(iv, kind, implKeepalived), toGARP)
			ratio := "-"
			if len(h) > 0 && len(k) > 0 {
				hm, _ := durationStats(h)
				km, _ := durationStats(k)
				if km > 0 {
					ratio = strconv.FormatFloat(float64(hm)/float64(km), 'f', 3, 64)
				}
			}
			g, pf := goal(kind, iv, h, k)
			fmt.Fprintf(b, "| %v | %s | %s | %s | %s | %s | %s |\n", iv, kind, medMax(h), medMax(k), ratio, g, pf)
		}
	}
	b.WriteString("\nWhere the time goes (median / max, ms). late: the new master's first advert after the old master's last advert (hard) " +
		"or its priority-0 advert (graceful), minus Master_Down_Interval or Skew_Time: timer error plus takeover work.\n\n")
	b.WriteString("| interval | kind | implementation | master's advert → event | event → first advert | advert → GARP | SIGTERM → priority 0 | late |\n|---|---|---|---|---|---|---|---|\n")
	for _, iv := range rep.intervals() {
		for _, kind := range []string{kindHard, kindGraceful} {
			for _, impl := range []string{implHaldir, implKeepalived} {
				ss := rep.find(iv, kind, impl)
				if len(ss) == 0 {
					continue
				}
				resign := "-"
				if kind == kindGraceful {
					resign = medMax(pick(ss, func(s failoverSample) time.Duration { return s.toResign }))
				}
				fmt.Fprintf(b, "| %v | %s | %s | %s | %s | %s | %s | %s |\n", iv, kind, impl,
					medMax(pick(ss, func(s failoverSample) time.Duration { return s.sincePrev })),
					medMax(pick(ss, func(s failoverSample) time.Duration { return s.toAdvert })),
					medMax(pick(ss, func(s failoverSample) time.Duration { return s.toGARP - s.toAdvert })),
					resign,
					medMax(pick(ss, func(s failoverSample) time.Duration { return s.late })))
			}
		}
	}
	if rep.unstampedSeen > 0 {
		fmt.Fprintf(b, "\nWARNING: %d frames had no kernel timestamp and were stamped in user space.\n", rep.unstampedSeen)
	}
}
