package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/pair"
)

// vipEvery is how often the address holders are sampled.
const vipEvery = 20 * time.Millisecond

// watchVIPs samples who holds the VIP and the back gateway on a live link
// (one the soak has not cut or detached) and checks the one-holder and
// the gap invariants.
func (s *soak) watchVIPs(ctx context.Context) {
	type episode struct{ gapSince, dualSince time.Time }
	addrs := []struct {
		iface string
		p     netip.Prefix
	}{{"eth0", pair.VIP}, {"eth1", pair.GW}}
	ep := make([]episode, len(addrs))
	bound := masterDown(prio2) + gapSlack
	every(ctx, vipEvery, func() {
		now := time.Now()
		for i, a := range addrs {
			n := 0
			for _, h := range s.s.Directors() {
				held, err := pair.Holds(h, a.iface, a.p)
				s.mu.Lock()
				down := s.linkDown[h.Name()+"/"+a.iface]
				s.mu.Unlock()
				if err == nil && held && !down {
					n++
				}
			}
			e := &ep[i]
			switch {
			case n == 0 && e.gapSince.IsZero():
				e.gapSince = now
			case n > 0 && !e.gapSince.IsZero():
				gap := now.Sub(e.gapSince)
				s.checked(invVIPGap)
				s.mu.Lock()
				s.gaps = append(s.gaps, gap)
				s.mu.Unlock()
				stall := s.stall.In(e.gapSince, now)
				if gap > bound+stall {
					s.violate(invVIPGap, gap, fmt.Sprintf("%v had no holder for %v (bound %v + %v of measured stall)%s", a.p, gap.Round(time.Millisecond), bound, stall, s.during(e.gapSince)))
				}
				e.gapSince = time.Time{}
			}
			switch {
			case n == 2 && e.dualSince.IsZero():
				e.dualSince = now
			case n < 2 && !e.dualSince.IsZero():
				dual := now.Sub(e.dualSince)
				s.checked(invOneHolder)
				allowed := s.twoHoldersAllowed(e.dualSince, now, 3*time.Second)
				s.mu.Lock()
				if !allowed {
					s.duals = append(s.duals, dual)
				}
				s.mu.Unlock()
				stall := s.stall.In(e.dualSince, now)
				if !allowed && dual > dualBound+stall {
					s.violate(invOneHolder, dual, fmt.Sprintf("both directors held %v for %v (bound %v + %v of measured stall)%s", a.p, dual.Round(time.Millisecond), dualBound, stall, s.during(e.dualSince)))
				}
				e.dualSince = time.Time{}
			}
		}
	})
}

// during names the fault on at t, for a violation's detail.
func (s *soak) during(t time.Time) string {
	if f := s.faultAt(t, 5*time.Second); f != nil {
		return fmt.Sprintf(" during fault %d (%s)", f.N, f.Fault)
	}
	return " with no fault on"
}

// watchStatus compares the cluster's split-brain report with the truth:
// two live directors master for the same instance, from their own status.
func (s *soak) watchStatus(ctx context.Context) {
	const (
		missTolerance  = 6 * time.Second // the cluster's 3 s hold + 3 s
		falseTolerance = 3 * time.Second
	)
	var missSince, falseSince time.Time
	every(ctx, 250*time.Millisecond, func() {
		st1, ok1 := s.status(ctx, s.daemons["director1"])
		st2, ok2 := s.status(ctx, s.daemons["director2"])
		if !ok1 || !ok2 {
			// A director that cannot answer is no live director: what the
			// other reports of it is not judged.
			missSince, falseSince = time.Time{}, time.Time{}
			return
		}
		now := time.Now()
		m1, m2 := vrrpStates(st1), vrrpStates(st2)
		truth := (m1["front"] == "master" && m2["front"] == "master") || (m1["back"] == "master" && m2["back"] == "master")
		reported := splitBrain(st1.Cluster) || splitBrain(st2.Cluster)
		s.checked(invSplitBrain)
		switch {
		case truth && !reported:
			falseSince = time.Time{}
			if missSince.IsZero() {
				missSince = now
			}
			if d := now.Sub(missSince); d > missTolerance+s.stall.In(missSince, now) {
				s.violate(invSplitBrain, d, fmt.Sprintf("two masters (director1 %v, director2 %v) for %v and no split brain reported%s", m1, m2, d.Round(time.Millisecond), s.during(missSince)))
				missSince = now // one violation per tolerance span
			}
		case reported && !truth:
			missSince = time.Time{}
			if falseSince.IsZero() {
				falseSince = now
			}
			if d := now.Sub(falseSince); d > falseTolerance+s.stall.In(falseSince, now) {
				s.violate(invSplitBrain, d, fmt.Sprintf("split brain reported for %v with one master (director1 %v, director2 %v): %q %q%s", d.Round(time.Millisecond), m1, m2, problems(st1.Cluster), problems(st2.Cluster), s.during(falseSince)))
				falseSince = now
			}
		default:
			missSince, falseSince = time.Time{}, time.Time{}
		}
	})
}

