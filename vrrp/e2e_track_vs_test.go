package vrrp_test

import (
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// TestE2ETrackVirtualServerFailback is the failback the demo got wrong: the
// preferred router (200) tracks its virtual server with weight -150. It
// does not take the VIP while its quorum is unknown or lost, and takes it
// back only once the director reports the quorum again.
func TestE2ETrackVirtualServerFailback(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	c1 := instanceConfig("vi", 200, v4)
	c1.TrackVirtualSrvs = []conf.TrackVS{{Name: "web", Weight: -150}}
	r1 := startRouter(t, l.Host("r1"), c1)
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	all := []*router{r1, r2}

	// No quorum reported yet: r1 runs at 50 and r2 is master.
	waitMaster(t, r2, all)
	if p := r1.in.Status().Priority; p != 50 {
		t.Fatalf("r1 priority %d before any quorum report, want 50", p)
	}
	assertSteady(t, r2, all, 500*time.Millisecond)

	r1.in.SetVirtualServerUp("web", true)
	waitMaster(t, r1, all)
	if p := r1.in.Status().Priority; p != 200 {
		t.Fatalf("r1 priority %d with quorum, want 200", p)
	}

	r1.in.SetVirtualServerUp("web", false)
	waitMaster(t, r2, all)
	if p := r1.in.Status().Priority; p != 50 {
		t.Fatalf("r1 priority %d without quorum, want 50", p)
	}

	r1.in.SetVirtualServerUp("web", true)
	waitMaster(t, r1, all)
}
