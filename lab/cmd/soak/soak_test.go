package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/bgpha"
	"github.com/haldir-lb/haldir/lab/pair"
	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

// haldirEnv passes the haldir binary's path into the VM.
const haldirEnv = "HALDIR_SOAK_HALDIR"

// shortSeed and shortDuration are `make test`'s soak: a fixed schedule,
// about two minutes with the VM's boot and the lab's setup. The first
// shortMinFaults faults are injected even on a host so busy that settling
// outlasts the window (it then runs up to shortDuration longer).
const (
	shortSeed      = 957
	shortDuration  = 75 * time.Second
	shortMinFaults = 8
)

// TestVMSoakShort runs a short soak with a fixed seed where IPVS is and
// asserts that no invariant was violated.
func TestVMSoakShort(t *testing.T) {
	lab.SkipIfNotRoot(t)
	if testing.Short() {
		t.Skip("the soak takes minutes")
	}
	haldir := os.Getenv(haldirEnv)
	if !vm.InVM() {
		haldir = lab.BuildHaldir(t)
	}
	if vm.RunInVMWith(t, vm.Options{
		Files:    []vm.File{{Host: haldir, Guest: vmhost.GuestHaldir}},
		Env:      []string{haldirEnv + "=" + vmhost.GuestHaldir},
		Modules:  GuestModules(),
		MemoryMB: 1536,
		Timeout:  2*shortDuration + 3*time.Minute,
	}) {
		return
	}
	rep := runClean(t, haldir, Options{Duration: shortDuration, Seed: shortSeed, MinFaults: shortMinFaults})
	if rep.Conns.NewOK == 0 || rep.Conns.LongLivedAnswers == 0 {
		t.Errorf("no load got through: %+v", rep.Conns)
	}
}

// TestScheduleReplays: one seed, one schedule; every kind in each round.
func TestScheduleReplays(t *testing.T) {
	a, b := newSchedule(7, 10*time.Minute, ModePair, true, nil), newSchedule(7, 10*time.Minute, ModePair, true, nil)
	if len(a) != len(b) || len(a) < 200 {
		t.Fatalf("schedules of %d and %d faults, want the same, at least 200", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("fault %d differs: %v vs %v", i, a[i], b[i])
		}
	}
	if c := newSchedule(8, 10*time.Minute, ModePair, true, nil); c[0] == a[0] && c[1] == a[1] && c[2] == a[2] {
		t.Errorf("seeds 7 and 8 start alike: %v", c[:3])
	}
	for _, tc := range []struct {
		name    string
		mode    Mode
		cgroups bool
		kinds   int
	}{
		{"pair with cgroups", ModePair, true, int(EdgeCut)},
		{"pair without cgroups", ModePair, false, int(EdgeCut) - 2},
		{"bgp with cgroups", ModeBGP, true, len(bgpKinds)},
		{"bgp without cgroups", ModeBGP, false, len(bgpKinds) - 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSchedule(1, time.Minute, tc.mode, tc.cgroups, nil)
			seen := map[Kind]bool{}
			for _, f := range s[:tc.kinds] {
				seen[f.Kind] = true
				if f.Hold <= 0 || f.Target == "" {
					t.Errorf("fault %v: no hold or target", f)
				}
			}
			if len(seen) != tc.kinds {
				t.Errorf("the first round has %d kinds, want %d: %v", len(seen), tc.kinds, s[:tc.kinds])
			}
			if !tc.cgroups && (seen[CPUStarve] || seen[MemPressure]) {
				t.Error("cgroup faults planned without cgroups")
			}
			for k := range seen {
				if !slices.Contains(tc.mode.kinds(), k) {
					t.Errorf("%s planned in %s mode", k, tc.mode)
				}
			}
		})
	}
}

