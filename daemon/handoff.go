package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/vrrp"
)

// A planned handoff (haldir handoff), make-before-break: this director's
// instances yield (vrrp.EvYield) to the target's advert source, a cluster
// message asks the target director to take over (vrrp.EvTakeOver), the
// target becomes master and announces the addresses while this one still
// holds them, and this one releases when it hears the target's first
// advert. Without [cluster] the best VRRP-only method is a priority-0
// advert: the backup takes over after its Skew_Time.

// Bounds of a handoff's timeout: the target must take over within it.
const (
	defaultHandoffTimeout = 5 * time.Second
	maxHandoffTimeout     = time.Minute
)

// handoffPlan is one instance (with its sync group) being handed over.
type handoffPlan struct {
	result control.HandoffResult
	names  []string // the instance and the rest of its sync group
	start  time.Time
	done   bool
}

// Handoff hands mastership over (haldir handoff) and waits for the
// outcome: it starts on the loop, and waits off it, reading the VRRP status.
func (d *Daemon) Handoff(req control.HandoffRequest) (control.HandoffReply, error) {
	timeout := defaultHandoffTimeout
	if req.Timeout != "" {
		t, err := time.ParseDuration(req.Timeout)
		if err != nil || t < 100*time.Millisecond || t > maxHandoffTimeout {
			return control.HandoffReply{}, &control.RequestError{Msg: fmt.Sprintf("timeout %q: want a duration from 100ms to %v", req.Timeout, maxHandoffTimeout)}
		}
		timeout = t
	}
	var plans []*handoffPlan
	var err error
	if !d.call(func() { plans, err = d.startHandoff(req, timeout) }) {
		return control.HandoffReply{}, errStopping
	}
	if err != nil {
		return control.HandoffReply{}, err
	}
	// A little past the target's window: its advert must still arrive.
	deadline := time.Now().Add(timeout + 500*time.Millisecond)
	for {
		states := map[string]vrrp.Status{}
		for _, st := range d.vrrp.Status() { // the Runner is safe for concurrent use: no loop round trip
			states[st.Name] = st
		}
		pending := false
		for _, p := range plans {
			if p.done {
				continue
			}
			moved := true
			for _, n := range p.names {
				moved = moved && states[n].State == vrrp.StateBackup
			}
			if moved {
				p.done, p.result.OK = true, true
				p.result.Millis = float64(time.Since(p.start).Microseconds()) / 1000
				continue
			}
			pending = true
		}
		if !pending || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var reply control.HandoffReply
	for _, p := range plans {
		if !p.done {
			p.result.Reason = fmt.Sprintf("%s did not take over within %v (its log says why); this director stays master", orTarget(p.result.To), timeout)
			if p.result.Method != methodMakeBeforeBreak {
				p.result.Reason = fmt.Sprintf("still master %v after the priority-0 advert: no backup took over", timeout)
			}
		}
		reply.Results = append(reply.Results, p.result)
	}
	return reply, nil
}

func orTarget(to string) string {
	if to == "" {
		return "the backup"
	}
	return to
}

const (
	methodMakeBeforeBreak = "make-before-break"
	methodPriority0       = "priority 0"
)

// startHandoff starts every handoff of req on the loop.
func (d *Daemon) startHandoff(req control.HandoffRequest, timeout time.Duration) ([]*handoffPlan, error) {
	names := req.Instances
	if len(names) == 0 {
		for _, n := range d.vrrp.Names() {
			if sc, ok := d.vrrpStates[n]; ok && sc.To == vrrp.StateMaster {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return nil, &control.RequestError{Msg: "this director masters no VRRP instance: nothing to hand over"}
		}
	}
	var view *cluster.View
	if d.cluster != nil {
		v := d.cluster.View()
		view = &v
	}
	reason := req.Reason
	if reason == "" {
		reason = "haldir handoff"
	}
	covered := map[string]bool{}
	var plans []*handoffPlan
	// refused are the instances not handed over, each with why.
	type refusal struct{ instance, why string }
	var refused []refusal
	for _, name := range names {
		if covered[name] {
			continue
		}
		if _, ok := d.vrrp.InstanceConfig(name); !ok {
			refused = append(refused, refusal{name, fmt.Sprintf("no VRRP instance %q", name)})
			continue
		}
		if sc, ok := d.vrrpStates[name]; !ok || sc.To != vrrp.StateMaster {
			state := "not started"
			if ok {
				state = sc.To.String()
			}
			refused = append(refused, refusal{name, fmt.Sprintf("%s is %s here, not master: nothing to hand over", name, state)})
			continue
		}
		group := d.vrrp.Group(name)
		for _, n := range group {
			covered[n] = true
		}
		p := &handoffPlan{names: group, start: time.Now(), result: control.HandoffResult{Instance: name}}
		if len(group) > 1 {
			p.result.Group = slices.DeleteFunc(slices.Clone(group), func(n string) bool { return n == name })
		}
		if view == nil {
			p.result.Method = methodPriority0
			p.result.Reason = "no [cluster]: handed over the VRRP way; the backup takes over after its Skew_Time"
			for _, n := range group {
				d.vrrp.Resign(n, reason+" (priority 0, no [cluster])")
			}
			plans = append(plans, p)
			continue
		}
		p.result.Method = methodMakeBeforeBreak
		target, sources, why := handoffTarget(*view, d.vrrp, group, req.To)
		if target == "" {
			refused = append(refused, refusal{name, fmt.Sprintf("%s: %s", name, why)})
			continue
		}
		p.result.To = target
		if err := d.askTakeOver(name, group, target, sources, timeout, reason); err != nil {
			refused = append(refused, refusal{name, fmt.Sprintf("%s: %v", name, err)})
			continue
		}
		plans = append(plans, p)
	}
	if len(refused) > 0 && len(plans) == 0 {
		var whys []string
		for _, r := range refused {
			whys = append(whys, r.why)
		}
		return nil, &control.RequestError{Msg: strings.Join(whys, "; ")}
	}
	for _, r := range refused {
		plans = append(plans, &handoffPlan{done: true, result: control.HandoffResult{Instance: r.instance, Reason: r.why}})
	}
	return plans, nil
}

// handoffTarget picks the director to hand the instances of group to: to
// when given, else the live director backing them all up at the highest
// priority; sources are its advert sources per instance. Without one,
// why says what is missing.
func handoffTarget(v cluster.View, r *vrrp.Runner, group []string, to string) (target string, sources map[string]netip.Addr, why string) {
	best := -1
	for _, m := range v.Members {
		if m.Self || (to != "" && m.Name != to) {
			continue
		}
		problem := ""
		switch {
		case m.Status != "alive":
			problem = "is " + m.Status
		case m.Maintenance:
			problem = "is in maintenance"
		}
		src := map[string]netip.Addr{}
		prio := 0
		for _, n := range group {
			ic, _ := r.InstanceConfig(n)
			fam := ic.Family.IPVersion()
			i := slices.IndexFunc(m.VRRP, func(s cluster.InstanceState) bool { return s.VRID == int(ic.VRID) && s.Family == fam })
			switch {
			case problem != "":
			case i < 0:
				problem = "runs no instance of " + n + "'s virtual router"
			case m.VRRP[i].State != vrrp.StateBackup.String():
				problem = fmt.Sprintf("is %s of %s, not backup", m.VRRP[i].State, n)
			case !m.VRRP[i].Source.IsValid():
				problem = "does not gossip its advert source (an older haldir?)"
			default:
				src[n] = m.VRRP[i].Source
				prio = max(prio, m.VRRP[i].Priority)
			}
		}
		if problem != "" {
			if to != "" {
				return "", nil, fmt.Sprintf("director %s %s", to, problem)
			}
			continue
		}
		if prio > best {
			best, target, sources = prio, m.Name, src
		}
	}
	switch {
	case target != "":
		return target, sources, ""
	case to != "":
		return "", nil, fmt.Sprintf("no director %s in the cluster view", to)
	}
	return "", nil, "no live director backs it up in the cluster view"
}

// takeOverRequested is another director's planned handoff to this one,
// on the loop: an instance that is backup here takes over (with its sync
// group); anything else is refused in the log, and the asking director's
// yield lapses, so it stays master.
func (d *Daemon) takeOverRequested(req cluster.TakeOverRequest) {
	log := d.log.With("instance", req.Instance, "from", req.From)
	sc, ok := d.vrrpStates[req.Instance]
	switch {
	case d.op.Maintenance != nil:
		log.Warn("planned handoff refused: this director is in maintenance")
	case !ok:
		log.Warn("planned handoff refused: no such VRRP instance runs here")
	case sc.To != vrrp.StateBackup:
		log.Warn("planned handoff refused: the instance is not backup here", "state", sc.To.String())
	default:
		names := d.vrrp.TakeOver(req.Instance, time.Now().Add(req.Window), fmt.Sprintf("from %s: %s", req.From, req.Reason))
		log.Info("planned handoff: taking over", "instances", strings.Join(names, ","), "window", req.Window.String())
	}
}

// askTakeOver starts a planned handoff of name's sync group (group) to
// target: each member yields to the target's advert source until timeout,
// and the target is asked, through the cluster, to take over. Should the
// request not go out, the yields lapse by themselves and nothing changes.
func (d *Daemon) askTakeOver(name string, group []string, target string, sources map[string]netip.Addr, timeout time.Duration, reason string) error {
	until := time.Now().Add(timeout)
	for _, n := range group {
		d.vrrp.Instance(n).Yield(sources[n], until)
	}
	if err := d.cluster.SendTakeOver(target, cluster.TakeOverRequest{From: d.cfg.Cluster.Name, Instance: name, Window: timeout, Reason: reason}); err != nil {
		return err
	}
	d.log.Info("planned handoff: asked the target to take over", "instance", name, "to", target, "timeout", timeout.String(), "reason", reason)
	return nil
}

// startPlannedHandoff starts a planned handoff of name (and its sync
// group) to the best live backup, without waiting (maintenance on). Should
// the target not take over in time, the instance resigns the VRRP way. It
// reports the target, or false when there is none.
func (d *Daemon) startPlannedHandoff(view cluster.View, name, why string) (string, bool) {
	group := d.vrrp.Group(name)
	target, sources, _ := handoffTarget(view, d.vrrp, group, "")
	if target == "" {
		return "", false
	}
	if err := d.askTakeOver(name, group, target, sources, defaultHandoffTimeout, why); err != nil {
		d.log.Warn("planned handoff not started", "instance", name, "to", target, "error", err)
		return "", false
	}
	time.AfterFunc(defaultHandoffTimeout+500*time.Millisecond, func() {
		d.call(func() {
			if sc, ok := d.vrrpStates[name]; ok && sc.To == vrrp.StateMaster && d.op.Maintenance != nil {
				d.log.Warn("planned handoff: the target did not take over; handing over the VRRP way", "instance", name, "to", target)
				d.vrrp.Resign(name, why+": handing over (priority 0; "+target+" did not take over)")
			}
		})
	})
	return target, true
}
