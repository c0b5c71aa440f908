package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

// The keepalived side-by-side runs in a VM because keepalived's checker
// exits at start-up without IPVS, and this host's kernel has none. Both
// checkers run in the same guest, one after the other, against the same
// loopback servers; the guest's CPUs are emulated (TCG), so absolute
// numbers are far below the host's and only the ratios mean anything.
// After them the whole haldir daemon (haldir run, the installed binary)
// runs the same scenario: haldir's checker above runs alone in a small
// binary, keepalived's in a process of its own, and the daemon's row is
// what a director running haldir holds.

const marker = "HCBENCH "

func compareInVM(scenarios string, d, interval time.Duration, down int, haldirBin string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if haldirBin == "" {
		tmp, err := os.MkdirTemp("", "hcbench-haldir")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		if haldirBin, err = vmhost.BuildStatic(context.Background(), "healthcheck bench", tmp, vmhost.HaldirPkg, "haldir"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		fmt.Fprintln(os.Stderr, "keepalived not installed (apt-get install keepalived):", err)
		return 1
	}
	probeDir, err := os.MkdirTemp("", "hcbench-floors")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(probeDir)
	probes, err := floorFiles(probeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n := len(strings.Split(scenarios, ","))
	var out bytes.Buffer
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			if i := strings.Index(l, marker); i >= 0 {
				fmt.Println(l[i+len(marker):])
			} else {
				out.WriteString(l + "\n")
			}
		}
	}()
	code, err := vm.Run(context.Background(), vm.Options{
		Args: []string{self, "-guest-compare", "-scenarios", scenarios, "-duration", d.String(),
			"-interval", interval.String(), "-timeout", checkTimeout.String(), "-down", strconv.Itoa(down),
			"-haldir", vmhost.GuestHaldir},
		Files:    append([]vm.File{{Host: ka, Guest: ka, WithLibs: true}, {Host: haldirBin, Guest: vmhost.GuestHaldir}}, probes...),
		Env:      passGOMAXPROCS(),
		CPUs:     2,
		MemoryMB: 2048,
		Timeout:  time.Duration(n)*4*(d+30*time.Second) + 2*time.Minute,
		Output:   pw,
	})
	pw.Close()
	if err != nil || code != 0 {
		fmt.Fprintf(os.Stderr, "vm run: status %d, %v; console:\n%s", code, err, out.String())
		return 1
	}
	return 0
}

