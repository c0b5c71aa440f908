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
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestDrillHandoff: a drill planned on the master finds nothing wrong; run,
// it hands over make-before-break, passes, and its report (with the
// timeline) is kept in state_dir/drills; on the backup it is refused,
// changes nothing, and the refusal is kept too.
func TestDrillHandoff(t *testing.T) {
	cl := newClusterLab(t, "haldir-drill")
	c1, logs1 := startComponents(t, cl.l, "r1", cl.config(t, 0, 150), nil)
	c2, logs2 := startComponents(t, cl.l, "r2", cl.config(t, 1, 100), nil)
	state := func(c *Daemon, logs *syncBuffer, what string, s vrrp.State) {
		t.Helper()
		poll.Until(t, 15*time.Second, what, func() (bool, any) {
			st := c.vrrp.Instance("vi").Status()
			return st.State == s, st
		}, logs.String)
	}
	state(c1, logs1, "r1 master", vrrp.StateMaster)
	state(c2, logs2, "r2 backup", vrrp.StateBackup)
	poll.Until(t, 15*time.Second, "pre-flight on r1 finds nothing wrong", func() (bool, any) {
		reply, err := c1.Drill(control.DrillRequest{Kind: "handoff"})
		return err == nil && reply.Go, reply
	}, logs1.String)

	if _, err := c1.Drill(control.DrillRequest{Kind: "failover", Run: true}); err == nil || !strings.Contains(err.Error(), "not implemented yet") {
		t.Errorf("a failover drill: %v", err)
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
