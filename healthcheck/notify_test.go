package healthcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// logNotify is a notify command that appends its first argument and the
// environment haldir gives it to file.
func logNotify(arg, file string) []string {
	return []string{"/bin/sh", "-c",
		`echo "$1 $HALDIR_STATE vs=$HALDIR_VIRTUAL_SERVER rs=$HALDIR_REAL_SERVER $HALDIR_REAL_ADDRESS $HALDIR_REAL_PORT $HALDIR_REASON" >> "$2"`,
		"notify", arg, file}
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestNotifyOnTransitions: notify_up and notify_down run, as argv with the
// real server in their environment, on each up/down flip of the probe,
// in order, for every subscriber that has one; a weight change runs
// nothing.
func TestNotifyOnTransitions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "log")
	seq := []Result{ok(), weighted(7), bad(), ok()}
	h := newHarnessWith(t, map[uint16][]Result{80: seq}, Options{NotifyTimeout: 5 * time.Second})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Rise: 1, Fall: 1}
	web := target(80, c)
	web.Notify = Notify{VirtualServer: "web", RealServer: "r1", Up: logNotify("web", file), Down: logNotify("web", file)}
	api := target(80, c) // the same probe, another virtual server's real server
	api.Notify = Notify{VirtualServer: "api", Down: logNotify("api", file)}
	quiet := target(80, c)
	quiet.Notify = Notify{VirtualServer: "quiet"}
	if _, err := h.s.Update([]Target{web, api, quiet}); err != nil {
		t.Fatal(err)
	}
	for i := range seq {
		h.step(t, time.Second, web.Key(), uint64(i+1))
	}
	want := []string{
		"web UP vs=web rs=r1 127.0.0.1 80 ok",
		"web DOWN vs=web rs=r1 127.0.0.1 80 bad",
		"api DOWN vs=api rs= 127.0.0.1 80 bad",
		"web UP vs=web rs=r1 127.0.0.1 80 ok",
	}
	waitFor(t, "notify commands", func() bool { return h.s.NotifyCounts().Run >= uint64(len(want)) })
	if got := readLines(t, file); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("notify ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := h.s.NotifyCounts(); n != (NotifyCounts{Run: 4}) {
		t.Errorf("counts %+v, want 4 run", n)
	}
	for _, st := range h.s.Status() {
		if st.Target.Notify.VirtualServer != "" {
			t.Errorf("probe target %+v carries a subscriber's notify", st.Target)
		}
	}
}

// TestNotifyHungScript: a notify command that hangs is killed at the
// timeout and counted; meanwhile checks and transitions go on, and the
// server's next notification waits its turn (up, then down, in order).
func TestNotifyHungScript(t *testing.T) {
	const timeout = 2 * time.Second
	file := filepath.Join(t.TempDir(), "log")
	h := newHarnessWith(t, map[uint16][]Result{80: {ok(), bad()}, 81: {ok()}}, Options{NotifyTimeout: timeout})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Rise: 1, Fall: 1}
	hung := target(80, c)
	hung.Notify = Notify{VirtualServer: "web", Up: []string{"/bin/sh", "-c", "sleep 30"}, Down: logNotify("down", file)}
	other := target(81, c)
	other.Notify = Notify{VirtualServer: "web", Up: logNotify("other", file)}
	if _, err := h.s.Update([]Target{hung, other}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.step(t, time.Second, hung.Key(), 1) // both up: the hung command starts
	waitFor(t, "other's check", func() bool { return h.checks(other.Key()) >= 1 })
	h.step(t, time.Second, hung.Key(), 2) // down while its up command hangs
	var downAt time.Duration
	waitFor(t, "down transition", func() bool {
		for _, tr := range drain(h.s.Transitions()) {
			if tr.Key == hung.Key() && !tr.Up {
				downAt = time.Since(start)
				return true
			}
		}
		return false
	})
	if downAt >= timeout {
		t.Errorf("down transition after %v: the hung notify command (timeout %v) delayed the checks", downAt, timeout)
	}
	// Another server's notification does not wait for the hung one.
	waitFor(t, "other's notify", func() bool { return len(readLines(t, file)) >= 1 })
	if got, took := readLines(t, file), time.Since(start); got[0] != "other UP vs=web rs= 127.0.0.1 81 ok" || took >= timeout {
		t.Errorf("first notification %q after %v, want other's at once", got[0], took)
	}
	// The hung server's down runs once its up is killed.
	deadline := time.Now().Add(timeout + 5*time.Second)
	// Run is counted when a command has exited, which is after it wrote its
	// line: wait for both.
	for n := h.s.NotifyCounts(); n.Failed == 0 || n.Run < 2 || len(readLines(t, file)) < 2; n = h.s.NotifyCounts() {
		if time.Now().After(deadline) {
			t.Fatalf("hung command not killed: counts %+v, lines %q", h.s.NotifyCounts(), readLines(t, file))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("down notification after %v, before the up command's timeout %v", took, timeout)
	}
	if got := readLines(t, file); got[1] != "down DOWN vs=web rs= 127.0.0.1 80 bad" {
		t.Errorf("second notification %q", got[1])
	}
	if n := h.s.NotifyCounts(); n != (NotifyCounts{Run: 2, Failed: 1}) {
		t.Errorf("counts %+v, want 2 run and 1 failed", n)
	}
}
