// Package drill plans, records and reports failover drills (haldir
// drill): the pre-flight checks that refuse a drill on a pair that is not
// fit for one, the report of a drill (a timeline and a verdict), and where
// reports are kept (global.state_dir/drills).
package drill

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/statefile"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// Kind is what a drill does.
type Kind string

// The kinds: a planned handoff, a simulated crash of the master (it
// stops adverting without priority 0 and drops the addresses, so the
// peers' detection is really exercised), and a forced FAULT.
const (
	KindHandoff  Kind = "handoff"
	KindFailover Kind = "failover"
	KindFault    Kind = "fault"
)

// ParseKind checks a kind's name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindHandoff, KindFailover, KindFault:
		return k, nil
	}
	return "", fmt.Errorf("drill kind %q: want handoff, failover or fault", s)
}

// minSyncedPerService is how many connections of a virtual server this
// director must hold before a backup holding none of them refuses a
// drill.
const minSyncedPerService = 10

// Preflight lists every reason the pair is not fit for a drill of kind
// now, as this director sees it; none means go. A drill refused by them
// changes nothing.
func Preflight(st control.Status, kind Kind) []string {
	var out []string
	if st.Cluster == nil {
		out = append(out, "no [cluster]: a drill needs the other directors' view (their states, conn sync, split brain)")
	}
	var masters []vrrp.Status
	for _, in := range st.VRRP {
		if in.State == vrrp.StateMaster {
			masters = append(masters, in)
		}
	}
	if len(masters) == 0 {
		out = append(out, "this director masters no VRRP instance: run the drill on the master")
	}
	if st.Maintenance != nil {
		out = append(out, "this director is in maintenance")
	}
	// Everything wrong now: split brain, drift, a director gone, a VRRP
	// instance in fault, conn sync not in its roles or not receiving, a
	// virtual server without quorum, a component not running.
	for _, p := range st.Problems() {
		out = append(out, p.What)
	}
	// The backups' side of conn sync, as they gossip it: without a
	// receiving backup daemon the connections would not survive the move.
	if r := st.ConnSync(); st.Sync != nil && r.Receiving == control.ReceivingMaster {
		for _, p := range r.Peers {
			switch {
			case !slices.Contains(strings.Split(p.Role, "+"), ipvs.SyncBackup.String()):
				out = append(out, fmt.Sprintf("conn sync: director %s runs no backup sync daemon (%s): established connections would not survive the move", p.Director, p.Role))
			case r.Conns > 0 && p.Conns == 0:
				out = append(out, fmt.Sprintf("conn sync: director %s holds none of this director's %d connections: its backup sync daemon is not receiving", p.Director, r.Conns))
			default:
				// Per virtual server: one the backup holds nothing of
				// (it lacks the service, or its sync misses it). A few
				// new connections may not have been sent yet (the
				// kernel sends a partly filled message after 2 s).
				for _, svc := range slices.Sorted(maps.Keys(r.Services)) {
					if n := r.Services[svc]; n >= minSyncedPerService && p.Services[svc] == 0 {
						out = append(out, fmt.Sprintf("conn sync: director %s holds none of this director's %d connections of %s", p.Director, n, svc))
					}
				}
			}
		}
	}
	if v := st.Cluster; v != nil {
		for _, in := range masters {
			if !backedUp(*v, in) {
				out = append(out, fmt.Sprintf("no live director backs up %s (VRID %d) in the cluster view", in.Name, vridOf(st, in.Name)))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func vridOf(st control.Status, name string) int {
	for _, v := range st.Cluster.Members {
		if v.Self {
			for _, in := range v.VRRP {
				if in.Name == name {
					return in.VRID
				}
			}
		}
	}
	return 0
}

// backedUp is whether a live director other than this one, not in
// maintenance, is backup of in's virtual router.
func backedUp(v cluster.View, in vrrp.Status) bool {
	for _, m := range v.Members {
		if !m.Self {
			continue
		}
		for _, s := range m.VRRP {
			if s.Name == in.Name {
				return slices.ContainsFunc(v.Backups(s.VRID, s.Family), func(b cluster.Member) bool { return !b.Maintenance })
			}
		}
	}
	return false
}

// Verdicts.
const (
	VerdictPass    = "pass"
	VerdictFail    = "fail"
	VerdictRefused = "refused"
)

// Event is one line of a drill's timeline.
type Event struct {
	At       time.Time `json:"at"`
	Director string    `json:"director"`
	What     string    `json:"what"`
}

// Report is one drill, as kept and shown.
type Report struct {
	ID       string    `json:"id"`
	Kind     Kind      `json:"kind"`
	Director string    `json:"director"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Preflight lists what pre-flight found wrong; with it and without
	// Forced the drill was refused and changed nothing.
	Preflight []string `json:"preflight,omitempty"`
	Forced    bool     `json:"forced,omitempty"`
	Verdict   string   `json:"verdict"`
	// Why is what the verdict rests on.
	Why string `json:"why"`
	// GapMillis is how long the drilled addresses had no holder as far as
	// the drill could tell (handoff: 0 when make-before-break; failover:
	// from the master's release to the new master's takeover), and
	// BoundMillis the most the verdict allowed (0: none).
	GapMillis   float64                 `json:"gap_ms"`
	BoundMillis float64                 `json:"bound_ms,omitempty"`
	Timeline    []Event                 `json:"timeline,omitempty"`
	Handoff     []control.HandoffResult `json:"handoff,omitempty"`
}

// NewID names a drill by its start and kind; reports sort by it.
func NewID(start time.Time, kind Kind) string {
	return start.UTC().Format("20060102T150405.000Z") + "-" + string(kind)
}

// Dir is where the reports of a daemon with state_dir are kept.
func Dir(stateDir string) string { return filepath.Join(stateDir, "drills") }

// reportVersion is the version of the report files.
const reportVersion = 1

// Save keeps r in dir, atomically.
func Save(dir string, r Report) error {
	if strings.ContainsAny(r.ID, "/\\") || r.ID == "" {
		return fmt.Errorf("drill report id %q", r.ID)
	}
	return statefile.Save(filepath.Join(dir, r.ID+".json"), reportVersion, r)
}

// Load reads the report called id from dir.
func Load(dir, id string) (Report, error) {
	var r Report
	if strings.ContainsAny(id, "/\\") || id == "" || strings.HasPrefix(id, ".") {
		return r, fmt.Errorf("no drill %q", id)
	}
	found, err := statefile.Load(filepath.Join(dir, id+".json"), reportVersion, &r)
	if err != nil {
		return r, err
	}
	if !found {
		return r, fmt.Errorf("no drill %q in %s", id, dir)
	}
	return r, nil
}

// List reads every report in dir, oldest first; a file that does not read
// is an error naming it, the others are still listed.
func List(dir string) ([]Report, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Report
	var errs []error
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		r, err := Load(dir, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.ID, b.ID) })
	return out, errors.Join(errs...)
}

// Text renders r for a terminal or a change ticket.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drill %s: %s on %s, %s\n", r.ID, r.Kind, r.Director, strings.ToUpper(r.Verdict))
	if r.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", r.Reason)
	}
	fmt.Fprintf(&b, "started %s, took %s\n", r.Started.UTC().Format(time.RFC3339Nano), r.Finished.Sub(r.Started).Round(time.Millisecond))
	fmt.Fprintf(&b, "verdict: %s: %s\n", r.Verdict, r.Why)
	if len(r.Preflight) > 0 {
		head := "pre-flight refused:"
		if r.Forced {
			head = "pre-flight found (forced past):"
		}
		fmt.Fprintln(&b, head)
		for _, p := range r.Preflight {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	for _, h := range r.Handoff {
		state := "moved"
		if !h.OK {
			state = "NOT moved: " + h.Reason
		}
		fmt.Fprintf(&b, "handoff %s -> %s (%s): %s in %.1f ms\n", h.Instance, h.To, h.Method, state, h.Millis)
	}
	if len(r.Timeline) > 0 {
		fmt.Fprintln(&b, "timeline:")
		for _, e := range r.Timeline {
			fmt.Fprintf(&b, "  +%8.1f ms  %-12s %s\n", float64(e.At.Sub(r.Started).Microseconds())/1000, e.Director, e.What)
		}
	}
	return b.String()
}
