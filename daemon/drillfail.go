package daemon

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
	"github.com/haldir-lb/haldir/vrrp"
)

// A failover or fault drill fails this director's masters on purpose, so
// that the peers' detection is really exercised: a failover drill stops
// adverting without priority 0 and drops the addresses (vrrp.DrillCrash),
// a fault drill forces FAULT (vrrp.DrillFault, priority 0 as on a real
// fault). Each instance observes, on this director's clock, when its
// first new master advertised; the verdict holds that against the
// protocol's bound. After the hold the instances come back as backups,
// and with failback preemption takes mastership back.

// maxDrillHold bounds how long a drill keeps this director failed.
const maxDrillHold = 10 * time.Minute

// drillObserved is one drilled instance (with its sync group).
type drillObserved struct {
	names []string
	obs   vrrp.DrillObservation
	seen  bool
}

// groupObservation is what a drilled sync group observed, from its
// members' status: not seen until every member has taken the failure
// (released since since); then the member whose new master came last, or
// has not come yet, decides, so one member's takeover never passes for
// the group's.
func groupObservation(names []string, status map[string]vrrp.Status, since time.Time) (vrrp.DrillObservation, bool) {
	var worst vrrp.DrillObservation
	for i, n := range names {
		o := status[n].Drill
		if o.Released.IsZero() || o.Released.Before(since) {
			return vrrp.DrillObservation{}, false
		}
		if i == 0 || !worst.TakenAt.IsZero() && (o.TakenAt.IsZero() || o.Gap() > worst.Gap()) {
			worst = o
		}
	}
	return worst, len(names) > 0
}

