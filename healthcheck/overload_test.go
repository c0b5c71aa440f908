package healthcheck

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// The overload test runs the scheduler in a child process (this test
// binary again) inside a CPU cgroup whose CFS quota is half of the CPU the
// same checks took without one (measured first, in the same run): the
// checker wants twice what it gets, so it is throttled for part of every
// period, which is how a CPU-starved director behaves. The targets answer
// from this (unthrottled) process; a healthy one answers in microseconds,
// but the starved checker may notice only after its deadline.
const (
	envOverloadChild = "HALDIR_TEST_OVERLOAD_CHILD"
	// envOverloadTime runs TestOverloadNoFalseDowns for that long (make
	// bench: 60s). It is a measurement under load: in make test, where
	// every package's tests compete for the same two cores, the CPU the
	// checker gets is not what it was calibrated for, so it runs only when
	// asked; the logic is covered by TestSchedulerLateFailureRetried.
	envOverloadTime = "HALDIR_OVERLOAD_DURATION"
)

// overloadEvent is one line the child writes: a transition, or its
// final counts.
type overloadEvent struct {
	Target string        `json:"target,omitempty"`
	Up     bool          `json:"up"`
	Reason string        `json:"reason,omitempty"`
	At     time.Duration `json:"at"` // since the child started checking
	Late   uint64        `json:"late,omitempty"`
	MaxLag time.Duration `json:"max_lag,omitempty"`
	// Reported is the most the scheduler's Lag said, read every 100 ms.
	Reported time.Duration `json:"reported,omitempty"`
	// MaxTook is the longest check, deadline and stall included.
	MaxTook time.Duration `json:"max_took,omitempty"`
	Checks  uint64        `json:"checks,omitempty"`
	Final   bool          `json:"final,omitempty"`
	// LateBy is each target's late failures retried.
	LateBy map[string]uint64 `json:"late_by,omitempty"`
}

// overloadCheck is the check of every target: HTTP, timeout 50 ms every
// 200 ms, down after one counted failure (so any false timeout that
// counts shows).
var overloadCheck = conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: httpPath("/"), Interval: 200 * time.Millisecond, Timeout: 50 * time.Millisecond,
	Rise: 1, Fall: 1, InitialUp: true}

func TestMain(m *testing.M) {
	if os.Getenv(envOverloadChild) != "" {
		os.Exit(overloadChild())
	}
	os.Exit(m.Run())
}

