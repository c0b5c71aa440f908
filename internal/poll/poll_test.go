package poll

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records Fatalf instead of ending the goroutine.
type fakeT struct{ failed []string }

func (*fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
}

func TestUntil(t *testing.T) {
	for _, tc := range []struct {
		name    string
		doneAt  int // the call of check that reports done; 0: never
		timeout time.Duration
		fail    []string // parts of the failure; nil: no failure
		alsoRan bool
	}{
		{name: "done at once", doneAt: 1, timeout: time.Second},
		{name: "done at the fifth look", doneAt: 5, timeout: time.Second},
		{name: "never: what, timeout, last state, also", timeout: 20 * time.Millisecond,
			fail: []string{"timed out after 20ms waiting for the thing", "last: {Calls:", "the log"}, alsoRan: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeT{}
			calls, alsoRan := 0, false
			start := time.Now()
			at := Until(ft, tc.timeout, "the thing", func() (bool, any) {
				calls++
				return calls == tc.doneAt, struct{ Calls int }{calls}
			}, func() string { alsoRan = true; return "the log" })
			if alsoRan != tc.alsoRan {
				t.Errorf("also ran: %v, want %v", alsoRan, tc.alsoRan)
			}
			if tc.fail == nil {
				if len(ft.failed) != 0 {
					t.Fatalf("failed: %q", ft.failed)
				}
				if calls != tc.doneAt {
					t.Errorf("check called %d times, want %d", calls, tc.doneAt)
				}
				if at.Before(start) || at.After(time.Now()) {
					t.Errorf("returned %v, not between the start %v and now", at, start)
				}
				return
			}
			if len(ft.failed) != 1 {
				t.Fatalf("failed %d times (%q), want once", len(ft.failed), ft.failed)
			}
			for _, part := range tc.fail {
				if !strings.Contains(ft.failed[0], part) {
					t.Errorf("failure %q lacks %q", ft.failed[0], part)
				}
			}
			if since := time.Since(start); since < tc.timeout {
				t.Errorf("gave up after %v, before the timeout %v", since, tc.timeout)
			}
			if calls < 2 {
				t.Errorf("check called %d times before giving up; want it polled", calls)
			}
		})
	}
}

func TestTrue(t *testing.T) {
	ft := &fakeT{}
	True(ft, 10*time.Millisecond, "never", func() bool { return false })
	if len(ft.failed) != 1 || ft.failed[0] != "timed out after 10ms waiting for never" {
		t.Errorf("failure %q, want only what and the timeout (no state)", ft.failed)
	}
	ft = &fakeT{}
	n := 0
	True(ft, time.Second, "third", func() bool { n++; return n == 3 })
	if len(ft.failed) != 0 || n != 3 {
		t.Errorf("failed %q after %d looks, want success at the third", ft.failed, n)
	}
}

func TestUntilEvery(t *testing.T) {
	for _, tc := range []struct {
		every    time.Duration
		maxCalls int // a loaded machine sleeps longer, so looks only fewer times
	}{
		{every: 40 * time.Millisecond, maxCalls: 4}, // at 0, 40, 80, 120 ms
		{every: Every, maxCalls: 25},
	} {
		t.Run(tc.every.String(), func(t *testing.T) {
			ft := &fakeT{}
			calls := 0
			UntilEvery(ft, 100*time.Millisecond, tc.every, "never", func() (bool, any) { calls++; return false, calls })
			if len(ft.failed) != 1 {
				t.Fatalf("failed %q, want once", ft.failed)
			}
			if calls < 2 || calls > tc.maxCalls {
				t.Errorf("looked %d times in 100ms every %v, want 2..%d", calls, tc.every, tc.maxCalls)
			}
		})
	}
}
