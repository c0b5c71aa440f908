package script

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want string // "" success, else a substring of the error
	}{
		{"exit 0", []string{"/bin/true"}, ""},
		{"exit 1", []string{"/bin/false"}, `"/bin/false": exit status 1`},
		{"no such program", []string{"/nonexistent/notify"}, `"/nonexistent/notify": fork/exec`},
		{"killed at the timeout", []string{"/bin/sh", "-c", "sleep 30"}, `"/bin/sh" killed after 200ms`},
		{"environment added", []string{"/bin/sh", "-c", `[ "$HALDIR_X" = y ] && [ -n "$PATH" ]`}, ""},
		{"empty", nil, "empty command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := Run(context.Background(), tc.argv, []string{"HALDIR_X=y"}, 200*time.Millisecond)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunKillsProcessGroup: what the command started dies with it.
func TestRunKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	err := Run(context.Background(), []string{"/bin/sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}, nil, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed after") {
		t.Fatalf("err = %v", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return
		}
		// Reparented to a PID 1 that may not reap: a zombie is dead too.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d outlived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStarted waits until key's jobs have all left the backlog.
func waitStarted(t *testing.T, q *Queue, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for q.Waiting(key) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s's job never started", key)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder collects Done calls.
type recorder struct {
	mu   sync.Mutex
	done []string // What, then ":ok", ":dropped" or ":error"
	at   map[string]time.Time
}

func (r *recorder) Done(j Job, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ":ok"
	switch {
	case errors.Is(err, ErrDropped):
		s = ":dropped"
	case err != nil:
		s = ":error"
	}
	r.done = append(r.done, j.What+s)
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	r.at[j.What] = time.Now()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.done...)
}

func TestQueueOrderPerKey(t *testing.T) {
	dir := t.TempDir()
	var r recorder
	q := NewQueue(QueueOptions{Timeout: 5 * time.Second, Running: 4, Done: r.Done})
	// Each job appends its argument to its key's file: the file is the order.
	for i := range 5 {
		for _, key := range []string{"a", "b"} {
			q.Enqueue(key, Job{What: key + strconv.Itoa(i),
				Argv: []string{"/bin/sh", "-c", `sleep 0.0$1; echo "$1" >> "$2"`, "job", strconv.Itoa(i), filepath.Join(dir, key)}})
		}
	}
	q.Close()
	for _, key := range []string{"a", "b"} {
		b, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "0\n1\n2\n3\n4\n" {
			t.Errorf("key %s ran in order %q", key, b)
		}
	}
	if got := len(r.list()); got != 10 {
		t.Errorf("%d Done calls, want 10: %v", got, r.list())
	}
}

// TestQueueRunning: a hung command holds one of the Running slots until
// its timeout, never another key's turn when a slot is free.
func TestQueueRunning(t *testing.T) {
	for _, tc := range []struct {
		running  int
		waitsFor bool // the quick job waits for the hung one's kill
	}{{1, true}, {2, false}} {
		t.Run("running="+strconv.Itoa(tc.running), func(t *testing.T) {
			var r recorder
			q := NewQueue(QueueOptions{Timeout: 500 * time.Millisecond, Running: tc.running, Done: r.Done})
			start := time.Now()
			q.Enqueue("hung", Job{What: "hung", Argv: []string{"/bin/sh", "-c", "sleep 30"}})
			waitStarted(t, q, "hung") // it holds its slot before the quick one asks
			if !q.Enqueue("quick", Job{What: "quick", Argv: []string{"/bin/true"}}) {
				t.Fatal("Enqueue refused")
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("Enqueue took %v", d)
			}
			q.Close()
			r.mu.Lock()
			hungAt, quickAt := r.at["hung"], r.at["quick"]
			r.mu.Unlock()
			if waited := !quickAt.Before(hungAt); waited != tc.waitsFor {
				t.Errorf("quick done at +%v, hung killed at +%v: waited %v, want %v", quickAt.Sub(start), hungAt.Sub(start), waited, tc.waitsFor)
			}
			if got := r.list(); !strings.Contains(strings.Join(got, " "), "hung:error") {
				t.Errorf("done %v, want the hung job reported as an error", got)
			}
		})
	}
}

// TestQueueBacklog: a full backlog drops its oldest waiting job, reported.
func TestQueueBacklog(t *testing.T) {
	var r recorder
	q := NewQueue(QueueOptions{Timeout: 5 * time.Second, Backlog: 2, Done: r.Done})
	q.Enqueue("k", Job{What: "first", Argv: []string{"/bin/sh", "-c", "sleep 0.3"}})
	waitStarted(t, q, "k")
	for _, w := range []string{"j1", "j2", "j3", "j4"} {
		q.Enqueue("k", Job{What: w, Argv: []string{"/bin/true"}})
	}
	if n := q.Waiting("k"); n != 2 {
		t.Errorf("%d waiting, want the backlog of 2", n)
	}
	q.Close()
	want := []string{"j1:dropped", "j2:dropped", "first:ok", "j3:ok", "j4:ok"}
	if got := r.list(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("done %v, want %v", got, want)
	}
	if q.Enqueue("k", Job{What: "late", Argv: []string{"/bin/true"}}) {
		t.Error("Enqueue after Close accepted a job")
	}
}
