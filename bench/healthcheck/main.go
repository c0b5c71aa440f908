// Command bench measures the health-check scheduler at scale on loopback:
// 1k and 10k HTTP targets and 10k TCP targets checked every second. It
// prints achieved checks/s, CPU (% of one core, from getrusage: the whole
// window and the median and worst second, user and system), peak RSS,
// scheduling lag (scheduled vs actual start of every check) and, for two
// failure modes, the time to the transition event:
//
//   - refused: the target's listener closes, connects get RST;
//   - black-holed: the target stops accepting with a full accept queue, so
//     SYNs are dropped and the check runs into its timeout.
//
// For each mode it reports (a) from the scheduled start of the first probe
// that observes the failure to the moment the consumer receives the down
// transition (fall 1: the goal is timeout + 5 ms), and (b) from the moment
// the target went down to that same moment (bounded by interval + timeout;
// informative). A goals section judges each goal pass or fail with its
// margin.
//
// Each scenario runs in a fresh child process (so peak RSS and CPU are its
// own), and the servers run in a grandchild (so their user-space CPU is not
// counted; on loopback the kernel does the server's half of each TCP
// exchange in the sender's context, so the checker's system time includes
// it). Targets are 127.1.x.y:8080, one listener per target, on loopback
// only. Scenarios rawhttp-N and rawtcp-N make the same connections with bare
// blocking system calls from 8 threads and no scheduler: the kernel's cost
// on this host, as a reference in the same run. Scenario epollhttp-N makes
// them from one bare epoll loop (epoll.go), the least any event-driven
// checker (keepalived's is one) can spend here: the goals table sets
// http-N against it, because when that floor alone is over the CPU goal no
// checker can meet the goal on this host.
//
// A scenario with the suffix -veth (http-10k-veth, rawhttp-10k-veth,
// tcp-10k-veth) puts the targets in another network namespace behind a
// veth pair instead, with the checker and servers pinned to different CPUs
// and receive processing steered to each side's CPU (see veth.go), so the
// servers' half of each exchange is not charged to the checker.
//
// The checker child runs with the daemon's memory settings (internal/memtune:
// its GC pace, no transparent huge pages). Build
// it as the daemon is built, statically (CGO_ENABLED=0, as make bench
// does): a cgo build maps libc too, 1.4 MiB more peak RSS than the daemon
// has.
//
//	CGO_ENABLED=0 go run ./bench/healthcheck -duration 10s
package main

import (
	"bufio"
	"cmp"
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
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/internal/benchenv"
	"github.com/haldir-lb/haldir/internal/memtune"
)

const port = 8080

// The failure modes, in the order the table prints them.
const (
	refused = iota
	blackholed
	nModes
)

var modeNames = [nModes]string{"refused", "black-holed"}

// modeResult is one failure mode's detection times. The event is the
// moment the consumer receives the down transition.
type modeResult struct {
	Mode     string
	Downed   int
	Detected int
	// (a) from the scheduled start of the first probe that saw the
	// failure to the event.
	A50, A99, AMax time.Duration
	// (b) from the moment the target went down to the event.
	B50, B99, BMax time.Duration
}

type result struct {
	Scenario   string
	Targets    int
	Interval   time.Duration
	Timeout    time.Duration
	Seconds    float64
	Checks     int64
	Failed     int64 // checks that failed other than on downed targets
	ChecksPerS float64
	CPUPct     float64 // user+system over the window, % of one core
	UserPct    float64
	SysPct     float64
	CPUSecP50  float64 // the median second
	CPUSecMax  float64 // the worst second
	PeakRSSMiB float64
	AnonRSSMiB float64 // RssAnon at the end: the process's own memory, without the binary's file pages
	HugeMiB    float64 // of AnonRSSMiB, in transparent huge pages
	LagP50     time.Duration
	LagP99     time.Duration
	LagMax     time.Duration
	TookP50    time.Duration // a check's duration, start to result
	TookP99    time.Duration
	InFlight   int64 // most checks in flight at once
	Modes      []modeResult
	// The refused mode's (b), which is all the keepalived comparison can
	// observe of keepalived (it reads the IPVS table).
	Downed     int
	Detected   int
	DetectP50  time.Duration
	DetectP99  time.Duration
	DetectMax  time.Duration
	ServerCPU  float64   // the server child's CPU, % of one core
	OtherCPU   float64   // every other process on the machine, % of one core
	StealPct   float64   // CPU the hypervisor gave to other guests, % of one core
	Load1      string    // 1-minute load average at the end
	ServedPerS float64   // connections the servers accepted per second
	Bare       bool      // a rawhttp/rawtcp reference row
	NetRXPerS  []float64 // NET_RX softirqs per second, per CPU (whole machine)
	SoftirqPct []float64 // softirq time, % of each CPU (whole machine)
	RPSIPIPerS []float64 // softnet_stat received_rps per second, per CPU
	GOMAXPROCS int
	Reasons    map[string]int64 `json:",omitempty"` // unexpected failures by reason
	Error      string           `json:",omitempty"`

	// A daemon's metrics, scraped after the window: its peak RSS then,
	// the last scrape's series and bytes, and the check lag and late
	// retries the first one reported.
	ScrapedPeakRSSMiB float64
	ScrapeSeries      int
	ScrapeBytes       int
	ReportedLag       float64 // seconds
	LateRetries       float64
	// HealthyRemoved counts the targets never taken down that a daemon
	// removed from IPVS (two polls in a row) in the window: false downs.
	HealthyRemoved int
	RemovedSample  []string `json:",omitempty"` // the first few of them, sorted
}

