package main

// The BGP mode: three directors running haldir's BGP mode on the BGP lab
// (package bgpha: FRR router with ECMP and BFD 100 ms x 3, an LVS-DR mh
// echo service with N-way conn sync), one fault at a time on one of them
// or on a real server, the router's next hops checked against what the
// soak did.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/bgpha"
)

// The BGP mode's timing and bounds (bgpha's configuration: BFD 100 ms x 3
// at the router, checks every 500 ms with a 400 ms timeout and fall 2).
const (
	// bfdDetect is the router's BFD detection time.
	bfdDetect = 300 * time.Millisecond
	// checkDetect is the checks' detection of a lost back link: fall x
	// interval + timeout.
	checkDetect = 2*500*time.Millisecond + 400*time.Millisecond
	// routeBound is how long the router's next hops may lag a director
	// leaving (killed, stopped, cut off, in maintenance), on top of the
	// checks' detection for a lost quorum and of the measured stall:
	// BFD's 300 ms or a closed session, and TCG's slowness.
	routeBound = time.Second
	// joinBound is how long a director may take to be a next hop again
	// once it can be: a new BGP session (the router connects every
	// second), BFD up, the first checks passing. Measured in the VM: 1-7 s
	// after a restart or a restored link, about 10 s after a stop or a
	// starvation long enough for the router's BFD to reset the session.
	joinBound = 15 * time.Second
	// stallLookback is how far before a next hop's loss a measured stall
	// of the soak's explains it: BFD's detection time after the silence
	// began, and the router's reaction.
	stallLookback = 2 * time.Second
	// newRunBound bounds a run of failed new connections: a withdraw's
	// lag and a SYN retransmission.
	newRunBound = 3 * time.Second
	// heldConns connections are held, each with its own round-trip
	// interval from 20 ms to 250 ms; one without an answer for
	// heldTimeout is broken. A director whose back link is cut black-holes
	// its flows until its quorum is lost and the router moves them (about
	// 2.4 s, more under TCG), and TCP's retransmissions back off past
	// that: a stall, not a break, which a reset or an answer from the
	// wrong end would be at once.
	heldConns   = 60
	heldTimeout = 10 * time.Second
)

// wantState is what the router should do with a director's next hop.
type wantState int

const (
	wantIn     wantState = iota
	wantOut              // the director cannot serve: withdrawn
	wantEither           // a fault whose effect on BFD is not known (netem, starvation)
)

// routeWant is a director's expected next hop since a moment, and how long
// the router may take to get there.
type routeWant struct {
	state wantState
	since time.Time
	bound time.Duration
	why   string
	// taken, for a change an operator command makes, is when the daemon
	// took the command: the bound counts from there.
	taken *taken
}

// taken is when a daemon took an operator command, known once the command
// has returned. The time from the soak starting the command to the daemon
// taking it is a new haldir process starting (about 70 ms in an idle TCG
// guest, 350 ms and more in the soak's busy one, 25 ms on the host), which
// a route's bound is not about; it is reported apart (command_taken_ms).
type taken struct {
	at atomic.Pointer[time.Time] // nil until set; zero: not known
}

// known says whether the command has returned.
func (t *taken) known() bool { return t.at.Load() != nil }

