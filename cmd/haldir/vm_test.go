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
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// The daemon-level VM tests run the real haldir binary, built statically,
// as a process in director1 of the standard lab inside the lab VM (real
// IPVS), with HTTP backends on the three real servers and traffic from the
// client namespace.

// vmHaldirEnv passes the haldir binary's path into the VM.
const vmHaldirEnv = "HALDIR_VMTEST_HALDIR"

// vmGuestHaldir is where the VM finds the binary (a directory vminit does
// not mount over).
const vmGuestHaldir = "/haldir-vm/bin/haldir"

// Health check timing of the test configuration. timeout must not exceed
// interval (conf rejects it), so the bound fall × interval +
// timeout is 2 × 500ms + 400ms = 1.4s. A 200ms timeout was too short for
// CI: with the whole suite running, the TCG guest stalls long enough that
// healthy real servers missed it together and the service lost quorum.
const (
	vmCheckInterval = 500 * time.Millisecond
	vmCheckTimeout  = 400 * time.Millisecond
	vmCheckFall     = 2
	// vmTCGMargin is added to the bound: the guest runs under
	// qemu's TCG on a shared 2-core host, where the daemon, the checker's
	// timers and this test's poller all run several times slower than on
	// hardware and the whole VM can be descheduled for a while.
	vmTCGMargin = 1200 * time.Millisecond
)

var (
	vmVIP   = netip.AddrPortFrom(lab.VIP4, 80)
	vmReals = [3]netip.AddrPort{
		netip.MustParseAddrPort("10.0.1.21:80"),
		netip.MustParseAddrPort("10.0.1.22:80"),
		netip.MustParseAddrPort("10.0.1.23:80"),
	}
	vmClientAddr = netip.MustParseAddr("192.0.2.100")
)

// vmConfig is director1's configuration; weight1 is real1's weight.
func vmConfig(sock string, weight1 int) string {
	return fmt.Sprintf(`[global]
router_id = "director1"
control_socket = %q
state_dir = %q
metrics_listen = %q

[[virtual_server]]
name = "web"
address = %q
port = %d
protocol = "tcp"
scheduler = "rr"
forwarding = "nat"

[virtual_server.check]
type = "http"
path = "/"
interval = %q
timeout = %q
rise = 1
fall = %d

[[virtual_server.real_server]]
name = "real1"
address = %q
weight = %d

[[virtual_server.real_server]]
name = "real2"
address = %q

[[virtual_server.real_server]]
name = "real3"
address = %q
`, sock, filepath.Join(filepath.Dir(sock), "state"), vmMetrics, vmVIP.Addr(), vmVIP.Port(), vmCheckInterval, vmCheckTimeout, vmCheckFall,
		vmReals[0].Addr(), weight1, vmReals[1].Addr(), vmReals[2].Addr())
}

// TestVMDaemon runs haldir as a daemon against the real IPVS: health checks
// drive the table, a restart keeps connections and writes nothing, a reload
// of one weight is one write, and a broken reload changes nothing. The
// subtests share one VM boot, one lab and one daemon, in order.
func TestVMDaemon(t *testing.T) {
	lab.SkipIfNotRoot(t)
	haldir := os.Getenv(vmHaldirEnv)
	if !vm.InVM() {
		haldir = lab.BuildHaldir(t)
	}
	if vm.RunInVMWith(t, vm.Options{
		Files:   []vm.File{{Host: haldir, Guest: vmGuestHaldir}},
		Env:     []string{vmHaldirEnv + "=" + vmGuestHaldir},
		Timeout: 4 * time.Minute,
	}) {
		return
	}
	if haldir == "" {
		t.Fatalf("%s is not set inside the VM", vmHaldirEnv)
	}
	f := newVMFixture(t, haldir)
	f.startDaemon(t)
	f.waitSettled(t, "first start")

	t.Run("health check drives IPVS", f.testHealth)
	t.Run("restart keeps connections and writes nothing", f.testRestart)
	t.Run("reload of one weight is one write", f.testReloadWeight)
	t.Run("broken reload changes nothing", f.testBrokenReload)
	t.Run("kernel counters in metrics", f.testIPVSMetrics)
}

