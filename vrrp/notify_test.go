package vrrp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNotifierRunsArgvInOrderWithEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "log")
	var mu sync.Mutex
	var errs []error
	n := newNotifier(5*time.Second, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	// Run as argv: "notify" arrives as $0 and the path as $1 unchanged.
	argv := []string{"/bin/sh", "-c", `echo "$0 $HALDIR_INSTANCE $HALDIR_STATE $HALDIR_PRIORITY" >> "$1"`, "notify", out}
	n.enqueue(notifyJob{argv: argv, instance: "vi", state: StateBackup, priority: 100})
	n.enqueue(notifyJob{argv: argv, instance: "vi", state: StateMaster, priority: 100})
	n.enqueue(notifyJob{argv: nil, instance: "vi", state: StateFault}) // nothing configured
	n.enqueue(notifyJob{argv: argv, instance: "vi", state: StateInit, priority: 90})
	n.close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "notify vi BACKUP 100\nnotify vi MASTER 100\nnotify vi STOP 90\n"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
}

func TestNotifierKillsAfterTimeout(t *testing.T) {
	var mu sync.Mutex
	var errs []error
	n := newNotifier(100*time.Millisecond, func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	start := time.Now()
	// The child sleep shares the process group and must die too, or
	// WaitDelay would have to cut the pipes.
	n.enqueue(notifyJob{argv: []string{"/bin/sh", "-c", "sleep 30; exit 0"}, instance: "vi", state: StateMaster})
	n.enqueue(notifyJob{argv: []string{"/bin/false"}, instance: "vi", state: StateBackup})
	n.enqueue(notifyJob{argv: []string{"/nonexistent/notify"}, instance: "vi", state: StateFault})
	n.close()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("close took %v; the hung command was not killed", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 3 {
		t.Fatalf("errors %v, want 3", errs)
	}
	for i, want := range []string{"killed after 100ms", "exit status 1", "/nonexistent/notify"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d %q does not mention %q", i, errs[i], want)
		}
	}
}

func TestNotifierEnqueueNeverBlocks(t *testing.T) {
	n := newNotifier(time.Second, func(error) {})
	start := time.Now()
	// The first holds the queue while the rest arrive.
	n.enqueue(notifyJob{argv: []string{"/bin/sh", "-c", "sleep 0.3"}, instance: "vi", state: StateMaster})
	for range 1000 {
		n.enqueue(notifyJob{argv: []string{"/bin/true"}, instance: "vi", state: StateMaster})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("enqueue blocked for %v", d)
	}
	if q := n.q.Waiting(""); q > maxNotifyQueue {
		t.Fatalf("queue grew to %d, bound %d", q, maxNotifyQueue)
	}
	n.close()
}

func TestScriptTrackerRiseFall(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ok")
	s := scriptTracker{key: "script:0:chk", argv: []string{"/bin/test", "-e", flag},
		interval: 10 * time.Millisecond, timeout: time.Second, rise: 3, fall: 2}
	out := make(chan trackUpdate, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx, out); close(done) }()
	defer func() { cancel(); <-done }()
	next := func() trackUpdate {
		t.Helper()
		select {
		case u := <-out:
			return u
		case <-time.After(10 * time.Second):
			t.Fatal("no tracking update")
		}
		return trackUpdate{}
	}
	if u := next(); !u.failing || u.key != s.key {
		t.Fatalf("first result: %+v, want failing", u)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(); u.failing {
		t.Fatalf("after rise: %+v", u)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	if u := next(); !u.failing {
		t.Fatalf("after fall: %+v", u)
	}
}

func TestTrackingEvent(t *testing.T) {
	tr := tracking{
		"a": {weight: -10, failing: true},
		"b": {weight: -20, failing: false},
		"c": {weight: 5, failing: true},
		"d": {weight: 0, failing: false, desc: "track_script d", down: "failing"},
	}
	if ev := tr.event(); ev != (EvTracking{Delta: -5}) {
		t.Fatalf("got %+v", ev)
	}
	tr["d"].failing = true
	if ev := tr.event(); ev != (EvTracking{Fault: true, Delta: -5, Cause: "track_script d failing (fault)"}) {
		t.Fatalf("got %+v", ev)
	}
}
