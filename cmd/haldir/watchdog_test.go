package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/daemon"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// notifyRecorder is a daemon's notify function that keeps every message.
type notifyRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *notifyRecorder) notify(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, s)
}

func (r *notifyRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func (r *notifyRecorder) count(msg string) int {
	n := 0
	for _, m := range r.all() {
		if m == msg {
			n++
		}
	}
	return n
}

// waitMsg polls until a message matches re, and returns it.
func (r *notifyRecorder) waitMsg(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var found string
	poll.Until(t, 10*time.Second, fmt.Sprintf("an sd_notify message matching %q", re), func() (bool, any) {
		all := r.all()
		for _, m := range all {
			if rx.MatchString(m) {
				found = m
				return true, nil
			}
		}
		return false, all
	})
	return found
}

func (r *notifyRecorder) waitCount(t *testing.T, msg string, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d× sd_notify %q", n, msg), func() (bool, any) {
		return r.count(msg) >= n, r.all()
	})
}

// runRecorded runs the daemon on path with its notify messages recorded;
// hook adjusts it further. The daemon stops at the test's end.
func runRecorded(t *testing.T, path string, hook func(*runEnv)) (*notifyRecorder, *syncBuffer, chan<- os.Signal) {
	t.Helper()
	rec := &notifyRecorder{}
	log, sigs := startDaemon(t, path, func(e *runEnv) {
		e.opts.Notify = rec.notify
		if hook != nil {
			hook(e)
		}
	})
	return rec, log, sigs
}

// TestWatchdog: with WATCHDOG_USEC set the daemon sends WATCHDOG=1 every
// half interval while it is alive; a component that stops answering stops
// the pings (logged once, naming it) until it answers again: here an
// extra probe that hangs (a VRRP instance whose loop does not answer is
// vrrp's TestRunnerAlive).
func TestWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "200000") // 200ms: a ping every 100ms
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	for _, tc := range []struct {
		name     string
		stallLog string
		// stall makes d's component stop answering; it returns the
		// undo.
		stall func(t *testing.T, probeStalled *atomic.Bool) (undo func())
	}{
		{"probe", `error="test component: context deadline exceeded"`, func(_ *testing.T, p *atomic.Bool) func() {
			p.Store(true)
			return func() { p.Store(false) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var probeStalled atomic.Bool
			rec, log, _ := runRecorded(t, writeFile(t, daemonConfig), func(e *runEnv) {
				withFakeKernel(t, ipvstest.New())(e)
				e.opts.Probes = append(e.opts.Probes, daemon.Probe{Name: "test component", Check: func(ctx context.Context) error {
					if probeStalled.Load() {
						<-ctx.Done() // stuck: answers only when asked to give up
						return ctx.Err()
					}
					return nil
				}})
			})
			rec.waitCount(t, "WATCHDOG=1", 3)

			undo := tc.stall(t, &probeStalled)
			waitFor(t, log, `msg="watchdog: not alive, no longer telling systemd" `+tc.stallLog, 1)
			stalledAt := rec.count("WATCHDOG=1")
			// Five intervals' worth of ticks: not one ping.
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if n := rec.count("WATCHDOG=1"); n > stalledAt {
					t.Fatalf("watchdog pinged while a component was stalled (%d > %d)", n, stalledAt)
				}
			}
			if n := strings.Count(log.String(), "watchdog: not alive"); n != 1 {
				t.Errorf("stall logged %d times, want once:\n%s", n, log.String())
			}

			undo()
			rec.waitCount(t, "WATCHDOG=1", stalledAt+2)
			waitFor(t, log, "watchdog: alive again", 1)
		})
	}
}

// TestWatchdogOff: without WATCHDOG_USEC no WATCHDOG=1 is ever sent.
func TestWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	rec, _, sigs := runRecorded(t, writeFile(t, daemonConfig), withFakeKernel(t, ipvstest.New()))
	rec.waitMsg(t, "^READY=1$")
	sigs <- syscall.SIGHUP // a round trip through the main loop
	rec.waitCount(t, "READY=1", 2)
	if n := rec.count("WATCHDOG=1"); n != 0 {
		t.Errorf("%d WATCHDOG=1 without a watchdog", n)
	}
}

// TestStatusLines: STATUS= at start, and after a failed and a good reload,
// saying how many virtual servers are up and whether the last reload
// failed.
func TestStatusLines(t *testing.T) {
	path := writeFile(t, daemonConfig)
	rec, log, sigs := runRecorded(t, path, withFakeKernel(t, ipvstest.New()))
	first := rec.waitMsg(t, `^STATUS=`)
	if !regexp.MustCompile(`^STATUS=\d of 2 virtual servers up$`).MatchString(first) {
		t.Errorf("first status %q", first)
	}
	// dns has no check: its quorum is up once the director has run.
	rec.waitMsg(t, `^STATUS=[12] of 2 virtual servers up$`)

	if err := os.WriteFile(path, []byte(invalidConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	rec.waitMsg(t, `^STATUS=[12] of 2 virtual servers up; last reload failed, running the previous configuration$`)

	if err := os.WriteFile(path, []byte(daemonConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, log, "config reloaded", 1)
	msgs := rec.all()
	last := ""
	for _, m := range msgs {
		if strings.HasPrefix(m, "STATUS=") {
			last = m
		}
	}
	if strings.Contains(last, "reload failed") {
		t.Errorf("after a good reload the status is still %q", last)
	}
}

// TestStatusLinesVRRP runs VI_1 in a namespace: STATUS= follows its
// transitions, and with the watchdog on, a daemon with a live VRRP loop
// keeps pinging.
func TestStatusLinesVRRP(t *testing.T) {
	l := lab.RoutersT(t, "haldir-status-vrrp", 1)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	dir := t.TempDir()
	path := writeFile(t, `[global]
router_id = "r1"
control_socket = "`+dir+`/haldir.sock"
state_dir = "`+dir+`/state"
metrics_listen = ""

[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.100/24"]
`)
	rec, log, _ := runRecorded(t, path, func(e *runEnv) { e.opts.VRRPDo = l.Host("r1").Do })
	rec.waitMsg(t, `^STATUS=VI_1 backup$`)
	rec.waitMsg(t, `^STATUS=VI_1 master$`)
	n := rec.count("WATCHDOG=1")
	rec.waitCount(t, "WATCHDOG=1", n+3)
	if strings.Contains(log.String(), "watchdog: not alive") {
		t.Errorf("a live VRRP loop stalled the watchdog:\n%s", log.String())
	}
}
