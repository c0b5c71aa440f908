package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// The reasons a prefix is not announced besides its virtual servers'
// quorum ("quorum lost: web, web-tls", "no quorum yet: web").
const (
	ReasonMaintenance = "maintenance"
	ReasonStopping    = "stopping"
	ReasonRemoved     = "removed from the configuration"
)

// Inputs are what the announcer decides from; the daemon's loop owns them.
type Inputs struct {
	// Quorum is each virtual server's last quorum the director reported;
	// a virtual server not in it has not been reported yet (no quorum).
	Quorum      map[string]bool
	Maintenance bool
	Stopping    bool
}

// Route is what is announced for one prefix.
type Route struct {
	Prefix      netip.Prefix
	Communities []uint32
	MED         uint32
}

func (r Route) equal(o Route) bool {
	return r.Prefix == o.Prefix && r.MED == o.MED && slices.Equal(r.Communities, o.Communities)
}

// Action is one change of what this director announces.
type Action struct {
	Route    Route
	Announce bool // false: withdraw
	// Reason is why a prefix is withdrawn; "" for an announce.
	Reason string
	// Graceful withdraws announce the route with GRACEFUL_SHUTDOWN
	// (RFC 8326) first, so the routers move the traffic before it goes:
	// a planned withdraw (maintenance, stopping, removed by a reload).
	// Quorum lost is not graceful: the real servers are not serving, so
	// the sooner the routers stop sending the better.
	Graceful bool
}

func (a Action) String() string {
	if a.Announce {
		return "announce " + a.Route.Prefix.String()
	}
	return fmt.Sprintf("withdraw %s (%s)", a.Route.Prefix, a.Reason)
}

// PrefixState is one prefix's decision, for status and metrics.
type PrefixState struct {
	Prefix         netip.Prefix
	VirtualServers []string
	Announced      bool
	// Reason is why it is not announced; "" while it is.
	Reason string
	// Since is when Announced last changed (or the start).
	Since time.Time
	// Withdrawals counts the withdraws of an announced prefix per reason.
	Withdrawals map[string]uint64
}

// Announcer decides, per configured prefix, whether this director
// announces it: while every virtual server it names has quorum here, and
// the director is neither in maintenance nor stopping. It only decides;
// the Speaker carries its actions out. It is not safe for concurrent use
// (the daemon's loop owns it).
type Announcer struct {
	graceful bool
	specs    []conf.BGPAnnounceSpec
	state    map[netip.Prefix]*PrefixState
}

// NewAnnouncer returns an announcer for nothing; SetConfig gives it the
// prefixes.
func NewAnnouncer() *Announcer {
	return &Announcer{state: map[netip.Prefix]*PrefixState{}}
}

// SetConfig takes [bgp]'s announce list (at start and on reload) and
// decides again: a prefix no longer configured is withdrawn (gracefully
// when graceful), one whose communities or MED changed is announced
// again with them.
func (a *Announcer) SetConfig(graceful bool, specs []conf.BGPAnnounceSpec, in Inputs, now time.Time) []Action {
	var out []Action
	keep := map[netip.Prefix]bool{}
	for _, s := range specs {
		keep[s.Prefix] = true
	}
	for _, old := range a.specs {
		if keep[old.Prefix] {
			continue
		}
		st := a.state[old.Prefix]
		if st.Announced {
			out = append(out, Action{Route: routeOf(old), Reason: ReasonRemoved, Graceful: graceful})
		}
		delete(a.state, old.Prefix)
	}
	oldSpecs := a.specs
	a.graceful, a.specs = graceful, slices.Clone(specs)
	for _, s := range specs {
		if _, ok := a.state[s.Prefix]; !ok {
			a.state[s.Prefix] = &PrefixState{Prefix: s.Prefix, Since: now, Withdrawals: map[string]uint64{}}
		}
		a.state[s.Prefix].VirtualServers = slices.Clone(s.VirtualServers)
		i := slices.IndexFunc(oldSpecs, func(o conf.BGPAnnounceSpec) bool { return o.Prefix == s.Prefix })
		if i >= 0 && a.state[s.Prefix].Announced && !routeOf(oldSpecs[i]).equal(routeOf(s)) && a.reason(s, in) == "" {
			out = append(out, Action{Route: routeOf(s), Announce: true}) // the new attributes
		}
	}
	return append(out, a.Decide(in, now)...)
}

// Decide returns the announces and withdraws in brings about, in the
// configured order of the prefixes; nothing when nothing changes. Each
// withdraw of an announced prefix is counted under its reason.
func (a *Announcer) Decide(in Inputs, now time.Time) []Action {
	var out []Action
	for _, s := range a.specs {
		st := a.state[s.Prefix]
		why := a.reason(s, in)
		announce := why == ""
		switch {
		case announce && !st.Announced:
			out = append(out, Action{Route: routeOf(s), Announce: true})
			st.Since = now
		case !announce && st.Announced:
			out = append(out, Action{Route: routeOf(s), Reason: why, Graceful: a.graceful && planned(why)})
			st.Withdrawals[why]++
			st.Since = now
		}
		st.Announced, st.Reason = announce, why
	}
	return out
}

// planned says whether a withdraw for why is the director's choice, not a
// failure: those go gracefully.
func planned(why string) bool {
	return why == ReasonMaintenance || why == ReasonStopping || why == ReasonRemoved
}

// reason is why s is not to be announced, "" when it is; stopping before
// maintenance before quorum.
func (a *Announcer) reason(s conf.BGPAnnounceSpec, in Inputs) string {
	switch {
	case in.Stopping:
		return ReasonStopping
	case in.Maintenance:
		return ReasonMaintenance
	}
	var lost, unknown []string
	for _, vs := range s.VirtualServers {
		switch up, ok := in.Quorum[vs]; {
		case !ok:
			unknown = append(unknown, vs)
		case !up:
			lost = append(lost, vs)
		}
	}
	switch {
	case len(lost) > 0:
		return "quorum lost: " + strings.Join(lost, ", ")
	case len(unknown) > 0:
		return "no quorum yet: " + strings.Join(unknown, ", ")
	}
	return ""
}

// State is every configured prefix's decision, in configured order.
func (a *Announcer) State() []PrefixState {
	out := make([]PrefixState, 0, len(a.specs))
	for _, s := range a.specs {
		st := *a.state[s.Prefix]
		st.VirtualServers = slices.Clone(st.VirtualServers)
		st.Withdrawals = make(map[string]uint64, len(st.Withdrawals))
		for k, v := range a.state[s.Prefix].Withdrawals {
			st.Withdrawals[k] = v
		}
		out = append(out, st)
	}
	return out
}

func routeOf(s conf.BGPAnnounceSpec) Route {
	return Route{Prefix: s.Prefix, Communities: slices.Clone(s.Communities), MED: s.MED}
}
