package daemon

import (
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
)

// The newest kept drill, for status and the metrics. It is read from
// state_dir/drills once, at start (before the loop runs, so the loop never
// waits on the directory), and replaced by each drill this daemon keeps;
// d.lastDrill is loop-owned like the rest.

// lastDrillSummary is the summary of the newest report kept in
// state_dir/drills, nil when there is none. A report that does not read is
// logged and the others are still used: a corrupt file must not hide the
// drills before it.
func (d *Daemon) lastDrillSummary() *control.DrillSummary {
	rs, err := drill.List(drill.Dir(d.stateDir))
	if err != nil {
		d.log.Warn("drill reports not all read: the last drill in status and metrics is the newest that did", "dir", drill.Dir(d.stateDir), "error", err)
	}
	if len(rs) == 0 {
		return nil
	}
	return drillSummary(rs[len(rs)-1]) // List sorts by ID: by start
}

func drillSummary(r drill.Report) *control.DrillSummary {
	return &control.DrillSummary{ID: r.ID, Kind: string(r.Kind), Verdict: r.Verdict, At: r.Started,
		GapMillis: r.GapMillis, BoundMillis: r.BoundMillis}
}

// loadLastDrill fills the cache at start, before the loop runs.
func (d *Daemon) loadLastDrill() { d.lastDrill = d.lastDrillSummary() }

// noteDrill makes r, just kept, the last drill. Drill runs off the loop,
// so the loop takes it; a stopping daemon drops it (the report is kept and
// the next start reads it).
func (d *Daemon) noteDrill(r drill.Report) {
	s := drillSummary(r)
	d.call(func() { d.lastDrill = s })
}

// lastDrillStatus is the cached summary for a status, a copy so that the
// status never shares what the loop owns.
func (d *Daemon) lastDrillStatus() *control.DrillSummary {
	if d.lastDrill == nil {
		return nil
	}
	c := *d.lastDrill
	return &c
}
