// Command bench measures the health-check scheduler at scale on loopback:
// 1k and 10k HTTP targets and 10k TCP targets checked every second. It
// prints achieved checks/s, CPU (% of one core, from getrusage), peak RSS,
// scheduling lag (scheduled vs actual start) and the time from a target
// going down to its transition event.
//
// Each scenario runs in a fresh child process (so peak RSS and CPU are its
// own), and the servers run in a grandchild (so their CPU is not counted).
// Targets are 127.1.x.y:8080, one listener per target, on loopback only.
//
//	go run ./healthcheck/bench -duration 10s
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/healthcheck"
)

const port = 8080

type result struct {
	Scenario   string
	Targets    int
	Seconds    float64
	Checks     int64
	Failed     int64 // checks that failed other than on downed targets
	ChecksPerS float64
	CPUPct     float64
	PeakRSSMiB float64
	LagP50     time.Duration
	LagP99     time.Duration
	LagMax     time.Duration
	Downed     int
	DetectP50  time.Duration
	DetectP99  time.Duration
	DetectMax  time.Duration
	Detected   int
	ServerCPU  float64          // the server child's CPU, % of one core
	Load1      string           // 1-minute load average at the end
	ServedPerS float64          // connections the servers accepted per second
	Reasons    map[string]int64 `json:",omitempty"` // unexpected failures by reason
	Error      string           `json:",omitempty"`
}

func main() {
	var (
		duration  = flag.Duration("duration", 60*time.Second, "measurement window per scenario")
		interval  = flag.Duration("interval", time.Second, "check interval")
		scenarios = flag.String("scenarios", "noop-10k,http-1k,http-10k,tcp-10k", "comma-separated scenarios: KIND-N with KIND http|tcp|noop (scheduler only, no I/O) and N like 1k")
		down      = flag.Int("down", 100, "targets taken down halfway through to time detection")
		serve     = flag.String("serve", "", "internal: run the servers (KIND-N)")
		run       = flag.String("run", "", "internal: run one scenario and print its result as JSON")
		cpuprof   = flag.String("cpuprofile", "", "with -run: write a CPU profile of the checker here")
		withKA    = flag.Bool("keepalived", false, "compare with keepalived's checker in a VM that has IPVS (lab/vm; slow TCG emulation, so use small scenarios)")
		guest     = flag.Bool("guest-compare", false, "internal: the in-VM side of -keepalived")
	)
	flag.Parse()
	if *cpuprof != "" && *run != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	raiseNofile()
	switch {
	case *withKA:
		// Emulated CPUs: smaller defaults than the native run's.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["scenarios"] {
			*scenarios = "tcp-1k,http-500"
		}
		if !set["duration"] {
			*duration = 20 * time.Second
		}
		if !set["down"] {
			*down = 50
		}
		os.Exit(compareInVM(*scenarios, *duration, *interval, *down))
	case *guest:
		guestCompare(*scenarios, *duration, *interval, *down)
	case *serve != "":
		kind, n := parseScenario(*serve)
		serveTargets(kind, n)
	case *run != "":
		r := runScenario(*run, *duration, *interval, *down)
		json.NewEncoder(os.Stdout).Encode(r)
	default:
		load0 := loadavg()
		var rs []result
		for _, sc := range strings.Split(*scenarios, ",") {
			fmt.Fprintf(os.Stderr, "running %s for %v...\n", sc, *duration)
			rs = append(rs, spawnScenario(sc, *duration, *interval, *down))
		}
		printTable(os.Stdout, rs, *duration, *interval)
		fmt.Printf("\nload average (1/5/15 min) before: %s, after: %s on %d CPUs (other work on the machine competes)\n", load0, loadavg(), runtime.NumCPU())
	}
}

func parseScenario(s string) (string, int) {
	kind, num, ok := strings.Cut(s, "-")
	mult := 1
	if strings.HasSuffix(num, "k") {
		mult, num = 1000, strings.TrimSuffix(num, "k")
	}
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n <= 0 || n > 60000 || (kind != "http" && kind != "tcp" && kind != "noop") {
		fmt.Fprintf(os.Stderr, "bad scenario %q (want e.g. http-1k, tcp-10k)\n", s)
		os.Exit(2)
	}
	return kind, n * mult
}

func raiseNofile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil {
		l.Cur = l.Max
		if l.Cur < 200000 {
			l.Max = 200000 // root may raise the hard limit
			l.Cur = 200000
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
			l.Cur = l.Max
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		}
	}
}

// addr is target i's listener: distinct loopback addresses spread the
// client's ephemeral ports over many 4-tuples.
func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(i%250 + 1)}), port)
}