// checkTimeout is every check's timeout (-timeout).
var checkTimeout time.Duration

// memStatsAfterUpdate (-memstats) prints the memory figures once the
// scenario's targets are set up, as well as near the end.
var memStatsAfterUpdate bool

func main() {
	var (
		duration  = flag.Duration("duration", 60*time.Second, "measurement window per scenario")
		interval  = flag.Duration("interval", time.Second, "check interval")
		scenarios = flag.String("scenarios", "noop-10k,http-1k,http-10k,tcp-10k,epollhttp-10k,rawhttp-10k,rawtcp-10k", "comma-separated scenarios: KIND-N with KIND http|tcp|noop (scheduler only, no I/O)|rawhttp|rawtcp (bare blocking system calls from 8 threads, no scheduler)|epollhttp (bare nonblocking system calls on one epoll loop) and N like 1k")
		down      = flag.Int("down", 100, "targets taken down per failure mode halfway through the window")
		serve     = flag.String("serve", "", "internal: run the servers (KIND-N)")
		run       = flag.String("run", "", "internal: run one scenario and print its result as JSON")
		cpuprof   = flag.String("cpuprofile", "", "with -run: write a CPU profile of the checker here")
		memprof   = flag.String("memprofile", "", "with -run: write a heap profile of the checker here near the end of the window")
		threads   = flag.Bool("threads", false, "with -run: print each of the checker's threads' CPU ticks and context switches over the window to stderr")
		memstats  = flag.Bool("memstats", false, "with -run: print the runtime's memory statistics to stderr near the end of the window")
		withKA    = flag.Bool("keepalived", false, "compare with keepalived's checker in a VM that has IPVS (lab/vm; slow TCG emulation, so use small scenarios)")
		guest     = flag.Bool("guest-compare", false, "internal: the in-VM side of -keepalived")
		haldirBin = flag.String("haldir", "", "with -keepalived: the static haldir binary whose daemon (haldir run) the VM also measures whole (default: built from ./cmd/haldir)")
		steer     = flag.Bool("veth-rps", true, "-veth scenarios: steer each side's receive processing to its own CPU (false: each packet is processed on the CPU that sent it)")
		targetNS  = flag.String("target-netns", "", "internal: with -run, start the servers in this network namespace on CPU 1")
	)
	flag.DurationVar(&checkTimeout, "timeout", 500*time.Millisecond, "check timeout (with -keepalived: the interval, as keepalived's connect_timeout is whole seconds)")
	flag.Parse()
	printThreads = *threads
	raiseNofile()
	targetNetns = *targetNS
	vethAddrs = strings.HasSuffix(*run+*serve, vethSuffix)
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *withKA:
		// Emulated CPUs: smaller defaults than the native run's.
		if !set["scenarios"] {
			*scenarios = "tcp-1k,http-500"
		}
		if !set["duration"] {
			*duration = 20 * time.Second
		}
		if !set["down"] {
			*down = 50
		}
		if !set["timeout"] {
			checkTimeout = *interval
		}
		os.Exit(compareInVM(*scenarios, *duration, *interval, *down, *haldirBin))
	case *guest:
		guestCompare(*scenarios, *duration, *interval, *down, *haldirBin)
	case *serve != "":
		kind, n := parseScenario(*serve)
		serveTargets(kind, n)
	case *run != "":
		// The daemon's memory settings, from its first page on, as
		// haldir run has them.
		if err := memtune.ExecWithoutHugePages(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if _, err := memtune.Apply(); err != nil { // the checker runs with the daemon's memory settings
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// After the re-execution: a profiling timer started before it
		// outlives execve, and its first SIGPROF killed the new image
		// before Go's handler was in place.
		if *cpuprof != "" {
			f, err := os.Create(*cpuprof)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer pprof.StopCPUProfile()
		}
		// Near the end of the window, while the checker still runs: what
		// it holds in use then, and what it allocated so far.
		late := *interval + *interval/2 + *duration*9/10
		if *memprof != "" {
			runtime.MemProfileRate = 1 // every allocation: exact, slower, more memory
			time.AfterFunc(late, func() { writeHeapProfile(*memprof) })
		}
		if *memstats {
			memStatsAfterUpdate = true
			time.AfterFunc(late, printMemStats)
		}
		r := runScenario(*run, *duration, *interval, *down)
		json.NewEncoder(os.Stdout).Encode(r)
	default:
		load0 := benchenv.LoadAverage()
		var rs []result
		var vb *vethBench
		for _, sc := range strings.Split(*scenarios, ",") {
			parseScenario(sc)
			if strings.HasSuffix(sc, vethSuffix) && vb == nil {
				var err error
				if vb, err = buildVeth(*steer); err != nil {
					fmt.Fprintln(os.Stderr, "veth scenarios:", err)
					os.Exit(1)
				}
				defer vb.Close()
			}
		}
		for _, sc := range strings.Split(*scenarios, ",") {
			fmt.Fprintf(os.Stderr, "running %s for %v...\n", sc, *duration)
			if strings.HasSuffix(sc, vethSuffix) {
				rs = append(rs, spawnScenarioIn(vb, sc, *duration, *interval, *down))
			} else {
				rs = append(rs, spawnScenario(sc, *duration, *interval, *down))
			}
		}
		fmt.Printf("command: %s\n", strings.Join(os.Args, " "))
		printTable(os.Stdout, rs, *duration, *interval, *steer)
		fmt.Printf("\nload average (1/5/15 min) before: %s, after: %s on %d CPUs (other work on the machine competes)\n", load0, benchenv.LoadAverage(), runtime.NumCPU())
	}
}

func parseScenario(s string) (string, int) {
	kind, num, ok := strings.Cut(strings.TrimSuffix(s, vethSuffix), "-")
	mult := 1
	if strings.HasSuffix(num, "k") {
		mult, num = 1000, strings.TrimSuffix(num, "k")
	}
	n, err := strconv.Atoi(num)
	switch kind {
	case "http", "tcp", "noop", "rawhttp", "rawtcp", "epollhttp":
	default:
		ok = false
	}
	if !ok || err != nil || n <= 0 || n*mult > 60000 {
		fmt.Fprintf(os.Stderr, "bad scenario %q (want e.g. http-1k, tcp-10k, rawhttp-10k, http-10k-veth)\n", s)
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

// vethAddrs says this process runs a -veth scenario's checker or servers,
// whose targets live in targetNet; targetNetns is the servers' namespace.
var (
	vethAddrs   bool
	targetNetns string
)

// addr is target i's listener: distinct loopback addresses spread the
// client's ephemeral ports over many 4-tuples. The -veth scenarios use the
// same layout in targetNet.
func addr(i int) netip.AddrPort {
	b := [4]byte{127, 1, byte(i / 250), byte(i%250 + 1)}
	if vethAddrs {
		n := targetNet.Addr().As4()
		b[0], b[1] = n[0], n[1]
	}
	return netip.AddrPortFrom(netip.AddrFrom4(b), port)
}

func spawnScenario(sc string, d, interval time.Duration, down int) result {
	return spawnScenarioIn(nil, sc, d, interval, down)
}

// spawnScenarioIn runs scenario sc in a child process; with vb, in the
// checker namespace pinned to CPU 0, and its servers in the targets
// namespace pinned to CPU 1.
func spawnScenarioIn(vb *vethBench, sc string, d, interval time.Duration, down int) result {
	args := []string{"-run", sc, "-duration", d.String(), "-interval", interval.String(),
		"-timeout", checkTimeout.String(), "-down", strconv.Itoa(down)}
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	if vb != nil {
		cmd = vb.command(self, append(args, "-target-netns", vb.targets.NetNSName())...)
	}
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

// downed are the targets the refused mode takes down: k spread over n.
func downed(n, k int) []int {
	var out []int
	for j := range k {
		out = append(out, j*n/k)
	}
	return out
}

// holed are the targets the black-holed mode takes down: k others, each
// half a step after one of downed's.
func holed(n, k int) []int {
	var out []int
	for j := range k {
		out = append(out, j*n/k+n/(2*k))
	}
	return out
}

// serveTargets listens on n targets and answers checks. On stdin, "down K"
// closes the refused mode's K listeners and "blackhole K" stops the
// black-holed mode's K from accepting with a full accept queue; each prints
// the time just before it began, which an event can therefore never
// predate. "count" prints the connections accepted so far.
func serveTargets(kind string, n int) {
	lns := make([]*net.TCPListener, n)
	stopped := make([]atomic.Bool, n)
	for i := range n {
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr(i)))
		if err != nil {
			fmt.Fprintf(os.Stderr, "listen %s: %v\n", addr(i), err)
			os.Exit(1)
		}
		lns[i] = ln
		go accept(ln, kind)
	}
	fmt.Println("ready")
	var fills []net.Conn // held open: each keeps its queue full
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "down":
			k, _ := strconv.Atoi(f[1])
			at := time.Now().UnixNano()
			for _, i := range downed(n, k) {
				lns[i].Close()
			}
			fmt.Println(at)
		case len(f) == 2 && f[0] == "blackhole":
			k, _ := strconv.Atoi(f[1])
			at := time.Now().UnixNano()
			var (
				mu sync.Mutex
				wg sync.WaitGroup
			)
			for _, i := range holed(n, k) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if c := blackhole(lns[i], &stopped[i], addr(i)); c != nil {
						mu.Lock()
						fills = append(fills, c)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			fmt.Println(at)
		case len(f) == 1 && f[0] == "count":
			fmt.Println(accepted.Load())
		}
	}
}

// blackhole makes ln drop SYNs the way a dead host does, without leaving
// loopback: backlog 0 (listen may be called again on a listening socket),
// no more accepts, and one queued connection of our own, which fills a
// backlog-0 queue. It returns that connection for the caller to hold.
func blackhole(ln *net.TCPListener, stopped *atomic.Bool, a netip.AddrPort) net.Conn {
	stopped.Store(true)
	if rc, err := ln.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { unix.Listen(int(fd), 0) })
	}
	// A passed deadline fails the accept loop's Accept at once, leaving
	// the listener open.
	ln.SetDeadline(time.Unix(1, 0))
	c, err := net.DialTimeout("tcp", a.String(), 100*time.Millisecond)
	if err != nil {
		return nil // a check's connection filled the queue first
	}
	return c
}

