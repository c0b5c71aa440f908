package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/haldir-lb/haldir/control"
)

// Kind is a kind of fault.
type Kind int

// The fault kinds, most valuable first.
const (
	Kill          Kind = iota // SIGKILL haldir, restart it
	Term                      // SIGTERM haldir, restart it
	Pause                     // SIGSTOP past Master_Down_Interval, SIGCONT
	LinkCut                   // cut all of a director's links, restore
	VRRPPartition             // detach eth0 and eth1 (sync and gossip stay)
	SyncPartition             // detach eth2 (VRRP stays)
	NetemVRRP                 // loss, delay, reordering on eth0 and eth1
	NetemSync                 // the same on eth2
	RealDie                   // a real server's HTTP server closes
	RealHang                  // a real server accepts and never answers
	RealTrickle               // a real server answers late, a byte at a time
	ReloadWeight              // reload both with a real server's weight changed
	ReloadBroken              // reload one with a broken file
	ReloadVRRP                // reload director2 with another priority
	Handoff                   // haldir handoff there and back
	Maintenance               // haldir maintenance on and off on director1
	CPUStarve                 // cgroup cpu.max of 1% on a director's haldir
	MemPressure               // cgroup memory.high below a daemon's usage
	EdgeCut                   // BGP: cut a director's link to the router (only BFD tells), restore
	BackCut                   // BGP: cut a director's link to the real servers (its quorum lost), restore
	NetemEdge                 // BGP: loss, delay, reordering on a director's link to the router
	numKinds
)

var kindNames = [...]string{"kill", "term", "pause", "link-cut", "vrrp-partition", "sync-partition", "netem-vrrp", "netem-sync",
	"real-die", "real-hang", "real-trickle", "reload-weight", "reload-broken", "reload-vrrp", "handoff", "maintenance", "cpu-starve", "mem-pressure",
	"edge-cut", "back-cut", "netem-edge"}

func (k Kind) String() string { return kindNames[k] }

// Mode is what the soak runs: the VRRP director pair or three BGP
// directors.
type Mode string

const (
	ModePair Mode = "pair"
	ModeBGP  Mode = "bgp"
)

// bgpKinds are the faults of the BGP mode: the pair's that mean the same
// for a BGP director, and the BGP directors' own links. (A real server
// dies there by losing its link: the lab's echo service has no modes.)
var bgpKinds = []Kind{Kill, Term, Pause, EdgeCut, BackCut, NetemEdge, RealDie, ReloadWeight, ReloadBroken, Maintenance, CPUStarve, MemPressure}

// kinds are the fault kinds of mode m, in Kind order (the order a
// schedule's rounds are shuffled from).
func (m Mode) kinds() []Kind {
	if m == ModeBGP {
		return slices.Sorted(slices.Values(bgpKinds))
	}
	var out []Kind
	for k := range EdgeCut {
		out = append(out, k)
	}
	return out
}

// parseMode checks a -mode value.
func parseMode(name string) (Mode, error) {
	switch m := Mode(name); m {
	case ModePair, ModeBGP:
		return m, nil
	}
	return "", fmt.Errorf("no mode %q (modes: pair, bgp)", name)
}

// parseKinds reads a comma-separated list of kind names of mode m.
func parseKinds(list string, m Mode) ([]Kind, error) {
	var out, have []Kind = nil, m.kinds()
	names := make([]string, len(have))
	for i, k := range have {
		names[i] = k.String()
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.Index(names, name)
		if i < 0 {
			return nil, fmt.Errorf("no fault kind %q in %s mode (kinds: %s)", name, m, strings.Join(names, ", "))
		}
		out = append(out, have[i])
	}
	return out, nil
}

// allowsTwoHolders says whether a fault of this kind lets both directors
// hold the addresses: its master keeps them while it cannot speak
// (paused, starved, killed before restart) or cannot be heard.
func (k Kind) allowsTwoHolders() bool {
	switch k {
	case Kill, Pause, VRRPPartition, NetemVRRP, CPUStarve, MemPressure:
		return true
	}
	return false
}

// Fault is one planned fault: the kind, the director or real server it
// hits, how long it lasts and its parameters, all from the seed.
type Fault struct {
	Kind   Kind
	Target string // director1, director2 or real1-3; "master" is director1 at steady state
	Hold   time.Duration
	// Netem parameters, the new weight or priority.
	LossPct, DelayMs, JitterMs, ReorderPct int
	Weight                                 int
}