// failDrill runs a failover or fault drill into r.
func (d *Daemon) failDrill(r *drill.Report, req control.DrillRequest) {
	failure := vrrp.DrillCrash
	if r.Kind == drill.KindFault {
		failure = vrrp.DrillFault
	}
	hold, _ := parseHold(req.Hold) // checked by Drill
	states := map[string]vrrp.Status{}
	for _, st := range d.vrrp.Status() {
		states[st.Name] = st
	}
	names := req.Instances
	if len(names) == 0 {
		for _, n := range d.vrrp.Names() {
			if states[n].State == vrrp.StateMaster {
				names = append(names, n)
			}
		}
	}
	var problems []string
	for _, n := range names {
		st, ok := states[n]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no VRRP instance %q runs here", n))
		case st.State != vrrp.StateMaster:
			problems = append(problems, fmt.Sprintf("%s is %s here, not master", n, st.State))
		case st.Priority == vrrp.OwnerPriority && failure == vrrp.DrillCrash:
			problems = append(problems, fmt.Sprintf("%s is the address owner (priority 255): it takes over again at once, so a crash drill cannot show a peer's detection", n))
		case req.Failback && !st.Preempt:
			problems = append(problems, fmt.Sprintf("%s has preempt off: --failback takes mastership back by preemption (hand it back with haldir handoff on the peer)", n))
		}
	}
	if len(names) == 0 {
		problems = append(problems, "this director masters no VRRP instance")
	}
	if len(problems) > 0 {
		r.Verdict, r.Why = drill.VerdictFail, strings.Join(problems, "; ")+"; nothing was changed"
		return
	}

	// Fail every instance, one call per sync group (its members fail as one).
	var drilled []*drillObserved
	covered := map[string]bool{}
	d.call(func() {
		for _, n := range names {
			if covered[n] {
				continue
			}
			g := d.vrrp.Drill(n, failure, true, false)
			for _, m := range g {
				covered[m] = true
			}
			drilled = append(drilled, &drillObserved{names: g})
		}
	})
	d.log.Warn("drill: failing this director's masters on purpose", "drill", r.ID, "failure", failure.String(), "instances", names, "hold", hold.String())

	// Wait for each new master's first advert, at most the loosest bound
	// (the lowest-priority peer's) and a second.
	started := time.Now()
	for {
		pending := false
		now := map[string]vrrp.Status{}
		for _, st := range d.vrrp.Status() {
			now[st.Name] = st
		}
		for _, o := range drilled {
			o.obs, o.seen = groupObservation(o.names, now, r.Started)
		}
		var deadline time.Time
		for _, o := range drilled {
			if !o.seen || o.obs.TakenAt.IsZero() {
				pending = true
			}
			if o.seen {
				if t := o.obs.Released.Add(o.obs.Bound + time.Second); t.After(deadline) {
					deadline = t
				}
			}
		}
		if deadline.IsZero() {
			deadline = started.Add(10 * time.Second) // the events not even taken yet
		}
		if !pending || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}

	select {
	case <-time.After(hold):
	case <-d.done:
	}
	d.call(func() {
		for _, o := range drilled {
			d.vrrp.Drill(o.names[0], failure, false, req.Failback)
		}
	})
	back := time.Now()
	d.log.Info("drill: this director's instances are back", "drill", r.ID, "failback", req.Failback)

	// The verdict: every new master within its bound.
	r.Verdict = drill.VerdictPass
	var why []string
	for _, o := range drilled {
		name := strings.Join(o.names, "+")
		switch {
		case !o.seen:
			r.Verdict = drill.VerdictFail
			why = append(why, fmt.Sprintf("%s: the simulated %s did not take", name, failure))
			continue
		case o.obs.TakenAt.IsZero():
			r.Verdict = drill.VerdictFail
			why = append(why, fmt.Sprintf("%s: no new master advertised within %v (the addresses had no holder)", name, o.obs.Bound+time.Second))
			r.GapMillis = max(r.GapMillis, ms(time.Since(o.obs.Released)))
			continue
		}
		gap := o.obs.Gap()
		r.GapMillis = max(r.GapMillis, ms(gap))
		r.BoundMillis = max(r.BoundMillis, ms(o.obs.Bound))
		verdict := "within"
		if gap > o.obs.Bound {
			r.Verdict, verdict = drill.VerdictFail, "BEYOND"
		}
		why = append(why, fmt.Sprintf("%s: %v (priority %d) advertised as new master %.1f ms after the release, %s the bound of %.1f ms",
			name, o.obs.By, o.obs.ByPriority, ms(gap), verdict, ms(o.obs.Bound)))
		r.Timeline = append(r.Timeline,
			drill.Event{At: o.obs.Released, Director: r.Director, What: fmt.Sprintf("%s released (simulated %s)", name, failure)},
			drill.Event{At: o.obs.TakenAt, Director: r.Director, What: fmt.Sprintf("%s: first advert of the new master %v, priority %d", name, o.obs.By, o.obs.ByPriority)})
	}
	r.Timeline = append(r.Timeline, drill.Event{At: back, Director: r.Director, What: fmt.Sprintf("the simulated %s ended after a hold of %v", failure, hold)})

	if req.Failback {
		// Preemption: the timer armed at the end runs out (Master_Down_Interval,
		// at most 4 intervals), then the lower master hears us and releases.
		var wait time.Duration
		for _, o := range drilled {
			wait = max(wait, 4*o.obs.Interval+time.Second)
		}
		deadline := back.Add(wait + time.Second)
		for {
			all := true
			for _, st := range d.vrrp.Status() {
				for _, o := range drilled {
					if slices.Contains(o.names, st.Name) && st.State != vrrp.StateMaster {
						all = false
					}
				}
			}
			if all {
				r.Timeline = append(r.Timeline, drill.Event{At: time.Now(), Director: r.Director, What: "failback: master again"})
				break
			}
			if time.Now().After(deadline) {
				r.Verdict = drill.VerdictFail
				why = append(why, fmt.Sprintf("failback: not master again within %v of the end", wait+time.Second))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.Why = strings.Join(why, "; ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// peerEvents are the other directors' VRRP state changes between from and
// to as the cluster view has them, each moved onto this director's clock
// by the cluster's estimate of that director's offset (memberlist's
// probes; the error is at most half the probe's round trip), or left on
// its own clock, and said so, when there is none yet. The view holds each
// instance's last change only. Gossip takes a moment, so it waits up to a
// second for one made during the drill.
func (d *Daemon) peerEvents(from, to time.Time) []drill.Event {
	if d.cluster == nil {
		return nil
	}
	var out []drill.Event
	deadline := time.Now().Add(2 * time.Second)
	var lastSeqs uint64
	var settledSince time.Time
	for {
		out = out[:0]
		v := d.cluster.View()
		var seqs uint64
		for _, m := range v.Members {
			if m.Self {
				continue
			}
			seqs += m.Seq
			clock := "its own clock: no estimate of its offset yet"
			var offset time.Duration
			if c := m.Clock; c != nil {
				offset = c.Offset
				clock = fmt.Sprintf("its clock %+.1f ms from ours, ±%.1f ms", ms(c.Offset), ms(c.RTT/2))
			}
			events := m.Recent
			if len(events) == 0 {
				// An older haldir gossips each instance's last change only.
				for _, in := range m.VRRP {
					events = append(events, cluster.Event{At: in.Changed, What: fmt.Sprintf("%s -> %s: %s", in.Name, in.State, in.Why)})
				}
			}
			for _, e := range events {
				if at := e.At.Add(-offset); !at.Before(from) {
					out = append(out, drill.Event{At: at, Director: m.Name, What: fmt.Sprintf("%s (%s)", e.What, clock)})
				}
			}
		}
		// Done once the peers' states have not changed for a while
		// (the last of the drill's changes, a failback's release, has
		// spread), or when waiting longer would not help.
		now := time.Now()
		if seqs != lastSeqs {
			lastSeqs, settledSince = seqs, now
		}
		if len(out) > 0 && now.Sub(settledSince) >= gossipSettle || now.After(deadline) {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gossipSettle is how long the peers' states must stay unchanged before a
// drill's timeline takes their events.
const gossipSettle = 300 * time.Millisecond

// parseHold checks a drill's hold.
func parseHold(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	h, err := time.ParseDuration(s)
	if err != nil || h < 0 || h > maxDrillHold {
		return 0, &control.RequestError{Msg: fmt.Sprintf("hold %q: want a duration from 0 to %v", s, maxDrillHold)}
	}
	return h, nil
}

// connsEvent is the connections the kernel's IPVS table holds now, as a
// timeline event (none without IPVS).
func (d *Daemon) connsEvent(at time.Time, when string) []drill.Event {
	if d.kernel == nil {
		return nil
	}
	n, err := countConns(d.kernel)
	if err != nil {
		return []drill.Event{{At: at, What: fmt.Sprintf("IPVS connections %s: not read (%v)", when, err)}}
	}
	return []drill.Event{{At: at, What: fmt.Sprintf("IPVS holds %d connections (%s)", n, when)}}
}