// accepted counts connections served: the checks/s of a checker that does
// not report its own (keepalived) is measured here.
var accepted atomic.Int64

var response = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

func accept(ln *net.TCPListener, kind string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed, or black-holed (the listener stays open)
		}
		accepted.Add(1)
		if kind == "tcp" || kind == "rawtcp" {
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

type cpuSplit struct{ user, sys time.Duration }

func (c cpuSplit) total() time.Duration { return c.user + c.sys }

func cpuTime() cpuSplit {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuSplit{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
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

// machineCPU is the time all CPUs spent busy (steal excluded) and stolen
// by the hypervisor, from /proc/stat: with this process's and the
// server's, it tells how much other work competed during a window.
func machineCPU() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	v := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / 100 // USER_HZ
	}
	// user nice system idle iowait irq softirq steal
	return v(1) + v(2) + v(3) + v(6) + v(7), v(8)
}

// writeHeapProfile writes the heap profile (allocations since the start
// and what is in use) to path.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// printMemStats prints where the process's memory is, by the runtime's
// account.
func printMemStats() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mib := func(b uint64) string { return fmt.Sprintf("%.2f", float64(b)/(1<<20)) }
	fmt.Fprintln(os.Stderr, "memstats MiB: heap objects", mib(ms.HeapAlloc), "heap in use", mib(ms.HeapInuse), "idle", mib(ms.HeapIdle), "released", mib(ms.HeapReleased),
		"goal", mib(ms.NextGC), "stacks", mib(ms.StackInuse), "spans", mib(ms.MSpanSys), "gc metadata", mib(ms.GCSys), "other", mib(ms.OtherSys),
		"sys", mib(ms.Sys), "goroutines", runtime.NumGoroutine(), "collections", ms.NumGC)
	// The runtime's own account of where mapped memory goes, by class.
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") && d.Kind == metrics.KindUint64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	for _, sm := range samples {
		fmt.Fprintf(os.Stderr, "  %s %s\n", strings.TrimPrefix(sm.Name, "/memory/classes/"), mib(sm.Value.Uint64()))
	}
}