func guestCompare(scenarios string, d, interval time.Duration, down int, haldirBin string) {
	var rows, notes []string
	say := func(format string, a ...any) { fmt.Printf(marker+format+"\n", a...) }
	say("keepalived vs haldir, same VM (TCG-emulated, 2 vCPUs), window %v, interval %v, %d targets taken down halfway", d, interval, down)
	row := func(sc string, r result) {
		if r.Error != "" {
			rows = append(rows, fmt.Sprintf("| %s | %s | error: %s |", sc, r.Scenario, r.Error))
			return
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %.0f | %.1f | %.0f | %.1f | %.0f | %.1f | %.1f (%.0f) | %s | %s | %d/%d |", sc, tool(r), r.ServedPerS, r.CPUPct,
			perCheck(r.CPUPct, r), r.ServerCPU, perCheck(r.CPUPct+r.ServerCPU, r), r.PeakRSSMiB, r.AnonRSSMiB, r.HugeMiB,
			ms(r.DetectP50), ms(r.DetectMax), r.Detected, r.Downed))
	}
	ratio := func(sc string, k, h result) {
		if k.Error != "" || h.Error != "" || h.CPUPct == 0 {
			return
		}
		rows = append(rows, fmt.Sprintf("| %s | ratio keepalived/%s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | |", sc, tool(h),
			k.ServedPerS/h.ServedPerS, k.CPUPct/h.CPUPct, perCheck(k.CPUPct, k)/perCheck(h.CPUPct, h), k.ServerCPU/h.ServerCPU,
			perCheck(k.CPUPct+k.ServerCPU, k)/perCheck(h.CPUPct+h.ServerCPU, h), k.PeakRSSMiB/h.PeakRSSMiB, k.AnonRSSMiB/h.AnonRSSMiB,
			float64(k.DetectP50)/float64(h.DetectP50), float64(k.DetectMax)/float64(h.DetectMax)))
	}
	// The floors' reference: keepalived's checker at the most targets up
	// to 1k (issue 14's scale), or at the fewest above it when no
	// scenario is that small.
	var kaRef float64
	var kaRefName string
	refTargets := 0
	better := func(n int) bool {
		switch {
		case refTargets == 0:
			return true
		case n <= 1000:
			return refTargets > 1000 || n > refTargets
		default:
			return refTargets > 1000 && n < refTargets
		}
	}
	var hdRef float64 // haldir run's peak RSS there
	for _, sc := range strings.Split(scenarios, ",") {
		fmt.Fprintf(os.Stderr, "guest: keepalived %s\n", sc)
		k := runDaemon(keepalivedDaemon, sc, d, interval, down)
		if _, n := parseScenario(sc); k.Error == "" && better(n) {
			kaRef, kaRefName, refTargets = k.PeakRSSMiB, sc, n
		}
		fmt.Fprintf(os.Stderr, "guest: haldir %s\n", sc)
		h := spawnScenario(sc, d, interval, down)
		row(sc, k)
		row(sc, h)
		if k.Error == "" {
			notes = append(notes, fmt.Sprintf("%s keepalived: %d healthy real servers removed from IPVS in the window (missing in two polls in a row) %v", sc, k.HealthyRemoved, k.RemovedSample))
		}
		for reason, c := range h.Reasons {
			notes = append(notes, fmt.Sprintf("%s haldir: %d unexpected failures: %s", sc, c, reason))
		}
		if h.Error == "" {
			notes = append(notes, fmt.Sprintf("%s haldir: %.0f checks/s completed, scheduling lag p50 %s ms p99 %s ms", sc, h.ChecksPerS, ms(h.LagP50), ms(h.LagP99)))
		}
		ratio(sc, k, h)
		// The whole daemon as well: its checks are the checker's above,
		// but its process holds everything else a director runs, and its
		// binary is the one installed.
		if haldirBin != "" {
			fmt.Fprintf(os.Stderr, "guest: haldir run %s\n", sc)
			hd := runDaemon(haldirDaemon(haldirBin), sc, d, interval, down)
			row(sc, hd)
			ratio(sc, k, hd)
			if sc == kaRefName {
				hdRef = 0
				if hd.Error == "" {
					hdRef = hd.PeakRSSMiB
				}
			}
			if hd.Error == "" {
				notes = append(notes, fmt.Sprintf("%s haldir run: %d healthy real servers removed from IPVS in the window %v; %d scrapes of /metrics after it (%d series, %.0f KiB of text) took its peak RSS from %.1f to %.1f MiB (%.2fx keepalived's checker); the first reported a check lag of %.3f s and %.0f late retries",
					sc, hd.HealthyRemoved, hd.RemovedSample, scrapes, hd.ScrapeSeries, float64(hd.ScrapeBytes)/1024, hd.PeakRSSMiB, hd.ScrapedPeakRSSMiB, hd.ScrapedPeakRSSMiB/k.PeakRSSMiB, hd.ReportedLag, hd.LateRetries))
			}
		}
		// HTTP scenarios also run the bare epoll loop (the same
		// connections and requests from this binary, no scheduler, no
		// parsing): what a Go checker cannot spend less than, in CPU
		// and in memory, beside what haldir and keepalived spend.
		if n, ok := strings.CutPrefix(sc, "http-"); ok {
			fmt.Fprintf(os.Stderr, "guest: bare epoll loop %s\n", sc)
			b := spawnScenario("epollhttp-"+n, d, interval, 0)
			if b.Error != "" {
				rows = append(rows, fmt.Sprintf("| %s | %s | error: %s |", sc, tool(b), b.Error))
			} else {
				rows = append(rows, fmt.Sprintf("| %s | %s | %.0f | %.1f | %.0f | %.1f | %.0f | %.1f | %.1f (%.0f) | - | - | - |", sc, tool(b), b.ServedPerS, b.CPUPct,
					perCheck(b.CPUPct, b), b.ServerCPU, perCheck(b.CPUPct+b.ServerCPU, b), b.PeakRSSMiB, b.AnonRSSMiB, b.HugeMiB))
				if h.Error == "" && b.CPUPct > 0 && h.CPUPct > 0 {
					rows = append(rows, fmt.Sprintf("| %s | ratio haldir/bare Go | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | | | |", sc,
						h.ServedPerS/b.ServedPerS, h.CPUPct/b.CPUPct, perCheck(h.CPUPct, h)/perCheck(b.CPUPct, b), h.ServerCPU/b.ServerCPU,
						perCheck(h.CPUPct+h.ServerCPU, h)/perCheck(b.CPUPct+b.ServerCPU, b), h.PeakRSSMiB/b.PeakRSSMiB, h.AnonRSSMiB/b.AnonRSSMiB))
				}
			}
		}
	}
	say("")
	// The targets' CPU is shown beside the checker's because where the
	// kernel's work of an exchange is charged depends on how it ends:
	// haldir closes with RST (SO_LINGER 0), keepalived with a plain
	// close (FIN; its checks set no SO_LINGER), which leaves more of the
	// teardown to the target's side.
	// Peak RSS counts the pages of the binary the kernel mapped on a
	// fault, and around it (fault-around maps up to 16 cached pages per
	// fault), shared with every process running it; RssAnon at the end
	// is the checker's own memory.
	say("| scenario | checker | checks/s (server side) | checker CPU %% of one core | checker µs/check | targets' CPU %% | checker+targets µs/check | peak RSS MiB | anon RSS MiB at the end (in huge pages) | down→removed p50 ms | max ms | detected |")
	say("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		say("%s", strings.ReplaceAll(r, "%", "%%"))
	}
	if n := cgoNote(); n != "" {
		notes = append(notes, n)
	}
	// Whether a clock read is a vDSO call or a system call (an emulated
	// guest may fall back to one that the vDSO cannot read) weighs on
	// both checkers' CPU.
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		notes = append(notes, "guest clocksource: "+strings.TrimSpace(string(cs)))
	}
	for _, n := range notes {
		say("%s", strings.ReplaceAll(n, "%", "%%"))
	}
	fmt.Fprintln(os.Stderr, "guest: memory floors")
	say("")
	say("Memory floors, same VM: what a process holds before it has targets to speak of")
	for _, r := range floorTable(haldirBin, kaRef, hdRef, kaRefName, refTargets) {
		say("%s", strings.ReplaceAll(r, "%", "%%"))
	}
}