// watchTable checks the master's IPVS table against config + health.
func (s *soak) watchTable(ctx context.Context) {
	bound := checkFall*checkInterval + checkTimeout + 2*checkInterval
	var (
		since  time.Time
		lateAt uint64
	)
	every(ctx, 250*time.Millisecond, func() {
		master := s.holder()
		if master == nil {
			since = time.Time{}
			return
		}
		now := time.Now()
		diff := s.tableDiff(master)
		s.checked(invTable)
		if diff == "" {
			since = time.Time{}
			return
		}
		s.mu.Lock()
		from := s.truthAt
		s.mu.Unlock()
		if since.IsZero() {
			since = now
			lateAt = s.lateRetries(ctx, master)
		}
		from = later(from, since)
		limit := bound + s.stall.In(from, now)
		// A failure seen while the checker itself was late is retried
		// before it counts (healthcheck): when that happened in this
		// window, each of the fall checks may have taken two.
		if s.lateRetries(ctx, master) > lateAt {
			limit += checkFall * (checkInterval + checkTimeout)
		}
		if d := now.Sub(from); d > limit {
			s.violate(invTable, d, fmt.Sprintf("%s's IPVS table wrong for %v (bound %v): %s%s", master.Name(), d.Round(time.Millisecond), bound, diff, s.during(from)))
			since = time.Time{}
			s.truthChanged() // one violation per bound
		}
	})
}

// lateRetries is h's daemon's count of checks retried because the checker
// was late.
func (s *soak) lateRetries(ctx context.Context, h *lab.Host) uint64 {
	st, _ := s.status(ctx, s.daemons[h.Name()])
	return st.CheckLateRetries
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// holder is the director that holds both addresses on live links while
// its daemon runs and says it is master, when exactly one does.
func (s *soak) holder() *lab.Host {
	var out *lab.Host
	for _, h := range s.s.Directors() {
		s.mu.Lock()
		d := s.daemons[h.Name()]
		live := !d.stopped && !d.expectExit && !s.linkDown[h.Name()+"/eth0"] && !s.linkDown[h.Name()+"/eth1"]
		s.mu.Unlock()
		if !live {
			continue
		}
		a, _ := pair.Holds(h, "eth0", pair.VIP)
		b, _ := pair.Holds(h, "eth1", pair.GW)
		if a && b {
			if out != nil {
				return nil
			}
			out = h
		}
	}
	return out
}

// tableDiff says how h's IPVS table differs from what config and the real
// servers' health make it: every real server up with its configured
// weight, none that is not up with a weight above 0. "" when equal.
func (s *soak) tableDiff(h *lab.Host) string {
	table, err := pair.IPVSTable(h)
	if err != nil {
		return err.Error()
	}
	s.mu.Lock()
	weights := map[string]int{}
	for name, w := range s.daemons[h.Name()].cfg.Weights {
		weights[name] = w
	}
	s.mu.Unlock()
	got := map[netip.Addr]int{}
	found := false
	for _, svc := range table {
		if !svc.Svc.Address.Equal(pair.VIP.Addr().AsSlice()) || svc.Svc.Port != 80 {
			continue
		}
		found = true
		for _, d := range svc.Dests {
			a, _ := netip.AddrFromSlice(d.Address)
			got[a.Unmap()] = d.Weight
		}
	}
	if !found {
		return "no service for the VIP"
	}
	var diffs []string
	for i, r := range pair.Reals {
		want := 0
		if s.reals[i].up() {
			want = 1
			if w, ok := weights[r.Name]; ok {
				want = w
			}
		}
		if g := got[r.Addr]; g != want {
			diffs = append(diffs, fmt.Sprintf("%s weight %d, want %d", r.Name, g, want))
		}
	}
	return strings.Join(diffs, "; ")
}

// splitBrain says whether a cluster view reports a split brain.
func splitBrain(v *cluster.View) bool {
	return strings.Contains(problems(v), "split brain")
}

func problems(v *cluster.View) string {
	if v == nil {
		return ""
	}
	return strings.Join(v.Problems, "; ")
}