// meter samples this process's CPU every second of the window: the median
// second and the worst second show what a single window figure hides.
type meter struct {
	t0     time.Time
	c0     cpuSplit
	mu     sync.Mutex
	secs   []float64
	stop   chan struct{}
	done   chan struct{}
	sc0    time.Duration
	srvPID int
	busy0  time.Duration
	steal0 time.Duration
	cpus0  cpuStats
	th0    map[int]threadCPU
}

func startMeter(srvPID int) *meter {
	m := &meter{t0: time.Now(), c0: cpuTime(), stop: make(chan struct{}), done: make(chan struct{}), srvPID: srvPID, sc0: procCPU(srvPID)}
	m.busy0, m.steal0 = machineCPU()
	m.cpus0 = readCPUStats()
	m.th0 = threadsNow()
	go func() {
		defer close(m.done)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		prev, pt := m.c0, m.t0
		for {
			select {
			case <-m.stop:
				return
			case now := <-tk.C:
				c := cpuTime()
				m.mu.Lock()
				m.secs = append(m.secs, 100*float64(c.total()-prev.total())/float64(now.Sub(pt)))
				m.mu.Unlock()
				prev, pt = c, now
			}
		}
	}()
	return m
}

func (m *meter) finish(r *result) {
	close(m.stop)
	<-m.done
	c1, t1 := cpuTime(), time.Now()
	threadsReport(m.th0, threadsNow())
	wall := t1.Sub(m.t0)
	r.Seconds = wall.Seconds()
	r.CPUPct = 100 * float64(c1.total()-m.c0.total()) / float64(wall)
	r.UserPct = 100 * float64(c1.user-m.c0.user) / float64(wall)
	r.SysPct = 100 * float64(c1.sys-m.c0.sys) / float64(wall)
	srvCPU := procCPU(m.srvPID) - m.sc0
	r.ServerCPU = 100 * float64(srvCPU) / float64(wall)
	busy1, steal1 := machineCPU()
	other := busy1 - m.busy0 - (c1.total() - m.c0.total()) - srvCPU
	r.OtherCPU = max(0, 100*float64(other)/float64(wall))
	r.StealPct = 100 * float64(steal1-m.steal0) / float64(wall)
	r.NetRXPerS, r.SoftirqPct, r.RPSIPIPerS = perCPU(m.cpus0, readCPUStats(), wall.Seconds())
	r.GOMAXPROCS = runtime.GOMAXPROCS(0)
	secs := slices.Clone(m.secs)
	slices.Sort(secs)
	if len(secs) > 0 {
		r.CPUSecP50, r.CPUSecMax = secs[len(secs)/2], secs[len(secs)-1]
	}
	r.PeakRSSMiB = procStatusMiB("self", "VmHWM")
	r.AnonRSSMiB = procStatusMiB("self", "RssAnon")
	r.HugeMiB = hugeMiB("self")
	r.Load1 = strings.Fields(benchenv.LoadAverage())[0]
}

// startServers runs the server grandchild for sc.
func startServers(sc string) (cmd *exec.Cmd, stdin io.WriteCloser, lines *bufio.Scanner, err error) {
	self, _ := os.Executable()
	srv := exec.Command(self, "-serve", sc)
	if targetNetns != "" {
		argv := inNS(targetNetns, targetCPU, self, "-serve", sc)
		srv = exec.Command(argv[0], argv[1:]...)
	}
	srv.Stderr = os.Stderr
	stdin, _ = srv.StdinPipe()
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return nil, nil, nil, err
	}
	lines = bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		stdin.Close()
		srv.Process.Kill()
		srv.Wait()
		return nil, nil, nil, fmt.Errorf("server child did not start")
	}
	return srv, stdin, lines, nil
}

// command sends a down command to the servers and returns the time they
// report.
func command(w io.Writer, lines *bufio.Scanner, cmd string) (time.Time, error) {
	fmt.Fprintln(w, cmd)
	if !lines.Scan() {
		return time.Time{}, fmt.Errorf("server child did not answer %q", cmd)
	}
	ns, err := strconv.ParseInt(lines.Text(), 10, 64)
	return time.Unix(0, ns), err
}