// when is the daemon's time; zero while not known, if it never was, or
// for a change no command made (nil).
func (t *taken) when() time.Time {
	if t == nil {
		return time.Time{}
	}
	if p := t.at.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// set records at (zero when the command failed) once.
func (t *taken) set(at time.Time) { t.at.Store(&at) }

var bgpDirectors = []string{"director1", "director2", "director3"}

// setupBGP builds the BGP lab with haldir on the three directors and waits
// for the router's three next hops.
func (s *soak) setupBGP(ctx context.Context) error {
	// Before the lab, so the soak and the lab's daemons share the lab's
	// cgroup and each haldir gets its own.
	s.useCgroups(bgpDirectors...)
	c, err := bgpha.Start(ctx, "soak", s.haldir, bgpha.Options{MetricsListen: metricsAddr})
	if c != nil {
		s.bgp = c
	}
	if err != nil {
		return err
	}
	c.Weights = map[string]int{}
	s.realDown = map[string]*spells{}
	for _, r := range c.Reals() {
		s.realDown[r.Name()] = &spells{}
	}
	for i, h := range c.Directors() {
		s.daemons[h.Name()] = &daemon{name: h.Name(), index: i, host: h}
	}
	for i, h := range c.Directors() {
		s.adopt(ctx, s.daemons[h.Name()], c.Proc[i])
		s.expectRoute(i, wantIn, joinBound, "started")
	}
	s.printf("steady: haldir on three BGP directors, the router has three next hops for %v", bgpha.VIP)
	return nil
}

// expectRoute records what director i's next hop should become now.
func (s *soak) expectRoute(i int, st wantState, bound time.Duration, why string) {
	s.expect(i, routeWant{state: st, since: time.Now(), bound: bound, why: why})
}

func (s *soak) expect(i int, w routeWant) {
	s.mu.Lock()
	s.routes[i] = w
	s.mu.Unlock()
}

// steadyBGP says what is not yet steady: every haldir running and three
// next hops at the router; "" when steady.
func (s *soak) steadyBGP() string {
	for _, name := range s.directorNames() {
		s.mu.Lock()
		d := s.daemons[name]
		down := d.proc == nil || d.expectExit || d.stopped
		s.mu.Unlock()
		if down {
			return name + ": haldir does not run"
		}
	}
	hops, err := s.bgp.Router.NextHops(bgpha.VIP)
	if err != nil {
		return err.Error()
	}
	if all := lab.DirectorEdges4(); !slices.Equal(hops, all) {
		return fmt.Sprintf("the router's next hops for %v are %v, want %v", bgpha.VIP, hops, all)
	}
	return ""
}

// applyBGP injects f on a BGP director or real server, holds it and
// undoes it, saying what the router should do at each step.
func (s *soak) applyBGP(ctx context.Context, f Fault) error {
	c := s.bgp
	d := s.daemons[f.Target]
	i := 0
	if d != nil {
		i = d.index
	}
	switch f.Kind {
	case Kill, Term:
		sig := map[Kind]syscall.Signal{Kill: syscall.SIGKILL, Term: syscall.SIGTERM}[f.Kind]
		s.expectRoute(i, wantOut, routeBound, f.Kind.String())
		if err := s.stopDaemon(d, sig); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		s.expectRoute(i, wantIn, joinBound, "restarted")
		return s.startDaemon(ctx, d)
	case Pause:
		s.mu.Lock()
		d.stopped = true
		s.mu.Unlock()
		s.expectRoute(i, wantOut, routeBound, "stopped")
		if err := d.proc.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		s.expectRoute(i, wantIn, joinBound, "continued")
		err := d.proc.Signal(syscall.SIGCONT)
		s.mu.Lock()
		d.stopped = false
		s.mu.Unlock()
		return err
	case EdgeCut, BackCut:
		ifc, bound := "eth0", routeBound
		if f.Kind == BackCut {
			ifc, bound = "eth1", checkDetect+routeBound
		}
		s.setLink(f.Target, ifc, true)
		s.expectRoute(i, wantOut, bound, f.Kind.String())
		if err := d.host.Link(ifc).Cut(); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		s.expectRoute(i, wantIn, joinBound, "link restored")
		err := d.host.Link(ifc).Restore()
		s.setLink(f.Target, ifc, false)
		return err
	case NetemEdge, CPUStarve, MemPressure:
		s.expectRoute(i, wantEither, 0, f.Kind.String())
		var err error
		switch {
		case f.Kind == NetemEdge:
			err = s.netem(f.Target, "eth0", &f)
		case s.cg == nil:
			err = fmt.Errorf("no cgroup v2")
		case f.Kind == CPUStarve:
			err = s.cg.starveCPU(f.Target)
		default:
			err = s.cg.squeezeMemory(f.Target)
		}
		if err == nil {
			sleep(ctx, f.Hold)
		}
		if f.Kind == NetemEdge {
			err = errors.Join(err, s.netem(f.Target, "eth0", nil))
		} else if s.cg != nil {
			err = errors.Join(err, s.cg.reset(f.Target))
		}
		s.expectRoute(i, wantIn, joinBound, f.Kind.String()+" lifted")
		return err
	case RealDie:
		// The real server's host loses its link: its connections die
		// with it, the checks of every director fail it.
		link, down := c.Real[realIndex(f.Target)].Link("eth0"), s.realDown[f.Target]
		down.begin()
		if err := link.Cut(); err != nil {
			down.end()
			return err
		}
		sleep(ctx, f.Hold)
		err := link.Restore()
		down.end()
		return err
	case ReloadWeight:
		c.Weights[f.Target] = f.Weight
		err := s.reloadBGP(ctx)
		if err == nil {
			sleep(ctx, f.Hold)
		}
		delete(c.Weights, f.Target)
		return errors.Join(err, s.reloadBGP(ctx))
	case ReloadBroken:
		if err := writeFile(c.ConfigFile(i), c.Config(i)+brokenTail); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := c.Haldir(rctx, i, "reload")
		cancel()
		s.checked(invOperations)
		if err == nil {
			s.violate(invOperations, 0, f.Target+": haldir reload of a broken file succeeded, want a refusal")
		}
		sleep(ctx, f.Hold)
		// The refused file left the old configuration running.
		if err := s.cli(ctx, i, "status"); err != nil {
			return err
		}
		if err := writeFile(c.ConfigFile(i), c.Config(i)); err != nil {
			return err
		}
		return s.cli(ctx, i, "reload")
	case Maintenance:
		w := routeWant{state: wantOut, since: time.Now(), bound: routeBound, why: "maintenance", taken: new(taken)}
		s.expect(i, w)
		err := s.cli(ctx, i, "maintenance", "on", "--reason", "soak")
		if err != nil {
			w.taken.set(time.Time{})
			return err
		}
		w.taken.set(s.maintenanceTaken(ctx, i, w.since))
		sleep(ctx, f.Hold)
		s.expectRoute(i, wantIn, joinBound, "maintenance off")
		return s.cli(ctx, i, "maintenance", "off")
	}
	return fmt.Errorf("fault kind %s is not one of the BGP mode's", f.Kind)
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }

// realIndex is real server name's index ("real2": 1).
func realIndex(name string) int {
	var j int
	if _, err := fmt.Sscanf(name, "real%d", &j); err != nil || j < 1 || j > 3 {
		panic("no real server " + name)
	}
	return j - 1
}

// cli runs a haldir command on director i, counted as an operation that
// must work.
func (s *soak) cli(ctx context.Context, i int, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s.checked(invOperations)
	if _, err := s.bgp.Haldir(ctx, i, args...); err != nil {
		s.violate(invOperations, 0, err.Error())
		return err
	}
	return nil
}

// maintenanceTaken returns when director i's haldir turned maintenance
// on (its status's since), if after the command was started at start;
// zero if not known.
func (s *soak) maintenanceTaken(ctx context.Context, i int, start time.Time) time.Time {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := s.bgp.Status(ctx, i)
	if err != nil || st.Maintenance == nil || !st.Maintenance.Since.After(start) {
		s.printf("director%d: when maintenance was taken is not known (status: %v)", i+1, err)
		return time.Time{}
	}
	at := st.Maintenance.Since
	s.mu.Lock()
	s.cmdTaken = append(s.cmdTaken, at.Sub(start))
	s.mu.Unlock()
	return at
}

// reloadBGP writes every director's configuration (with the cluster's
// current weights) and reloads each with `haldir reload`.
func (s *soak) reloadBGP(ctx context.Context) error {
	var errs []error
	for i := range s.bgp.Director {
		if err := writeFile(s.bgp.ConfigFile(i), s.bgp.Config(i)); err != nil {
			return err
		}
		errs = append(errs, s.cli(ctx, i, "reload"))
	}
	return errors.Join(errs...)
}

// repairBGP brings a cluster that did not settle back to a known state:
// every link up without netem, no cgroup limit, the configuration as set
// up, every haldir restarted and out of maintenance.
func (s *soak) repairBGP(ctx context.Context) {
	s.printf("repair: restoring every link and restarting every director's haldir")
	c := s.bgp
	for _, r := range c.Reals() {
		_ = r.Link("eth0").Restore()
		s.realDown[r.Name()].end()
	}
	clear(c.Weights)
	for i, name := range bgpDirectors {
		d := s.daemons[name]
		for _, ifc := range []string{"eth0", "eth1"} {
			_ = d.host.Link(ifc).Restore()
			_ = s.netem(name, ifc, nil)
			s.setLink(name, ifc, false)
		}
		if s.cg != nil {
			_ = s.cg.reset(name)
		}
		_ = writeFile(c.ConfigFile(i), c.Config(i))
		_ = d.proc.Signal(syscall.SIGCONT)
		_ = s.stopDaemon(d, syscall.SIGKILL)
		s.expectRoute(i, wantIn, joinBound, "repair")
		if err := s.startDaemon(ctx, d); err != nil {
			s.printf("repair: %v", err)
			continue
		}
		// Maintenance is kept across restarts.
		_ = s.cli(ctx, i, "maintenance", "off")
	}
	if why := s.waitSteady(ctx); why != "" {
		s.printf("repair: still not steady: %s", why)
	}
}

// watchRoutes samples the router's next hops for the VIP and checks each
// director's against what the soak did to it (routes-follow-health).
func (s *soak) watchRoutes(ctx context.Context) {
	var (
		eps     routeEpisodes
		edges   = lab.DirectorEdges4()
		pending []judgement
	)
	judge := func(j judgement) {
		if !j.ready() {
			pending = append(pending, j)
			return
		}
		s.judgeRoute(j.i, j.w, j.since, j.now, j.followed)
	}
	defer func() {
		// The faults have ended: every command has returned.
		for _, j := range pending {
			s.judgeRoute(j.i, j.w, j.since, j.now, j.followed)
		}
	}()
	every(ctx, vipEvery, func() {
		pending = slices.DeleteFunc(pending, func(j judgement) bool {
			if !j.ready() {
				return false
			}
			s.judgeRoute(j.i, j.w, j.since, j.now, j.followed)
			return true
		})
		hops, err := s.bgp.Router.NextHops(bgpha.VIP)
		if err != nil {
			return
		}
		now := time.Now()
		s.mu.Lock()
		want := s.routes
		s.mu.Unlock()
		var in [3]bool
		for i := range in {
			in[i] = slices.Contains(hops, edges[i])
		}
		for _, j := range eps.sample(now, in, want) {
			judge(j)
		}
	})
}

// judgement is an episode to judge: director i's next hop differed from w
// from since to now; followed says the router got there in the end. One
// whose command has not told when the daemon took it waits (the command
// returns after its route may have changed).
type judgement struct {
	i          int
	w          routeWant
	since, now time.Time
	followed   bool
}

// ready says whether j can be judged: the command that made its change,
// if any, has told when its daemon took it.
func (j judgement) ready() bool { return j.w.taken == nil || j.w.taken.known() }

// routeEpisodes follows the directors' next hops against what they should
// be, one sample at a time.
type routeEpisodes struct {
	// ep is each director's open episode: its next hop differing from
	// want since since (zero: none open).
	ep [3]struct {
		since time.Time
		want  routeWant
	}
	// lastMatch is when each next hop last met what it should be, and
	// matchedSince the since of that want. A sample read just before the
	// soak changed a want may meet the old one after the new one's since
	// (the sample's time is taken before the want is read): that says
	// nothing of the new want, whose episode still starts at its change.
	lastMatch, matchedSince [3]time.Time
}

// sample takes one sample at now (in: whether each director is a next
// hop) and returns the episodes it ended.
func (r *routeEpisodes) sample(now time.Time, in [3]bool, want [3]routeWant) []judgement {
	var out []judgement
	for i, w := range want {
		e := &r.ep[i]
		if !e.since.IsZero() && !e.want.since.Equal(w.since) {
			// Expected otherwise before the router got there.
			out = append(out, judgement{i, e.want, e.since, now, false})
			e.since = time.Time{}
		}
		match := w.state == wantEither || in[i] == (w.state == wantIn)
		switch {
		case !match && e.since.IsZero():
			since := w.since
			if r.matchedSince[i].Equal(w.since) {
				// Met this want, then left it on its own.
				since = later(r.lastMatch[i], w.since)
			}
			e.since, e.want = since, w
		case match && !e.since.IsZero():
			out = append(out, judgement{i, e.want, e.since, now, true})
			e.since = time.Time{}
		}
		if match {
			r.lastMatch[i], r.matchedSince[i] = now, w.since
		}
	}
	return out
}

// judgeRoute judges director i's next hop having differed from w from
// since to now; followed says the router got there in the end.
func (s *soak) judgeRoute(i int, w routeWant, since, now time.Time, followed bool) {
	bound := w.bound
	change := since.Equal(w.since)
	if !change {
		// No change of the soak's: the router changed on its own.
		bound = routeBound
	}
	from, took := since, ""
	if at := w.taken.when(); change && at.After(since) {
		from = at
		took = fmt.Sprintf(", counted from the daemon taking the command %v after it was started", from.Sub(since).Round(time.Millisecond))
	}
	lag := now.Sub(from)
	stall := s.stall.In(from, now)
	// A next hop lost with no change of the soak's, right after the soak
	// itself stood still for at least the router's BFD detection time, is
	// the emulator's doing: the whole guest stalled (the router's bfdd
	// with it), as a real host's would under the same starvation. Its
	// return is then bounded as any other rejoin; its loss is counted.
	lostInStall := !change && w.state == wantIn && s.stall.In(since.Add(-stallLookback), since) >= bfdDetect
	if lostInStall {
		bound = joinBound
	}
	s.checked(invRoutes)
	if followed && (change || lostInStall) {
		s.mu.Lock()
		switch {
		case lostInStall:
			s.stallLosses = append(s.stallLosses, lag)
		case w.state == wantOut:
			s.withdraws = append(s.withdraws, lag)
		default:
			s.joins = append(s.joins, lag)
		}
		s.mu.Unlock()
	}
	if lag <= bound+stall {
		return
	}
	what := "missing"
	if w.state == wantOut {
		what = "still there"
	}
	cause := "with no change of the soak's (" + w.why + " before)"
	if change {
		cause = "after " + w.why
	}
	s.violateSince(invRoutes, lag, fmt.Sprintf("director%d's next hop %s for %v %s (bound %v + %v of measured stall%s)%s",
		i+1, what, lag.Round(time.Millisecond), cause, bound, stall.Round(time.Millisecond), took, s.during(since)), since.Add(-10*time.Second))
}

// greet opens a new connection to the VIP's echo service and returns the
// real server's greeting.
func (s *soak) greet(ctx context.Context) (string, error) {
	c, err := s.bgp.Client.Dial(ctx, "tcp", netip.AddrPortFrom(lab.BGPVIP4, bgpha.EchoPort).String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// judgeFailureRun bounds a run of failed new connections (new-conns).
func (s *soak) judgeFailureRun(from, to time.Time) {
	run, stall := to.Sub(from), s.stall.In(from, to)
	if run > newRunBound+stall {
		s.violate(invNewConns, run, fmt.Sprintf("new connections failed for %v (bound %v + %v of measured stall)%s", run.Round(time.Millisecond), newRunBound, stall.Round(time.Millisecond), s.during(from)))
	}
}

// loadHeld keeps heldConns long-lived connections to the echo service,
// each opened anew when one broke (after its break was judged).
func (s *soak) loadHeld(ctx context.Context) {
	var wg sync.WaitGroup
	for n := range heldConns {
		interval := 20*time.Millisecond + time.Duration(n)*230*time.Millisecond/(heldConns-1)
		wg.Go(func() { s.holdOne(ctx, interval) })
	}
	wg.Wait()
}

// holdOne holds one connection after another until ctx ends.
func (s *soak) holdOne(ctx context.Context, interval time.Duration) {
	addr := netip.AddrPortFrom(lab.BGPVIP4, bgpha.EchoPort)
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, heldTimeout)
		h, err := s.bgp.Client.HoldConns(octx, addr, lab.HoldOptions{Conns: 1, Interval: interval, Timeout: heldTimeout})
		cancel()
		if err != nil {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.conns.LongLivedOpened++
		s.mu.Unlock()
		var c lab.HeldConn
		for ctx.Err() == nil && !c.Broken {
			sleep(ctx, 250*time.Millisecond)
			c = h.Report().Conns[0]
		}
		final := h.Stop().Conns[0]
		s.mu.Lock()
		s.conns.LongLivedAnswers += final.RoundTrips
		s.inv[invBGPConns].Checks += int64(final.RoundTrips)
		s.mu.Unlock()
		if c.Broken {
			s.judgeHeld(c)
		}
	}
}

// judgeHeld attributes a held connection's break: to its real server's
// lost link, to its being younger than the sync flush at a change of the
// directors (conn sync may not have brought it to every director), or to
// nothing (a violation).
func (s *soak) judgeHeld(c lab.HeldConn) {
	from := c.BrokenAt.Add(-heldTimeout - time.Second)
	down := s.realDown[c.Server]
	switch {
	case down != nil && down.in(from, c.BrokenAt):
		s.mu.Lock()
		s.conns.BrokeWithRealServer++
		s.mu.Unlock()
	case s.youngAtChange(c.Opened, c.BrokenAt):
		s.mu.Lock()
		s.conns.BrokeUnsynced++
		s.mu.Unlock()
		s.printf("held connection %v to %s broke, opened less than %v before a change of the directors: %v", c.Local, c.Server, bgpha.SyncFlush, c.Err)
	default:
		s.mu.Lock()
		s.conns.BrokeUnexplained++
		s.mu.Unlock()
		s.violate(invBGPConns, c.BrokenAt.Sub(c.Opened), fmt.Sprintf("held connection %v to %s (open %v) broke with its real server up: %v%s",
			c.Local, c.Server, c.BrokenAt.Sub(c.Opened).Round(time.Millisecond), c.Err, s.during(c.BrokenAt.Add(-heldTimeout))))
	}
}

// youngAtChange says whether a connection opened at opened was younger
// than the sync flush at a fault's start or end before broke.
func (s *soak) youngAtChange(opened, broke time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		for _, t := range []time.Time{f.Start, f.Recovered} {
			if !t.IsZero() && t.Before(broke) && opened.After(t.Add(-bgpha.SyncFlush)) && opened.Before(t) {
				return true
			}
		}
	}
	return false
}
