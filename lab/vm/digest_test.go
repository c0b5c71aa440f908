package vm

import (
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
	}
	if got := failureDigest(transcript); !slices.Equal(got, want) {
		t.Errorf("digest:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := failureDigest(strings.Split("=== RUN   TestFine\n--- PASS: TestFine (0.00s)\nPASS", "\n")); len(got) != 0 {
		t.Errorf("a passing transcript's digest: %q", got)
	}
}
