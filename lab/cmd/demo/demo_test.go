package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

// haldirEnv passes the haldir binary's path into the VM.
const haldirEnv = "HALDIR_DEMO_HALDIR"

// TestVMDemo runs the whole demo (`make demo`'s guest mode) where IPVS is,
// and checks what it measured, not only that it finished.
func TestVMDemo(t *testing.T) {
	lab.SkipIfNotRoot(t)
	haldir := os.Getenv(haldirEnv)
	if !vm.InVM() {
		haldir = lab.BuildHaldir(t)
	}
	if vm.RunInVMWith(t, vm.Options{
		Files: []vm.File{{Host: haldir, Guest: vmhost.GuestHaldir}},
		Env:   []string{haldirEnv + "=" + vmhost.GuestHaldir},
	}) {
		return
	}
	var out strings.Builder
	rep, err := RunDemo(context.Background(), &out, haldir, Options{})
	t.Log("demo output:\n" + out.String())
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	if len(rep.Steps) != 8 {
		t.Fatalf("demo ran %d steps, want 8", len(rep.Steps))
	}
	for _, s := range rep.Steps {
		t.Run(s.Name, func(t *testing.T) {
			if !s.OK {
				t.Errorf("step %d failed: %s", s.N, s.Err)
			}
		})
	}
	t.Run("round robin is even", func(t *testing.T) {
		for _, r := range []string{"real1", "real2", "real3"} {
			if rep.Tally[r] != lbRequests/3 {
				t.Errorf("%s answered %d of %d requests, want %d (tally %v)", r, rep.Tally[r], lbRequests, lbRequests/3, rep.Tally)
			}
		}
	})
	t.Run("health check removes and restores real2", func(t *testing.T) {
		if rep.HealthTally["real2"] != 0 {
			t.Errorf("real2 answered %d requests while down", rep.HealthTally["real2"])
		}
		// fall 2 at a 300ms interval: about 0.3-0.9 s; far more means the
		// check timing is not what the config says.
		if rep.HealthDownAfter <= 0 || rep.HealthDownAfter > 3*time.Second {
			t.Errorf("real2 removed %v after stopping, want within 3s", rep.HealthDownAfter)
		}
		if rep.HealthUpAfter <= 0 || rep.HealthUpAfter > 3*time.Second {
			t.Errorf("real2 back %v after restarting, want within 3s", rep.HealthUpAfter)
		}
	})
	t.Run("failover outage", func(t *testing.T) {
		// Time the VM was frozen by a busy host is not haldir's: the
		// bound grows by exactly the stalls measured in the guest.
		limit := 2*time.Second + rep.Stall
		if rep.FailoverOutage <= 0 || rep.FailoverOutage >= limit {
			t.Errorf("failover outage %v, want > 0 and < %v (2s + %v of guest stalls; advert 100ms: master down after ~0.36s)", rep.FailoverOutage, limit, rep.Stall)
		}
		if rep.FailbackOutage <= 0 || rep.FailbackOutage >= limit {
			t.Errorf("failback outage %v, want > 0 and < %v (2s + %v of guest stalls)", rep.FailbackOutage, limit, rep.Stall)
		}
		if rep.RequestsOK == 0 || rep.RequestsFailed == 0 || rep.RequestsOK+rep.RequestsFailed != rep.Requests {
			t.Errorf("drill requests: %d ok + %d failed of %d; a dead master must fail some and the rest succeed", rep.RequestsOK, rep.RequestsFailed, rep.Requests)
		}
	})
	t.Run("established connection survives the failover (conn sync)", func(t *testing.T) {
		// The step itself waits until director2's kernel holds the
		// connection; here it must carry on through director2.
		if !rep.ConnSurvived || rep.Survived != rep.LongLived || rep.LongLived == 0 {
			t.Errorf("%d of %d long-lived connections survived the failover: %s", rep.Survived, rep.LongLived, rep.ConnDetail)
		}
		if rep.SyncedAfter <= 0 {
			t.Errorf("no time for the connection to reach director2's table: %v", rep.SyncedAfter)
		}
	})
	// The planned handoff is make-before-break and the connections are
	// synced, so the long-lived connections carry on. New requests in
	// the moment of a move are not held to a bound here: in a loaded CI
	// run 78 of 95 failed with a 1.09 s gap (4 of 71 and 88 ms in a quiet
	// one), which issue 17 keeps open (the new master's kernel does not
	// hold the newest connections yet, and with NAT their replies come
	// back through the gateway that just moved); the report prints them.
	t.Run("planned handoff there and back", func(t *testing.T) {
		if rep.HandoffLongLived == 0 || rep.HandoffSurvived != rep.HandoffLongLived {
			t.Errorf("%d of %d long-lived connections survived the handoffs", rep.HandoffSurvived, rep.HandoffLongLived)
		}
		if rep.HandoffRequests == 0 || rep.HandoffFailed == rep.HandoffRequests {
			t.Errorf("handoff: %d of %d requests failed: the service never answered", rep.HandoffFailed, rep.HandoffRequests)
		}
	})
	// Maintenance hands over and takes back make-before-break like the
	// handoff; the same open question about new requests applies.
	t.Run("maintenance on and off", func(t *testing.T) {
		if !strings.Contains(rep.MaintStatus, "maintenance") || !strings.Contains(rep.MaintOut[0], "handed over: ") || strings.Contains(rep.MaintOut[0], "handed over: none") {
			t.Errorf("maintenance on: %q; status %q", rep.MaintOut[0], rep.MaintStatus)
		}
		// Make-before-break holds both for as long as the old master
		// takes to hear the new one (tens of ms in TCG); a takeover's
		// hold that outlived the old master's release once kept both
		// masters for 2.1 s when maintenance ended.
		if rep.Overlap > time.Second {
			t.Errorf("both directors held an instance for %v in a move", rep.Overlap)
		}
		if rep.MaintRequests == 0 || rep.MaintFailed == rep.MaintRequests {
			t.Errorf("maintenance: %d of %d requests failed: the service never answered", rep.MaintFailed, rep.MaintRequests)
		}
	})
	t.Run("every component runs; the cluster sees both directors", func(t *testing.T) {
		if len(rep.NotThereYet) != 0 {
			t.Errorf("haldir reports components not running: %q", rep.NotThereYet)
		}
		for _, k := range []string{"director1 sees director2", "director2 sees director1"} {
			if rep.ClusterSeen[k] != "alive" {
				t.Errorf("cluster: %s %q at the end, want alive (all: %v)", k, rep.ClusterSeen[k], rep.ClusterSeen)
			}
		}
	})
	t.Logf("measured: VIP after %v, real2 removed after %v / back after %v, VIP moved after %v, outage failover %v failback %v, requests %d ok %d failed %d, guest stalls %v (longest %v); handoff there and back: %d requests, %d failed, longest gap %v, long-lived %d of %d; maintenance on and off: %d requests, %d failed, longest gap %v",
		rep.VIPAfter, rep.HealthDownAfter, rep.HealthUpAfter, rep.VIPMovedAfter, rep.FailoverOutage, rep.FailbackOutage, rep.Requests, rep.RequestsOK, rep.RequestsFailed, rep.Stall, rep.MaxStall,
		rep.HandoffRequests, rep.HandoffFailed, rep.HandoffGap, rep.HandoffSurvived, rep.HandoffLongLived, rep.MaintRequests, rep.MaintFailed, rep.MaintGap)
}
