package failover

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/prometheus/procfs"
)

// The failover benchmark runs both implementations as the daemons an
// operator would run, each in its own lab host: `haldir run -c FILE` (built
// from this tree) and Debian's `keepalived --vrrp -n -l -f FILE`. Both get
// the same instance: VRRPv3 over IPv4 multicast, one VIP, preemption on,
// and the same gratuitous-ARP settings — 2 frames on becoming master, no
// second burst, no refresh (keepalived: garp_master_delay 0,
// garp_master_repeat 2, garp_master_refresh 0, and the default vrrp_garp_interval 0).

// benchImpl is one VRRP implementation under test.
type benchImpl struct {
	name string // "haldir", "keepalived" or "bare Go"
	bin  string
}

const (
	implHaldir     = "haldir"
	implKeepalived = "keepalived"
	// implBare is bench/vrrp/floor, a Go program doing only the wire
	// work, in the CPU table alone: what haldir spends above it is its
	// own, what it spends above keepalived the Go runtime's.
	implBare = "bare Go"
)

// bareImpl builds bench/vrrp/floor.
func bareImpl(tb testing.TB) benchImpl {
	tb.Helper()
	return benchImpl{implBare, lab.BuildCmd(tb, "github.com/haldir-lb/haldir/bench/vrrp/floor")}
}

// benchInstance is one VRRP instance of a benchmark daemon.
type benchInstance struct {
	name     string
	vrid     int
	priority int
	interval time.Duration
	vip      netip.Prefix
}

// garpRepeat is the gratuitous ARPs per burst for both implementations.
const garpRepeat = 2

// config renders the daemon's configuration file. The daemons of one lab
// share the file system: haldir's control socket, and with it its
// single-instance lock, lives in the daemon's own dir.
func (im benchImpl) config(dir, routerID string, ins []benchInstance) string {
	var b strings.Builder
	switch im.name {
	case implBare:
		b.WriteString("# bench/vrrp/floor takes flags (benchDaemon.argv), no file\n")
	case implHaldir:
		fmt.Fprintf(&b, "[global]\nrouter_id = %q\ncontrol_socket = %q\nstate_dir = %q\nmetrics_listen = \"\"\nlog_level = \"info\"\n",
			routerID, filepath.Join(dir, "haldir.sock"), filepath.Join(dir, "state"))
		for _, in := range ins {
			fmt.Fprintf(&b, "\n[[vrrp]]\nname = %q\ninterface = %q\nvrid = %d\npriority = %d\nversion = 3\n"+
				"advert_interval = %q\npreempt = true\nvirtual_addresses = [%q]\n"+
				"[vrrp.garp]\ndelay = \"0s\"\nrepeat = %d\nrefresh = \"0s\"\n",
				in.name, lanIf, in.vrid, in.priority, in.interval.String(), in.vip.String(), garpRepeat)
		}
	default:
		// vrrp_garp_interval is left at its default, 0 (keepalived
		// rejects an explicit 0): the frames of a burst go back to back.
		fmt.Fprintf(&b, "global_defs {\n router_id %s\n}\n", routerID)
		for _, in := range ins {
			fmt.Fprintf(&b, "vrrp_instance %s {\n version 3\n state BACKUP\n interface %s\n virtual_router_id %d\n priority %d\n"+
				" advert_int %s\n garp_master_delay 0\n garp_master_repeat %d\n garp_master_refresh 0\n"+
				" virtual_ipaddress {\n  %s\n }\n}\n",
				in.name, lanIf, in.vrid, in.priority, strconv.FormatFloat(in.interval.Seconds(), 'f', -1, 64), garpRepeat, in.vip)
		}
	}
	return b.String()
}