func runScenario(sc string, d, interval time.Duration, down int) result {
	kind, n := parseScenario(sc)
	r := result{Scenario: sc, Targets: n, Interval: interval, Timeout: checkTimeout}
	fail := func(err error) result { r.Error = err.Error(); return r }

	srv, stdin, lines, err := startServers(sc)
	if err != nil {
		return fail(err)
	}
	defer func() { stdin.Close(); srv.Process.Kill(); srv.Wait() }()
	switch kind {
	case "rawhttp", "rawtcp":
		return runBare(r, kind, n, d, srv.Process.Pid, stdin, lines)
	case "epollhttp":
		return runEpoll(r, n, d, srv.Process.Pid, stdin, lines)
	}

	typ := kind
	if kind == "noop" {
		typ = "tcp"
	}
	ck, err := conf.ParseCheckKind(typ)
	if err != nil {
		return fail(err)
	}
	targets := make([]healthcheck.Target, n)
	for i := range n {
		// What conf.Compile makes of `check = { type = ..., interval, timeout, rise = 1, fall = 1 }`.
		c := conf.CheckSpec{Kind: ck, Interval: interval, Timeout: checkTimeout, Rise: 1, Fall: 1, InitialUp: true, Connect: addr(i)}
		if ck == conf.CheckHTTP {
			c.HTTP = conf.HTTPCheckSpec{Host: addr(i).String(), URLs: []conf.URLSpec{{Path: "/", ExpectStatus: conf.StatusCodes{{Lo: 200, Hi: 299}}}}}
		}
		targets[i] = healthcheck.Target{Addr: addr(i), Check: &c}
	}
	down = min(down, n/2)
	modeOf := map[string]int{}
	for _, i := range downed(n, down) {
		modeOf[targets[i].Key()] = refused
	}
	for _, i := range holed(n, down) {
		modeOf[targets[i].Key()] = blackholed
	}

	var (
		measuring atomic.Bool
		isDown    [nModes]atomic.Bool // the command has been sent
		checks    atomic.Int64
		failed    atomic.Int64
		mu        sync.Mutex
		reasons   = map[string]int64{}
		firstFail = map[string]time.Time{} // scheduled start of the first failing probe
		recs      = make([]checkRec, 0, int(float64(n)*d.Seconds()*1.2))
	)
	var newChecker func(healthcheck.Target) (healthcheck.Checker, error)
	if kind == "noop" {
		// Scheduler overhead alone: a checker that does no I/O, up until
		// its target's mode is down; a black-holed one then waits for its
		// deadline.
		newChecker = func(t healthcheck.Target) (healthcheck.Checker, error) {
			m, ok := modeOf[t.Key()]
			return noop(func() (up, hang bool) {
				if !ok || !isDown[m].Load() {
					return true, false
				}
				return false, m == blackholed
			}), nil
		}
	}
	s := healthcheck.New(healthcheck.Options{
		NewChecker: newChecker,
		OnResult: func(o healthcheck.Observation) {
			m, isTarget := modeOf[o.Key]
			mu.Lock()
			defer mu.Unlock()
			if !o.Result.Up && isTarget && isDown[m].Load() {
				if _, ok := firstFail[o.Key]; !ok {
					firstFail[o.Key] = o.Scheduled
				}
			}
			if !measuring.Load() {
				return
			}
			checks.Add(1)
			if !o.Result.Up && !(isTarget && isDown[m].Load()) {
				failed.Add(1)
				reasons[o.Result.Reason]++
			}
			recs = append(recs, checkRec{from: micros(o.Started.Sub(spanBase)), lag: micros(o.Started.Sub(o.Scheduled)), took: micros(o.Result.Took)})
		},
		// Buffer: the daemon's default (its consumer keeps up here), so that
		// peak RSS is what the daemon's checker holds.
	})
	if _, err := s.Update(targets); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if memStatsAfterUpdate {
		// Setup is where the peak is usually set: the probes built, the
		// setup's garbage not yet released.
		fmt.Fprintln(os.Stderr, "after Update: peak RSS MiB", procStatusMiB("self", "VmHWM"), "anon", procStatusMiB("self", "RssAnon"), "file", procStatusMiB("self", "RssFile"))
		printMemStats()
	}
	memtune.ReleaseAfterLoad(nil) // as the daemon does once it has loaded a configuration
	go s.Run(ctx)

	// One interval of warm-up: every probe has run once, phases settled.
	// Transitions before the window (none expected: all start up) are
	// drained.
	warm := time.After(interval + interval/2)
warmup:
	for {
		select {
		case <-s.Transitions():
		case <-warm:
			break warmup
		}
	}
	measuring.Store(true)
	m := startMeter(srv.Process.Pid)
	t0 := m.t0
	served0 := served(stdin, lines)

	// Drain transitions while waiting for the halfway point.
	half := time.After(d / 2)
	var early []healthcheck.Transition
wait:
	for {
		select {
		case tr := <-s.Transitions():
			early = append(early, tr)
		case <-half:
			break wait
		}
	}
	// Transitions are received, and stamped, by their own goroutine: while
	// this one waits for the servers to take the second mode's targets
	// down, the first mode's events must not queue in the channel.
	type received struct {
		tr  healthcheck.Transition
		got time.Time
	}
	var (
		recv     []received
		stopRecv = make(chan struct{})
		recvDone = make(chan struct{})
	)
	go func() {
		defer close(recvDone)
		for {
			select {
			case tr := <-s.Transitions():
				recv = append(recv, received{tr, time.Now()})
			case <-stopRecv:
				return
			}
		}
	}()
	var downAt [nModes]time.Time
	for mode, cmd := range [nModes]string{"down", "blackhole"} {
		isDown[mode].Store(true)
		at, err := command(stdin, lines, fmt.Sprintf("%s %d", cmd, down))
		if err != nil {
			close(stopRecv)
			return fail(err)
		}
		downAt[mode] = at
	}
	time.Sleep(time.Until(t0.Add(d)))
	close(stopRecv)
	<-recvDone
	var a, b [nModes][]time.Duration
	seen := map[string]bool{}
	for _, rc := range recv {
		tr, got := rc.tr, rc.got
		mode, ok := modeOf[tr.Key]
		if tr.Up || !ok || seen[tr.Key] || got.Before(downAt[mode]) {
			continue
		}
		seen[tr.Key] = true
		mu.Lock()
		ff, ok := firstFail[tr.Key]
		mu.Unlock()
		if ok {
			a[mode] = append(a[mode], got.Sub(ff))
		}
		b[mode] = append(b[mode], got.Sub(downAt[mode]))
	}
	measuring.Store(false)
	m.finish(&r)
	served1 := served(stdin, lines)
	cancel()

	mu.Lock()
	r.Reasons = reasons
	for _, tr := range early {
		r.Reasons["transition before the failures: "+tr.String()]++
		r.Failed++
	}
	r.Checks = checks.Load()
	r.Failed += failed.Load()
	// After finish: what is built here is not the checker's peak RSS.
	lags, tooks, spans := unpack(recs)
	r.LagP50, r.LagP99, r.LagMax = pct(lags, 50), pct(lags, 99), pct(lags, 100)
	r.TookP50, r.TookP99 = pct(tooks, 50), pct(tooks, 99)
	r.InFlight = mostAtOnce(spans)
	mu.Unlock()
	r.ChecksPerS = float64(r.Checks) / r.Seconds
	r.ServedPerS = float64(served1-served0) / r.Seconds
	for mode := range nModes {
		mr := modeResult{Mode: modeNames[mode], Downed: down, Detected: len(b[mode])}
		mr.A50, mr.A99, mr.AMax = pct(a[mode], 50), pct(a[mode], 99), pct(a[mode], 100)
		mr.B50, mr.B99, mr.BMax = pct(b[mode], 50), pct(b[mode], 99), pct(b[mode], 100)
		r.Modes = append(r.Modes, mr)
	}
	rm := r.Modes[refused]
	r.Downed, r.Detected = rm.Downed, rm.Detected
	r.DetectP50, r.DetectP99, r.DetectMax = rm.B50, rm.B99, rm.BMax
	return r
}

