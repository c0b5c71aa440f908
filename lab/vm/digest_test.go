package vm

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestFailureDigest(t *testing.T) {
	transcript := strings.Split(`=== RUN   TestSoak
    soak_test.go:52: soak output:
        a long report
=== RUN   TestSoak/ok-one
=== RUN   TestSoak/broken
    invariants.go:90: 1 violation: connection 10.0.0.1:4242 broke
=== RUN   TestSoak/other
=== NAME  TestSoak/broken
    invariants.go:91: and a second line
--- FAIL: TestSoak (1.00s)
    --- PASS: TestSoak/ok-one (0.00s)
    --- FAIL: TestSoak/broken (0.00s)
    --- PASS: TestSoak/other (0.00s)
=== RUN   TestPlain
    plain_test.go:3: plain failure
--- FAIL: TestPlain (0.00s)
=== RUN   TestDemo
    demo_test.go:34: demo output:
        == 1. build the lab ==
        line 2
        line 3
        line 4
    demo_test.go:36: demo failed: step 7: exit status 1
--- FAIL: TestDemo (0.00s)
=== RUN   TestFine
    fine_test.go:3: just a log
--- PASS: TestFine (0.00s)
FAIL`, "\n")
	want := []string{
		"--- FAIL: TestSoak/broken",
		"    invariants.go:90: 1 violation: connection 10.0.0.1:4242 broke",
		"    invariants.go:91: and a second line",
		"--- FAIL: TestPlain",
		"    plain_test.go:3: plain failure",
		"--- FAIL: TestDemo",
		"    demo_test.go:34: demo output:",
		"        == 1. build the lab ==",
		"        line 2",
		"        [… 2 more lines]",
		"    demo_test.go:36: demo failed: step 7: exit status 1",
	}
	if got := failureDigest(transcript); !slices.Equal(got, want) {
		t.Errorf("digest:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Many messages: the last ones, where a failure is.
	many := []string{"=== RUN   TestMany"}
	for i := range 20 {
		many = append(many, fmt.Sprintf("    many_test.go:%d: message %d", i+1, i+1))
	}
	many = append(many, "--- FAIL: TestMany (0.00s)")
	got := failureDigest(many)
	if len(got) != 14 || got[1] != "    [… 8 earlier messages]" || got[2] != "    many_test.go:9: message 9" || got[13] != "    many_test.go:20: message 20" {
		t.Errorf("digest of 20 messages:\n%s", strings.Join(got, "\n"))
	}
	if got := failureDigest(strings.Split("=== RUN   TestFine\n--- PASS: TestFine (0.00s)\nPASS", "\n")); len(got) != 0 {
		t.Errorf("a passing transcript's digest: %q", got)
	}
}
