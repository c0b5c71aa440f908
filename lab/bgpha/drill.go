package bgpha

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// SyncFlush is how long the kernel may take to send a new connection to the
// other directors: a partly filled sync message leaves after 2 s. A
// connection younger than this at an event may be on its director only.
const SyncFlush = 2 * time.Second

var quorumLostLine = regexp.MustCompile(`msg="virtual server quorum changed".* quorum_up=false`)

// QuorumLoss is what a lost quorum on one director did.
type QuorumLoss struct {
	Director int
	// Quorum is the cut of the director's back link to haldir logging the
	// lost quorum; Withdrawn that log line to the router's FIB without
	// the director's next hop (exactly: the other two stay).
	Quorum, Withdrawn time.Duration
	// Back is the link's restore to the router's three next hops again.
	Back time.Duration
}

// LoseQuorum cuts director i's back link, so its health checks (and only
// its) fail and its virtual servers lose quorum there, and measures the
// withdraw at the router; then restores the link and waits for the route.
func (c *Cluster) LoseQuorum(ctx context.Context, i int) (QuorumLoss, error) {
	r := QuorumLoss{Director: i}
	p := c.Proc[i]
	if p == nil {
		return r, fmt.Errorf("director%d: haldir does not run", i+1)
	}
	after := p.LastSeq()
	link := c.Director[i].Link("eth1")
	t0 := time.Now()
	if err := link.Cut(); err != nil {
		return r, err
	}
	seen, err := c.Router.WaitNextHops(ctx, VIP, NextHopsWithout(i)...)
	if err != nil {
		return r, c.withLogs(err)
	}
	l, err := p.WaitForLineAfter(ctx, after, quorumLostLine)
	if err != nil {
		return r, c.withLogs(fmt.Errorf("director%d: no lost quorum logged: %w", i+1, err))
	}
	r.Quorum, r.Withdrawn = l.Time.Sub(t0), seen.Sub(l.Time)
	t1 := time.Now()
	if err := link.Restore(); err != nil {
		return r, err
	}
	seen, err = c.Router.WaitNextHops(ctx, VIP, lab.DirectorEdges4()...)
	if err != nil {
		return r, c.withLogs(err)
	}
	r.Back = seen.Sub(t1)
	return r, nil
}

// Event is what happens to a director in a drill.
type Event string

const (
	// Maintenance is `haldir maintenance on` (a graceful withdraw), undone
	// by `maintenance off`.
	Maintenance Event = "maintenance"
	// SIGKILL kills haldir, undone by starting haldir again. The
	// director's kernel closes the BGP session, which tells the router.
	SIGKILL Event = "SIGKILL"
	// LinkCut cuts the director's link to the router, as a host that
	// dies or hangs: nothing tells the router but BFD's silence. Undone
	// by restoring the link.
	LinkCut Event = "link-cut"
)

// Drill is what one event measured.
type Drill struct {
	Event    Event
	Director int
	// Route is the event to the router's FIB without the director's next
	// hop; Rejoin the undoing to three next hops again.
	Route, Rejoin time.Duration
	// Graceful (maintenance) is the event to the router's BGP table first
	// showing the director's path with the GRACEFUL_SHUTDOWN community,
	// Withdraw to the path gone; GracefulFirst says the community was seen
	// while the path was still there.
	Graceful, Withdraw time.Duration
	GracefulFirst      bool
	// Older are the held connections opened before every director's
	// kernel held them all (conn sync) or, without sync, more than
	// SyncFlush before the event; Younger the others (opened just before
	// the event). Each as it stood once every connection had gone past
	// the event, without those an earlier drill broke.
	Older, Younger lab.HoldReport
	// YoungUnsynced counts the younger connections some director's
	// kernel did not hold yet at the event (a busy sync daemon flushes
	// within milliseconds, a quiet one within SyncFlush).
	YoungUnsynced int
	// RejoinBroken counts the connections the rejoin broke; RejoinStall
	// is the longest stall of the others while it happened.
	RejoinBroken int
	RejoinStall  time.Duration
}

// Conns holds long-lived client connections through the router for drills.
type Conns struct {
	c *Cluster
	// Held are the older connections, Young those opened just before an
	// event.
	Held, Young *lab.Held
	// Synced is when every director held all of Held (or, without sync,
	// SyncFlush after the last was opened).
	Synced time.Time
}

// HoldOptions are the round trips of drills' connections: every 20 ms,
// broken after 3 s without an answer.
var HoldOptions = lab.HoldOptions{Interval: 20 * time.Millisecond, Timeout: 3 * time.Second}

