package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a soak found.
type Report struct {
	Mode     Mode   `json:"mode"`
	Seed     uint64 `json:"seed"`
	Duration string `json:"duration"`
	Ran      string `json:"ran"`
	// Faults counts the injected faults by kind; FaultLog lists them.
	Faults   map[string]int `json:"faults"`
	FaultLog []string       `json:"fault_log"`
	// Invariants by name, each with its violations (expected 0).
	Invariants []*invariant `json:"invariants"`
	Conns      connCounts   `json:"connections"`
	// VIPGaps is the distribution of times no director held an address
	// (each address's gaps), in ms; Overlaps the moves' overlaps outside
	// faults that allow two holders.
	VIPGaps  Distribution `json:"vip_gaps_ms"`
	Overlaps Distribution `json:"overlaps_ms"`
	// ConnSync is the long-lived connections' open to both directors'
	// tables holding them.
	ConnSync Distribution `json:"conn_sync_ms"`
	// RouteWithdraws are the BGP mode's director leaving to the router's
	// next hop gone, RouteJoins its being able to serve again to the next
	// hop back; RouteBound and JoinBound their bounds.
	RouteWithdraws Distribution `json:"route_withdraws_ms"`
	RouteJoins     Distribution `json:"route_joins_ms"`
	// RouteStallLosses: next hops lost with no change of the soak's right
	// after a stall of its own as long as BFD's detection, until back.
	RouteStallLosses Distribution `json:"route_stall_losses_ms"`
	// CommandTaken: an operator command (maintenance) started by the
	// soak to its daemon taking it; a route's bound counts from there.
	CommandTaken Distribution `json:"command_taken_ms"`
	RouteBound   string       `json:"route_bound,omitempty"`
	JoinBound    string       `json:"join_bound,omitempty"`
	// MasterDownInterval is director2's, the gap bound's base.
	MasterDownInterval string   `json:"master_down_interval"`
	GapBound           string   `json:"gap_bound"`
	Growth             []growth `json:"growth"`
	// ErrorsExplained counts ERROR lines by fault kind and message.
	ErrorsExplained map[string]int `json:"errors_explained"`
	// ErrorFirst is the first whole line of each ErrorsExplained key.
	ErrorFirst   map[string]string `json:"error_first"`
	Warnings     map[string]int    `json:"warnings"`
	StallTotal   string            `json:"stall_total"`
	StallLongest string            `json:"stall_longest"`
	LeftOut      []string          `json:"left_out,omitempty"`
}

