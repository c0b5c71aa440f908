package bgpha

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// Plan is what a scenario does on one cluster variant.
type Plan struct {
	Options
	// Flows new connections measure the spread over the directors.
	Flows int
	// QuorumLoss drills a lost quorum on director2 first.
	QuorumLoss bool
	// Conns long-lived connections are held through the drills, and Young
	// more are opened just before each event.
	Conns, Young int
	// Progress, when set, gets a line per step; with Show also
	// director1's configuration and `haldir status` once the routes are
	// there.
	Progress io.Writer
	Show     bool
}

// Directors of the drills: maintenance on director1 and SIGKILL on
// director3, the first and last next hops, whose removal also moves a
// share of the other directors' flows (the router's ECMP is not resilient
// hashing): conn sync has to carry those too. The link cut (BFD's case)
// and the lost quorum hit director2.
const (
	MaintenanceDirector = 0
	KillDirector        = 2
	QuorumDirector      = 1
	CutDirector         = 1
)

// Result is what a scenario measured.
type Result struct {
	Plan Plan
	// Settled is haldir's start to three next hops at the router.
	Settled time.Duration
	// Paths are the router's BGP paths to VIP with three directors up.
	Paths []lab.BGPPath
	// Spread counts the new flows each director scheduled, SpreadReal
	// those each real server answered.
	Spread     [3]int
	SpreadReal map[string]int
	Quorum     *QuorumLoss
	// QuietStall is the held connections' longest stall over 2 s with
	// nothing happening.
	QuietStall time.Duration
	Drills     []Drill
}

// Run builds a cluster for p (a lab named name), runs the scenario and
// tears the cluster down. It returns what it measured also on failure.
func Run(ctx context.Context, name, haldir string, p Plan) (*Result, error) {
	r := &Result{Plan: p}
	say := func(format string, args ...any) {
		if p.Progress != nil {
			fmt.Fprintf(p.Progress, format+"\n", args...)
		}
	}
	t0 := time.Now()
	c, err := Start(ctx, name, haldir, p.Options)
	if err != nil {
		return r, err
	}
	defer c.Close()
	r.Settled = time.Since(t0)
	if r.Paths, err = c.RouterFRR.BGPPaths(ctx, VIP); err != nil {
		return r, err
	}
	say("[%v] haldir on three directors: the router has %d paths to %v, next hops %v, %v after the start", p.Options, len(r.Paths), VIP, lab.DirectorEdges4(), r.Settled.Round(time.Millisecond))
	for _, path := range r.Paths {
		say("  from %v: next hop %v, local-pref %d, MED %d, best %t, multipath %t", path.Peer, path.NextHop, path.LocalPref, path.MED, path.Best, path.Multipath)
	}
	if p.Show && p.Progress != nil {
		say("director1's configuration (the others differ in their names and addresses):\n%s", c.Config(0))
		out, err := c.Haldir(ctx, 0, "status")
		if err != nil {
			return r, err
		}
		say("director1: haldir status\n%s", out)
	}
	if p.Flows > 0 {
		if r.Spread, r.SpreadReal, err = c.Spread(ctx, p.Flows); err != nil {
			return r, err
		}
		say("[%v] %d new flows: per director %v, per real server %v", p.Options, p.Flows, r.Spread, fmtCounts(r.SpreadReal))
	}
	if p.QuorumLoss {
		q, err := c.LoseQuorum(ctx, QuorumDirector)
		if err != nil {
			return r, err
		}
		r.Quorum = &q
		say("[%v] director%d's back link cut: quorum lost after %v, its next hop gone %v later; link back: three next hops after %v", p.Options, q.Director+1, q.Quorum.Round(time.Millisecond), q.Withdrawn.Round(time.Millisecond), q.Back.Round(time.Millisecond))
	}
	if p.Conns == 0 {
		return r, nil
	}
	cs, err := c.Hold(ctx, p.Conns)
	if err != nil {
		return r, err
	}
	defer cs.Stop()
	say("[%v] %d long-lived connections open (a round trip every %v), on every director's kernel after %v", p.Options, p.Conns, HoldOptions.Interval, time.Since(cs.Held.Report().Conns[0].Opened).Round(time.Millisecond))
	if r.QuietStall, err = cs.Quiet(ctx, 2*time.Second); err != nil {
		return r, err
	}
	say("[%v] with nothing happening, the longest stall over 2s: %v", p.Options, r.QuietStall.Round(time.Millisecond))
	for _, ev := range []struct {
		e Event
		i int
	}{{Maintenance, MaintenanceDirector}, {SIGKILL, KillDirector}, {LinkCut, CutDirector}} {
		d, err := cs.Run(ctx, ev.e, ev.i, p.Young)
		r.Drills = append(r.Drills, d)
		if err != nil {
			return r, err
		}
		say("[%v] %s", p.Options, d)
	}
	return r, nil
}

func (d Drill) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of director%d: next hop gone after %v", d.Event, d.Director+1, d.Route.Round(time.Millisecond))
	if d.Event == Maintenance {
		fmt.Fprintf(&b, " (GRACEFUL_SHUTDOWN at the router after %v, before the withdraw: %t; withdrawn after %v)", d.Graceful.Round(time.Millisecond), d.GracefulFirst, d.Withdraw.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "; older connections: %d/%d survived, max stall %v", d.Older.Survived(), len(d.Older.Conns), d.Older.MaxStall().Round(time.Millisecond))
	if len(d.Younger.Conns) > 0 {
		fmt.Fprintf(&b, "; younger: %d/%d survived (%d not on every director yet)", d.Younger.Survived(), len(d.Younger.Conns), d.YoungUnsynced)
	}
	fmt.Fprintf(&b, "; joining back: three next hops after %v, %d broken, max stall %v", d.Rejoin.Round(time.Millisecond), d.RejoinBroken, d.RejoinStall.Round(time.Millisecond))
	return b.String()
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteTable writes the drills of several results as one table (markdown),
// then each variant's spread.
func WriteTable(w io.Writer, rs []*Result) {
	fmt.Fprintln(w, "| variant | event | older connections survived | broken | max stall (quiet) | younger survived (not synced) | route change | broken by the rejoin |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		for _, d := range r.Drills {
			o := d.Older
			fmt.Fprintf(w, "| %v | %s | %d/%d | %d | %v (%v) | %d/%d (%d) | %v | %d |\n", r.Plan.Options, d.Event, o.Survived(), len(o.Conns), len(o.Conns)-o.Survived(), o.MaxStall().Round(time.Millisecond), r.QuietStall.Round(time.Millisecond),
				d.Younger.Survived(), len(d.Younger.Conns), d.YoungUnsynced, d.Route.Round(time.Millisecond), d.RejoinBroken)
		}
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		if r.Plan.Flows == 0 {
			continue
		}
		fmt.Fprintf(w, "%v: %d new flows per director %d/%d/%d (even: %d each)\n", r.Plan.Options, r.Plan.Flows, r.Spread[0], r.Spread[1], r.Spread[2], r.Plan.Flows/3)
	}
}
