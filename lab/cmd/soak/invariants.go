package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/bgpha"
)

// The invariants, each checked all the time and counted by name.
const (
	invOneHolder       = "one-holder"
	invVIPGap          = "vip-gap"
	invConnSurvive     = "conns-survive-failover"
	invTable           = "ipvs-table"
	invSplitBrain      = "split-brain-reported"
	invNoGrowth        = "no-resource-growth"
	invNoCrash         = "no-panic-or-crash"
	invErrorsExplained = "errors-explained"
	invRecovers        = "recovers"
	invOperations      = "operations-work"
)

// invariantDocs say what each invariant holds the pair to.
var invariantDocs = map[string]string{
	invOneHolder:       "at most one director holds the VIP (and the back gateway), except a move's overlap of at most " + dualBound.String() + " or while a fault that allows two holders is on (a paused, starved, killed or partitioned master keeps its addresses)",
	invVIPGap:          "the VIP and the gateway are never without a holder on a live link for longer than Master_Down_Interval + " + gapSlack.String() + " (plus the soak's own measured stall)",
	invConnSurvive:     "a long-lived connection breaks only when its real server dies, hangs or trickles (conn sync carries it through every failover), or before conn sync brought it to the peer, within " + syncLimit.String() + " of its opening",
	invTable:           "the master's IPVS table equals config + real-server health within the checks' detection time (fall x interval + timeout) + 2 check intervals; when the daemon retried checks because its checker was late (an overloaded VM), each of the fall checks may take two",
	invSplitBrain:      "the cluster reports split brain exactly when two live directors are master for the same instance (a miss tolerated for the cluster's 3 s hold + 3 s, a false alarm for 3 s)",
	invNoGrowth:        "goroutines, open fds and RSS of each daemon do not grow over its lifetime (steady-state samples)",
	invNoCrash:         "no panic, no fatal error, no exit the soak did not cause",
	invErrorsExplained: "every ERROR log line falls in an injected fault's window (its start to 5 s after the pair is steady again)",
	invRecovers:        "after each fault the pair is back to its steady state within " + settleLimit.String(),
	invOperations:      "reloads, handoffs and maintenance answer as they should (a broken file refused, the old configuration kept)",
}

// The BGP mode's invariants besides the shared ones.
const (
	invRoutes   = "routes-follow-health"
	invBGPConns = "conns-survive-director-changes"
	invNewConns = "new-conns"
)

// bgpInvariantDocs say what each invariant holds the BGP directors to.
var bgpInvariantDocs = map[string]string{
	invRoutes: fmt.Sprintf("the router's next hops for the VIP are the directors whose haldir runs, is not stopped, is out of maintenance, reaches the router and has quorum: a director leaving is withdrawn within %v (plus the checks' %v for a lost quorum; a maintenance counted from its daemon taking the command), one that can serve again is back within %v, and a next hop changes on its own for at most %v (one lost within %v of a stall of the soak's of at least BFD's %v comes back within %v); each plus the soak's measured stall (netem and CPU starvation may go either way while on)",
		routeBound, checkDetect, joinBound, routeBound, stallLookback, bfdDetect, joinBound),
	invBGPConns:        "a held connection breaks only when its real server loses its link, or when it was younger than the sync flush (" + bgpha.SyncFlush.String() + ") at a fault's start or end (counted apart)",
	invNewConns:        "no run of failed new connections is longer than " + newRunBound.String() + " (plus the measured stall)",
	invNoGrowth:        invariantDocs[invNoGrowth],
	invNoCrash:         invariantDocs[invNoCrash],
	invErrorsExplained: "every ERROR log line falls in an injected fault's window (its start to 5 s after the directors are steady again)",
	invRecovers:        "after each fault the router has three next hops again and every haldir runs within " + settleLimit.String(),
	invOperations:      "haldir reload, status and maintenance on/off answer as they should (a broken file refused, the old configuration kept)",
}

// Bounds the invariants use; gapSlack is what TCG needs on top of
// Master_Down_Interval (see the README's Soak section).
const (
	dualBound = time.Second
	gapSlack  = 650 * time.Millisecond
)

// invariant counts one invariant's checks and violations.
type invariant struct {
	Name        string   `json:"name"`
	Rule        string   `json:"rule"`
	Violations  int      `json:"violations"`
	Worst       string   `json:"worst,omitempty"`
	WorstValue  float64  `json:"worst_ms,omitempty"`
	Examples    []string `json:"examples,omitempty"`
	Checks      int64    `json:"checks"`
	worstMetric time.Duration
}

func newInvariants(mode Mode) map[string]*invariant {
	docs := invariantDocs
	if mode == ModeBGP {
		docs = bgpInvariantDocs
	}
	m := map[string]*invariant{}
	for name, doc := range docs {
		m[name] = &invariant{Name: name, Rule: doc}
	}
	return m
}

// violate counts a violation of name; by is its size when it has one
// (the worst is kept), detail says what happened. The daemons' log of
// the last 8 s follows it.
func (s *soak) violate(name string, by time.Duration, detail string) {
	s.violateSince(name, by, detail, time.Now().Add(-8*time.Second))
}

// violateSince is violate with the daemons' log from logFrom: a
// violation judged at an episode's end needs the log of its start.
func (s *soak) violateSince(name string, by time.Duration, detail string, logFrom time.Time) {
	s.mu.Lock()
	in := s.inv[name]
	in.Violations++
	if len(in.Examples) < 8 {
		in.Examples = append(in.Examples, fmt.Sprintf("%.3fs: %s", time.Since(s.start).Seconds(), detail))
	}
	if by > in.worstMetric || in.Worst == "" {
		in.worstMetric = max(in.worstMetric, by)
		in.Worst = detail
		in.WorstValue = float64(in.worstMetric.Microseconds()) / 1000
	}
	s.mu.Unlock()
	s.printf("VIOLATION %s: %s", name, detail)
	s.block(s.recentLog(time.Since(logFrom)))
}

// recentLog is both daemons' log lines of the last d, for a violation's
// context (the metrics endpoint's and memberlist's chatter left out).
func (s *soak) recentLog(d time.Duration) string {
	var b strings.Builder
	since := time.Now().Add(-d)
	for _, name := range s.directorNames() {
		s.mu.Lock()
		dm := s.daemons[name]
		var p *lab.Proc
		if dm != nil {
			p = dm.proc
		}
		s.mu.Unlock()
		if p == nil {
			continue
		}
		for _, l := range p.Lines() {
			if l.Time.After(since) && !strings.Contains(l.Text, "memberlist: Stream connection") {
				fmt.Fprintf(&b, "%s %s| %s\n", l.Time.Format("15:04:05.000"), name, l.Text)
			}
		}
	}
	return b.String()
}

// checked counts one check of name.
func (s *soak) checked(name string) {
	s.mu.Lock()
	s.inv[name].Checks++
	s.mu.Unlock()
}