// Distribution summarises durations in ms.
type Distribution struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func distribution(ds []time.Duration) Distribution {
	if len(ds) == 0 {
		return Distribution{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	ms := func(q float64) float64 {
		i := min(int(q*float64(len(ds))), len(ds)-1)
		return float64(ds[i].Microseconds()) / 1000
	}
	return Distribution{Count: len(ds), P50: ms(0.5), P90: ms(0.9), P99: ms(0.99), Max: float64(ds[len(ds)-1].Microseconds()) / 1000}
}

func (d Distribution) String() string {
	if d.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("%d: p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms", d.Count, d.P50, d.P90, d.P99, d.Max)
}

// finalChecks runs the checks made once at the end.
func (s *soak) finalChecks() {
	growth := s.checkGrowth()
	s.mu.Lock()
	s.growth = growth
	s.mu.Unlock()
}

// report assembles the report.
func (s *soak) report() *Report {
	total, longest := time.Duration(0), time.Duration(0)
	if s.stall != nil {
		total, longest = s.stall.Totals()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &Report{
		Seed: s.opts.Seed, Duration: s.opts.Duration.String(), Ran: time.Since(s.start).Round(time.Second).String(),
		Faults: map[string]int{}, Conns: s.conns, VIPGaps: distribution(s.gaps), Overlaps: distribution(s.duals), ConnSync: distribution(s.syncLat),
		MasterDownInterval: masterDown(prio2).String(), GapBound: (masterDown(prio2) + gapSlack).String(),
		Growth: s.growth, ErrorsExplained: maps.Clone(s.errLines), ErrorFirst: maps.Clone(s.errFirst), Warnings: maps.Clone(s.warnLines),
		StallTotal: total.Round(time.Millisecond).String(), StallLongest: longest.Round(time.Millisecond).String(),
		LeftOut: slices.Clone(s.leftOut), Mode: s.opts.mode(),
	}
	if r.Mode == ModeBGP {
		r.VIPGaps, r.Overlaps, r.ConnSync, r.MasterDownInterval, r.GapBound = Distribution{}, Distribution{}, Distribution{}, "", ""
		r.RouteWithdraws, r.RouteJoins, r.RouteStallLosses = distribution(s.withdraws), distribution(s.joins), distribution(s.stallLosses)
		r.CommandTaken = distribution(s.cmdTaken)
		r.RouteBound, r.JoinBound = routeBound.String(), joinBound.String()
	}
	for _, f := range s.faults {
		r.Faults[f.Kind.String()]++
		line := fmt.Sprintf("%3d at %7.1fs %s; settled in %v", f.N, f.Start.Sub(s.start).Seconds(), f.Fault, f.Settled.Round(time.Millisecond))
		if f.Note != "" {
			line += "; " + f.Note
		}
		r.FaultLog = append(r.FaultLog, line)
	}
	for _, name := range slices.Sorted(maps.Keys(s.inv)) {
		in := *s.inv[name]
		r.Invariants = append(r.Invariants, &in)
	}
	return r
}

// TotalViolations sums the violations of every invariant.
func (r *Report) TotalViolations() int {
	n := 0
	for _, in := range r.Invariants {
		n += in.Violations
	}
	return n
}

// JSON is the report as one line of JSON.
func (r *Report) JSON() ([]byte, error) { return json.Marshal(r) }

// Text is the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== soak report, %s mode: seed %d, faults for %s (ran %s) ==\n", r.Mode, r.Seed, r.Duration, r.Ran)
	fmt.Fprintf(&b, "faults injected by kind:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(r.Faults)) {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.Faults[k])
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "violations by invariant (expected 0):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, in := range r.Invariants {
		fmt.Fprintf(tw, "  %s\t%d violations\t%d checks\t%s\n", in.Name, in.Violations, in.Checks, in.Worst)
	}
	_ = tw.Flush()
	c := r.Conns
	fmt.Fprintf(&b, "connections: new %d ok, %d failed (longest run of failures %d ms %s); by real server %v\n", c.NewOK, c.NewFailed, c.LongestNewFailureRun, c.LongestNewFailureRunWhen, c.NewByReal)
	if r.Mode == ModeBGP {
		fmt.Fprintf(&b, "held: %d opened, %d round trips checked; broke with their real server %d, younger than the sync flush at a change %d, unexplained %d\n",
			c.LongLivedOpened, c.LongLivedAnswers, c.BrokeWithRealServer, c.BrokeUnsynced, c.BrokeUnexplained)
		fmt.Fprintf(&b, "next hop withdrawn after a director left: %s (bound %s + the checks for a lost quorum; a maintenance's from its daemon taking it)\n", r.RouteWithdraws, r.RouteBound)
		fmt.Fprintf(&b, "haldir maintenance started to its daemon taking it: %s\n", r.CommandTaken)
		fmt.Fprintf(&b, "next hop back after a director could serve again: %s (bound %s)\n", r.RouteJoins, r.JoinBound)
		fmt.Fprintf(&b, "next hop lost in a stall of the soak's as long as BFD's detection, until back: %s (bound %s)\n", r.RouteStallLosses, r.JoinBound)
	} else {
		fmt.Fprintf(&b, "long-lived: %d opened, %d answers checked; broke with their real server %d, before conn sync reached the peer %d, scheduled to different real servers by the two directors (handshake across a failover) %d, unexplained %d, answered by another real %d\n",
			c.LongLivedOpened, c.LongLivedAnswers, c.BrokeWithRealServer, c.BrokeUnsynced, c.BrokeSplitHandshake, c.BrokeUnexplained, c.AnsweredByOtherReal)
		fmt.Fprintf(&b, "conn sync (open to both tables): %s\n", r.ConnSync)
		fmt.Fprintf(&b, "VIP/gateway gaps: %s (Master_Down_Interval %s, bound %s)\n", r.VIPGaps, r.MasterDownInterval, r.GapBound)
		fmt.Fprintf(&b, "overlaps in moves: %s\n", r.Overlaps)
	}
	fmt.Fprintf(&b, "soak process stalls (TCG): %s in all, longest %s\n", r.StallTotal, r.StallLongest)
	for _, g := range r.Growth {
		fmt.Fprintf(&b, "growth %s over %s (%d samples): %+.0f goroutines, %+.0f fds, %+.1f MiB (first %s; last %s)\n", g.Daemon, g.Span, g.Samples, g.Goroutines, g.FDs, g.RSSMiB, g.First, g.Last)
	}
	if len(r.ErrorsExplained) > 0 {
		fmt.Fprintf(&b, "ERROR lines, each in a fault's window:\n")
		for _, k := range slices.Sorted(maps.Keys(r.ErrorsExplained)) {
			fmt.Fprintf(&b, "  %4d  %s\n", r.ErrorsExplained[k], k)
			// Only where the line says more than its message does
			// (memberlist's lines are all message).
			if first := r.ErrorFirst[k]; strings.Contains(first, " error=") {
				fmt.Fprintf(&b, "        first: %s\n", first)
			}
		}
	}
	for _, in := range r.Invariants {
		for _, e := range in.Examples {
			fmt.Fprintf(&b, "violation %s: %s\n", in.Name, e)
		}
	}
	for _, l := range r.LeftOut {
		fmt.Fprintf(&b, "left out: %s\n", l)
	}
	fmt.Fprintf(&b, "total violations: %d\n", r.TotalViolations())
	return b.String()
}
