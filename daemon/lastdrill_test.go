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
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// TestLastDrillInStatus: status carries the newest kept drill report,
// read from state_dir/drills once at start (a report that does not read is
// warned about once and the others still count), and then each drill the
// daemon keeps replaces it.
func TestLastDrillInStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	report := func(at time.Time, verdict string, gap float64) drill.Report {
		return drill.Report{ID: drill.NewID(at, drill.KindHandoff), Kind: drill.KindHandoff, Director: "t",
			Started: at, Finished: at.Add(time.Second), Verdict: verdict, Why: "test", GapMillis: gap, BoundMillis: 500}
	}
	older, newer := report(t0, drill.VerdictPass, 0), report(t0.Add(time.Hour), drill.VerdictFail, 812.5)
	later := report(t0.Add(2*time.Hour), drill.VerdictPass, 0)
	want := func(r drill.Report) *control.DrillSummary {
		return &control.DrillSummary{ID: r.ID, Kind: "handoff", Verdict: r.Verdict, At: r.Started, GapMillis: r.GapMillis, BoundMillis: r.BoundMillis}
	}
	const warning = "drill reports not all read"
	for _, tc := range []struct {
		name    string
		kept    []drill.Report
		corrupt bool
		want    *control.DrillSummary
		warned  int
	}{
		{"none kept", nil, false, nil, 0},
		{"the newest of those kept", []drill.Report{newer, older}, false, want(newer), 0},
		{"a corrupt report beside", []drill.Report{older, newer}, true, want(newer), 1},
		{"only a corrupt report", nil, true, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := t.TempDir()
			dir := drill.Dir(stateDir)
			for _, r := range tc.kept {
				if err := drill.Save(dir, r); err != nil {
					t.Fatal(err)
				}
			}
			if tc.corrupt {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, drill.NewID(t0.Add(-time.Hour), drill.KindHandoff)+".json"), []byte(`{"version": 1, "data": {`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var logs syncBuffer
			d, _ := runOnce(t, drainConfig(t, stateDir, 10, true), fakeKernelOptions(ipvstest.New(), &logs))
			for range 3 {
				if got := d.Status().LastDrill; !sameSummary(got, tc.want) {
					t.Fatalf("status' last drill %+v, want %+v", got, tc.want)
				}
			}
			if n := strings.Count(logs.String(), warning); n != tc.warned {
				t.Errorf("%d warnings %q, want %d:\n%s", n, warning, tc.warned, logs.String())
			}
			if tc.warned > 0 && !strings.Contains(logs.String(), "dir="+dir) {
				t.Errorf("the warning does not name %s:\n%s", dir, logs.String())
			}

			// A drill this daemon keeps replaces it, and a status is a copy.
			d.noteDrill(later)
			st := d.Status()
			if !sameSummary(st.LastDrill, want(later)) {
				t.Fatalf("after a drill: %+v, want %+v", st.LastDrill, want(later))
			}
			st.LastDrill.Verdict = "changed by a reader"
			if got := d.Status().LastDrill; !sameSummary(got, want(later)) {
				t.Errorf("a status reader changed the daemon's last drill: %+v", got)
			}

			// So does a drill run here: without [cluster] it is refused, and
			// the refusal is kept and is the last drill.
			reply, err := d.Drill(control.DrillRequest{Kind: "handoff", Run: true})
			var r drill.Report
			if err != nil || json.Unmarshal(reply.Report, &r) != nil || r.Verdict != drill.VerdictRefused {
				t.Fatalf("drill: %+v, %v", reply, err)
			}
			if got := d.Status().LastDrill; !sameSummary(got, want(r)) {
				t.Errorf("after haldir drill run: %+v, want %+v", got, want(r))
			}
		})
	}
}

func sameSummary(a, b *control.DrillSummary) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.Kind == b.Kind && a.Verdict == b.Verdict && a.At.Equal(b.At) &&
		a.GapMillis == b.GapMillis && a.BoundMillis == b.BoundMillis
}