func (f Fault) String() string {
	s := fmt.Sprintf("%-15s %-9s hold %s", f.Kind, f.Target, f.Hold)
	switch f.Kind {
	case NetemVRRP, NetemSync, NetemEdge:
		s += fmt.Sprintf(" loss %d%% delay %dms±%dms reorder %d%%", f.LossPct, f.DelayMs, f.JitterMs, f.ReorderPct)
	case ReloadWeight:
		s += fmt.Sprintf(" weight %d", f.Weight)
	case ReloadVRRP:
		s += fmt.Sprintf(" priority %d", f.Weight)
	}
	return s
}

// newSchedule draws the faults for a run of d: rounds of every kind in a
// seeded order, so a short run still sees most kinds, each with its
// target and parameters from the same generator. A non-empty only keeps
// to those kinds, to replay one kind's trouble without the rest.
func newSchedule(seed uint64, d time.Duration, m Mode, cgroups bool, only []Kind) []Fault {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dur := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(r.Int64N(int64(hi-lo)))).Round(100 * time.Millisecond)
	}
	director := func() string {
		if m == ModeBGP {
			return fmt.Sprintf("director%d", 1+r.IntN(3))
		}
		// The master (director1 at steady state) is the more telling target.
		if r.IntN(4) == 0 {
			return "director2"
		}
		return "director1"
	}
	var out []Fault
	// A fault cycle takes at least 3 s (hold, recovery, settling).
	for n := int(d/(3*time.Second)) + 1; len(out) < n; {
		kinds := make([]Kind, 0, numKinds)
		for _, k := range m.kinds() {
			if !cgroups && (k == CPUStarve || k == MemPressure) || len(only) > 0 && !slices.Contains(only, k) {
				continue
			}
			kinds = append(kinds, k)
		}
		r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			f := Fault{Kind: k}
			switch k {
			case Kill, Term:
				f.Target, f.Hold = director(), dur(500*time.Millisecond, 3*time.Second)
			case Pause:
				// Past the router's BFD detection (BGP) or the backup's
				// Master_Down_Interval (the pair).
				detect := masterDown(prio2)
				if m == ModeBGP {
					detect = bfdDetect
				}
				f.Target, f.Hold = director(), detect+dur(300*time.Millisecond, 2*time.Second)
			case LinkCut:
				f.Target, f.Hold = director(), dur(time.Second, 4*time.Second)
			case VRRPPartition, SyncPartition:
				// Long enough for the cluster's 3 s split-brain hold.
				f.Target, f.Hold = director(), dur(4*time.Second, 8*time.Second)
			case NetemVRRP, NetemSync:
				f.Target, f.Hold = director(), dur(3*time.Second, 8*time.Second)
				f.LossPct, f.DelayMs, f.JitterMs, f.ReorderPct = r.IntN(11), 5+r.IntN(40), r.IntN(10), r.IntN(30)
			case RealDie, RealHang, RealTrickle:
				f.Target, f.Hold = fmt.Sprintf("real%d", 1+r.IntN(3)), dur(2*time.Second, 5*time.Second)
			case ReloadWeight:
				f.Target, f.Hold, f.Weight = fmt.Sprintf("real%d", 1+r.IntN(3)), dur(time.Second, 3*time.Second), 2+r.IntN(4)
			case ReloadBroken:
				f.Target, f.Hold = director(), dur(500*time.Millisecond, 2*time.Second)
			case ReloadVRRP:
				f.Target, f.Hold, f.Weight = "director2", dur(time.Second, 3*time.Second), 101+r.IntN(40)
			case Handoff, Maintenance:
				f.Target, f.Hold = "director1", dur(time.Second, 4*time.Second)
				if m == ModeBGP {
					f.Target = director()
				}
			case EdgeCut:
				f.Target, f.Hold = director(), dur(time.Second, 4*time.Second)
			case BackCut:
				// Past the checks' detection, so the quorum is lost.
				f.Target, f.Hold = director(), checkDetect+dur(time.Second, 4*time.Second)
			case NetemEdge:
				// Loss of at most 5%: more would take BFD (100 ms x 3)
				// down now and then, a route change the soak cannot
				// predict.
				f.Target, f.Hold = director(), dur(3*time.Second, 8*time.Second)
				f.LossPct, f.DelayMs, f.JitterMs, f.ReorderPct = r.IntN(6), 5+r.IntN(40), r.IntN(10), r.IntN(30)
			case CPUStarve, MemPressure:
				f.Target, f.Hold = director(), dur(2*time.Second, 6*time.Second)
			}
			out = append(out, f)
		}
	}
	return out
}

