package healthcheck

import (
	"context"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// A check started late gives back at most 5 ms of its lateness, and never
// more than a tenth of its timeout: overload must not cut healthy servers'
// time short, while ordinary jitter must not delay detection.
func TestLagCredit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name    string
		lag     time.Duration
		timeout time.Duration
		want    time.Duration
	}{
		{"on time", 0, 500 * time.Millisecond, 0},
		{"jitter given back", 2 * time.Millisecond, 500 * time.Millisecond, 2 * time.Millisecond},
		{"overload capped at 5ms", 300 * time.Millisecond, 500 * time.Millisecond, 5 * time.Millisecond},
		{"short timeout capped at a tenth", 4 * time.Millisecond, 20 * time.Millisecond, 2 * time.Millisecond},
		{"early start gives nothing", -3 * time.Millisecond, 500 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lagCredit(t0, t0.Add(tc.lag), tc.timeout); got != tc.want {
				t.Fatalf("lagCredit(lag %v, timeout %v) = %v, want %v", tc.lag, tc.timeout, got, tc.want)
			}
		})
	}
}

// A checker runs until the deadline it is given: one that started on time
// gets its whole timeout.
func TestCheckGetsWholeTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, typ := range []conf.CheckKind{conf.CheckTCP, conf.CheckHTTP} {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			ck, err := NewChecker(tgt(blackholeAddr(t), conf.CheckSpec{Kind: typ, Timeout: timeout}))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := ck.Run(context.Background(), CheckDeadline(start, start, timeout))
			if took := time.Since(start); r.Up || took < timeout-20*time.Millisecond {
				t.Fatalf("got %+v after %v, want a timeout after the whole %v", r, took, timeout)
			}
		})
	}
}

// Cancelling a check (probe removed, scheduler stopped) unblocks a connect
// that would otherwise wait out its timeout.
func TestCancelUnblocksConnect(t *testing.T) {
	ck, err := NewChecker(tgt(blackholeAddr(t), conf.CheckSpec{Kind: conf.CheckHTTP, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if r := ck.Run(ctx, start.Add(30*time.Second)); r.Up {
		t.Fatalf("got %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancelled check returned after %v (timeout 30s)", took)
	}
}