// TestScheduleOnly: -kinds keeps the schedule to the kinds named, and a
// name that is no kind is refused with the list of kinds.
func TestScheduleOnly(t *testing.T) {
	only, err := parseKinds("mem-pressure, pause", ModePair)
	if err != nil {
		t.Fatal(err)
	}
	s := newSchedule(9, time.Minute, ModePair, true, only)
	seen := map[Kind]int{}
	for _, f := range s {
		seen[f.Kind]++
	}
	if len(seen) != 2 || seen[MemPressure] == 0 || seen[Pause] == 0 {
		t.Errorf("kinds planned %v, want mem-pressure and pause only", seen)
	}
	if _, err := parseKinds("mem-pressure,nope", ModePair); err == nil || !strings.Contains(err.Error(), `no fault kind "nope"`) {
		t.Errorf("bad kind: %v", err)
	}
}

// TestKindsByMode: each mode plans and accepts its own kinds only.
func TestKindsByMode(t *testing.T) {
	for _, tc := range []struct {
		mode       Mode
		list       string
		ok         bool
		mentioning string
	}{
		{ModePair, "handoff,netem-sync", true, ""},
		{ModePair, "edge-cut", false, "kill, term"},
		{ModeBGP, "edge-cut,back-cut,netem-edge,kill", true, ""},
		{ModeBGP, "handoff", false, "edge-cut, back-cut, netem-edge"},
		{ModeBGP, "vrrp-partition", false, "in bgp mode"},
	} {
		_, err := parseKinds(tc.list, tc.mode)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), tc.mentioning) {
			t.Errorf("%s mode, -kinds %s: %v, want ok %v (mentioning %q)", tc.mode, tc.list, err, tc.ok, tc.mentioning)
		}
	}
	s := newSchedule(3, 10*time.Minute, ModeBGP, true, nil)
	targets := map[string]int{}
	for _, f := range s {
		targets[f.Target]++
		if f.Kind == Pause && f.Hold <= bfdDetect {
			t.Errorf("%v: not past BFD's detection", f)
		}
		if f.Kind == BackCut && f.Hold <= checkDetect {
			t.Errorf("%v: not past the checks' detection", f)
		}
	}
	for _, d := range bgpDirectors {
		if targets[d] == 0 {
			t.Errorf("no fault on %s: %v", d, targets)
		}
	}
	if _, err := parseMode("vrrp"); err == nil {
		t.Error("-mode vrrp accepted")
	}
}

// TestConfigsLoad keeps the soak's configurations (every reload's) loadable
// and the broken one broken.
func TestConfigsLoad(t *testing.T) {
	base := pair.Config{Name: "director2", Priority: prio2, Dir: "/run/soak", MetricsListen: metricsAddr,
		AdvertInterval: advertInterval.String(), CheckInterval: checkInterval.String(), CheckTimeout: checkTimeout.String()}
	weighted := base
	weighted.Weights = map[string]int{"real2": 5}
	for _, tc := range []struct {
		name string
		text string
		ok   bool
	}{
		{"base", base.TOML(), true},
		{"weight", weighted.TOML(), true},
		{"broken", base.TOML() + brokenTail, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := conf.Parse([]byte(tc.text), "soak.toml")
			if (err == nil) != tc.ok {
				t.Fatalf("parse error %v, want ok %v", err, tc.ok)
			}
			if tc.name == "weight" && c.VirtualServers[0].RealServers[1].Weight != 5 {
				t.Errorf("real2's weight %d, want 5", c.VirtualServers[0].RealServers[1].Weight)
			}
		})
	}
}

// TestDistribution checks the gap summary.
func TestDistribution(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := distribution(ds)
	if d.Count != 100 || d.P50 != 51 || d.P90 != 91 || d.P99 != 100 || d.Max != 100 {
		t.Errorf("distribution(1..100 ms) = %+v", d)
	}
	if (distribution(nil) != Distribution{}) {
		t.Error("empty distribution not zero")
	}
}

// bgpShortSeed and bgpShortDuration are `make test`'s soak of the BGP
// mode: a fixed schedule whose first eight faults are eight kinds (the
// back link cut, a pause, netem on the edge link, a broken reload, memory
// pressure, maintenance, the edge link cut, a kill), about 75 s of them.
const (
	bgpShortSeed     = 19
	bgpShortDuration = 75 * time.Second
)

