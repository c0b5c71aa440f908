package bgpha_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab/bgpha"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestBGPModeInVM runs haldir's BGP mode end to end in the lab VM: three
// `haldir run` processes announce the VIP to the FRR router (BFD 100 ms ×
// 3), with an mh/mh-port LVS-DR service (TCP and HTTP checks), N-way conn
// sync and the cluster view. The router gets three equal next hops; new
// flows spread over all three; a director whose real servers fail its
// checks loses exactly its next hop within 1 s of the lost quorum;
// maintenance withdraws gracefully (GRACEFUL_SHUTDOWN at the router before
// the withdraw), a SIGKILL closes the session and a cut link is detected
// by BFD alone, and in each the held connections older than the sync
// flush all survive; the director joining back breaks none.
func TestBGPModeInVM(t *testing.T) {
	haldir, ranInVM := bgpha.RunInVM(t, vm.Options{Timeout: 4 * time.Minute})
	if ranInVM {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	r, err := bgpha.Run(ctx, "bgp-e2e", haldir, bgpha.Plan{Flows: 300, QuorumLoss: true, Conns: 60, Young: 15, Progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("three equal paths", func(t *testing.T) {
		if len(r.Paths) != 3 {
			t.Fatalf("router has %d paths, want 3: %+v", len(r.Paths), r.Paths)
		}
		for _, p := range r.Paths {
			if !p.Multipath || p.LocalPref != r.Paths[0].LocalPref || p.MED != r.Paths[0].MED {
				t.Errorf("path from %v not an equal multipath: %+v", p.Peer, p)
			}
		}
	})
	t.Run("spread", func(t *testing.T) {
		// 300 flows: every director gets a fair share (the bench measures
		// 3,000 against ±10 %).
		for i, n := range r.Spread {
			if n < r.Plan.Flows/6 {
				t.Errorf("director%d scheduled %d of %d new flows (%v)", i+1, n, r.Plan.Flows, r.Spread)
			}
		}
	})
	t.Run("lost quorum withdraws within 1s", func(t *testing.T) {
		if q := r.Quorum; q == nil || q.Withdrawn <= 0 || q.Withdrawn > time.Second {
			t.Errorf("lost quorum to the next hop gone: %+v, want within 1s", q)
		}
	})
	for _, d := range r.Drills {
		t.Run(string(d.Event), func(t *testing.T) {
			t.Log(d)
			if d.Event == bgpha.Maintenance && (!d.GracefulFirst || d.Graceful <= 0 || d.Withdraw <= d.Graceful) {
				t.Errorf("maintenance: GRACEFUL_SHUTDOWN seen %v (first: %t), withdraw %v: want the community before the withdraw", d.Graceful, d.GracefulFirst, d.Withdraw)
			}
			if d.Event == bgpha.SIGKILL && d.Route > time.Second {
				t.Errorf("SIGKILL: next hop gone after %v, want the closed session's ~100ms (under 1s in the VM)", d.Route)
			}
			// Only BFD tells the router of a cut link: its 100 ms × 3
			// is about 300 ms, a hold time would be 9 s.
			if d.Event == bgpha.LinkCut && d.Route > time.Second {
				t.Errorf("link cut: next hop gone after %v, want BFD's ~300ms (under 1s in the VM)", d.Route)
			}
			if len(d.Older.Conns) == 0 || d.Older.Survived() != len(d.Older.Conns) {
				t.Errorf("connections older than the sync flush: %v", d.Older)
			}
			if d.RejoinBroken != 0 {
				t.Errorf("director%d joining back broke %d connections", d.Director+1, d.RejoinBroken)
			}
		})
	}
}

// TestBGPBench is `make bench`'s BGP table (HALDIR_BGP_BENCH=1, else
// skipped): 300 long-lived connections through (a) maintenance and (b) a
// SIGKILL of a director, for mh with N-way sync, mh without sync, rr with
// sync and rr without, each on a fresh lab in the same VM run, and the spread of
// 3,000 new flows.
func TestBGPBench(t *testing.T) {
	if os.Getenv("HALDIR_BGP_BENCH") == "" {
		t.Skip("HALDIR_BGP_BENCH=1 runs it (make bench)")
	}
	haldir, ranInVM := bgpha.RunInVM(t, vm.Options{Timeout: 20 * time.Minute})
	if ranInVM {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	var rs []*bgpha.Result
	for _, o := range []bgpha.Options{{}, {NoSync: true}, {Scheduler: "rr"}, {Scheduler: "rr", NoSync: true}} {
		r, err := bgpha.Run(ctx, "bgp-bench", haldir, bgpha.Plan{Options: o, Flows: 3000, Conns: 300, Young: 30, Progress: os.Stdout})
		if err != nil {
			t.Errorf("%v: %v", o, err)
		}
		rs = append(rs, r)
	}
	bgpha.WriteTable(os.Stdout, rs)
}

// logWriter writes each Write as a line of the test's log, as it comes.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
