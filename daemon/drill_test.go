package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestDrillHandoff: a drill planned on the master finds nothing wrong; run,
// it hands over make-before-break, passes, and its report (with the
// timeline) is kept in state_dir/drills; on the backup it is refused,
// changes nothing, and the refusal is kept too.
func TestDrillHandoff(t *testing.T) {
	p := startPair(t, "haldir-drill")
	c1, c2 := p.c1, p.c2
	state := func(c *Daemon, _ *syncBuffer, what string, s vrrp.State) { t.Helper(); p.state(t, c, what, s) }
	logs1, logs2 := p.logs1, p.logs2
	p.preflightGo(t, "handoff")

	if _, err := c1.Drill(control.DrillRequest{Kind: "chaos", Run: true}); err == nil || !strings.Contains(err.Error(), "want handoff, failover or fault") {
		t.Errorf("an unknown drill kind: %v", err)
	}

	refused, err := c2.Drill(control.DrillRequest{Kind: "handoff", Run: true})
	var rr drill.Report
	if err != nil || json.Unmarshal(refused.Report, &rr) != nil || rr.Verdict != drill.VerdictRefused || !strings.Contains(strings.Join(rr.Preflight, ";"), "masters no VRRP instance") {
		t.Fatalf("a drill on the backup: %+v (%+v), %v", rr, refused, err)
	}
	state(c2, logs2, "r2 still backup after the refused drill", vrrp.StateBackup)
	state(c1, logs1, "r1 still master after the refused drill", vrrp.StateMaster)

	reply, err := c1.Drill(control.DrillRequest{Kind: "handoff", Run: true, Reason: "quarterly drill"})
	var r drill.Report
	if err != nil || json.Unmarshal(reply.Report, &r) != nil {
		t.Fatalf("drill: %+v, %v", reply, err)
	}
	if r.Verdict != drill.VerdictPass || len(r.Handoff) != 1 || !r.Handoff[0].OK || len(r.Timeline) == 0 {
		t.Fatalf("drill report %+v", r)
	}
	state(c2, logs2, "r2 master after the drill", vrrp.StateMaster)
	if _, err := os.Stat(filepath.Join(drill.Dir(c1.stateDir), r.ID+".json")); err != nil {
		t.Fatalf("report not kept: %v", err)
	}
	list, err := c1.DrillReports(control.DrillsRequest{})
	if err != nil || len(list.Reports) != 1 {
		t.Fatalf("r1's reports: %+v, %v", list, err)
	}
	one, err := c1.DrillReports(control.DrillsRequest{ID: r.ID})
	if err != nil || len(one.Reports) != 1 {
		t.Fatalf("r1's report %s: %+v, %v", r.ID, one, err)
	}
	if _, err := c1.DrillReports(control.DrillsRequest{ID: "nosuch"}); err == nil {
		t.Error("an unknown report was found")
	}
	t.Logf("drill report:\n%s", r.Text())
}