// overloadChild checks the targets in argv for the duration in its
// environment and reports on stdout. It starts once its parent has moved
// it into the cgroup and closes stdin.
func overloadChild() int {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	d, err := time.ParseDuration(os.Getenv(envOverloadChild))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var ts []Target
	for _, a := range os.Args[1:] {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue // the test framework's own flags
		}
		ts = append(ts, tgt(ap, overloadCheck))
	}
	start := time.Now()
	var mu sync.Mutex
	var maxLag, maxTook time.Duration
	s := New(Options{OnResult: func(o Observation) {
		mu.Lock()
		maxTook = max(maxTook, o.Result.Took)
		maxLag = max(maxLag, o.Started.Sub(o.Scheduled))
		mu.Unlock()
	}})
	if _, err := s.Update(ts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	enc := json.NewEncoder(os.Stdout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var reported time.Duration
	for {
		select {
		case <-tick.C:
			reported = max(reported, s.Lag())
		case tr := <-s.Transitions():
			_ = enc.Encode(overloadEvent{Target: tr.Target.Addr.String(), Up: tr.Up, Reason: tr.Reason, At: time.Since(start)})
		case <-done:
			var checks uint64
			lateBy := map[string]uint64{}
			for _, st := range s.Status() {
				checks += st.Checks
				if st.LateRetries > 0 {
					lateBy[st.Target.Addr.String()] = st.LateRetries
				}
			}
			mu.Lock()
			reported = max(reported, s.Lag())
			_ = enc.Encode(overloadEvent{Final: true, Late: s.LateRetries(), MaxLag: maxLag, Reported: reported, MaxTook: maxTook, Checks: checks, LateBy: lateBy})
			mu.Unlock()
			return 0
		}
	}
}

// cpuCgroup makes a CPU cgroup (v1 cpu controller or v2) holding quota of
// every period, or skips.
func cpuCgroup(t *testing.T, quota, period time.Duration) (addPID func(int) error) {
	t.Helper()
	name := fmt.Sprintf("haldir-overload-%d", os.Getpid())
	if dir := "/sys/fs/cgroup/cpu"; fileExists(filepath.Join(dir, "cpu.cfs_quota_us")) {
		cg := filepath.Join(dir, name)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Skipf("no CPU cgroup: %v", err)
		}
		t.Cleanup(func() { os.Remove(cg) })
		for f, v := range map[string]int64{"cpu.cfs_period_us": period.Microseconds(), "cpu.cfs_quota_us": quota.Microseconds()} {
			if err := os.WriteFile(filepath.Join(cg, f), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		return func(pid int) error {
			return os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		}
	}
	if dir := "/sys/fs/cgroup"; fileExists(filepath.Join(dir, "cgroup.controllers")) {
		cg := filepath.Join(dir, name)
		_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu"), 0o644)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Skipf("no CPU cgroup: %v", err)
		}
		t.Cleanup(func() { os.Remove(cg) })
		max := fmt.Sprintf("%d %d", quota.Microseconds(), period.Microseconds())
		if err := os.WriteFile(filepath.Join(cg, "cpu.max"), []byte(max), 0o644); err != nil {
			t.Skipf("no cpu.max: %v", err)
		}
		return func(pid int) error {
			return os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		}
	}
	t.Skip("no CPU cgroup controller mounted")
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// blackHole is a TCP port on loopback that drops every new connection's
// SYN: its listener never accepts and its one-slot backlog is full.
func blackHole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the backlog: from here on the kernel drops new SYNs.
	for range 3 {
		c, err := net.DialTimeout("tcp", ap.String(), 100*time.Millisecond)
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", ap.String(), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatalf("%v still accepts connections", ap)
	}
	return ap
}

// TestOverloadNoFalseDowns: a checker starved to half the CPU it wants
// (2× overload) reports no healthy target down (its late failures are
// retried before they count; without that, 41 false downs in 15 s), while
// it still brings a dead (black-holed) target down within its first
// interval + (fall-1) × interval + the dispatch lag it saw + the checks
// themselves, each counted failure (1 + maxLateRetries) checks at most as
// long as the longest it saw (its timeout and the stall: under overload a
// dead target's timeouts are late too, and are retried like the others).
// It runs with Go's default GOMAXPROCS and with 1. HALDIR_OVERLOAD_DURATION=60s
// is the run.
func TestOverloadNoFalseDowns(t *testing.T) {
	lab.SkipIfNotRoot(t)
	s := os.Getenv(envOverloadTime)
	if s == "" {
		t.Skipf("a measurement under a CPU quota: set %s (make bench runs it for 60s)", envOverloadTime)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", envOverloadTime, err)
	}
	var healthy []string
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		healthy = append(healthy, ln.Addr().String())
	}
	dead := []string{blackHole(t).String(), blackHole(t).String()}
	// GOMAXPROCS=1 is what Go sets under a one-CPU cgroup limit: the
	// dispatcher, the check loop and the consumer share one processor.
	for _, procs := range []string{"", "1"} {
		name := "GOMAXPROCS=" + procs
		if procs == "" {
			name = "GOMAXPROCS=default"
		}
		t.Run(name, func(t *testing.T) { overloadRun(t, d, healthy, dead, procs) })
	}
}

