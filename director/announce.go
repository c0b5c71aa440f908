package director

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// Virtual servers announced over BGP ([[bgp.announce]]) are served by
// every director at once, and the routers may move a flow to another
// director at any time (a director joins or leaves, ECMP rehashes). That
// director schedules the flow anew when conn sync has not brought its
// entry yet (net.ipv4.vs.sloppy_tcp lets it), so the flow stays on its real
// server only when the scheduler is a hash of the flow (mh, or sh) over the
// same real servers, weights and order on every director (order.go).

// announced returns the virtual servers [bgp] announces, each with the
// prefixes it is announced in, in the order of the configuration.
func announced(s *conf.Spec) []announcedVS {
	if s.BGP == nil {
		return nil
	}
	var out []announcedVS
	for i := range s.VirtualServers {
		vs := &s.VirtualServers[i]
		var prefixes []string
		for _, a := range s.BGP.Announce {
			if slices.Contains(a.VirtualServers, vs.Name) {
				prefixes = append(prefixes, a.Prefix.String())
			}
		}
		if len(prefixes) > 0 {
			out = append(out, announcedVS{vs, prefixes})
		}
	}
	return out
}

type announcedVS struct {
	vs       *conf.VirtualServerSpec
	prefixes []string
}

// AnnounceWarnings names every announced virtual server whose scheduler
// does not hash the flow (anything but mh and sh): a flow the routers move
// to another director before conn sync brought its entry there lands on
// another real server, which breaks the connection. The daemon logs them
// at start and reload and shows them as problems.
func AnnounceWarnings(s *conf.Spec) []string {
	var out []string
	for _, a := range announced(s) {
		switch a.vs.Scheduler {
		case conf.SchedMH, conf.SchedSH:
			continue
		}
		out = append(out, fmt.Sprintf("virtual server %q is announced over BGP (%s) but scheduled by %s: a flow the routers move to another director before conn sync brought it there is scheduled anew and lands on another real server; use mh (or sh)",
			a.vs.Name, strings.Join(a.prefixes, ", "), a.vs.Scheduler))
	}
	return out
}

// flowPart is what decides, on every director, which real server a new
// flow of an announced virtual server goes to.
type flowPart struct {
	Scheduler              conf.Scheduler
	SchedulerFlags         conf.SchedulerFlags
	Persistence            time.Duration
	PersistenceGranularity int
	Reals                  []flowReal // canonical order
}

type flowReal struct {
	Addr       netip.AddrPort
	Weight     int
	Forwarding conf.Forwarding
}

// AnnouncedHashes hashes, per announced virtual server, what decides where
// its flows go: the scheduler and its flags, persistence, and the real
// servers with their weights in the canonical order (so two files listing
// them differently hash equal, as their kernel tables are equal). The
// daemon gossips them with conf.Spec.Hashes, so that the cluster's drift
// check names the announced virtual server whose real servers or weights
// differ between directors, under "announced virtual_server NAME".
func AnnouncedHashes(s *conf.Spec) map[string]string {
	out := map[string]string{}
	for _, a := range announced(s) {
		vs := a.vs
		p := flowPart{Scheduler: vs.Scheduler, SchedulerFlags: vs.SchedulerFlags, Persistence: vs.Persistence,
			PersistenceGranularity: vs.PersistenceGranularity, Reals: make([]flowReal, 0, len(vs.RealServers))}
		for _, rs := range vs.RealServers {
			p.Reals = append(p.Reals, flowReal{rs.Addr, rs.Weight, rs.Forwarding})
		}
		slices.SortFunc(p.Reals, func(a, b flowReal) int { return a.Addr.Compare(b.Addr) })
		out["announced virtual_server "+vs.Name] = conf.Hash(p)
	}
	return out
}