// TestDrillFailoverAndFault: a fault drill forces FAULT (priority 0), the
// peer takes over after its Skew_Time, and with failback preemption
// brings mastership back; a failover drill goes silent, so the peer's
// Master_Down_Interval is what is measured, and without failback this
// director stays backup under the lower peer. Both observe the takeover
// against the protocol's bound. A bad hold changes nothing.
func TestDrillFailoverAndFault(t *testing.T) {
	p := startPair(t, "haldir-drillf")
	c1 := p.c1
	state := func(c *Daemon, _ *syncBuffer, what string, s vrrp.State) { t.Helper(); p.state(t, c, what, s) }
	logs1, logs2, c2 := p.logs1, p.logs2, p.c2
	p.preflightGo(t, "failover")
	run := func(req control.DrillRequest) drill.Report {
		t.Helper()
		req.Run = true
		reply, err := c1.Drill(req)
		var r drill.Report
		if err != nil || json.Unmarshal(reply.Report, &r) != nil {
			t.Fatalf("drill %+v: %+v, %v", req, reply, err)
		}
		t.Logf("drill report:\n%s", r.Text())
		return r
	}
	// The verdict follows the measured gap and bound; and the gap is the
	// protocol's, not an instant resign (fault) or a timeout (failover).
	check := func(r drill.Report, minGap, maxGap float64) {
		t.Helper()
		if want := r.GapMillis <= r.BoundMillis; (r.Verdict == drill.VerdictPass) != want || r.BoundMillis == 0 {
			t.Errorf("verdict %s with gap %.1f ms and bound %.1f ms", r.Verdict, r.GapMillis, r.BoundMillis)
		}
		if r.GapMillis < minGap || r.GapMillis > maxGap {
			t.Errorf("gap %.1f ms, want %.0f..%.0f ms", r.GapMillis, minGap, maxGap)
		}
	}

	if _, err := c1.Drill(control.DrillRequest{Kind: "fault", Run: true, Hold: "forever"}); err == nil || !strings.Contains(err.Error(), `hold "forever"`) {
		t.Errorf("a bad hold: %v", err)
	}

	// Priority 0: r2 (priority 100) takes over after its skew, 61 ms.
	r := run(control.DrillRequest{Kind: "fault", Hold: "300ms", Failback: true})
	check(r, 30, 300)
	if !strings.Contains(r.Why, "advertised as new master") || len(r.Timeline) < 3 {
		t.Errorf("fault drill report: %+v", r)
	}
	// Every director's side: r2's takeover, its announcement and (after
	// the failback) its release, from its gossip.
	var peer []string
	for _, e := range r.Timeline {
		if e.Director == "r2" {
			peer = append(peer, e.What)
		}
	}
	if j := strings.Join(peer, "\n"); !strings.Contains(j, "backup -> master") || !strings.Contains(j, "gratuitous ARP") || !strings.Contains(j, "master -> backup") {
		t.Errorf("r2's events in the fault drill's timeline: %q", peer)
	}
	state(c1, logs1, "r1 master again after the fault drill's failback", vrrp.StateMaster)
	state(c2, logs2, "r2 backup again", vrrp.StateBackup)
	p.preflightGo(t, "failover")

	// Silent: r2 takes over after its Master_Down_Interval, 361 ms from
	// r1's last advert.
	r = run(control.DrillRequest{Kind: "failover"})
	check(r, 200, 900)
	state(c2, logs2, "r2 master after the failover drill", vrrp.StateMaster)
	if st := c1.vrrp.Instance("vi").Status(); !st.Yielded || st.Drill.Failure != vrrp.DrillCrash {
		t.Errorf("r1 after the failover drill: %+v", st)
	}
	// Without failback r1 holds back preemption: still backup after more
	// than its Master_Down_Interval under r2's lower adverts.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if s := c1.vrrp.Instance("vi").Status().State; s != vrrp.StateBackup {
			t.Fatalf("r1 %v after a failover drill without failback", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGroupObservation: a drilled sync group is seen once every member
// took the failure, and its slowest (or missing) takeover decides.
func TestGroupObservation(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC)
	obs := func(released, taken time.Duration) vrrp.Status {
		o := vrrp.DrillObservation{Failure: vrrp.DrillCrash, Released: t0.Add(released)}
		if taken > 0 {
			o.TakenAt = t0.Add(taken)
		}
		return vrrp.Status{Drill: o}
	}
	names := []string{"front", "back"}
	for _, c := range []struct {
		name   string
		status map[string]vrrp.Status
		seen   bool
		gap    time.Duration
		taken  bool
	}{
		{"both taken: the slower decides", map[string]vrrp.Status{"front": obs(1, 300*time.Millisecond), "back": obs(1, 340*time.Millisecond)}, true, 340*time.Millisecond - 1, true},
		{"one not taken yet: not taken", map[string]vrrp.Status{"front": obs(1, 300*time.Millisecond), "back": obs(1, 0)}, true, 0, false},
		{"the missing one first", map[string]vrrp.Status{"front": obs(1, 0), "back": obs(1, 300*time.Millisecond)}, true, 0, false},
		{"one member has not failed yet", map[string]vrrp.Status{"front": obs(1, 300*time.Millisecond)}, false, 0, false},
		{"an earlier drill's observation", map[string]vrrp.Status{"front": obs(-time.Second, 0), "back": obs(1, 0)}, false, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, seen := groupObservation(names, c.status, t0)
			if seen != c.seen || o.Gap() != c.gap || !o.TakenAt.IsZero() != c.taken {
				t.Errorf("seen %v gap %v taken %v; want %v %v %v", seen, o.Gap(), !o.TakenAt.IsZero(), c.seen, c.gap, c.taken)
			}
		})
	}
}