// vmMetrics is where director1's daemon serves metrics, in its namespace.
const vmMetrics = "127.0.0.1:9977"

// testIPVSMetrics sends requests through the VIP and reads the daemon's
// metrics: the kernel's counters of the service and of each real server,
// with the node exporter's labels, count them.
func (f *vmFixture) testIPVSMetrics(t *testing.T) {
	scrape := func() string {
		t.Helper()
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return f.s.Director1.Dial(ctx, network, addr)
			},
		}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("http://" + vmMetrics + "/metrics")
		if err != nil {
			t.Fatalf("scraping the daemon: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	value := func(text, series string) float64 {
		t.Helper()
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, series+" "); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", l, err)
				}
				return x
			}
		}
		t.Fatalf("no series %s in the metrics", series)
		return 0
	}
	svc := fmt.Sprintf(`{local_address=%q,local_mark="",local_port="%d",proto="TCP"}`, vmVIP.Addr(), vmVIP.Port())
	before := scrape()
	if up := value(before, "haldir_ipvs_stats_up"); up != 1 {
		t.Fatalf("haldir_ipvs_stats_up %v", up)
	}
	conns0 := value(before, "haldir_ipvs_service_connections_total"+svc)
	const requests = 20
	for i := range requests {
		resp, err := f.hc.Get("http://" + vmVIP.String() + "/")
		if err != nil {
			t.Fatalf("request %d through the VIP: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The kernel sums its per-CPU counters into what it reports every
	// 2 s (its rate estimator's period), as ipvsadm --stats shows too.
	var after string
	poll.UntilEvery(t, 10*time.Second, 200*time.Millisecond, fmt.Sprintf("the service's connection counter to grow by %d", requests), func() (bool, any) {
		after = scrape()
		d := value(after, "haldir_ipvs_service_connections_total"+svc) - conns0
		return d >= requests, fmt.Sprintf("grew by %v", d)
	})
	for _, m := range []string{"haldir_ipvs_service_incoming_packets_total", "haldir_ipvs_service_incoming_bytes_total", "haldir_ipvs_connections_total"} {
		series := m
		if strings.Contains(m, "service") {
			series += svc
		}
		if v := value(after, series); v <= 0 {
			t.Errorf("%s is %v after %d requests", series, v, requests)
		}
	}
	// The IPVS-wide counters (/proc/net/ip_vs_stats) hold this service's.
	if all, one := value(after, "haldir_ipvs_connections_total"), value(after, "haldir_ipvs_service_connections_total"+svc); all < one {
		t.Errorf("haldir_ipvs_connections_total %v below the service's %v", all, one)
	}
	var total float64
	var sample []string
	for _, r := range vmReals {
		series := fmt.Sprintf(`{local_address=%q,local_mark="",local_port="%d",proto="TCP",remote_address=%q,remote_port="%d"}`,
			vmVIP.Addr(), vmVIP.Port(), r.Addr(), r.Port())
		total += value(after, "haldir_ipvs_backend_connections_total"+series)
		value(after, "haldir_ipvs_backend_connections_inactive"+series)
		sample = append(sample, "haldir_ipvs_backend_connections_total"+series+" "+strconv.FormatFloat(value(after, "haldir_ipvs_backend_connections_total"+series), 'f', -1, 64))
	}
	if total < requests {
		t.Errorf("the real servers' connection counters add up to %v for %d requests", total, requests)
	}
	t.Logf("a scrape after %d requests:\nhaldir_ipvs_service_connections_total%s %v\n%s", requests, svc,
		value(after, "haldir_ipvs_service_connections_total"+svc), strings.Join(sample, "\n"))
}

// vmFixture is the lab, the backends and the daemon the subtests share.
type vmFixture struct {
	haldir string
	s      *lab.Standard
	k      *ipvs.Client // director1's IPVS, read by the test
	dir    string
	conf   string // configuration file
	sock   string // control socket
	back   [3]*vmBackend
	srv    [3]*lab.HTTPServer
	hc     *http.Client // client namespace, one connection per request
	proc   *lab.Proc    // the running daemon
}

func newVMFixture(t *testing.T, haldir string) *vmFixture {
	s := lab.NewStandardT(t, lab.StandardOptions{})
	f := &vmFixture{haldir: haldir, s: s}
	// No VRRP here: director1 holds the VIP and the real servers' gateway
	// itself, so only the director and the health checks are under test.
	for _, a := range []struct {
		iface string
		p     string
	}{{"eth0", "192.0.2.1/24"}, {"eth1", "10.0.1.1/24"}} {
		if err := s.Director1.AddAddr(a.iface, netip.MustParsePrefix(a.p)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range s.Real {
		f.back[i] = &vmBackend{name: r.Name()}
		t.Cleanup(f.back[i].release)
		f.serve(t, i)
	}
	// A unix socket path must fit sun_path (108 bytes): t.TempDir's long
	// names may not.
	dir, err := os.MkdirTemp("", "hd-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f.dir = dir
	f.conf = filepath.Join(dir, "haldir.toml")
	f.sock = filepath.Join(dir, "haldir.sock")
	f.writeConf(t, vmConfig(f.sock, 1))
	k, err := ipvs.Open(s.Director1.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	f.k = k
	f.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return s.Client.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	t.Cleanup(f.hc.CloseIdleConnections)
	return f
}

// serve starts real server i's web server.
func (f *vmFixture) serve(t *testing.T, i int) {
	t.Helper()
	srv, err := f.s.Real[i].ServeHTTP(":80", f.back[i])
	if err != nil {
		t.Fatal(err)
	}
	f.srv[i] = srv
}

func (f *vmFixture) writeConf(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(f.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs `haldir run` in director1 and waits until its control
// socket answers.
func (f *vmFixture) startDaemon(t *testing.T) {
	t.Helper()
	p, err := f.s.Director1.Start(context.Background(), []string{f.haldir, "run", "-c", f.conf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.proc = p
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`msg="control socket ready"`)); err != nil {
		t.Fatalf("haldir did not start: %v\n%s", err, p.Output())
	}
}

// logTransitions logs, when the test ends, the health transitions and
// warnings the daemon logged meanwhile: what the checker saw, for the
// measured times and for any failure.
func (f *vmFixture) logTransitions(t *testing.T) {
	p, after := f.proc, f.proc.LastSeq()
	t.Cleanup(func() {
		var b strings.Builder
		for _, l := range p.Lines() {
			if l.Seq > after && vmInteresting.MatchString(l.Text) {
				fmt.Fprintf(&b, "%s %s\n", l.Time.Format("15:04:05.000"), l.Text)
			}
		}
		t.Logf("haldir meanwhile:\n%s", b.String())
	})
}

var vmInteresting = regexp.MustCompile(`health transition|level=(WARN|ERROR)`)

// stopDaemon sends SIGTERM and expects a clean exit.
func (f *vmFixture) stopDaemon(t *testing.T) {
	t.Helper()
	p := f.proc
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to haldir: %v\n%s", err, p.Output())
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("haldir still running 20s after SIGTERM\n%s", p.Output())
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("haldir exited with %v after SIGTERM\n%s", err, p.Output())
	}
}

// requireRunning fails the test when the daemon has exited.
func (f *vmFixture) requireRunning(t *testing.T) {
	t.Helper()
	select {
	case <-f.proc.Done():
		t.Fatalf("haldir exited (%v)\n%s", f.proc.Wait(), f.proc.Output())
	default:
	}
}

// haldirCmd runs a haldir subcommand in director1 and returns its output
// and exit status.
func (f *vmFixture) haldirCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := f.s.Director1.Start(ctx, append([]string{f.haldir}, args...), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("haldir %s: %v\n%s", strings.Join(args, " "), err, p.Output())
	}
	return p.Stdout(), p.Stderr(), code
}

// vmStatus is the part of `haldir status --json` (docs/api.md) the tests
// read.
type vmStatus struct {
	ConfigLoaded time.Time `json:"config_loaded"`
	Director     *struct {
		Passes       uint64            `json:"passes"`
		FailedPasses uint64            `json:"failed_passes"`
		Writes       map[string]uint64 `json:"writes"`
		Errors       []struct {
			Op     string `json:"op"`
			Reason string `json:"reason"`
			Count  uint64 `json:"count"`
		} `json:"errors"`
	} `json:"director"`
	Services []struct {
		Name  string `json:"name"`
		Reals []struct {
			Name             string         `json:"name"`
			Addr             netip.AddrPort `json:"address"`
			Healthy          bool           `json:"healthy"`
			ConfiguredWeight int            `json:"configured_weight"`
			KernelWeight     int            `json:"kernel_weight"`
			InKernel         bool           `json:"in_kernel"`
		} `json:"real_servers"`
	} `json:"virtual_servers"`
	Probes []struct {
		Key    string `json:"key"`
		Up     bool   `json:"up"`
		Checks uint64 `json:"checks"`
	} `json:"health_checks"`
}

func (st vmStatus) writes() uint64 {
	var n uint64
	for _, v := range st.Director.Writes {
		n += v
	}
	return n
}

// status asks the daemon through `haldir status --json -s SOCKET`.
func (f *vmFixture) status(t *testing.T) vmStatus {
	t.Helper()
	out, errOut, code := f.haldirCmd(t, "status", "--json", "-s", f.sock)
	if code != 0 {
		t.Fatalf("haldir status --json exit %d: %s", code, errOut)
	}
	var st vmStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("haldir status --json: %v\n%s", err, out)
	}
	if st.Director == nil {
		t.Fatalf("haldir status --json has no director counters:\n%s", out)
	}
	return st
}

// waitSettled waits until the director has made a pass and every probe has
// checked its target at least fall+1 times, all up: from then on, with
// backends and configuration unchanged, nothing may write.
func (f *vmFixture) waitSettled(t *testing.T, what string) vmStatus {
	t.Helper()
	var st vmStatus
	poll.UntilEvery(t, 30*time.Second, 50*time.Millisecond, what+": daemon settled", func() (bool, any) {
		st = f.status(t)
		ok := st.Director.Passes > 0 && len(st.Probes) == len(vmReals)
		for _, p := range st.Probes {
			ok = ok && p.Up && p.Checks > vmCheckFall
		}
		return ok, st
	}, f.proc.Output)
	return st
}

// dump is director1's IPVS table, every service and destination with all
// its configuration (ipvs.Service and ipvs.Destination, which hold no
// counters), sorted, and the IPVS timeouts. Connection counts and
// traffic statistics are left out: they move with traffic and with
// connections expiring, not with what haldir writes.
func (f *vmFixture) dump(t *testing.T) string {
	t.Helper()
	svcs, err := f.k.GetServices()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(svcs, func(a, b ipvs.ServiceInfo) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "%+v\n", s.Service)
		ds, err := f.k.GetDestinations(s.Key)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ds, func(a, b ipvs.DestInfo) int { return a.Addr.Compare(b.Addr) })
		for _, d := range ds {
			fmt.Fprintf(&b, "  %+v\n", d.Destination)
		}
	}
	to, err := f.k.Timeouts()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "timeouts %+v\n", to)
	return b.String()
}

// weights returns the VIP service's destinations and weights in the kernel.
func (f *vmFixture) weights(t *testing.T) map[netip.AddrPort]int {
	t.Helper()
	ds, err := f.k.GetDestinations(ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: vmVIP})
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.AddrPort]int{}
	for _, d := range ds {
		out[d.Addr] = d.Weight
	}
	return out
}