// Hold opens n long-lived connections to the echo service and waits until
// each director's kernel holds all of them (with conn sync) or SyncFlush
// has passed (without).
func (c *Cluster) Hold(ctx context.Context, n int) (*Conns, error) {
	o := HoldOptions
	o.Conns = n
	held, err := c.Client.HoldConns(ctx, netip.AddrPortFrom(lab.BGPVIP4, EchoPort), o)
	if err != nil {
		return nil, err
	}
	cs := &Conns{c: c, Held: held}
	if c.opts.NoSync {
		select {
		case <-time.After(SyncFlush):
		case <-ctx.Done():
			held.Stop()
			return nil, ctx.Err()
		}
		cs.Synced = time.Now()
		return cs, nil
	}
	want := map[netip.AddrPort]bool{}
	for _, hc := range held.Report().Conns {
		want[hc.Local] = true
	}
	err = pollCtx(ctx, 50*time.Millisecond, func() (bool, error) {
		for _, d := range c.Directors() {
			held, err := heldBy(d, want)
			if err != nil || len(held) < len(want) {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		held.Stop()
		return nil, fmt.Errorf("every director holding the %d connections (conn sync): %w", n, err)
	}
	cs.Synced = time.Now()
	return cs, nil
}

// Quiet measures the connections' longest stall over d with nothing
// happening: the floor under the drills' stalls on this machine.
func (cs *Conns) Quiet(ctx context.Context, d time.Duration) (time.Duration, error) {
	cs.resetStalls()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return cs.report().MaxStall(), nil
}

// Stop closes every connection.
func (cs *Conns) Stop() {
	cs.Held.Stop()
	if cs.Young != nil {
		cs.Young.Stop()
	}
}

// heldBy returns the connections of want in h's IPVS connection table.
func heldBy(h *lab.Host, want map[netip.AddrPort]bool) (map[netip.AddrPort]bool, error) {
	var conns []ipvstest.Conn
	if err := h.Do(func() error {
		var err error
		conns, err = ipvstest.ReadConns()
		return err
	}); err != nil {
		return nil, err
	}
	held := map[netip.AddrPort]bool{}
	for _, c := range conns {
		if want[c.Client] {
			held[c.Client] = true
		}
	}
	return held, nil
}

// alive keeps of r the connections not broken yet in before (the same
// connections in the same order, before taken earlier): what one event
// broke, not the ones before it.
func alive(r, before lab.HoldReport) lab.HoldReport {
	out := lab.HoldReport{At: r.At}
	for i, c := range r.Conns {
		if !before.Conns[i].Broken {
			out.Conns = append(out.Conns, c)
		}
	}
	return out
}

// report is the held connections, older and young, as one report.
func (cs *Conns) report() lab.HoldReport {
	r := cs.Held.Report()
	if cs.Young != nil {
		r.Conns = append(r.Conns, cs.Young.Report().Conns...)
	}
	return r
}

func (cs *Conns) resetStalls() {
	cs.Held.ResetStalls()
	if cs.Young != nil {
		cs.Young.ResetStalls()
	}
}

// passed waits until every connection has either broken or completed
// three round trips more than in before (connections are in the same
// order in both).
func (cs *Conns) passed(ctx context.Context, before lab.HoldReport) (lab.HoldReport, error) {
	var r lab.HoldReport
	err := pollCtx(ctx, 20*time.Millisecond, func() (bool, error) {
		r = cs.report()
		for i, c := range r.Conns {
			if !c.Broken && c.RoundTrips < before.Conns[i].RoundTrips+3 {
				return false, nil
			}
		}
		return true, nil
	})
	return r, err
}

// Run puts director i through ev while the connections run, measures it,
// and undoes it (the director joins back). young connections are opened
// just before the event, younger than the sync flush.
func (cs *Conns) Run(ctx context.Context, ev Event, i int, young int) (Drill, error) {
	c := cs.c
	d := Drill{Event: ev, Director: i}
	if young > 0 {
		o := HoldOptions
		o.Conns = young
		y, err := c.Client.HoldConns(ctx, netip.AddrPortFrom(lab.BGPVIP4, EchoPort), o)
		if err != nil {
			return d, err
		}
		if cs.Young != nil {
			cs.Young.Stop()
		}
		cs.Young = y
	}
	if cs.Young != nil {
		want := map[netip.AddrPort]bool{}
		for _, hc := range cs.Young.Report().Conns {
			want[hc.Local] = true
		}
		for _, h := range c.Directors() {
			held, err := heldBy(h, want)
			if err != nil {
				return d, err
			}
			want = held // what every director so far holds
		}
		d.YoungUnsynced = len(cs.Young.Report().Conns) - len(want)
	}
	cs.resetStalls()
	before := cs.report()
	var gs *gshutWatch
	if ev == Maintenance {
		gs = c.watchGracefulShutdown(i)
	}
	t0 := time.Now()
	switch ev {
	case Maintenance:
		if _, err := c.Haldir(ctx, i, "maintenance", "on", "--reason", "drill"); err != nil {
			return d, err
		}
	case SIGKILL:
		c.Kill(i)
	case LinkCut:
		if err := c.Director[i].Link("eth0").Cut(); err != nil {
			return d, err
		}
	default:
		return d, fmt.Errorf("unknown event %q", ev)
	}
	seen, err := c.Router.WaitNextHops(ctx, VIP, NextHopsWithout(i)...)
	if err != nil {
		return d, c.withLogs(err)
	}
	d.Route = seen.Sub(t0)
	after, err := cs.passed(ctx, before)
	if err != nil {
		return d, fmt.Errorf("connections past %s of director%d: %w", ev, i+1, err)
	}
	d.Older, d.Younger = alive(after, before).OpenedBefore(cs.Synced)
	if gs != nil {
		g, w, first, err := gs.wait(ctx)
		if err != nil {
			return d, c.withLogs(err)
		}
		d.Graceful, d.Withdraw, d.GracefulFirst = g.Sub(t0), w.Sub(t0), first
	}

	// Joining back.
	brokenBefore := len(after.Conns) - after.Survived()
	cs.resetStalls()
	before = cs.report()
	t1 := time.Now()
	switch ev {
	case Maintenance:
		_, err = c.Haldir(ctx, i, "maintenance", "off")
	case SIGKILL:
		err = c.StartDirector(ctx, i)
	case LinkCut:
		err = c.Director[i].Link("eth0").Restore()
	}
	if err != nil {
		return d, err
	}
	if seen, err = c.Router.WaitNextHops(ctx, VIP, lab.DirectorEdges4()...); err != nil {
		return d, c.withLogs(err)
	}
	d.Rejoin = seen.Sub(t1)
	if err := c.WaitSettled(ctx); err != nil {
		return d, err
	}
	after, err = cs.passed(ctx, before)
	if err != nil {
		return d, fmt.Errorf("connections past director%d joining back: %w", i+1, err)
	}
	d.RejoinBroken = len(after.Conns) - after.Survived() - brokenBefore
	d.RejoinStall = after.MaxStall()
	return d, nil
}

// gshutWatch follows the router's bgpd log (`debug bgp updates in`) for
// a director's updates to VIP after an event: the first carrying the
// GRACEFUL_SHUTDOWN community, and the withdraw. The log's line times are
// when the router received them; polling its BGP table instead misses
// the second between them under a TCG guest (a vtysh takes about that).
type gshutWatch struct {
	bgpd        *lab.Proc
	after       uint64
	gshut, gone *regexp.Regexp
}

func (c *Cluster) watchGracefulShutdown(i int) *gshutWatch {
	peer := regexp.QuoteMeta(lab.DirectorEdge4(i).String())
	bgpd := c.RouterFRR.Daemon("bgpd")
	return &gshutWatch{
		bgpd:  bgpd,
		after: bgpd.LastSeq(),
		gshut: regexp.MustCompile(peer + `\S* rcvd UPDATE w/ attr:.*graceful-shutdown`),
		gone:  regexp.MustCompile(peer + `\S* rcvd UPDATE about ` + regexp.QuoteMeta(VIP.String()) + `.*withdrawn`),
	}
}

// wait returns when the router received the community (zero if never
// before the withdraw) and the withdraw.
func (w *gshutWatch) wait(ctx context.Context) (graceful, gone time.Time, first bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	l, err := w.bgpd.WaitForLineAfter(ctx, w.after, w.gone)
	if err != nil {
		return graceful, gone, false, fmt.Errorf("router: no withdraw of %v logged: %w", VIP, err)
	}
	gone = l.Time
	for _, g := range w.bgpd.Lines() {
		if g.Seq > w.after && g.Seq < l.Seq && w.gshut.MatchString(g.Text) {
			return g.Time, gone, true, nil
		}
	}
	return graceful, gone, false, nil
}

// Spread opens n new connections from the client to the echo service and
// counts how many each director's IPVS scheduled (its service's
// connection counter; connections conn sync brings do not count there),
// and how many each real server answered.
func (c *Cluster) Spread(ctx context.Context, n int) (perDirector [3]int, perReal map[string]int, err error) {
	svc := &ipvs.Service{Address: lab.BGPVIP4.AsSlice(), Protocol: 6, Port: EchoPort, AddressFamily: 2}
	counts := func() ([3]int, error) {
		var out [3]int
		for i, d := range c.Directors() {
			h, err := ipvs.New(d.NetNSPath())
			if err != nil {
				return out, err
			}
			s, err := h.GetService(svc)
			h.Close()
			if err != nil {
				return out, fmt.Errorf("director%d: %w", i+1, err)
			}
			out[i] = int(s.Stats.Connections)
		}
		return out, nil
	}
	base, err := counts()
	if err != nil {
		return perDirector, nil, err
	}
	perReal, err = c.Client.Greetings(ctx, netip.AddrPortFrom(lab.BGPVIP4, EchoPort), n)
	if err != nil {
		return perDirector, perReal, err
	}
	// The kernel folds its per-CPU counters into what it reports every
	// 2 s: poll until the sum is all of them.
	err = pollCtx(ctx, 200*time.Millisecond, func() (bool, error) {
		now, err := counts()
		if err != nil {
			return false, err
		}
		sum := 0
		for i := range now {
			perDirector[i] = now[i] - base[i]
			sum += perDirector[i]
		}
		return sum >= n, nil
	})
	if err != nil {
		return perDirector, perReal, fmt.Errorf("directors' connection counters (%v) reaching %d: %w", perDirector, n, err)
	}
	return perDirector, perReal, nil
}

// pollCtx calls f every `every` until it returns true or an error, or ctx
// ends.
func pollCtx(ctx context.Context, every time.Duration, f func() (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
