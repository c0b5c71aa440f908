package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/haldir-lb/haldir/lab/bgpha"
)

// bgpInteresting are the haldir log lines the BGP demo shows as they happen.
var bgpInteresting = regexp.MustCompile(`bgp|quorum changed|maintenance|haldir started|sync daemon (started|stopped)|cluster: (member|split|config|resolved)|level=(WARN|ERROR)`)

// RunBGPDemo is `make demo-bgp`'s guest side: haldir in BGP mode on the BGP
// lab's three directors (package bgpha), with the routes at the router, the
// spread of new flows, a lost quorum, maintenance and a killed director
// while long-lived connections run, and a table of what it measured.
func RunBGPDemo(ctx context.Context, out io.Writer, haldirPath string) (*bgpha.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	fmt.Fprintln(out, `== haldir in BGP mode: three active directors behind an ECMP router
client ─ [clients] ─ router (FRR bgpd+bfdd, ECMP, L4 hash) ─ [edge] ─ director1, director2, director3 ─ [back] ─ real1, real2, real3
router 192.0.2.1 AS 65000 (BFD 100ms x 3); directors 192.0.2.11-13 AS 65010; conn sync and gossip on 10.0.0.0/24
VIP 203.0.113.10/32: echo (port 7, TCP check) and web (port 80, HTTP check), mh + mh-port, LVS-DR`)
	r, err := bgpha.Run(ctx, "demo-bgp", haldirPath, bgpha.Plan{
		Options:    bgpha.Options{Log: out, LogFilter: bgpInteresting},
		Flows:      600,
		QuorumLoss: true,
		Conns:      100,
		Young:      20,
		Progress:   out,
		Show:       true,
	})
	if r != nil && len(r.Drills) > 0 {
		fmt.Fprintln(out, "\n== what it measured")
		bgpha.WriteTable(out, []*bgpha.Result{r})
	}
	return r, err
}
