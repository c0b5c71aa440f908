package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// benchMainEnv makes the test binary the benchmark program: the smoke test
// starts it with this set, and the scenario and server processes it starts
// (as its own executable) inherit it.
const benchMainEnv = "HALDIR_HEALTHCHECK_BENCH_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(benchMainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs the benchmark on two small scenarios for a short
// window, so the program keeps compiling and working between `make bench`
// runs: every scenario has a row that checked something and a row per
// failure mode. It asserts no timing (the goals table may say FAIL on a
// busy machine).
func TestBenchSmoke(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-duration", "2s", "-scenarios", "http-100,tcp-100", "-down", "10")
	cmd.Env = append(os.Environ(), benchMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, sc := range []string{"http-100", "tcp-100"} {
		m := regexp.MustCompile(`(?m)^\| ` + sc + ` \| (\d+) \| 100 \|`).FindSubmatch(out)
		if m == nil {
			t.Errorf("no row for %s with its checks/s and 100 expected/s:\n%s", sc, out)
		} else if n, _ := strconv.Atoi(string(m[1])); n == 0 {
			t.Errorf("%s made no checks:\n%s", sc, out)
		}
		for _, mode := range []string{"refused", "black-holed"} {
			if !regexp.MustCompile(`(?m)^\| ` + sc + ` \| ` + mode + ` \| \d+/10 \|`).Match(out) {
				t.Errorf("no %s row for %s:\n%s", mode, sc, out)
			}
		}
	}
}
