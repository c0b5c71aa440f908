// Package poll waits, in tests, for something that happens on another
// goroutine or process: it looks again and again until a condition holds or
// a deadline passes, and then fails the test naming what it waited for and
// the last state it saw. It is the one polling loop of haldir's tests (no
// sleeping and hoping); it imports only the standard library, so the tests
// of any package can use it.
package poll

import (
	"fmt"
	"strings"
	"time"
)

// T is the part of testing.TB that Until needs.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Every is how often Until and True look: often enough to time a failover
// to a few milliseconds, cheap for a check that reads memory.
const Every = 5 * time.Millisecond

// Until calls check every Every until it reports done, and returns the time
// it first did (failover tests measure from it). check also returns the
// state it saw; if timeout passes first, Until fails t with what it waited
// for, the timeout, the last state (formatted with %+v) and then the text of
// each also (a daemon's log, say), which is computed only then.
func Until(t T, timeout time.Duration, what string, check func() (done bool, state any), also ...func() string) time.Time {
	t.Helper()
	return UntilEvery(t, timeout, Every, what, check, also...)
}

// UntilEvery is Until looking every every, for a check that costs more than
// a read of memory (running a command, a request, a netlink dump in a slow
// VM).
func UntilEvery(t T, timeout, every time.Duration, what string, check func() (done bool, state any), also ...func() string) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return time.Now()
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			fmt.Fprintf(&b, "timed out after %v waiting for %s", timeout, what)
			if state != nil {
				fmt.Fprintf(&b, "; last: %+v", state)
			}
			for _, f := range also {
				b.WriteString("\n")
				b.WriteString(f())
			}
			t.Fatalf("%s", b.String())
			return time.Time{}
		}
		time.Sleep(every)
	}
}

// True is Until for a condition with no state worth reporting.
func True(t T, timeout time.Duration, what string, cond func() bool, also ...func() string) time.Time {
	t.Helper()
	return Until(t, timeout, what, func() (bool, any) { return cond(), nil }, also...)
}