// waitKernel polls director1's IPVS table until ok holds and returns when
// it was first seen to hold.
func (f *vmFixture) waitKernel(t *testing.T, what string, limit time.Duration, ok func(map[netip.AddrPort]int) bool) time.Time {
	t.Helper()
	return poll.Until(t, limit, what, func() (bool, any) {
		w := f.weights(t)
		return ok(w), w
	}, func() string { return "haldir log:\n" + f.proc.Output() })
}

// get makes one request to the VIP on a new connection and returns the
// name of the real server that answered.
func (f *vmFixture) get(ctx context.Context, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return lab.GetName(ctx, f.hc, "http://"+vmVIP.String()+"/")
}

// testHealth: a real server fails its HTTP check, by hanging (accepting
// and never answering, so each check runs into its timeout) or by stopping
// (connections refused), and must stop getting new client connections
// within fall × interval + timeout; once it answers again it returns.
func (f *vmFixture) testHealth(t *testing.T) {
	bound := vmCheckFall*vmCheckInterval + vmCheckTimeout
	for _, tc := range []struct {
		name string
		real int
		// floor is the fastest the failure can be detected: the first
		// probe after it and fall-1 more, an interval apart, fail.
		floor         time.Duration
		fail, restore func(t *testing.T) time.Time
	}{
		{
			name: "hang", real: 1,
			floor:   (vmCheckFall-1)*vmCheckInterval + vmCheckTimeout,
			fail:    func(*testing.T) time.Time { return f.back[1].startHang() },
			restore: func(*testing.T) time.Time { return f.back[1].stopHang() },
		},
		{
			name: "stop", real: 2,
			floor: (vmCheckFall - 1) * vmCheckInterval,
			fail: func(t *testing.T) time.Time {
				t0 := time.Now()
				if err := f.srv[2].Close(); err != nil {
					t.Fatal(err)
				}
				return t0
			},
			restore: func(t *testing.T) time.Time {
				t1 := time.Now()
				f.serve(t, 2)
				return t1
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.checkHealth(t, tc.real, bound, tc.floor, tc.fail, tc.restore)
		})
	}
}