// TestVMSoakBGPShort runs a short soak of three BGP directors with a
// fixed seed in the lab VM (with FRRouting) and asserts that no
// invariant was violated.
func TestVMSoakBGPShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes minutes")
	}
	haldir, ranInVM := bgpha.RunInVM(t, vm.Options{Modules: GuestModules(), MemoryMB: 1536, Timeout: 2*bgpShortDuration + 4*time.Minute})
	if ranInVM {
		return
	}
	rep := runClean(t, haldir, Options{Mode: ModeBGP, Duration: bgpShortDuration, Seed: bgpShortSeed, MinFaults: shortMinFaults})
	if rep.Conns.NewOK == 0 || rep.Conns.LongLivedAnswers == 0 || rep.RouteWithdraws.Count == 0 {
		t.Errorf("no load got through or no route changed: %+v, withdraws %v", rep.Conns, rep.RouteWithdraws)
	}
}

// runClean runs a short soak and fails t on an error, too few kinds of
// fault or any invariant's violation.
func runClean(t *testing.T, haldir string, opts Options) *Report {
	t.Helper()
	var out strings.Builder
	rep, err := Run(context.Background(), &out, haldir, opts)
	t.Log("soak output:\n" + out.String())
	if err != nil {
		t.Fatalf("soak failed: %v", err)
	}
	if n := len(rep.Faults); n < 5 {
		t.Errorf("only %d kinds of fault injected: %v", n, rep.Faults)
	}
	for _, in := range rep.Invariants {
		t.Run(in.Name, func(t *testing.T) {
			if in.Violations != 0 {
				t.Errorf("%d violations of %q; worst: %s; examples: %q", in.Violations, in.Rule, in.Worst, in.Examples)
			}
		})
	}
	return rep
}

// TestHeldBreakAttribution: a break is the sync flush's when the
// connection was younger than it at a fault's start or end before the
// break, the real server's when that was down around it.
func TestHeldBreakAttribution(t *testing.T) {
	t0 := time.Now()
	s := &soak{faults: []*faultRecord{{Start: t0, Recovered: t0.Add(5 * time.Second)}}}
	for _, tc := range []struct {
		name          string
		opened, broke time.Duration // after t0
		young         bool
	}{
		{"older than the flush at the start", -3 * time.Second, time.Second, false},
		{"younger at the start", -time.Second, time.Second, true},
		{"opened during the fault, younger at its end", 4 * time.Second, 6 * time.Second, true},
		{"opened during the fault, older at its end", 2 * time.Second, 6 * time.Second, false},
		{"broke before the end it was young at", 4 * time.Second, 4500 * time.Millisecond, false},
	} {
		if got := s.youngAtChange(t0.Add(tc.opened), t0.Add(tc.broke)); got != tc.young {
			t.Errorf("%s: young %v, want %v", tc.name, got, tc.young)
		}
	}
	var sp spells
	if sp.in(t0, time.Now()) {
		t.Error("no spell, yet down")
	}
	sp.begin()
	if !sp.in(t0, time.Now()) {
		t.Error("an open spell not seen")
	}
	sp.end()
	after := time.Now().Add(time.Millisecond)
	if sp.in(after, after.Add(time.Second)) || !sp.in(t0, after) {
		t.Error("a closed spell seen after its end, or not within it")
	}
}

