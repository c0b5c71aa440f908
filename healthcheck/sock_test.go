package healthcheck

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

func TestCheckDeadline(t *testing.T) {
	const timeout = 10 * time.Second
	tests := []struct {
		name      string
		late      time.Duration // how long ago the check was due
		wantLeft  time.Duration // deadline - now, about
		tolerance time.Duration
	}{
		{"on time: the whole timeout", 0, timeout, time.Second},
		{"late: the timeout counts from when it was due", 3 * time.Second, timeout - 3*time.Second, time.Second},
		{"very late: never less than half the timeout", 8 * time.Second, timeout / 2, time.Second},
		{"due in the future (another clock): never more than the timeout", -time.Hour, timeout, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			left := checkDeadline(now.Add(-tt.late), timeout).Sub(now)
			if left < tt.wantLeft-tt.tolerance || left > tt.wantLeft+tt.tolerance {
				t.Fatalf("deadline in %v, want about %v", left, tt.wantLeft)
			}
		})
	}
}

// A black-holed check that was due a while ago ends timeout after it was
// due, not timeout after it started: scheduling lag does not delay the
// verdict.
func TestTimeoutCountsFromScheduledStart(t *testing.T) {
	for _, typ := range []string{"tcp", "http"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			ck, err := NewChecker(Target{Addr: blackholeAddr(t), Check: conf.Check{Type: typ, Timeout: conf.Duration(3 * time.Second)}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := ck.(scheduledRunner).runFrom(context.Background(), start.Add(-time.Second))
			took := time.Since(start)
			if r.Up || !strings.Contains(r.Reason, "timeout after 3s") {
				t.Fatalf("got %+v, want a timeout", r)
			}
			// 2s are left of the 3s timeout; a full 3s would mean the
			// deadline counted from the start.
			if took < 1900*time.Millisecond || took > 2900*time.Millisecond {
				t.Fatalf("check took %v, want about 2s (3s timeout, due 1s before it started)", took)
			}
		})
	}
}

// Cancelling a check (probe removed, scheduler stopped) unblocks a connect
// that would otherwise wait out its timeout.
func TestCancelUnblocksConnect(t *testing.T) {
	ck, err := NewChecker(Target{Addr: blackholeAddr(t), Check: conf.Check{Type: "http", Timeout: conf.Duration(30 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if r := ck.Run(ctx); r.Up {
		t.Fatalf("got %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancelled check returned after %v (timeout 30s)", took)
	}
}