// argv is the command line for a configuration file in dir; haldir writes
// a CPU profile to profile when it is set.
func (im benchImpl) argv(dir, cfg, profile string) []string {
	if im.name == implHaldir {
		if profile != "" {
			return []string{im.bin, "run", "-c", cfg, "-cpuprofile", profile}
		}
		return []string{im.bin, "run", "-c", cfg}
	}
	// Separate pid files: the daemons of one lab share the file system.
	return []string{im.bin, "--vrrp", "-n", "-l", "-f", cfg,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid")}
}

// argv is the daemon's command line. The bare Go program takes flags:
// master at the higher priority, backup at the lower; all instances
// share one interval.
func (d *benchDaemon) argv() []string {
	if d.im.name != implBare {
		return d.im.argv(d.dir, d.cfg, d.profile)
	}
	role := "backup"
	if d.ins[0].priority > 100 {
		role = "master"
	}
	return []string{d.im.bin, "-role", role, "-interface", lanIf, "-src", d.addr.String(),
		"-instances", strconv.Itoa(len(d.ins)), "-interval", d.ins[0].interval.String(), "-priority", strconv.Itoa(d.ins[0].priority)}
}

// backupLine matches the log line of an instance entering Backup.
func (im benchImpl) backupLine() *regexp.Regexp {
	if im.name == implBare {
		return regexp.MustCompile(`^floor backup: hearing the master`)
	}
	if im.name == implHaldir {
		return regexp.MustCompile(`msg="vrrp state change".* to=backup`)
	}
	return regexp.MustCompile(`Entering BACKUP STATE`)
}

// envBenchHaldir names a haldir binary to measure instead of building
// this tree (to compare a change built elsewhere).
const envBenchHaldir = "HALDIR_BENCH_HALDIR"

// benchImpls returns haldir (built now, or $HALDIR_BENCH_HALDIR) and
// keepalived, skipping tb when keepalived is not installed.
func benchImpls(tb testing.TB) []benchImpl {
	tb.Helper()
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		tb.Skip("skipping: keepalived not installed (apt-get install keepalived); the benchmark compares against it")
	}
	hal := os.Getenv(envBenchHaldir)
	if hal == "" {
		hal = lab.BuildHaldir(tb)
	} else if st, err := os.Stat(hal); err != nil || st.Mode()&0o111 == 0 {
		tb.Fatalf("%s=%q: not an executable file (%v)", envBenchHaldir, hal, err)
	}
	return []benchImpl{{implHaldir, hal}, {implKeepalived, ka}}
}

// benchDaemon is one running daemon of a benchmark pair.
type benchDaemon struct {
	tb   testing.TB
	im   benchImpl
	h    *lab.Host
	ins  []benchInstance
	dir  string
	cfg  string
	addr netip.Addr       // the host's IPv4 address: the advert source
	mac  net.HardwareAddr // the host's interface MAC
	proc *lab.Proc
	// profile is where haldir writes its CPU profile ("": none).
	profile string
	// lineMark is the output line after which backupSince looks.
	lineMark uint64
	// render, when set, renders the configuration instead of im.config.
	render func(d *benchDaemon) string
	// pin, when not negative, is the only CPU the process runs on.
	pin int
}

func startBenchDaemon(tb testing.TB, im benchImpl, h *lab.Host, addr netip.Addr, ins []benchInstance) *benchDaemon {
	return startProfiledDaemon(tb, im, h, addr, ins, "", -1)
}

// startProfiledDaemon is startBenchDaemon with haldir's CPU profile
// written to profile ("": none), on CPU pin (-1: any).
func startProfiledDaemon(tb testing.TB, im benchImpl, h *lab.Host, addr netip.Addr, ins []benchInstance, profile string, pin int) *benchDaemon {
	tb.Helper()
	return launchDaemon(tb, im, h, addr, ins, profile, pin, nil)
}

// launchDaemon starts a daemon whose configuration render makes (nil:
// im.config).
func launchDaemon(tb testing.TB, im benchImpl, h *lab.Host, addr netip.Addr, ins []benchInstance, profile string, pin int, render func(d *benchDaemon) string) *benchDaemon {
	tb.Helper()
	mac, err := h.HardwareAddr(lanIf)
	if err != nil {
		tb.Fatal(err)
	}
	d := &benchDaemon{tb: tb, im: im, h: h, ins: ins, dir: tb.TempDir(), addr: addr, mac: mac, profile: profile, pin: pin, render: render}
	d.cfg = filepath.Join(d.dir, im.name+".conf")
	if err := d.writeConfig(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if d.proc == nil {
			return
		}
		d.stop()
		if tb.Failed() {
			tb.Logf("%s on %s output:\n%s", im.name, h.Name(), d.proc.Output())
		}
	})
	d.start()
	return d
}

// writeConfig writes the daemon's configuration file for its instances.
func (d *benchDaemon) writeConfig() error {
	text := d.im.config(d.dir, d.h.Name(), d.ins)
	if d.render != nil {
		text = d.render(d)
	}
	return os.WriteFile(d.cfg, []byte(text), 0o600)
}

func (d *benchDaemon) String() string { return d.im.name + "@" + d.h.Name() }