// faultRecord is one injected fault and when.
type faultRecord struct {
	N         int
	Fault     Fault
	Kind      Kind
	Start     time.Time
	Recovered time.Time // zero while it is on
	Settled   time.Duration
	// SettledAt is when the pair was steady again: the fault's
	// consequences (timeouts of memberlist, the checks) last until then.
	SettledAt time.Time
	Note      string
}

// faultAt returns a fault whose window (its start to grace after its
// recovery) holds t, preferring the newest; nil when none.
func (s *soak) faultAt(t time.Time, grace time.Duration) *faultRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range slices.Backward(s.faults) {
		if !t.Before(f.Start) && (f.Recovered.IsZero() || t.Before(later(f.Recovered, f.SettledAt).Add(grace))) {
			return f
		}
	}
	return nil
}

// twoHoldersAllowed says whether a fault that lets two directors hold
// the addresses was on at any time in [from, to], or ended less than
// grace before from.
func (s *soak) twoHoldersAllowed(from, to time.Time, grace time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if !f.Kind.allowsTwoHolders() {
			continue
		}
		if !f.Start.After(to) && (f.Recovered.IsZero() || f.Recovered.Add(grace).After(from)) {
			return true
		}
	}
	return false
}

// inject runs one fault: on, hold, off, then waits for the steady state.
func (s *soak) inject(ctx context.Context, n int, f Fault) {
	s.progress.tick()
	rec := &faultRecord{N: n, Fault: f, Kind: f.Kind, Start: time.Now()}
	s.mu.Lock()
	s.faults = append(s.faults, rec)
	s.mu.Unlock()
	s.printf("fault %d: %s", n, f)
	if err := s.apply(ctx, f, rec); err != nil {
		rec.Note = err.Error()
		s.printf("fault %d (%s): %v", n, f.Kind, err)
	}
	s.mu.Lock()
	rec.Recovered = time.Now()
	s.mu.Unlock()
	t0 := time.Now()
	if why := s.waitSteady(ctx); why != "" && ctx.Err() == nil {
		s.violate(invRecovers, settleLimit, fmt.Sprintf("fault %d (%s): not steady %s after recovery: %s", n, f, settleLimit, why))
		// The repair restarts daemons: part of this fault's window.
		s.mu.Lock()
		rec.Recovered = time.Time{}
		s.mu.Unlock()
		s.repair(ctx)
		s.mu.Lock()
		rec.Recovered = time.Now()
		s.mu.Unlock()
	}
	s.mu.Lock()
	rec.Settled, rec.SettledAt = time.Since(t0), time.Now()
	s.mu.Unlock()
	s.checked(invRecovers)
	// A quiet moment of steady state between faults.
	sleep(ctx, time.Second)
}

// repair brings a pair that did not settle back to a known state: every
// link attached and up, no netem, no cgroup limits, every real server
// up, both daemons restarted.
func (s *soak) repair(ctx context.Context) {
	if s.bgp != nil {
		s.repairBGP(ctx)
		return
	}
	s.printf("repair: restoring every link and real server and restarting both daemons")
	for _, h := range s.s.Directors() {
		for _, ifc := range []string{"eth0", "eth1", "eth2"} {
			_ = h.Link(ifc).Attach()
			_ = h.Link(ifc).Restore()
			_ = s.netem(h.Name(), ifc, nil)
			s.setLink(h.Name(), ifc, false)
		}
	}
	for _, r := range s.reals {
		_ = r.set(modeUp)
	}
	for _, d := range s.daemons {
		if s.cg != nil {
			_ = s.cg.reset(d.name)
		}
		_ = d.proc.Signal(syscall.SIGCONT)
		_ = s.stopDaemon(d, syscall.SIGKILL)
		if err := s.startDaemon(ctx, d); err != nil {
			s.printf("repair: %v", err)
		}
	}
	if why := s.waitSteady(ctx); why != "" {
		s.printf("repair: still not steady: %s", why)
	}
}

// setLink records whether the soak has a director's link down.
func (s *soak) setLink(director, iface string, down bool) {
	s.mu.Lock()
	s.linkDown[director+"/"+iface] = down
	s.mu.Unlock()
}

