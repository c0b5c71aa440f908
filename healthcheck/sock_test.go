package healthcheck

import (
	"context"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// A check's deadline counts from its own start (checkDeadline), so a
// check started late under load still gets its whole timeout.
func TestCheckGetsWholeTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, typ := range []string{"tcp", "http"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			ck, err := NewChecker(Target{Addr: blackholeAddr(t), Check: conf.Check{Type: typ, Timeout: conf.Duration(timeout)}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := ck.Run(context.Background())
			if took := time.Since(start); r.Up || took < timeout-20*time.Millisecond {
				t.Fatalf("got %+v after %v, want a timeout after the whole %v", r, took, timeout)
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
