package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
)

// maxRecent bounds the state changes kept for drill timelines.
const maxRecent = 256

// Drill plans or runs a drill (haldir drill): pre-flight from this
// director's status; a refused or planned drill changes nothing. A run is
// kept as a report in state_dir/drills, refused ones too (an audit shows
// what was tried).
func (d *Daemon) Drill(req control.DrillRequest) (control.DrillReply, error) {
	kind, err := drill.ParseKind(req.Kind)
	if err != nil {
		return control.DrillReply{}, &control.RequestError{Msg: err.Error()}
	}
	if _, err := parseHold(req.Hold); err != nil {
		return control.DrillReply{}, err
	}
	st := d.Status()
	reasons := drill.Preflight(st, kind)
	if !req.Run {
		return control.DrillReply{Preflight: nonNil(reasons), Go: len(reasons) == 0}, nil
	}
	start := time.Now()
	before := d.connsEvent(start, "before")
	r := drill.Report{ID: drill.NewID(start, kind), Kind: kind, Director: st.RouterID, Reason: req.Reason, Started: start, Preflight: reasons, Forced: req.Force && len(reasons) > 0}
	if st.Cluster != nil {
		for _, m := range st.Cluster.Members {
			if m.Self {
				r.Director = m.Name
			}
		}
	}
	switch {
	case len(reasons) > 0 && !req.Force:
		r.Verdict, r.Why = drill.VerdictRefused, fmt.Sprintf("pre-flight found %d problems; nothing was changed (--force runs it anyway)", len(reasons))
	case kind == drill.KindFailover || kind == drill.KindFault:
		d.failDrill(&r, req)
	default:
		reply, err := d.Handoff(control.HandoffRequest{Instances: req.Instances, Timeout: req.Timeout, Reason: "drill " + r.ID})
		if err != nil {
			r.Verdict, r.Why = drill.VerdictFail, err.Error()
			break
		}
		r.Handoff = reply.Results
		r.Verdict, r.Why = drill.VerdictPass, "every instance moved make-before-break: the target took over and announced before this director released (the addresses never without a holder)"
		for _, h := range reply.Results {
			if !h.OK || h.Method != "make-before-break" {
				r.Verdict = drill.VerdictFail
				r.Why = fmt.Sprintf("%s did not move make-before-break: %s", h.Instance, h.Reason)
				break
			}
		}
	}
	r.Finished = time.Now()
	if r.Verdict != drill.VerdictRefused {
		r.Timeline = append(r.Timeline, before...)
		r.Timeline = append(r.Timeline, d.connsEvent(r.Finished, "after")...)
		for i := range r.Timeline {
			if r.Timeline[i].Director == "" {
				r.Timeline[i].Director = r.Director
			}
		}
	}
	d.call(func() {
		for _, e := range d.recent {
			if !e.At.Before(start) {
				e.Director = r.Director
				r.Timeline = append(r.Timeline, e)
			}
		}
	})
	if r.Verdict != drill.VerdictRefused {
		r.Timeline = append(r.Timeline, d.peerEvents(start, r.Finished)...)
	}
	slices.SortStableFunc(r.Timeline, func(a, b drill.Event) int { return a.At.Compare(b.At) })
	b, _ := json.Marshal(r)
	if err := drill.Save(drill.Dir(d.stateDir), r); err != nil {
		d.log.Error("drill report not kept", "drill", r.ID, "error", err)
		return control.DrillReply{Report: b}, fmt.Errorf("drill %s ran (%s) but its report could not be kept: %w", r.ID, r.Verdict, err)
	}
	d.log.Info("drill", "drill", r.ID, "kind", string(kind), "verdict", r.Verdict, "why", r.Why)
	d.noteDrill(r)
	return control.DrillReply{Preflight: nonNil(reasons), Go: len(reasons) == 0, Report: b}, nil
}

// DrillReports lists the kept drill reports, or one (haldir drill list,
// show).
func (d *Daemon) DrillReports(req control.DrillsRequest) (control.DrillsReply, error) {
	dir := drill.Dir(d.stateDir)
	var rs []drill.Report
	var err error
	if req.ID != "" {
		r, lerr := drill.Load(dir, req.ID)
		if lerr != nil {
			return control.DrillsReply{}, &control.RequestError{Msg: lerr.Error()}
		}
		rs = []drill.Report{r}
	} else if rs, err = drill.List(dir); err != nil && len(rs) == 0 {
		return control.DrillsReply{}, err
	}
	reply := control.DrillsReply{Reports: []json.RawMessage{}}
	for _, r := range rs {
		b, _ := json.Marshal(r)
		reply.Reports = append(reply.Reports, b)
	}
	if err != nil {
		reply.Errors = []string{err.Error()} // the readable ones are listed
	}
	return reply, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