func spawnScenario(sc string, d, interval time.Duration, down int) result {
	cmd := exec.Command(os.Args[0], "-run", sc, "-duration", d.String(), "-interval", interval.String(), "-down", strconv.Itoa(down))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var r result
	if err == nil {
		err = json.Unmarshal(out, &r)
	}
	if err != nil {
		return result{Scenario: sc, Error: err.Error()}
	}
	return r
}

// serveTargets listens on n targets and answers checks until stdin says
// "down K": then it closes K listeners spread over the range, prints the
// close time, and keeps serving the rest until stdin closes.
func serveTargets(kind string, n int) {
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", addr(i).String())
		if err != nil {
			fmt.Fprintf(os.Stderr, "listen %s: %v\n", addr(i), err)
			os.Exit(1)
		}
		lns[i] = ln
		go accept(ln, kind)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 2 && f[0] == "down" {
			k, _ := strconv.Atoi(f[1])
			// The time before the first close: an event can then never
			// predate it, and a detection is overstated by at most the
			// time the closes take.
			at := time.Now().UnixNano()
			for _, i := range downed(n, k) {
				lns[i].Close()
			}
			fmt.Println(at)
		}
		if len(f) == 1 && f[0] == "count" {
			fmt.Println(accepted.Load())
		}
	}
}

// accepted counts connections served: the checks/s of a checker that does
// not report its own (keepalived) is measured here.
var accepted atomic.Int64

func downed(n, k int) []int {
	var out []int
	for j := range k {
		out = append(out, j*n/k)
	}
	return out
}

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

func accept(ln net.Listener, kind string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted.Add(1)
		if kind == "tcp" {
			c.Close()
			continue
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1024)
			got := 0
			for !strings.Contains(string(buf[:got]), "\r\n\r\n") && got < len(buf) {
				m, err := c.Read(buf[got:])
				if err != nil {
					return
				}
				got += m
			}
			c.Write(response)
		}()
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields after the command: state is f[0]; utime, stime are 14 and 15
	// in proc(5) numbering, i.e. f[11] and f[12].
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

func peakRSS() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func runScenario(sc string, d, interval time.Duration, down int) result {
	kind, n := parseScenario(sc)
	r := result{Scenario: sc, Targets: n}
	fail := func(err error) result { r.Error = err.Error(); return r }

	srv := exec.Command(os.Args[0], "-serve", sc)
	srv.Stderr = os.Stderr
	stdin, _ := srv.StdinPipe()
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return fail(err)
	}
	defer func() { stdin.Close(); srv.Process.Kill(); srv.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		return fail(fmt.Errorf("server child did not start"))
	}

	typ := kind
	if kind == "noop" {
		typ = "tcp"
	}
	check := conf.Check{Type: typ, Path: "/", Interval: conf.Duration(interval), Timeout: conf.Duration(interval),
		Rise: 1, Fall: 1, InitialState: "up"}
	targets := make([]healthcheck.Target, n)
	for i := range n {
		targets[i] = healthcheck.Target{Addr: addr(i), Check: check}
	}
	downSet := map[string]bool{}
	if down > n {
		down = n
	}
	for _, i := range downed(n, down) {
		downSet[targets[i].Key()] = true
	}

	var (
		closed    atomic.Bool
		measuring atomic.Bool
		downPhase atomic.Bool
		checks    atomic.Int64
		failed    atomic.Int64
		lagMu     sync.Mutex
		reasonMu  sync.Mutex
		reasons   = map[string]int64{}
		lags      = make([]time.Duration, 0, int(float64(n)*d.Seconds()*1.2))
	)
	var newChecker func(healthcheck.Target) (healthcheck.Checker, error)
	if kind == "noop" {
		// Scheduler overhead alone: a checker that does no I/O, up except
		// for targets the server child has "closed".
		newChecker = func(t healthcheck.Target) (healthcheck.Checker, error) {
			k := t.Key()
			return noop(func() bool { return !(closed.Load() && downSet[k]) }), nil
		}
	}
	s := healthcheck.New(healthcheck.Options{
		NewChecker: newChecker,
		OnResult: func(o healthcheck.Observation) {
			if !measuring.Load() {
				return
			}
			checks.Add(1)
			if !o.Result.Up && !(downPhase.Load() && downSet[o.Key]) {
				failed.Add(1)
				reasonMu.Lock()
				reasons[o.Result.Reason]++
				reasonMu.Unlock()
			}
			lagMu.Lock()
			lags = append(lags, o.Started.Sub(o.Scheduled))
			lagMu.Unlock()
		},
		Buffer: 2 * n,
	})
	if _, err := s.Update(targets); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	// One interval of warm-up: every probe has run once, phases settled.
	time.Sleep(interval + interval/2)
	measuring.Store(true)
	cpu0, t0 := cpuTime(), time.Now()
	scpu0 := procCPU(srv.Process.Pid)
	served0 := served(stdin, lines)

	time.Sleep(d / 2)
	downPhase.Store(true)
	fmt.Fprintf(stdin, "down %d\n", down)
	if !lines.Scan() {
		return fail(fmt.Errorf("server child did not report the close"))
	}
	ns, _ := strconv.ParseInt(lines.Text(), 10, 64)
	closed.Store(true)
	closedAt := time.Unix(0, ns)
	var detect []time.Duration
	seen := map[string]bool{}
	stopAt := t0.Add(d)
	timer := time.NewTimer(time.Until(stopAt))