// start (re)starts the process; backupSince then looks at its whole output.
func (d *benchDaemon) start() {
	d.tb.Helper()
	argv := d.argv()
	if d.pin >= 0 {
		argv = append([]string{"taskset", "--cpu-list", strconv.Itoa(d.pin)}, argv...)
	}
	p, err := d.h.Start(context.Background(), argv, nil)
	if err != nil {
		d.tb.Fatal(err)
	}
	d.proc, d.lineMark = p, 0
}

// markLines makes backupSince look only at output printed from now on.
func (d *benchDaemon) markLines() { d.lineMark = d.proc.LastSeq() }

// loggedBackup says whether an instance entered Backup since the mark.
func (d *benchDaemon) loggedBackup() bool {
	re := d.im.backupLine()
	for _, l := range d.proc.Lines() {
		if l.Seq > d.lineMark && re.MatchString(l.Text) {
			return true
		}
	}
	return false
}

// state says whether the process runs, or how it ended.
func (d *benchDaemon) state() string {
	select {
	case <-d.proc.Done():
		return fmt.Sprintf("pid %d exited: %v", d.proc.Pid(), d.proc.Wait())
	default:
		return fmt.Sprintf("pid %d running", d.proc.Pid())
	}
}

// signal sends SIGTERM, as systemd's stop does, without waiting.
func (d *benchDaemon) signal() error { return d.proc.Signal(syscall.SIGTERM) }

// waitExit waits for the process to end after signal.
func (d *benchDaemon) waitExit() {
	d.tb.Helper()
	select {
	case <-d.proc.Done():
	case <-time.After(settle):
		_ = d.proc.Kill()
		d.tb.Fatalf("%s did not exit within %v of SIGTERM", d, settle)
	}
}

// stop is signal and waitExit for a process that may already be gone.
func (d *benchDaemon) stop() {
	select {
	case <-d.proc.Done():
		return
	default:
	}
	_ = d.signal()
	select {
	case <-d.proc.Done():
	case <-time.After(settle):
		_ = d.proc.Kill()
		d.tb.Errorf("%s did not exit within %v of SIGTERM", d, settle)
	}
}

// holds says whether the daemon's host carries vip, on the LAN
// interface or (use_vmac) on the instance's macvlan.
func (d *benchDaemon) holds(vip netip.Prefix) bool {
	addrs, err := d.h.Addrs(lanIf)
	if err != nil {
		d.tb.Fatal(err)
	}
	if slices.Contains(addrs, vip) {
		return true
	}
	vm, err := d.h.Addrs(fmt.Sprintf("vrrp.%d", vrid))
	return err == nil && slices.Contains(vm, vip)
}

// cpu returns the user+system time of the daemon's process and its
// descendants (keepalived runs its VRRP engine in a child process), and
// the PIDs counted.
func (d *benchDaemon) cpu() (time.Duration, []int, error) {
	return processTreeCPU(d.proc.Pid())
}

// processTreeCPU sums the CPU time of root and every process descending
// from it: each thread's time on a CPU in nanoseconds
// (/proc/PID/task/TID/schedstat), not utime+stime from /proc/PID/stat,
// whose USER_HZ ticks are 10 ms: a backup at 0.2 % of a core uses 40 ms
// in a 20 s window, which ticks measure to ±25 %, and that alone moved
// the haldir / keepalived ratios by tens of percent between runs.
func processTreeCPU(root int) (time.Duration, []int, error) {
	all, err := procfs.AllProcs()
	if err != nil {
		return 0, nil, err
	}
	parent := map[int]int{}
	stats := map[int]procfs.ProcStat{}
	for _, p := range all {
		st, err := p.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		parent[p.PID], stats[p.PID] = st.PPID, st
	}
	if _, ok := stats[root]; !ok {
		return 0, nil, fmt.Errorf("process %d: %w", root, os.ErrNotExist)
	}
	var sum time.Duration
	var pids []int
	for pid, st := range stats {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				sum += processCPU(pid, st)
				pids = append(pids, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	return sum, pids, nil
}

// processCPU is pid's threads' time on a CPU, in nanoseconds where the
// kernel keeps schedstat, else st's ticks.
func processCPU(pid int, st procfs.ProcStat) time.Duration {
	ts, err := procfs.AllThreads(pid)
	if err != nil {
		return time.Duration(st.CPUTime() * float64(time.Second))
	}
	var ns uint64
	for _, t := range ts {
		ss, err := t.Schedstat()
		if err != nil {
			return time.Duration(st.CPUTime() * float64(time.Second))
		}
		ns += ss.RunningNanoseconds
	}
	return time.Duration(ns)
}