// perCheck is CPU, in % of one core, as µs per check served.
func perCheck(cpuPct float64, r result) float64 {
	if r.ServedPerS == 0 {
		return 0
	}
	return cpuPct / 100 * 1e6 / r.ServedPerS
}

func tool(r result) string {
	if strings.HasPrefix(r.Scenario, "keepalived") {
		return "keepalived 2.2.7"
	}
	if strings.HasPrefix(r.Scenario, "epoll") {
		return "bare Go epoll loop"
	}
	if strings.HasPrefix(r.Scenario, "haldir run") {
		return "haldir run (whole daemon)"
	}
	return "haldir"
}

// vsAddr is the address of the v-th virtual server of 100 real servers,
// port 80, in both daemons' configurations.
func vsAddr(v int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 255, byte(v / 250), byte(v%250 + 1)})
}

// kaConfig writes a keepalived.conf checking the same targets with the
// closest equivalent settings: delay_loop = interval, connect_timeout =
// interval, retry 0 (fall 1), real servers spread over virtual servers of
// 100 each.
func kaConfig(kind string, n int, interval time.Duration) string {
	var b strings.Builder
	secs := max(1, int(interval.Seconds()))
	b.WriteString("global_defs {\n  router_id hcbench\n}\n")
	for v := 0; v*100 < n; v++ {
		fmt.Fprintf(&b, "virtual_server %s 80 {\n  delay_loop %d\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n", vsAddr(v), secs)
		for i := v * 100; i < min(n, (v+1)*100); i++ {
			a := addr(i)
			fmt.Fprintf(&b, "  real_server %s %d {\n    weight 1\n", a.Addr(), a.Port())
			if kind == "http" {
				fmt.Fprintf(&b, "    HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n      connect_timeout %d\n      retry 0\n    }\n", secs)
			} else {
				fmt.Fprintf(&b, "    TCP_CHECK {\n      connect_timeout %d\n      retry 0\n    }\n", secs)
			}
			b.WriteString("  }\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// daemonSpec is a daemon the comparison runs whole against the targets:
// keepalived, whose checker child is measured, or haldir run, one process.
type daemonSpec struct {
	name   string // the result's Scenario prefix
	config string // the configuration file's name
	// text is the configuration, dir the run's directory.
	text func(kind string, n int, interval time.Duration, dir string) string
	argv func(dir, cfg string) []string
	// measured is the process whose CPU and memory count, 0 while it is
	// not known.
	measured func(dir string, p *os.Process) int
	// metrics is the daemon's /metrics URL ("" for none), scraped after
	// the window.
	metrics string
}

var keepalivedDaemon = daemonSpec{
	name:   "keepalived",
	config: "keepalived.conf",
	text:   func(kind string, n int, interval time.Duration, _ string) string { return kaConfig(kind, n, interval) },
	argv: func(dir, cfg string) []string {
		return []string{"keepalived", "-n", "-l", "-C", "-f", cfg, "-p", filepath.Join(dir, "k.pid"), "-c", filepath.Join(dir, "c.pid")}
	},
	measured: func(dir string, _ *os.Process) int {
		b, _ := os.ReadFile(filepath.Join(dir, "c.pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	},
}

// haldirDaemon runs bin's daemon (haldir run): everything a director
// runs, its checks included, in one process, which is measured.
func haldirDaemon(bin string) daemonSpec {
	return daemonSpec{
		name:     "haldir run",
		config:   "haldir.toml",
		text:     haldirConfig,
		argv:     func(_, cfg string) []string { return []string{bin, "run", "-c", cfg} },
		measured: func(_ string, p *os.Process) int { return p.Pid },
		metrics:  "http://" + haldirMetrics + "/metrics",
	}
}

// haldirMetrics is where the benchmarked daemon serves its metrics.
const haldirMetrics = "127.0.0.1:9712"

// haldirConfig is kaConfig's services, real servers and checks in
// haldir's configuration: interval and timeout = interval, fall 1 (retry
// 0), rise 1, every server up before its first check.
func haldirConfig(kind string, n int, interval time.Duration, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nrouter_id = \"hcbench\"\ncontrol_socket = %q\nstate_dir = %q\nmetrics_listen = %q\n", filepath.Join(dir, "haldir.sock"), filepath.Join(dir, "state"), haldirMetrics)
	for v := 0; v*100 < n; v++ {
		fmt.Fprintf(&b, "\n[[virtual_server]]\nname = \"vs%d\"\naddress = \"%s\"\nport = 80\nscheduler = \"rr\"\nforwarding = \"nat\"\n", v, vsAddr(v))
		fmt.Fprintf(&b, "check = { type = %q, interval = %q, timeout = %q, rise = 1, fall = 1 }\n", kind, interval, interval)
		for i := v * 100; i < min(n, (v+1)*100); i++ {
			a := addr(i)
			fmt.Fprintf(&b, "[[virtual_server.real_server]]\naddress = \"%s\"\nport = %d\n", a.Addr(), a.Port())
		}
	}
	return b.String()
}

// runDaemon runs scenario sc against daemon ds: the same targets, the
// same downs, detection read from the IPVS table.
func runDaemon(ds daemonSpec, sc string, d, interval time.Duration, down int) result {
	kind, n := parseScenario(sc)
	r := result{Scenario: ds.name + " " + sc, Targets: n}
	fail := func(err error) result { r.Error = err.Error(); return r }
	if kind != "http" && kind != "tcp" {
		return fail(fmt.Errorf("%s: no %s scenario", ds.name, kind))
	}
	dir, err := os.MkdirTemp("", "hcbench-daemon")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, ds.config)
	if err := os.WriteFile(cfg, []byte(ds.text(kind, n, interval, dir)), 0o644); err != nil {
		return fail(err)
	}

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
	count := func() int64 { return served(stdin, lines) }

	h, err := ipvs.New("")
	if err != nil {
		return fail(fmt.Errorf("ipvs: %w", err))
	}
	defer h.Close()
	// Each daemon starts from an empty table: what one left behind must
	// not count as installed by the next.
	if err := h.Flush(); err != nil {
		return fail(fmt.Errorf("ipvs flush: %w", err))
	}
	defer h.Flush()
	proc, err := startDaemon(ds, dir, cfg)
	if err != nil {
		return fail(err)
	}
	defer stopDaemon(proc)

	// Both add every real server at start-up (keepalived without alpha,
	// haldir with initial_state up).
	dests := func() map[netip.Addr]bool {
		m := map[netip.Addr]bool{}
		svcs, err := h.GetServices()
		if err != nil {
			return m
		}
		for _, s := range svcs {
			dsts, err := h.GetDestinations(s)
			if err != nil {
				continue
			}
			for _, dst := range dsts {
				if a, ok := netip.AddrFromSlice(dst.Address); ok && dst.Weight > 0 {
					m[a.Unmap()] = true
				}
			}
		}
		return m
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(dests()) < n {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("%s did not install %d real servers (has %d); log:\n%s", ds.name, n, len(dests()), daemonLog(dir)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpid := measuredPid(ds, dir, proc, deadline)
	if cpid == 0 {
		return fail(fmt.Errorf("%s: no pid to measure; log:\n%s", ds.name, daemonLog(dir)))
	}

	time.Sleep(interval + interval/2)
	c0, cpu0, scpu0, t0 := count(), procCPU(cpid), procCPU(srv.Process.Pid), time.Now()
	// A target never taken down that goes missing from the table in two
	// polls in a row was reported down falsely (goal: none, however
	// overloaded the checker). One poll is not enough: a dump of the
	// table that the daemon writes meanwhile can miss an entry (seen
	// once, with no transition in the daemon's log), and a real false
	// down lasts at least an interval. The table is read every 200 ms,
	// and every 20 ms while detection is timed.
	healthy := map[netip.Addr]bool{}
	for i := range n {
		healthy[addr(i).Addr()] = true
	}
	for _, i := range append(downed(n, down), holed(n, down)...) {
		delete(healthy, addr(i).Addr())
	}
	removed, missing := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	look := func(cur map[netip.Addr]bool) {
		for a := range healthy {
			if cur[a] {
				delete(missing, a)
				continue
			}
			if missing[a] {
				removed[a] = true
			}
			missing[a] = true
		}
	}
	for half := t0.Add(d / 2); time.Now().Before(half); time.Sleep(min(200*time.Millisecond, time.Until(half))) {
		look(dests())
	}
	// The same targets go down in the same two ways as in haldir's run,
	// so that both checkers do the same work and the servers' counts
	// compare.
	// Detection is reported for the refused mode, as haldir's row is.
	want := map[netip.Addr]time.Time{} // refused target -> when it went down
	for mode, cmd := range [nModes]string{"down", "blackhole"} {
		at, err := command(stdin, lines, fmt.Sprintf("%s %d", cmd, down))
		if err != nil {
			return fail(err)
		}
		if mode == refused {
			for _, i := range downed(n, down) {
				want[addr(i).Addr()] = at
			}
		}
	}
	var detect []time.Duration
	stopAt := t0.Add(d)
	// Both remove a failed real server from IPVS: poll the table
	// (every 20ms, so detection times carry up to 20ms of poll error).
	for time.Now().Before(stopAt) {
		now := time.Now()
		cur := dests()
		look(cur)
		for a, at := range want {
			if !cur[a] {
				detect = append(detect, now.Sub(at))
				delete(want, a)
			}
		}
		if len(want) > 0 {
			time.Sleep(20 * time.Millisecond)
		} else {
			time.Sleep(min(200*time.Millisecond, time.Until(stopAt)))
		}
	}
	c1, cpu1, scpu1, t1 := count(), procCPU(cpid), procCPU(srv.Process.Pid), time.Now()
	wall := t1.Sub(t0)
	r.Seconds = wall.Seconds()
	r.Checks = c1 - c0
	r.ChecksPerS = float64(r.Checks) / wall.Seconds()
	r.ServedPerS = r.ChecksPerS
	r.CPUPct = 100 * float64(cpu1-cpu0) / float64(wall)
	r.ServerCPU = 100 * float64(scpu1-scpu0) / float64(wall)
	r.PeakRSSMiB = procStatusMiB(strconv.Itoa(cpid), "VmHWM")
	r.AnonRSSMiB = procStatusMiB(strconv.Itoa(cpid), "RssAnon")
	r.HugeMiB = hugeMiB(strconv.Itoa(cpid))
	r.Downed, r.Detected = down, len(detect)
	r.HealthyRemoved = len(removed)
	for a := range removed {
		r.RemovedSample = append(r.RemovedSample, a.String())
	}
	slices.Sort(r.RemovedSample)
	r.RemovedSample = r.RemovedSample[:min(len(r.RemovedSample), 5)]
	r.DetectP50, r.DetectP99, r.DetectMax = pct(detect, 50), pct(detect, 99), pct(detect, 100)
	// After the window, so that the scrapes' CPU is not counted: what
	// Prometheus's scrapes add to the peak of a daemon that is watched,
	// as every production one is.
	if ds.metrics != "" {
		for i := range scrapes {
			got, err := scrape(ds.metrics)
			if err != nil {
				return fail(fmt.Errorf("%s: scrape: %w", ds.name, err))
			}
			r.ScrapeSeries, r.ScrapeBytes = got.series, got.size
			if i == 0 {
				// What the daemon says of its own lag as the window
				// ends (goal: a dead target is removed within fall x
				// interval + timeout + the lag it reports).
				r.ReportedLag = got.plain["haldir_healthcheck_lag_seconds"]
				r.LateRetries = got.plain["haldir_healthcheck_late_retries_total"]
			}
		}
		r.ScrapedPeakRSSMiB = procStatusMiB(strconv.Itoa(cpid), "VmHWM")
	}
	return r
}

// scrapes is how many times runDaemon scrapes a daemon's metrics.
const scrapes = 3

// scraped is one scrape: its samples, its bytes unzipped, and the values
// of the samples without labels, by name.
type scraped struct {
	series, size int
	plain        map[string]float64
}

// scrape GETs url as Prometheus does, gzip accepted (Go's transport asks
// for it and unzips the answer), and reads the answer.
func scrape(url string) (scraped, error) {
	sc := scraped{plain: map[string]float64{}}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return sc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sc, fmt.Errorf("%s: %s", url, resp.Status)
	}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		sc.size += len(lines.Bytes()) + 1
		l := lines.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		sc.series++
		if name, v, ok := strings.Cut(l, " "); ok && !strings.Contains(name, "{") {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				sc.plain[name] = f
			}
		}
	}
	return sc, lines.Err()
}

// startDaemon starts ds on its configuration file cfg in the run's
// directory dir, its output in dir/log.
func startDaemon(ds daemonSpec, dir, cfg string) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	argv := ds.argv(dir, cfg)
	proc := exec.Command(argv[0], argv[1:]...)
	proc.Stdout, proc.Stderr = logf, logf
	return proc, proc.Start()
}

// daemonLog is what the daemon startDaemon started in dir has written.
func daemonLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	return string(b)
}

// measuredPid waits until deadline for the process ds measures (keepalived
// writes its checker's pid file after it starts) and returns it, 0 when
// none appeared.
func measuredPid(ds daemonSpec, dir string, proc *exec.Cmd, deadline time.Time) int {
	for {
		if pid := ds.measured(dir, proc.Process); pid != 0 || !time.Now().Before(deadline) {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopDaemon stops a daemon startDaemon started: SIGTERM, and SIGKILL
// after 10 s.
func stopDaemon(proc *exec.Cmd) {
	proc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { proc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		proc.Process.Kill()
		<-done
	}
}

// procStatusMiB reads the memory figure key (VmHWM, RssAnon, ...) of
// process pid ("self" for this one) from /proc/PID/status; 0 when absent.
func procStatusMiB(pid, key string) float64 { return procMiB(pid, "status", key) }

// hugeMiB is how much of process pid's anonymous memory is in transparent
// huge pages: where the kernel backs them by default (Debian's and RHEL's
// kernels), a 2 MiB page for a few KiB touched is RSS too.
func hugeMiB(pid string) float64 { return procMiB(pid, "smaps_rollup", "AnonHugePages") }

func procMiB(pid, file, key string) float64 {
	b, _ := os.ReadFile("/proc/" + pid + "/" + file)
	return textMiB(b, key)
}

// textMiB is the figure key ("VmHWM: 1234 kB") of a /proc status or
// smaps text, in MiB; 0 when absent.
func textMiB(b []byte, key string) float64 {
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// passGOMAXPROCS carries the host's GOMAXPROCS setting into the guest, to
// compare the Go runtime's settings against keepalived's single thread.
func passGOMAXPROCS() []string {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		return []string{"GOMAXPROCS=" + v}
	}
	return nil
}