loop:
	for {
		select {
		case tr := <-s.Transitions():
			// The first down event after the close, per downed target;
			// earlier ones (a timeout on an overloaded machine) are not
			// detections of the close.
			if !tr.Up && downSet[tr.Key] && !seen[tr.Key] && !tr.At.Before(closedAt) {
				seen[tr.Key] = true
				detect = append(detect, tr.At.Sub(closedAt))
			}
		case <-timer.C:
			break loop
		}
	}
	measuring.Store(false)
	cpu1, t1 := cpuTime(), time.Now()
	scpu1 := procCPU(srv.Process.Pid)
	served1 := served(stdin, lines)
	r.Load1 = strings.Fields(loadavg())[0]
	cancel()
	reasonMu.Lock()
	r.Reasons = reasons
	reasonMu.Unlock()

	wall := t1.Sub(t0)
	r.Seconds = wall.Seconds()
	r.Checks = checks.Load()
	r.Failed = failed.Load()
	r.ChecksPerS = float64(r.Checks) / wall.Seconds()
	r.CPUPct = 100 * float64(cpu1-cpu0) / float64(wall)
	r.ServerCPU = 100 * float64(scpu1-scpu0) / float64(wall)
	r.ServedPerS = float64(served1-served0) / wall.Seconds()
	r.PeakRSSMiB = peakRSS()
	lagMu.Lock()
	r.LagP50, r.LagP99, r.LagMax = pct(lags, 50), pct(lags, 99), pct(lags, 100)
	lagMu.Unlock()
	r.Downed, r.Detected = down, len(detect)
	r.DetectP50, r.DetectP99, r.DetectMax = pct(detect, 50), pct(detect, 99), pct(detect, 100)
	return r
}

// served asks the server child how many connections it has accepted.
func served(w io.Writer, lines *bufio.Scanner) int64 {
	fmt.Fprintln(w, "count")
	if !lines.Scan() {
		return 0
	}
	v, _ := strconv.ParseInt(lines.Text(), 10, 64)
	return v
}

type noop func() bool

func (f noop) Run(context.Context) healthcheck.Result {
	if f() {
		return healthcheck.Result{Up: true, Weight: healthcheck.WeightConfigured, Reason: "noop"}
	}
	return healthcheck.Result{Weight: healthcheck.WeightConfigured, Reason: "noop down"}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[min(i, len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func printTable(w io.Writer, rs []result, d, interval time.Duration) {
	fmt.Fprintf(w, "haldir healthcheck benchmark: window %v per scenario, interval %v, loopback, servers in a separate process\n\n", d, interval)
	fmt.Fprintln(w, "| scenario | targets | checks/s | expected/s | failed | CPU % of one core | server CPU % | peak RSS MiB | lag p50 ms | lag p99 ms | lag max ms | down→event p50 ms | p99 ms | max ms | detected | load1 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | error: %s |\n", r.Scenario, r.Error)
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %d | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %d/%d | %s |\n",
			r.Scenario, r.Targets, r.ChecksPerS, float64(r.Targets)/interval.Seconds(), r.Failed, r.CPUPct, r.ServerCPU, r.PeakRSSMiB,
			ms(r.LagP50), ms(r.LagP99), ms(r.LagMax), ms(r.DetectP50), ms(r.DetectP99), ms(r.DetectMax), r.Detected, r.Downed, r.Load1)
	}
	for _, r := range rs {
		for reason, n := range r.Reasons {
			fmt.Fprintf(w, "%s: %d unexpected failures: %s\n", r.Scenario, n, reason)
		}
	}
	fmt.Fprintln(w, "\nkeepalived is not in this table: its checker exits at start-up (\"IPVS: Can't initialize ipvs\") on a")
	fmt.Fprintln(w, "kernel without IPVS. -keepalived runs both checkers side by side in a lab VM that has IPVS.")
}