// overloadRun is one run of TestOverloadNoFalseDowns, the checker's
// GOMAXPROCS set to procs ("": Go's default).
func overloadRun(t *testing.T, d time.Duration, healthy, dead []string, procs string) {
	run := func(d time.Duration, addPID func(int) error) ([]overloadEvent, time.Duration) {
		t.Helper()
		cmd := exec.Command(os.Args[0], append(append([]string{}, healthy...), dead...)...)
		cmd.Env = append(os.Environ(), envOverloadChild+"="+d.String())
		if procs != "" {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+procs)
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if addPID != nil {
			if err := addPID(cmd.Process.Pid); err != nil {
				cmd.Process.Kill()
				t.Fatalf("moving the checker into the cgroup: %v", err)
			}
		}
		stdin.Close() // go
		var events []overloadEvent
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e overloadEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("child wrote %q: %v", sc.Text(), err)
			}
			events = append(events, e)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("checker: %v\n%s", err, stderr.String())
		}
		if len(events) == 0 || !events[len(events)-1].Final {
			t.Fatalf("the checker did not report its counts\n%s", stderr.String())
		}
		return events, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// What the checks cost without a quota, then half of it as the quota.
	const calib = 3 * time.Second
	_, cpu := run(calib, nil)
	const period = 100 * time.Millisecond
	quota := max(time.Duration(float64(period)*cpu.Seconds()/calib.Seconds()/2), time.Millisecond)
	addPID := cpuCgroup(t, quota, period)
	events, _ := run(d, addPID)
	final := events[len(events)-1]
	isDead := map[string]bool{dead[0]: true, dead[1]: true}
	downAt := map[string]time.Duration{}
	var falseDowns []overloadEvent
	for _, e := range events[:len(events)-1] {
		switch {
		case isDead[e.Target] && !e.Up:
			if _, seen := downAt[e.Target]; !seen {
				downAt[e.Target] = e.At
			}
		case !e.Up:
			falseDowns = append(falseDowns, e)
		}
	}
	c := overloadCheck
	// A target's first check runs within its first interval (the phase
	// spread); then fall failures, each with a retry.
	// Each counted failure may be a check and maxLateRetries retries, each
	// as long as the longest check seen (its timeout and the stall).
	bound := c.Interval + time.Duration(c.Fall-1)*c.Interval + time.Duration(c.Fall*(1+maxLateRetries))*final.MaxTook + final.MaxLag
	// The lag the checker reports bounds what it saw: a check's start
	// lag, and its time past the timeout (a check takes at most timeout
	// + lag). So a dead target goes down within fall x interval and
	// fall x (1 + maxLateRetries) checks of timeout + the reported lag
	// each, after its first check's start lag.
	if final.Reported < final.MaxLag || final.Reported < final.MaxTook-c.Timeout {
		t.Errorf("reported lag %v, yet a check started %v late and one took %v (timeout %v)", final.Reported, final.MaxLag, final.MaxTook, c.Timeout)
	}
	reportedBound := time.Duration(c.Fall)*c.Interval + time.Duration(c.Fall*(1+maxLateRetries))*(c.Timeout+final.Reported) + final.Reported
	var lateHealthy uint64
	for a, n := range final.LateBy {
		if !isDead[a] {
			lateHealthy += n
		}
	}
	t.Logf("%v with %v of CPU every %v (half of the %v the checks took in %v without a quota): %d checks of %d targets, %d late failures retried (%d of healthy targets), max dispatch lag %v, longest check %v, reported lag up to %v; false downs %d; dead targets down after %v (bound %v, from the reported lag %v)",
		d, quota, period, cpu, calib, final.Checks, len(healthy)+len(dead), final.Late, lateHealthy, final.MaxLag, final.MaxTook, final.Reported, len(falseDowns), downAt, bound, reportedBound)
	for _, e := range falseDowns {
		t.Errorf("healthy target %s reported down at %v: %s", e.Target, e.At, e.Reason)
	}
	for _, a := range dead {
		at, ok := downAt[a]
		switch {
		case !ok:
			t.Errorf("dead target %s never reported down", a)
		case at > bound:
			t.Errorf("dead target %s down after %v, bound %v", a, at, bound)
		case at > reportedBound:
			t.Errorf("dead target %s down after %v, later than fall x interval + its checks' timeouts + the reported lag (%v)", a, at, reportedBound)
		}
	}
	if final.Late == 0 {
		t.Errorf("no late failure retried: the quota did not starve the checker (the test shows nothing)")
	}
}
