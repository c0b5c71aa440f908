package main

import (
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary act as the probe's sender child, which
// the probe starts as its own executable with -send.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-send" {
		if err := run(os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProbeSmoke runs two failovers of each kind at 10ms with both timers
// and checks that every one was measured; it asserts no timing.
func TestProbeSmoke(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-intervals", "10ms", "-rounds", "2"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 10ms | time.Timer |", "| 10ms | timerfd |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "| - |") {
		t.Errorf("a cell has no measurement:\n%s", out.String())
	}
	t.Log(out.String())
}

func TestParseIntervals(t *testing.T) {
	cases := []struct {
		in      string
		want    int
		wantErr string
	}{
		{"10ms,100ms", 2, ""},
		{"1s", 1, ""},
		{"5ms", 0, `"5ms" is not a VRRPv3 interval`},
		{"15ms", 0, `"15ms" is not a VRRPv3 interval`},
		{"fast", 0, `"fast" is not a VRRPv3 interval`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseIntervals(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(got) != c.want {
				t.Fatalf("got %v, %v; want %d intervals", got, err, c.want)
			}
		})
	}
}