// TestRouteLostInStall: a next hop lost on its own right after the soak
// stood still for BFD's detection time is held to the rejoin bound and
// counted apart; one lost with no such stall is held to the bound of a
// next hop changing on its own.
func TestRouteLostInStall(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stall     time.Duration // ending just before the loss
		missing   time.Duration
		violation bool
		losses    int
	}{
		{"no stall, back after 800 ms", 0, 800 * time.Millisecond, false, 0},
		{"no stall, back after 5 s", 0, 5 * time.Second, true, 0},
		{"a stall shorter than BFD's detection, back after 5 s", 200 * time.Millisecond, 5 * time.Second, true, 0},
		{"a stall as long as BFD's detection, back after 5 s", bfdDetect, 5 * time.Second, false, 1},
		{"a stall as long as BFD's detection, back after 20 s", bfdDetect, 20 * time.Second, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			now := time.Now()
			lost := now.Add(-tc.missing)
			s := &soak{inv: newInvariants(ModeBGP), out: &out, start: now.Add(-time.Minute), stall: &pair.StallMeter{}}
			if tc.stall > 0 {
				s.stall.Add(lost.Add(-100*time.Millisecond), tc.stall)
			}
			// Wanted in since long before: the router dropped it on its own.
			w := routeWant{state: wantIn, since: now.Add(-time.Minute), bound: joinBound, why: "started"}
			s.judgeRoute(1, w, lost, now, true)
			if got := s.inv[invRoutes].Violations > 0; got != tc.violation {
				t.Errorf("violation %v, want %v: %s", got, tc.violation, out.String())
			}
			if len(s.stallLosses) != tc.losses || len(s.joins) != 0 {
				t.Errorf("%d losses in a stall and %d joins recorded, want %d and 0", len(s.stallLosses), len(s.joins), tc.losses)
			}
		})
	}
}

// TestRouteFromCommandTaken: a maintenance's withdraw is bounded from its
// daemon taking the command, not from the soak starting a new haldir
// process; without the daemon's time the bound counts from the start.
func TestRouteFromCommandTaken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		taken     time.Duration // after the start; 0: not known
		gone      time.Duration // after the start
		violation bool
		withdraw  time.Duration
	}{
		{"taken after 400 ms, gone after 1.3 s", 400 * time.Millisecond, 1300 * time.Millisecond, false, 900 * time.Millisecond},
		{"taken after 100 ms, gone after 1.3 s", 100 * time.Millisecond, 1300 * time.Millisecond, true, 1200 * time.Millisecond},
		{"not known, gone after 1.3 s", 0, 1300 * time.Millisecond, true, 1300 * time.Millisecond},
		{"not known, gone after 900 ms", 0, 900 * time.Millisecond, false, 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			start := time.Now().Add(-time.Minute)
			s := &soak{inv: newInvariants(ModeBGP), out: &out, start: start.Add(-time.Minute), stall: &pair.StallMeter{}}
			w := routeWant{state: wantOut, since: start, bound: routeBound, why: "maintenance", taken: new(taken)}
			var at time.Time
			if tc.taken > 0 {
				at = start.Add(tc.taken)
			}
			w.taken.set(at)
			s.judgeRoute(0, w, start, start.Add(tc.gone), true)
			if got := s.inv[invRoutes].Violations > 0; got != tc.violation {
				t.Errorf("violation %v, want %v: %s", got, tc.violation, out.String())
			}
			if len(s.withdraws) != 1 || s.withdraws[0] != tc.withdraw {
				t.Errorf("withdraws %v, want [%v]", s.withdraws, tc.withdraw)
			}
		})
	}
}