// every runs f every interval until ctx ends: the loop of each monitor.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// apply injects f, holds it and undoes it.
func (s *soak) apply(ctx context.Context, f Fault, rec *faultRecord) error {
	if s.bgp != nil {
		return s.applyBGP(ctx, f)
	}
	d := s.daemons[f.Target]
	switch f.Kind {
	case Kill, Term:
		sig := map[Kind]syscall.Signal{Kill: syscall.SIGKILL, Term: syscall.SIGTERM}[f.Kind]
		if err := s.stopDaemon(d, sig); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.startDaemon(ctx, d)
	case Pause:
		s.mu.Lock()
		d.stopped = true
		s.mu.Unlock()
		if err := d.proc.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		err := d.proc.Signal(syscall.SIGCONT)
		s.mu.Lock()
		d.stopped = false
		s.mu.Unlock()
		return err
	case LinkCut, VRRPPartition, SyncPartition:
		ifaces := map[Kind][]string{LinkCut: {"eth0", "eth1", "eth2"}, VRRPPartition: {"eth0", "eth1"}, SyncPartition: {"eth2"}}[f.Kind]
		h := d.host
		for _, ifc := range ifaces {
			s.setLink(f.Target, ifc, true)
			var err error
			if f.Kind == LinkCut {
				err = h.Link(ifc).Cut()
			} else {
				err = h.Link(ifc).Detach()
			}
			if err != nil {
				return err
			}
		}
		sleep(ctx, f.Hold)
		var errs []error
		for _, ifc := range ifaces {
			if f.Kind == LinkCut {
				errs = append(errs, h.Link(ifc).Restore())
			} else {
				errs = append(errs, h.Link(ifc).Attach())
			}
			s.setLink(f.Target, ifc, false)
		}
		return errors.Join(errs...)
	case NetemVRRP, NetemSync:
		ifaces := map[Kind][]string{NetemVRRP: {"eth0", "eth1"}, NetemSync: {"eth2"}}[f.Kind]
		for _, ifc := range ifaces {
			if err := s.netem(f.Target, ifc, &f); err != nil {
				return err
			}
		}
		sleep(ctx, f.Hold)
		var errs []error
		for _, ifc := range ifaces {
			errs = append(errs, s.netem(f.Target, ifc, nil))
		}
		return errors.Join(errs...)
	case RealDie, RealHang, RealTrickle:
		r := s.real(f.Target)
		mode := map[Kind]realMode{RealDie: modeDead, RealHang: modeHung, RealTrickle: modeTrickle}[f.Kind]
		if err := r.set(mode); err != nil {
			return err
		}
		s.truthChanged()
		sleep(ctx, f.Hold)
		err := r.set(modeUp)
		s.truthChanged()
		return err
	case ReloadWeight:
		if err := s.reloadBoth(ctx, func(c *daemon) { c.cfg.Weights[f.Target] = f.Weight }); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.reloadBoth(ctx, func(c *daemon) { delete(c.cfg.Weights, f.Target) })
	case ReloadBroken:
		return s.reloadBroken(ctx, d, f.Hold)
	case ReloadVRRP:
		if err := s.reload(ctx, d, func(c *daemon) { c.cfg.Priority = f.Weight }); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.reload(ctx, d, func(c *daemon) { c.cfg.Priority = prio2 })
	case Handoff:
		if err := s.handoff(ctx, "director1", "director2"); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.handoff(ctx, "director2", "director1")
	case Maintenance:
		if err := s.maintenance(ctx, true, "director2"); err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.maintenance(ctx, false, "director1")
	case CPUStarve, MemPressure:
		if s.cg == nil {
			return errors.New("no cgroup v2")
		}
		var err error
		if f.Kind == CPUStarve {
			err = s.cg.starveCPU(f.Target)
		} else {
			err = s.cg.squeezeMemory(f.Target)
		}
		if err != nil {
			return err
		}
		sleep(ctx, f.Hold)
		return s.cg.reset(f.Target)
	}
	return fmt.Errorf("unknown fault kind %d", f.Kind)
}

// netem puts f's loss, delay and reordering on a director's interface, or
// removes it (f nil).
func (s *soak) netem(director, iface string, f *Fault) error {
	h := s.daemons[director].host
	nl := h.Netlink()
	l, err := nl.LinkByName(iface)
	if err != nil {
		return err
	}
	attrs := netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	if f == nil {
		err := nl.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: attrs, QdiscType: "netem"})
		if err != nil && errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	q := netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
		Latency: uint32(f.DelayMs * 1000), Jitter: uint32(f.JitterMs * 1000),
		Loss: float32(f.LossPct), ReorderProb: float32(f.ReorderPct),
	})
	if err := nl.QdiscAdd(q); err != nil {
		return fmt.Errorf("%s %s: netem: %w", director, iface, err)
	}
	return nil
}