// runBare makes the scenario's connections with bare blocking system calls
// (socket, SO_LINGER, connect, for http also write and read, close) from 8
// threads at the same rate, with no scheduler, poller or parsing: what the
// kernel alone costs on this host.
func runBare(r result, kind string, n int, d time.Duration, srvPID int, stdin io.Writer, lines *bufio.Scanner) result {
	r.Bare = true
	req := []byte("GET / HTTP/1.1\r\nHost: 127.1.0.1:8080\r\nUser-Agent: haldir-healthcheck\r\nConnection: close\r\n\r\n")
	one := func(i int) bool {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return false
		}
		defer unix.Close(fd)
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: addr(i).Addr().As4()}); err != nil {
			return false
		}
		if kind == "rawtcp" {
			return true
		}
		if _, err := unix.Write(fd, req); err != nil {
			return false
		}
		var buf [512]byte
		k, err := unix.Read(fd, buf[:])
		return err == nil && k > 0
	}
	const workers = 8
	var checks, failed atomic.Int64
	m := startMeter(srvPID)
	served0 := served(stdin, lines)
	var wg sync.WaitGroup
	per := n / workers
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// per checks a second, caught up every 10ms
			k := 0
			for t := m.t0; time.Since(m.t0) < d; t = t.Add(10 * time.Millisecond) {
				time.Sleep(time.Until(t))
				for due := int(time.Since(m.t0).Seconds() * float64(per)); k < due; k++ {
					if one(w*per + k%per) {
						checks.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	return finishBare(r, m, checks.Load(), failed.Load(), served0, stdin, lines)
}

// finishBare closes a reference row's window: CPU from the meter, checks
// from the counters, connections from the server child.
func finishBare(r result, m *meter, checks, failed, served0 int64, stdin io.Writer, lines *bufio.Scanner) result {
	m.finish(&r)
	served1 := served(stdin, lines)
	r.Checks, r.Failed = checks, failed
	r.ChecksPerS = float64(r.Checks) / r.Seconds
	r.ServedPerS = float64(served1-served0) / r.Seconds
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

// span is one check's run, for counting checks in flight: the scheduler's
// concurrency bound turns slow checks into lag once they fill it.
// span is one check's start and end in ns since spanBase: no pointers,
// so the bench's own records of ~10^6 checks cost the collector nothing to
// scan (time.Time holds a *Location, and scanning those showed as lag
// spikes in the checker's own process).
type span struct{ from, to int64 }

// checkRec is one check as the bench records it while measuring, in µs
// (from: since spanBase): 12 bytes a check, where three slices of
// durations and spans took 32. They live in the checker's process, and
// its peak RSS is what the bench measures.
type checkRec struct{ from, lag, took int32 }

func micros(d time.Duration) int32 { return int32(min(d/time.Microsecond, 1<<31-1)) }

// unpack turns the records into lags, check durations and spans.
func unpack(recs []checkRec) (lags, tooks []time.Duration, spans []span) {
	lags = make([]time.Duration, len(recs))
	tooks = make([]time.Duration, len(recs))
	spans = make([]span, len(recs))
	for i, c := range recs {
		lags[i], tooks[i] = time.Duration(c.lag)*time.Microsecond, time.Duration(c.took)*time.Microsecond
		from := int64(c.from) * int64(time.Microsecond)
		spans[i] = span{from, from + int64(tooks[i])}
	}
	return lags, tooks, spans
}

var spanBase = time.Now()

// mostAtOnce is the largest number of spans that overlap.
func mostAtOnce(spans []span) int64 {
	type edge struct{ at, d int64 }
	es := make([]edge, 0, 2*len(spans))
	for _, s := range spans {
		es = append(es, edge{s.from, 1}, edge{s.to, -1})
	}
	slices.SortFunc(es, func(a, b edge) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return int(a.d - b.d) // ends before starts at the same instant
	})
	var n, most int64
	for _, e := range es {
		n += e.d
		most = max(most, n)
	}
	return most
}

// noop reports up, or down, at once or (hang) at the check's deadline.
type noop func() (up, hang bool)

func (f noop) Run(ctx context.Context, deadline time.Time) healthcheck.Result {
	up, hang := f()
	if up {
		return healthcheck.Result{Up: true, Weight: healthcheck.WeightConfigured, Reason: "noop"}
	}
	if hang {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return healthcheck.Result{Weight: healthcheck.WeightConfigured, Reason: "noop timeout"}
	}
	return healthcheck.Result{Weight: healthcheck.WeightConfigured, Reason: "noop down"}
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

// perCheckCPU is a row's CPU per completed check, in µs.
func perCheckCPU(r result) float64 {
	if r.ChecksPerS <= 0 {
		return 0
	}
	return r.CPUPct / 100 / r.ChecksPerS * 1e6
}

// floorOf finds the epollhttp row with r's target count and placement
// (loopback or -veth) in the same run.
func floorOf(rs []result, r result) (result, bool) {
	want := "epollhttp-" + strings.TrimPrefix(r.Scenario, "http-")
	for _, f := range rs {
		if f.Scenario == want && f.Error == "" && f.ChecksPerS > 0 {
			return f, true
		}
	}
	return result{}, false
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// Goals of issue #5.
const (
	goalCPU      = 50.0                  // % of one core, http-10k
	goalLagP99   = 10 * time.Millisecond // every scenario
	goalEventPad = 5 * time.Millisecond  // (a) <= timeout + this
)

func printTable(w io.Writer, rs []result, d, interval time.Duration, steered bool) {
	fmt.Fprintf(w, "haldir healthcheck benchmark: window %v per scenario, interval %v, timeout %v, fall 1, servers in a separate process;\n", d, interval, checkTimeout)
	fmt.Fprintf(w, "rows without %s: loopback; rows with it: checker in its own namespace pinned to CPU %d, servers in another pinned to CPU %d,\n", vethSuffix, checkerCPU, targetCPU)
	if steered {
		fmt.Fprintf(w, "one veth pair between them, targets %s (AnyIP local route), RPS: server-side veth rx -> CPU %d, checker-side veth rx -> CPU %d\n\n", targetNet, targetCPU, checkerCPU)
	} else {
		fmt.Fprintf(w, "one veth pair between them, targets %s (AnyIP local route), NO RPS (-veth-rps=false): each packet is processed on the CPU that sent it\n\n", targetNet)
	}
	fmt.Fprintln(w, "| scenario | checks/s | expected/s | unexpected failures | CPU % of one core (window) | user / sys | median second / worst second | server CPU % | other processes CPU % | peak RSS MiB | lag p50 ms | lag p99 ms | lag max ms | check took p50 / p99 ms | most in flight | load1 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | error: %s |\n", r.Scenario, r.Error)
			continue
		}
		lag := [5]string{ms(r.LagP50), ms(r.LagP99), ms(r.LagMax), ms(r.TookP50) + " / " + ms(r.TookP99), strconv.FormatInt(r.InFlight, 10)}
		if r.Bare {
			lag = [5]string{"-", "-", "-", "-", "-"}
		}
		other := fmt.Sprintf("%.1f", r.OtherCPU)
		if r.StealPct >= 0.05 {
			other += fmt.Sprintf(" (+%.1f stolen)", r.StealPct)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %d | %.1f | %.1f / %.1f | %.1f / %.1f | %.1f | %s | %.1f | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.ChecksPerS, float64(r.Targets)/interval.Seconds(), r.Failed, r.CPUPct, r.UserPct, r.SysPct,
			r.CPUSecP50, r.CPUSecMax, r.ServerCPU, other, r.PeakRSSMiB, lag[0], lag[1], lag[2], lag[3], lag[4], r.Load1)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Down to event, per failure mode. (a): from the scheduled start of the first probe that saw the failure to the")
	fmt.Fprintln(w, "consumer receiving the down transition. (b): from the moment the target went down to the same moment.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | mode | detected | (a) p50 ms | (a) p99 ms | (a) max ms | (b) p50 ms | (b) p99 ms | (b) max ms | (b) bound: interval + timeout |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		for _, m := range r.Modes {
			fmt.Fprintf(w, "| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, m.Mode, m.Detected, m.Downed,
				ms(m.A50), ms(m.A99), ms(m.AMax), ms(m.B50), ms(m.B99), ms(m.BMax), ms(r.Interval+r.Timeout))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| goal | scenario | measured | limit | result | margin |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	for _, r := range rs {
		if r.Error != "" || r.Bare {
			continue
		}
		if r.Scenario == "http-10k" || r.Scenario == "http-10k"+vethSuffix {
			fmt.Fprintf(w, "| CPU < %.0f%% of one core (window) | %s | %.1f%% | %.0f%% | %s | %+.1f points |\n", goalCPU, r.Scenario, r.CPUPct, goalCPU,
				verdict(r.CPUPct < goalCPU), goalCPU-r.CPUPct)
			if f, ok := floorOf(rs, r); ok {
				// The same connections from a bare event loop: if that
				// alone is over the goal, no checker meets it here, and
				// what haldir can answer for is its cost above the floor.
				reach := "goal reachable on this host"
				if f.CPUPct >= goalCPU {
					reach = "floor over the goal: unreachable on this host"
				}
				fmt.Fprintf(w, "| informative: floor, the same checks from a bare epoll loop | %s | %.1f%% | %.0f%% | %s | %+.1f points |\n",
					f.Scenario, f.CPUPct, goalCPU, reach, goalCPU-f.CPUPct)
				hc, fc := perCheckCPU(r), perCheckCPU(f)
				fmt.Fprintf(w, "| informative: haldir above the floor | %s | %.1f vs %.1f µs CPU per check (%.2fx) | - | +%.1f µs per check | - |\n",
					r.Scenario, hc, fc, hc/fc, hc-fc)
			}
			fmt.Fprintf(w, "| 10k checks/s achieved (99%%) | %s | %.0f | %.0f | %s | %+.0f |\n", r.Scenario, r.ChecksPerS, 0.99*float64(r.Targets)/interval.Seconds(),
				verdict(r.ChecksPerS >= 0.99*float64(r.Targets)/interval.Seconds()), r.ChecksPerS-float64(r.Targets)/interval.Seconds())
		}
		fmt.Fprintf(w, "| lag p99 < %v | %s | %s ms | %s ms | %s | %+.2f ms |\n", goalLagP99, r.Scenario, ms(r.LagP99), ms(goalLagP99),
			verdict(r.LagP99 < goalLagP99), float64(goalLagP99-r.LagP99)/1e6)
		for _, m := range r.Modes {
			// A refused connect fails at once, far inside the bound; the
			// margin shows by how much.
			lim := r.Timeout + goalEventPad
			ok := m.Detected == m.Downed && m.AMax <= lim
			fmt.Fprintf(w, "| (a) down to event <= timeout + 5 ms, every event | %s %s | max %s ms (%d/%d detected) | %s ms | %s | %+.2f ms |\n",
				r.Scenario, m.Mode, ms(m.AMax), m.Detected, m.Downed, ms(lim), verdict(ok), float64(lim-m.AMax)/1e6)
			bl := r.Interval + r.Timeout + goalEventPad
			fmt.Fprintf(w, "| (b) informative: <= interval + timeout + 5 ms | %s %s | max %s ms | %s ms | %s | %+.2f ms |\n",
				r.Scenario, m.Mode, ms(m.BMax), ms(bl), verdict(m.Detected == m.Downed && m.BMax <= bl), float64(bl-m.BMax)/1e6)
		}
	}
	fmt.Fprintln(w, "\nWhere receive processing ran during each window (whole machine, other work included): NET_RX softirqs/s, softirq time % and")
	fmt.Fprintln(w, "RPS wake-ups (softnet_stat received_rps: packets steered from the other CPU) per CPU. Softirq work that runs while a CPU")
	fmt.Fprintln(w, "is otherwise idle is charged to no process and shows under \"other processes\".")
	for _, r := range rs {
		if r.Error != "" {
			continue
		}
		var parts []string
		for i := range r.NetRXPerS {
			p := fmt.Sprintf("CPU%d NET_RX %.0f/s", i, r.NetRXPerS[i])
			if i < len(r.SoftirqPct) {
				p += fmt.Sprintf(" softirq %.1f%%", r.SoftirqPct[i])
			}
			if i < len(r.RPSIPIPerS) {
				p += fmt.Sprintf(" RPS wake-ups %.0f/s", r.RPSIPIPerS[i])
			}
			parts = append(parts, p)
		}
		// Per check, for rows that could not keep up with the interval.
		fmt.Fprintf(w, "%s (checker GOMAXPROCS %d, %.1f µs checker CPU per check): %s\n", r.Scenario, r.GOMAXPROCS, perCheckCPU(r), strings.Join(parts, ", "))
	}
	for _, r := range rs {
		for reason, n := range r.Reasons {
			fmt.Fprintf(w, "%s: %d unexpected failures: %s\n", r.Scenario, n, reason)
		}
	}
	fmt.Fprintln(w, "\nkeepalived is not in this table: its checker exits at start-up (\"IPVS: Can't initialize ipvs\") on a")
	fmt.Fprintln(w, "kernel without IPVS. -keepalived runs both checkers side by side in a lab VM that has IPVS.")
	if n := cgoNote(); n != "" {
		fmt.Fprintln(w, "\n"+n)
	}
}

// cgoNote warns, when this binary was built with cgo, that its peak RSS
// is not the daemon's: it maps libc (1.4 MiB resident), and the daemon,
// built with CGO_ENABLED=0, does not.
func cgoNote() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, st := range bi.Settings {
		if st.Key == "CGO_ENABLED" && st.Value == "1" {
			return "note: this bench was built with cgo, so its peak RSS includes libc (about 1.4 MiB) that the daemon (CGO_ENABLED=0) does not map; run it as CGO_ENABLED=0 go run ./bench/healthcheck."
		}
	}
	return ""
}
