package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

type fakeDaemon struct {
	st      Status
	errs    []string
	err     error
	reloads atomic.Int32
}

func (f *fakeDaemon) Status() Status { return f.st }
func (f *fakeDaemon) Reload() ([]string, error) {
	f.reloads.Add(1)
	return f.errs, f.err
}

func sampleStatus() Status {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	r1 := netip.MustParseAddrPort("10.0.0.21:8080")
	return Status{
		Version: "1.2.3", RouterID: "lvs-a", ConfigPath: "/etc/haldir/haldir.toml",
		Started: t0, ConfigLoaded: t0.Add(time.Minute),
		VRRP: []vrrp.Status{{Name: "VI_1", State: vrrp.StateMaster, Priority: 150, BasePriority: 150,
			MasterAddr: netip.MustParseAddr("192.0.2.2"), MasterInterval: time.Second, AdvertsSent: 7,
			Drops: map[string]uint64{"bad_ttl": 2}, Ignored: map[string]uint64{"lower_priority": 1}, LastChange: t0}},
		Services: []director.ServiceStatus{{Name: "web", Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: vip},
			Scheduler: "wlc", InKernel: true, QuorumUp: true, AliveWeight: 1, Quorum: 1,
			Stats: ipvs.Stats{Conns: 10, BytesIn: 1000},
			Reals: []director.RealStatus{{Addr: r1, Checked: true, Healthy: true, HealthKnown: true,
				ConfiguredWeight: 1, EffectiveWeight: 1, InKernel: true, KernelWeight: 1, ActiveConns: 3}}}},
		Foreign: []ipvs.ServiceKey{{Fwmark: 7, V6: true}},
		Director: &director.Counters{Passes: 4, Writes: map[ipvs.OpKind]uint64{ipvs.OpNewDest: 2},
			Errors: map[director.ErrorKey]uint64{{Op: ipvs.OpNewDest, Reason: "EEXIST"}: 1}},
		Probes: []healthcheck.ProbeStatus{{Key: "k", Target: healthcheck.Target{Addr: r1,
			Check: &conf.CheckSpec{Kind: conf.CheckHTTP, Interval: time.Second, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/", ExpectStatus: conf.StatusCodes{{Lo: 200, Hi: 299}}}}}}},
			Up: true, Reason: "HTTP 200", Since: t0, Checks: 9,
			History: []healthcheck.Result{{Up: true, Reason: "HTTP 200", Start: t0, Took: time.Millisecond}}}},
		NotRunning: map[string]string{"sync": "not configured"},
		VirtualServers: []conf.VirtualServer{{Name: "web", Address: vip.Addr(), Port: 80, Protocol: "tcp", Scheduler: "wlc",
			Forwarding: "dr", PersistenceTimeout: conf.Duration(5 * time.Minute),
			RealServers: []conf.RealServer{{Address: r1.Addr(), Port: 8080, Weight: 1, Forwarding: "dr",
				Check: &conf.Check{Type: "http", Path: "/healthz", ExpectStatus: conf.StatusCodes{{Lo: 200, Hi: 299}}}}}}},
	}
}

// startServer listens on a fresh socket and serves until the test ends.
func startServer(t *testing.T, path string, d Daemon) *Server {
	t.Helper()
	s, err := Listen(path, d, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func TestStatusRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "haldir.sock")
	d := &fakeDaemon{st: sampleStatus()}
	startServer(t, path, d)

	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created parent dir mode = %v, want 0700", di.Mode().Perm())
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(m) > 0 {
		t.Errorf("temporary socket names left behind: %v", m)
	}

	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := sampleStatus()
	// Times lose their monotonic reading and location pointer in JSON.
	if !got.Started.Equal(want.Started) {
		t.Errorf("Started = %v, want %v", got.Started, want.Started)
	}
	got.Started, want.Started = time.Time{}, time.Time{}
	got.ConfigLoaded, want.ConfigLoaded = time.Time{}, time.Time{}
	got.VRRP[0].LastChange, want.VRRP[0].LastChange = time.Time{}, time.Time{}
	got.Probes[0].Since, want.Probes[0].Since = time.Time{}, time.Time{}
	got.Probes[0].History[0].Start, want.Probes[0].History[0].Start = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestReload(t *testing.T) {
	for _, tc := range []struct {
		name       string
		errs       []string
		err        error
		wantStatus int
		wantErrs   []string
	}{
		{name: "ok"},
		{name: "invalid", errs: []string{"a.toml:3: vrrp[0].vrid: must be 1..255", "a.toml:9: virtual_server[0].port: required"},
			wantStatus: 422, wantErrs: []string{"a.toml:3: vrrp[0].vrid: must be 1..255", "a.toml:9: virtual_server[0].port: required"}},
		{name: "unreadable", err: errors.New("open a.toml: permission denied"),
			wantStatus: 500, wantErrs: []string{"open a.toml: permission denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "haldir.sock")
			d := &fakeDaemon{errs: tc.errs, err: tc.err}
			startServer(t, path, d)
			c, err := Dial(path)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Reload(context.Background())
			if d.reloads.Load() != 1 {
				t.Errorf("daemon reloads = %d, want 1", d.reloads.Load())
			}
			if tc.wantErrs == nil {
				if err != nil {
					t.Fatalf("Reload: %v", err)
				}
				return
			}
			re, ok := errors.AsType[*ReloadError](err)
			if !ok {
				t.Fatalf("Reload error = %v (%T), want *ReloadError", err, err)
			}
			if re.Status != tc.wantStatus || !reflect.DeepEqual(re.Errors, tc.wantErrs) {
				t.Errorf("ReloadError = %d %q, want %d %q", re.Status, re.Errors, tc.wantStatus, tc.wantErrs)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Error("a refused reload must not count as unreachable")
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	d := &fakeDaemon{st: sampleStatus()}
	startServer(t, path, d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c, err := Dial(path)
			if err != nil {
				t.Error(err)
				return
			}
			for range 5 {
				if st, err := c.Status(context.Background()); err != nil || st.RouterID != "lvs-a" {
					t.Errorf("Status = %q, %v", st.RouterID, err)
				}
				if err := c.Reload(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := d.reloads.Load(); n != 40 {
		t.Errorf("reloads = %d, want 40", n)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	// A crashed daemon leaves its socket file behind with nobody listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file should exist: %v", err)
	}
	if _, err := Dial(path); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "nothing answers") {
		t.Errorf("Dial on a stale socket = %v, want unreachable/nothing answers", err)
	}
	startServer(t, path, &fakeDaemon{st: Status{RouterID: "new"}})
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(context.Background()); err != nil || st.RouterID != "new" {
		t.Errorf("Status after replacing the stale socket = %q, %v", st.RouterID, err)
	}
}

func TestLiveSocketNotStolen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	startServer(t, path, &fakeDaemon{st: Status{RouterID: "first"}})

	s2, err := Listen(path, &fakeDaemon{st: Status{RouterID: "second"}}, nil)
	if err == nil {
		s2.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	want := "another haldir is running (control socket " + path + " answers)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(context.Background()); err != nil || st.RouterID != "first" {
		t.Errorf("first daemon after the failed takeover: %q, %v", st.RouterID, err)
	}
}

func TestNotASocketKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, &fakeDaemon{}, nil); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("Listen over a regular file = %v, want a not-a-socket error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Errorf("regular file was touched: %q", b)
	}
}

func TestCloseRemovesOnlyOwnSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	s, err := Listen(path, &fakeDaemon{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want removed", err)
	}
	// Close after a successor took the path must leave the successor alone.
	s1, err := Listen(path, &fakeDaemon{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	s2 := startServer(t, path, &fakeDaemon{})
	s1.Close()
	if _, err := os.Lstat(s2.Path()); err != nil {
		t.Errorf("successor's socket removed by the old server's Close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.sock")
	_, err := Dial(missing)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "haldir is not running? no control socket at "+missing) {
		t.Errorf("Dial(missing) = %v", err)
	}
}

// TestDialPermissionDenied dials a 0600 root socket as another user: as
// nobody in a child process when we are root (root bypasses the mode),
// else as ourselves after removing every permission bit.
func TestDialPermissionDenied(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haldir.sock")
	startServer(t, path, &fakeDaemon{})
	if os.Geteuid() != 0 {
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := Dial(path); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "permission denied on control socket "+path) {
			t.Errorf("Dial on a 0000 socket = %v", err)
		}
		return
	}
	// nobody must reach the socket's directory and run a copy of this
	// test binary, which lives in a root-only build directory.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperDialAsOtherUser$", "-test.v")
	cmd.Env = append(os.Environ(), "HALDIR_TEST_DIAL="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	want := "DIAL: permission denied on control socket " + path
	if !strings.Contains(string(out), want) {
		t.Errorf("helper output lacks %q:\n%s", want, out)
	}
}

// TestHelperDialAsOtherUser runs only as TestDialPermissionDenied's child.
func TestHelperDialAsOtherUser(t *testing.T) {
	path := os.Getenv("HALDIR_TEST_DIAL")
	if path == "" {
		t.Skip("helper process of TestDialPermissionDenied")
	}
	_, err := Dial(path)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Dial = %v, want an unreachable error", err)
	}
	fmt.Println("DIAL:", err)
}

func TestServeStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	s, err := Listen(path, &fakeDaemon{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	if _, err := Dial(path); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after stop: %v, want removed", err)
	}
}

func TestPathTooLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), strings.Repeat("x", 120)+".sock")
	_, err := Listen(path, &fakeDaemon{}, nil)
	if err == nil || !strings.Contains(err.Error(), "unix sockets allow at most 107") {
		t.Errorf("Listen on a %d-byte path = %v", len(path), err)
	}
}