// truthChanged notes that the IPVS table's expected content changed now.
func (s *soak) truthChanged() {
	s.mu.Lock()
	s.truthAt = time.Now()
	s.mu.Unlock()
}

// reload edits a daemon's configuration, writes it and reloads.
func (s *soak) reload(ctx context.Context, d *daemon, edit func(*daemon)) error {
	s.mu.Lock()
	edit(d)
	c := d.client
	s.mu.Unlock()
	if err := s.writeConfig(d); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.checked(invOperations)
	if err := c.Reload(rctx); err != nil {
		s.violate(invOperations, 0, fmt.Sprintf("%s: reload of a valid file failed: %v", d.name, err))
		return err
	}
	s.truthChanged()
	return nil
}

// reloadBoth applies edit to both directors and reloads them.
func (s *soak) reloadBoth(ctx context.Context, edit func(*daemon)) error {
	return errors.Join(s.reload(ctx, s.daemons["director1"], edit), s.reload(ctx, s.daemons["director2"], edit))
}

// brokenTail breaks a configuration: a second virtual server of the same
// name whose port is a word.
const brokenTail = "\n[[virtual_server]]\nname = \"web\"\nport = \"eighty\"\n"

// reloadBroken reloads d with a file that does not load: the reload must
// be refused and the running configuration kept.
func (s *soak) reloadBroken(ctx context.Context, d *daemon, hold time.Duration) error {
	broken := d.cfg.TOML() + brokenTail
	if err := os.WriteFile(d.cfg.Path(), []byte(broken), 0o644); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := d.client.Reload(rctx)
	cancel()
	s.checked(invOperations)
	var re *control.ReloadError
	if !errors.As(err, &re) {
		s.violate(invOperations, 0, fmt.Sprintf("%s: reload of a broken file answered %v, want a refusal", d.name, err))
	}
	sleep(ctx, hold)
	st, ok := s.status(ctx, d)
	if !ok || len(st.VRRP) != 2 || len(st.Services) != 1 {
		s.violate(invOperations, 0, fmt.Sprintf("%s: after a refused reload the daemon does not run the old configuration (status ok %v, %d instances, %d services)", d.name, ok, len(st.VRRP), len(st.Services)))
	}
	return s.reload(ctx, d, func(*daemon) {})
}

// handoff asks from to hand every instance to its peer, make-before-break.
func (s *soak) handoff(ctx context.Context, from, to string) error {
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s.checked(invOperations)
	rep, err := s.daemons[from].client.Handoff(hctx, control.HandoffRequest{Reason: "soak"})
	for _, r := range rep.Results {
		s.printf("handoff %s -> %s: %s %s ok %v %.1f ms %s", from, to, r.Instance, r.Method, r.OK, r.Millis, r.Reason)
	}
	if err != nil || !rep.OK {
		s.violate(invOperations, 0, fmt.Sprintf("handoff %s -> %s: %v %+v", from, to, err, rep))
		return fmt.Errorf("handoff %s -> %s: %v", from, to, err)
	}
	return s.waitMaster(ctx, to)
}

// maintenance turns maintenance on or off on director1.
func (s *soak) maintenance(ctx context.Context, on bool, master string) error {
	mctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s.checked(invOperations)
	rep, err := s.daemons["director1"].client.SetMaintenance(mctx, control.MaintenanceRequest{On: on, Reason: "soak"})
	if err != nil || !rep.OK {
		s.violate(invOperations, 0, fmt.Sprintf("maintenance on=%v: %v %+v", on, err, rep))
		return fmt.Errorf("maintenance on=%v: %v", on, err)
	}
	return s.waitMaster(ctx, master)
}

// waitMaster waits until name is master of both instances.
func (s *soak) waitMaster(ctx context.Context, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := s.status(ctx, s.daemons[name]); ok {
			m := vrrpStates(st)
			if m["front"] == "master" && m["back"] == "master" {
				return nil
			}
		}
		sleep(ctx, 50*time.Millisecond)
	}
	s.violate(invOperations, 0, name+" not master of both instances 10s after the move")
	return fmt.Errorf("%s not master", name)
}