func (f *vmFixture) checkHealth(t *testing.T, i int, bound, floor time.Duration, fail, restore func(*testing.T) time.Time) {
	f.requireRunning(t)
	all := func(w map[netip.AddrPort]int) bool { return len(w) == 3 }
	f.waitKernel(t, "all three real servers in the table", 10*time.Second, all)
	limit := bound + vmTCGMargin
	name, addr := f.back[i].name, vmReals[i]
	f.logTransitions(t)

	p := startVMPoller(f, 25*time.Millisecond)
	defer p.halt()
	// Traffic flows before the failure.
	if err := p.waitOK(20, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	t0 := fail(t)
	removed := f.waitKernel(t, name+" leaving the table", 30*time.Second, func(w map[netip.AddrPort]int) bool {
		_, in := w[addr]
		return !in && len(w) == 2
	})
	// Enough requests after the removal to show where new connections go.
	if err := p.waitOKAfter(removed, 30, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	results := p.halt()

	// New connections that reached the failed server: those it saw (a
	// hanging server records them) and those that failed at the client
	// (refused, or hung until the client gave up); only it fails them.
	var reached []time.Time
	for _, r := range results {
		if r.start.After(t0) && r.err != nil {
			reached = append(reached, r.start)
		}
	}
	reached = append(reached, f.back[i].clientHitsSince(t0)...)
	var lastReach time.Duration
	if len(reached) > 0 {
		lastReach = slices.MaxFunc(reached, time.Time.Compare).Sub(t0)
	}
	removedAfter := removed.Sub(t0)
	t.Logf("measured: %s failed at t0; removed from IPVS after %v (kernel polled every 5ms); last new client connection reached it %v after t0 (%d did); bound fall×interval+timeout = %v + %v TCG margin; floor %v",
		name, removedAfter.Round(time.Millisecond), lastReach.Round(time.Millisecond), len(reached), bound, vmTCGMargin, floor)
	if removedAfter > limit {
		t.Errorf("%s left the IPVS table %v after it failed, want within %v (%v + %v margin)", name, removedAfter, limit, bound, vmTCGMargin)
	}
	// A probe already in flight at t0 may count as the first failure, so
	// the floor is loose by the time such a probe can be under way.
	if removedAfter < floor-100*time.Millisecond {
		t.Errorf("%s left the IPVS table %v after it failed, before %d checks could fail (%v): fall, interval or timeout is not honoured", name, removedAfter, vmCheckFall, floor)
	}
	if lastReach > limit {
		t.Errorf("a new client connection reached failed %s %v after it failed, want none after %v (%v + %v margin)", name, lastReach, limit, bound, vmTCGMargin)
	}
	var after, bad int
	for _, r := range results {
		if !r.start.After(removed) {
			continue
		}
		after++
		if r.err != nil || r.who == name || r.who == "" {
			bad++
			t.Errorf("request started %v after %s's removal: answered by %q, error %v", r.start.Sub(removed), name, r.who, r.err)
		}
	}
	if after == 0 || bad > 0 {
		t.Errorf("%d of %d requests after %s's removal failed or reached it", bad, after, name)
	}

	// It answers again: rise 1 brings it back at its next check.
	t1 := restore(t)
	back := f.waitKernel(t, name+" back in the table", 30*time.Second, all)
	backAfter := back.Sub(t1)
	t.Logf("measured: %s back in IPVS %v after it answered again (rise 1, interval %v)", name, backAfter.Round(time.Millisecond), vmCheckInterval)
	if lim := vmCheckInterval + vmCheckTimeout + vmTCGMargin; backAfter > lim {
		t.Errorf("%s back %v after it answered again, want within %v", name, backAfter, lim)
	}
	// rr over three: each answers one of every three new connections.
	tally := map[string]int{}
	for range 6 {
		who, err := f.get(context.Background(), 5*time.Second)
		if err != nil {
			t.Fatalf("request after %s's return: %v", name, err)
		}
		tally[who]++
	}
	for _, b := range f.back {
		if tally[b.name] != 2 {
			t.Errorf("6 requests after %s's return went %v, want 2 each (rr)", name, tally)
			break
		}
	}
}

// testRestart: an established connection through the VIP survives a
// SIGTERM and a new start of haldir with the same file, and the new
// daemon adopts the table without a single write.
func (f *vmFixture) testRestart(t *testing.T) {
	f.requireRunning(t)
	lc, who := f.openLong(t)
	before := f.dump(t)

	f.stopDaemon(t)
	// The kernel carries the connection while no daemon runs at all.
	if got, err := lc.Get(5 * time.Second); err != nil || got != who {
		t.Fatalf("long connection while haldir is stopped: answered by %q, error %v (want %q)", got, err, who)
	}
	if mid := f.dump(t); mid != before {
		t.Errorf("stopping haldir changed the IPVS table:\nbefore:\n%s\nafter stop:\n%s", before, mid)
	}

	start := time.Now()
	f.startDaemon(t)
	st := f.waitSettled(t, "restart")
	t.Logf("measured: restarted haldir settled (a pass and %d+ checks per real server) %v after start; director passes %d, writes %v, errors %v",
		vmCheckFall+1, time.Since(start).Round(time.Millisecond), st.Director.Passes, st.Director.Writes, st.Director.Errors)
	if n := st.writes(); n != 0 {
		t.Errorf("restarted haldir made %d netlink writes %v, want 0\n%s", n, st.Director.Writes, f.proc.Output())
	}
	if len(st.Director.Errors) != 0 || st.Director.FailedPasses != 0 {
		t.Errorf("restarted haldir counts errors %v, %d failed passes", st.Director.Errors, st.Director.FailedPasses)
	}
	for i := range 3 {
		if got, err := lc.Get(5 * time.Second); err != nil || got != who {
			t.Fatalf("long connection request %d after the restart: answered by %q, error %v (want %q)", i+1, got, err, who)
		}
	}
	if after := f.dump(t); after != before {
		t.Errorf("the restart changed the IPVS table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// testReloadWeight: `haldir reload` after real1's weight changed in the
// file is exactly one destination update, and the kernel has the weight.
func (f *vmFixture) testReloadWeight(t *testing.T) {
	f.requireRunning(t)
	st0 := f.waitSettled(t, "before the reload")
	f.writeConf(t, vmConfig(f.sock, 3))
	out, errOut, code := f.haldirCmd(t, "reload", "-s", f.sock)
	if code != 0 || strings.TrimSpace(out) != "reloaded" {
		t.Fatalf("haldir reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f.waitKernel(t, "real1 at weight 3", 10*time.Second, func(w map[netip.AddrPort]int) bool {
		return w[vmReals[0]] == 3 && w[vmReals[1]] == 1 && w[vmReals[2]] == 1
	})
	// The pass that wrote it counts the write; wait for the counters.
	deadline := time.Now().Add(10 * time.Second)
	var st vmStatus
	for {
		st = f.status(t)
		if st.writes() > st0.writes() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	delta := map[string]uint64{}
	for k, v := range st.Director.Writes {
		if d := v - st0.Director.Writes[k]; d != 0 {
			delta[k] = d
		}
	}
	t.Logf("measured: reload of one weight wrote %v", delta)
	if want := map[string]uint64{string(ipvs.OpUpdDest): 1}; !maps.Equal(delta, want) {
		t.Errorf("reload of one weight wrote %v, want %v", delta, want)
	}
	for _, s := range st.Services {
		for _, r := range s.Reals {
			if r.Addr == vmReals[0] && (r.ConfiguredWeight != 3 || r.KernelWeight != 3) {
				t.Errorf("status after the reload: real1 configured weight %d, kernel weight %d, want 3 and 3", r.ConfiguredWeight, r.KernelWeight)
			}
		}
	}
}

// testBrokenReload: `haldir reload` of a file with a type error exits 1
// naming file:line, and the daemon keeps its configuration and the kernel
// its table, without a write.
func (f *vmFixture) testBrokenReload(t *testing.T) {
	f.requireRunning(t)
	good := vmConfig(f.sock, 3)
	if err := os.WriteFile(f.conf, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	st0 := f.waitSettled(t, "before the broken reload")
	before := f.dump(t)

	broken := strings.Replace(good, "weight = 3", `weight = "three"`, 1)
	if broken == good {
		t.Fatal("test bug: no weight line to break")
	}
	line := 0
	for i, l := range strings.Split(broken, "\n") {
		if strings.Contains(l, `"three"`) {
			line = i + 1
		}
	}
	f.writeConf(t, broken)
	out, errOut, code := f.haldirCmd(t, "reload", "-s", f.sock)
	t.Logf("haldir reload of the broken file: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	if code != exitInvalid {
		t.Errorf("haldir reload of a broken file: exit %d, want %d", code, exitInvalid)
	}
	if want := fmt.Sprintf("%s:%d: virtual_server[0].real_server[0].weight", f.conf, line); !strings.Contains(errOut, want) {
		t.Errorf("haldir reload's errors lack %q:\n%s", want, errOut)
	}
	f.requireRunning(t)
	st := f.status(t)
	if !st.ConfigLoaded.Equal(st0.ConfigLoaded) {
		t.Errorf("config loaded at %v before the broken reload, %v after: it replaced the running configuration", st0.ConfigLoaded, st.ConfigLoaded)
	}
	for _, s := range st.Services {
		for _, r := range s.Reals {
			if r.Addr == vmReals[0] && r.ConfiguredWeight != 3 {
				t.Errorf("after the broken reload real1's configured weight is %d, want the running 3", r.ConfiguredWeight)
			}
		}
	}
	if n, n0 := st.writes(), st0.writes(); n != n0 {
		t.Errorf("the broken reload made %d netlink writes (%v -> %v)", n-n0, st0.Director.Writes, st.Director.Writes)
	}
	if after := f.dump(t); after != before {
		t.Errorf("the broken reload changed the IPVS table:\nbefore:\n%s\nafter:\n%s", before, after)
	} else {
		t.Logf("IPVS table unchanged by the broken reload:\n%s", after)
	}
}

// ---- backends ----

// vmBackend is a real server's HTTP handler: it answers with its name, or
// hangs while told to, and records when client connections reach it.
type vmBackend struct {
	name string
	hang atomic.Pointer[chan struct{}] // closed to end the hang

	mu   sync.Mutex
	hits []time.Time // requests from the client namespace
}

func (b *vmBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr() == vmClientAddr {
		b.mu.Lock()
		b.hits = append(b.hits, time.Now())
		b.mu.Unlock()
	}
	if ch := b.hang.Load(); ch != nil {
		select {
		case <-*ch:
		case <-r.Context().Done():
		}
		// A hung request never gets an answer: drop the connection.
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, b.name)
}

// startHang makes every request hang from now on.
func (b *vmBackend) startHang() time.Time {
	ch := make(chan struct{})
	b.hang.Store(&ch)
	return time.Now()
}

// stopHang answers requests again (hung ones are dropped).
func (b *vmBackend) stopHang() time.Time {
	b.release()
	return time.Now()
}

func (b *vmBackend) release() {
	if ch := b.hang.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (b *vmBackend) clientHitsSince(t0 time.Time) []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Time
	for _, h := range b.hits {
		if h.After(t0) {
			out = append(out, h)
		}
	}
	return out
}

// ---- client traffic ----

type vmResult struct {
	start, end time.Time
	who        string
	err        error
}

// vmPoller starts a new request to the VIP every period, each on its own
// connection and goroutine, so a hung one does not delay the next.
type vmPoller struct {
	stop    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []vmResult
	once    sync.Once
}

const (
	vmPollMax     = 2400             // requests at most
	vmPollFor     = 60 * time.Second // for at most this long
	vmPollTimeout = 2 * time.Second  // per request
)

func startVMPoller(f *vmFixture, period time.Duration) *vmPoller {
	p := &vmPoller{stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(p.done)
		defer cancel()
		tick := time.NewTicker(period)
		defer tick.Stop()
		end := time.After(vmPollFor)
		for range vmPollMax {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				r := vmResult{start: time.Now()}
				r.who, r.err = f.get(ctx, vmPollTimeout)
				r.end = time.Now()
				p.mu.Lock()
				p.results = append(p.results, r)
				p.mu.Unlock()
			}()
			select {
			case <-p.stop:
				p.wg.Wait()
				return
			case <-end:
				p.wg.Wait()
				return
			case <-tick.C:
			}
		}
		p.wg.Wait()
	}()
	return p
}

// halt stops the poller, waits for requests in flight and returns every
// result in start order.
func (p *vmPoller) halt() []vmResult {
	p.once.Do(func() { close(p.stop) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := slices.Clone(p.results)
	slices.SortFunc(rs, func(a, b vmResult) int { return a.start.Compare(b.start) })
	return rs
}

// waitOK waits until n requests succeeded.
func (p *vmPoller) waitOK(n int, limit time.Duration) error {
	return p.waitOKAfter(time.Time{}, n, limit)
}

// waitOKAfter waits until n requests started after t succeeded.
func (p *vmPoller) waitOKAfter(t time.Time, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		ok, failed := 0, 0
		for _, r := range p.results {
			if r.start.After(t) {
				if r.err == nil {
					ok++
				} else {
					failed++
				}
			}
		}
		p.mu.Unlock()
		if ok >= n {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("poller ended with %d of %d requests ok (%d failed)", ok, n, failed)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d requests ok after %v (%d failed)", ok, n, limit, failed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openLong opens a keep-alive connection to the VIP and makes a first
// request on it.
func (f *vmFixture) openLong(t *testing.T) (*lab.KeepAlive, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lc, who, err := f.s.Client.DialKeepAlive(ctx, vmVIP.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.Close() })
	return lc, who
}
