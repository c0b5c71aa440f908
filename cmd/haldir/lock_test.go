package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/daemon"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

func TestLockPath(t *testing.T) {
	for _, tc := range []struct{ socket, want string }{
		{"/run/haldir/haldir.sock", "/run/haldir/haldir.lock"},
		{"/var/tmp/x/director1.sock", "/var/tmp/x/director1.lock"},
		{"/var/tmp/x/ctl", "/var/tmp/x/ctl.lock"},
		// No control socket is no excuse to run twice.
		{"", "/run/haldir/haldir.lock"},
	} {
		if got := lockPath(tc.socket); got != tc.want {
			t.Errorf("lockPath(%q) = %q, want %q", tc.socket, got, tc.want)
		}
	}
}

// TestAcquireLock: the second taker is refused with the file and the
// holder's pid; after release the lock is free again. flock locks belong to
// the open file, so two opens in one process exclude each other as two
// processes do.
func TestAcquireLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "haldir.lock")
	l1, err := acquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q (%v), want the pid %d", b, err, os.Getpid())
	}
	_, err = acquireLock(path)
	if !errors.Is(err, errLocked) {
		t.Fatalf("second lock: %v, want errLocked", err)
	}
	if want := fmt.Sprintf("%s is locked (pid %d)", path, os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	l1.release()
	l2, err := acquireLock(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.release()
}

// TestSecondRunChangesNothing runs a master for VI_1 in a namespace, then a
// second `haldir run` with the same file: it must exit 1 naming the lock
// before it touches anything. The master keeps its VIP and its state, no
// notify command runs, and the first daemon still serves metrics.
func TestSecondRunChangesNothing(t *testing.T) {
	l := lab.RoutersT(t, "haldir-second-run", 1)
	r1 := l.Host("r1")
	dir := t.TempDir()
	notifyLog := filepath.Join(dir, "notify.log")
	// A free port for metrics: both daemons are told to use it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	notify := func(what string) string {
		return fmt.Sprintf(`["/bin/sh", "-c", "echo %s >> %s"]`, what, notifyLog)
	}
	path := writeFile(t, fmt.Sprintf(`[global]
router_id = "r1"
control_socket = %q
state_dir = %q
metrics_listen = %q

[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.100/24"]
notify_master = %s
notify_backup = %s
notify_fault = %s
notify_stop = %s
`, filepath.Join(dir, "haldir.sock"), filepath.Join(dir, "state"), metricsAddr, notify("master"), notify("backup"), notify("fault"), notify("stop")))
	vip := netip.MustParsePrefix("192.0.2.100/24")

	var first *daemon.Daemon
	inLab := func(e *runEnv) {
		e.opts.VRRPDo = r1.Do
		if first == nil {
			e.started = func(d *daemon.Daemon) { first = d }
		}
	}
	sigs := make(chan os.Signal)
	var log1 syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDaemonWith([]string{"-c", path}, &log1, sigs, inLab) }()
	defer func() {
		sigs <- syscall.SIGTERM
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("first daemon did not stop")
		}
	}()
	waitFor(t, &log1, "metrics ready", 1)
	waitFor(t, &log1, `instance=VI_1 from=backup to=master`, 1)
	// Init -> backup -> master has run two notify commands; from here
	// nothing may change.
	const notified = "backup\nmaster\n"
	poll.Until(t, 10*time.Second, fmt.Sprintf("notify log %q", notified), func() (bool, any) {
		b, _ := os.ReadFile(notifyLog)
		return string(b) == notified, string(b)
	}, log1.String)
	hasVIP := func() bool {
		have, err := r1.Addrs("eth0")
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(have, vip)
	}
	if !hasVIP() {
		t.Fatal("master without its VIP")
	}
	logBefore := log1.String()

	var log2 syncBuffer
	if code := runDaemonWith([]string{"-c", path}, &log2, make(chan os.Signal), inLab); code != exitInvalid {
		t.Errorf("second run exit %d, want %d", code, exitInvalid)
	}
	lock := filepath.Join(dir, "haldir.lock")
	for _, want := range []string{"another haldir is running", lock + " is locked", fmt.Sprintf("(pid %d)", os.Getpid())} {
		if !strings.Contains(log2.String(), want) {
			t.Errorf("second run's message lacks %q:\n%s", want, log2.String())
		}
	}
	// The refusal is all it did: no component, socket or listener.
	if n := strings.Count(log2.String(), "\n"); n != 1 || strings.Contains(log2.String(), "vrrp") {
		t.Errorf("second run logged more than its refusal:\n%s", log2.String())
	}

	// Give a stray VIP removal, notify or state change time to show: three
	// adverts' worth of the master's interval, polled.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !hasVIP() {
			t.Fatal("the second run took the master's VIP away")
		}
	}
	if b, _ := os.ReadFile(notifyLog); string(b) != notified {
		t.Errorf("notify log %q after the second run, want %q unchanged", b, notified)
	}
	if st := first.Status().VRRP; len(st) != 1 || st[0].Name != "VI_1" || st[0].State != vrrp.StateMaster {
		t.Errorf("first daemon's VRRP %+v, want VI_1 master", st)
	}
	if after := log1.String(); after != logBefore {
		t.Errorf("first daemon logged during the second run:\n%s", after[len(logBefore):])
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of the first daemon: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `haldir_vrrp_state{state="master",vrrp_instance="VI_1"} 1`) {
		t.Errorf("metrics do not show the master:\n%s", body)
	}
}
