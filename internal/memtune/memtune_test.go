package memtune

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		before    int
		want      int
	}{
		{"unset: haldir's pace", "", 100, GCPercent},
		{"set: the operator's", "80", 80, 80},
		{"off stays off", "off", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			rate := runtime.MemProfileRate
			t.Cleanup(func() { runtime.MemProfileRate = rate })
			old := debug.SetGCPercent(tc.before)
			t.Cleanup(func() { debug.SetGCPercent(old) })
			got, err := Apply()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Apply() = %d, want %d", got, tc.want)
			}
			if got := debug.SetGCPercent(tc.before); got != tc.want {
				t.Errorf("GC percent in force %d, want %d", got, tc.want)
			}
			if runtime.MemProfileRate != 0 {
				t.Errorf("MemProfileRate %d after Apply, want 0 (no heap profile sampling)", runtime.MemProfileRate)
			}
		})
	}
}

// TestApplyTurnsHugePagesOff asserts the kernel's own record: the process's
// THP flag, and /proc's view of it, which is what an operator can check on
// a running daemon.
func TestApplyTurnsHugePagesOff(t *testing.T) {
	if _, err := Apply(); err != nil {
		t.Fatal(err)
	}
	off, err := HugePagesOff()
	if err != nil {
		t.Fatal(err)
	}
	if !off {
		t.Fatal("PR_GET_THP_DISABLE = 0 after Apply, want 1")
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nTHP_enabled:\t0\n") {
		t.Errorf("/proc/self/status has no \"THP_enabled: 0\" after Apply:\n%s", status)
	}
}

// helperEnv runs the test binary as the process that re-executes itself.
const helperEnv = "MEMTUNE_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// Printed once per image: twice when the binary re-executed.
		fmt.Printf("image pid %d\n", os.Getpid())
		err := ExecWithoutHugePages()
		off, _ := HugePagesOff()
		fmt.Printf("returned err=%v off=%v mark=%q\n", err, off, os.Getenv(reexecMark))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestExecWithoutHugePages runs a process with huge pages on: it must
// re-execute itself once, in place (the same PID), come back with them off
// and the loop guard cleared from its environment; a process that already
// has them off must not re-execute.
func TestExecWithoutHugePages(t *testing.T) {
	prev, err := HugePagesOff()
	if err != nil {
		t.Fatal(err)
	}
	// The child inherits this process's flag: clear it for the run.
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 0, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v := 0
		if prev {
			v = 1
		}
		unix.Prctl(unix.PR_SET_THP_DISABLE, uintptr(v), 0, 0, 0)
	})
	run := func() []string {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	lines := run()
	if len(lines) != 3 || lines[0] != lines[1] || !strings.HasPrefix(lines[0], "image pid ") {
		t.Fatalf("want the same pid printed by two images, then the result; got %q", lines)
	}
	if want := `returned err=<nil> off=true mark=""`; lines[2] != want {
		t.Errorf("got %q, want %q", lines[2], want)
	}

	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	lines = run()
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "image pid ") {
		t.Fatalf("with huge pages already off: want one image, got %q", lines)
	}
	if want := `returned err=<nil> off=true mark=""`; lines[1] != want {
		t.Errorf("got %q, want %q", lines[1], want)
	}
}

// TestReleaseAfterLoad asserts that a collection was forced and that free
// heap pages went back to the kernel: garbage left by a "load" is released
// once ReleaseAfterLoad is done.
func TestReleaseAfterLoad(t *testing.T) {
	forced := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	// A load's garbage: 8 MiB of blocks, dropped.
	garbage := make([][]byte, 0, 1024)
	for range 1024 {
		garbage = append(garbage, make([]byte, 8<<10))
	}
	runtime.KeepAlive(garbage)
	garbage = nil
	before := forced()
	done := make(chan struct{})
	ReleaseAfterLoad(done)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ReleaseAfterLoad not done within 10s")
	}
	if after := forced(); after <= before {
		t.Errorf("forced collections %d -> %d: none ran", before, after)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if idle := ms.HeapIdle - ms.HeapReleased; idle > 1<<20 {
		t.Errorf("%d bytes of free heap kept after the release, want at most 1 MiB", idle)
	}
}