// TestRouteEpisodeStart: an episode starts at the want's change, even when
// a sample read just before the change (its time taken first, the want
// read after) met the old want later than the new want's since; it starts
// at the last match only when the new want itself was met and then left.
func TestRouteEpisodeStart(t *testing.T) {
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	in := routeWant{state: wantIn, since: t0, bound: joinBound, why: "started"}
	out := routeWant{state: wantOut, since: at(2 * time.Second), bound: checkDetect + routeBound, why: "back-cut"}
	wants := func(w routeWant) [3]routeWant { return [3]routeWant{in, w, in} }
	hops := func(d2 bool) [3]bool { return [3]bool{true, d2, true} }
	type step struct {
		at   time.Duration
		in   bool
		want routeWant
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		since    time.Time
		followed bool
		judgedAt time.Duration
	}{
		{"old want met after the change's since", []step{
			{time.Second, true, in},
			{2*time.Second + 5*time.Millisecond, true, in}, // read before the change was stored
			{2*time.Second + 25*time.Millisecond, true, out},
			{3300 * time.Millisecond, false, out},
		}, out.since, true, 3300 * time.Millisecond},
		{"new want met, then left on its own", []step{
			{time.Second, true, in},
			{2*time.Second + 20*time.Millisecond, false, out},
			{2*time.Second + 40*time.Millisecond, true, out},
			{2*time.Second + 900*time.Millisecond, false, out},
		}, at(2*time.Second + 20*time.Millisecond), true, 2*time.Second + 900*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r routeEpisodes
			var got []judgement
			for _, st := range tc.steps {
				got = append(got, r.sample(at(st.at), hops(st.in), wants(st.want))...)
			}
			if len(got) != 1 {
				t.Fatalf("judgements %+v, want one", got)
			}
			j := got[0]
			if j.i != 1 || !j.since.Equal(tc.since) || j.followed != tc.followed || !j.now.Equal(at(tc.judgedAt)) {
				t.Errorf("judgement: director %d since %v followed %t at %v; want director 1 since %v followed %t at %v",
					j.i, j.since.Sub(t0), j.followed, j.now.Sub(t0), tc.since.Sub(t0), tc.followed, tc.judgedAt)
			}
		})
	}
}

// TestShortSoaksFirstFaults: the short soaks' first shortMinFaults faults,
// which every run injects, are at least the five kinds runClean asks for.
func TestShortSoaksFirstFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		seed uint64
		d    time.Duration
		mode Mode
	}{
		{"pair", shortSeed, shortDuration, ModePair},
		{"bgp", bgpShortSeed, bgpShortDuration, ModeBGP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sched := newSchedule(tc.seed, tc.d, tc.mode, true, nil)
			if len(sched) < shortMinFaults {
				t.Fatalf("%d faults planned, want at least %d", len(sched), shortMinFaults)
			}
			kinds := map[Kind]bool{}
			for _, f := range sched[:shortMinFaults] {
				kinds[f.Kind] = true
			}
			if len(kinds) < 5 {
				t.Errorf("the first %d faults are %d kinds, want at least 5: %v", shortMinFaults, len(kinds), sched[:shortMinFaults])
			}
		})
	}
}

// TestFailureRuns: a run of failed new connections lasts from a failure's
// start to the start of the first success started after it, whatever
// order the connections end in. A slow success that started earlier and
// ended late used to move the latest success back and make a run out of
// failures that successes had interleaved.
func TestFailureRuns(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	type conn struct {
		t0 int
		ok bool
	}
	for _, tc := range []struct {
		name  string
		conns []conn // in the order they end
		want  []int  // starts of the runs ended, by the success that ended each
		lens  []int  // their lengths, ms
	}{
		{"in order", []conn{{0, true}, {100, false}, {200, false}, {300, true}}, []int{100}, []int{200}},
		{"no failure", []conn{{0, true}, {100, true}}, nil, nil},
		{"a slow success ends after a quick failure", []conn{{0, true}, {300, true}, {100, true}, {200, false}, {400, true}}, nil, nil},
		{"a failure ends after later successes", []conn{{100, true}, {200, true}, {50, false}, {300, true}}, nil, nil},
		{"a later failure ends first", []conn{{0, true}, {300, false}, {100, false}, {400, true}}, []int{100}, []int{300}},
		{"a success started before the run does not end it", []conn{{0, true}, {200, false}, {100, true}, {500, true}}, []int{200}, []int{300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r failureRuns
			var got, lens []int
			for _, c := range tc.conns {
				if from := r.record(at(c.t0), c.ok); !from.IsZero() {
					got = append(got, int(from.Sub(at(0)).Milliseconds()))
					lens = append(lens, c.t0-int(from.Sub(at(0)).Milliseconds()))
				}
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(lens, tc.lens) {
				t.Errorf("runs from %v lasting %v ms, want from %v lasting %v", got, lens, tc.want, tc.lens)
			}
		})
	}
}
