package daemon

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/internal/statefile"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// The operator's run-time state: haldir drain/undrain (weight overrides
// the director keeps) and haldir maintenance (every VRRP instance at
// priority 1). It lives in global.state_dir/operator.json, written before
// it takes effect, so a restart or an upgrade finds it again; the loop
// owns it like the rest of the daemon's state.

// Daemon serves the operator endpoints of the control socket.
var _ control.Operator = (*Daemon)(nil)

const (
	operatorFile = "operator.json"
	// operatorVersion is the version of operator.json's contents; a file
	// of another version is not read (statefile.ErrVersion).
	operatorVersion = 1
)

// operatorState is operator.json.
type operatorState struct {
	Maintenance *control.Maintenance `json:"maintenance,omitempty"`
	Drains      []control.Drain      `json:"drains"`
}

func (s operatorState) clone() operatorState {
	out := operatorState{Drains: slices.Clone(s.Drains)}
	if s.Maintenance != nil {
		m := *s.Maintenance
		out.Maintenance = &m
	}
	return out
}

// loadOperator reads the operator's state at start, from the state_dir
// the daemon keeps until it stops. A file that cannot be read is logged as
// an error naming it and the daemon runs without it: a corrupt file must
// not keep a director from starting; it stays on disk until the next
// operator change replaces it.
func (d *Daemon) loadOperator(cfg *conf.Config) {
	d.stateDir = cfg.Global.StateDir
	var st operatorState
	path := d.operatorPath()
	found, err := statefile.Load(path, operatorVersion, &st)
	switch {
	case err != nil:
		d.log.Error("operator state NOT LOADED: running without its drains and maintenance until the next haldir drain or maintenance rewrites it",
			"file", path, "error", err)
		st = operatorState{}
	case found:
		d.log.Info("operator state loaded", "file", path, "drains", len(st.Drains), "maintenance", st.Maintenance != nil)
	}
	d.op = st
}

func (d *Daemon) operatorPath() string { return filepath.Join(d.stateDir, operatorFile) }

// saveOperator writes next; only then does the caller make it the state
// in force, so what runs is never ahead of what a restart would find.
func (d *Daemon) saveOperator(next operatorState) error {
	if next.Drains == nil {
		next.Drains = []control.Drain{}
	}
	return statefile.Save(d.operatorPath(), operatorVersion, next)
}

// applyDrains hands the drains to the director, resolved against cfg. A
// drain whose virtual server or real server cfg no longer has is dropped,
// logged and the file rewritten: an override lives as long as what it
// overrides (a real server added again later starts at its configured
// weight).
func (d *Daemon) applyDrains(cfg *conf.Config) {
	var ovs []director.Override
	var kept []control.Drain
	for _, dr := range d.op.Drains {
		key, name, ok := findReal(cfg, dr.VirtualServer, dr.Real)
		if !ok {
			d.log.Warn("drain dropped: the configuration no longer has this real server", "virtual_server", dr.VirtualServer,
				"real", dr.Real.String(), "weight", dr.Weight)
			continue
		}
		dr.RealName = name
		kept = append(kept, dr)
		ovs = append(ovs, director.Override{Service: key, Real: dr.Real, Weight: dr.Weight})
	}
	if len(kept) != len(d.op.Drains) {
		next := d.op.clone()
		next.Drains = kept
		if err := d.saveOperator(next); err != nil {
			d.log.Error("saving the operator state without the dropped drains", "error", err)
		}
	}
	// With the real servers' names as configured now.
	d.op.Drains = kept
	if d.dir != nil {
		d.dir.SetOverrides(ovs)
	}
}

// findReal finds the real server at addr of the virtual server called vs
// in cfg: its IPVS service and its configured name.
func findReal(cfg *conf.Config, vs string, addr netip.AddrPort) (ipvs.ServiceKey, string, bool) {
	for i := range cfg.VirtualServers {
		v := &cfg.VirtualServers[i]
		if v.Name != vs {
			continue
		}
		key, ok := control.VirtualServerKey(v)
		if rs := control.RealServerConf(v, addr); ok && rs != nil {
			return key, rs.Name, true
		}
	}
	return ipvs.ServiceKey{}, "", false
}

// matchReals lists the real servers a drain request names: real is
// ADDRESS:PORT or a configured real server name, in the virtual server
// called vs or, when vs is "", in every one.
func matchReals(cfg *conf.Config, real, vs string) ([]control.Drain, error) {
	if real == "" {
		return nil, &control.RequestError{Msg: "no real server given (ADDRESS:PORT or its name)"}
	}
	addr, addrErr := netip.ParseAddrPort(real)
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	var out []control.Drain
	foundVS := false
	for i := range cfg.VirtualServers {
		v := &cfg.VirtualServers[i]
		if vs != "" && v.Name != vs {
			continue
		}
		foundVS = true
		for _, rs := range v.RealServers {
			a := netip.AddrPortFrom(rs.Address, uint16(rs.Port))
			if addrErr == nil && a == addr || addrErr != nil && rs.Name == real {
				out = append(out, control.Drain{VirtualServer: v.Name, Real: a, RealName: rs.Name})
			}
		}
	}
	switch {
	case vs != "" && !foundVS:
		return nil, &control.RequestError{Msg: fmt.Sprintf("no virtual server named %q", vs)}
	case len(cfg.VirtualServers) == 0:
		return nil, &control.RequestError{Msg: "no virtual servers configured"}
	case len(out) > 0:
		return out, nil
	}
	where := "any virtual server"
	if vs != "" {
		where = fmt.Sprintf("virtual server %q", vs)
	}
	if addrErr != nil {
		return nil, &control.RequestError{Msg: fmt.Sprintf("%q is neither ADDRESS:PORT nor the name of a real server of %s", real, where)}
	}
	return nil, &control.RequestError{Msg: fmt.Sprintf("no real server %s in %s", addr, where)}
}

// Drain sets an operator weight override (haldir drain), on the loop.
func (d *Daemon) Drain(req control.DrainRequest) (reply control.DrainReply, err error) {
	if !d.call(func() { reply, err = d.drain(req) }) {
		return reply, errStopping
	}
	return reply, err
}

// Undrain drops operator weight overrides (haldir undrain), on the loop.
func (d *Daemon) Undrain(req control.DrainRequest) (reply control.DrainReply, err error) {
	if !d.call(func() { reply, err = d.undrain(req) }) {
		return reply, errStopping
	}
	return reply, err
}

// SetMaintenance turns maintenance on or off (haldir maintenance), on the
// loop.
func (d *Daemon) SetMaintenance(req control.MaintenanceRequest) (reply control.MaintenanceReply, err error) {
	if !d.call(func() { reply, err = d.maintenance(req) }) {
		return reply, errStopping
	}
	return reply, err
}

func (d *Daemon) drain(req control.DrainRequest) (control.DrainReply, error) {
	if req.Weight < 0 || req.Weight > ipvs.MaxWeight {
		return control.DrainReply{}, &control.RequestError{Msg: fmt.Sprintf("weight %d out of range 0..%d", req.Weight, ipvs.MaxWeight)}
	}
	targets, err := matchReals(d.cfg, req.Real, req.VirtualServer)
	if err != nil {
		return control.DrainReply{}, err
	}
	now := time.Now().UTC()
	next := d.op.clone()
	for i := range targets {
		t := &targets[i]
		t.Weight, t.Since = req.Weight, now
		j := slices.IndexFunc(next.Drains, func(x control.Drain) bool { return x.VirtualServer == t.VirtualServer && x.Real == t.Real })
		if j < 0 {
			next.Drains = append(next.Drains, *t)
			continue
		}
		if next.Drains[j].Weight == t.Weight {
			t.Since = next.Drains[j].Since // the same drain again
		}
		next.Drains[j] = *t
	}
	if err := d.saveOperator(next); err != nil {
		return control.DrainReply{}, fmt.Errorf("nothing changed: %w", err)
	}
	d.op = next
	for _, t := range targets {
		d.log.Info("real server weight set by operator", "virtual_server", t.VirtualServer, "real", t.Real.String(), "weight", t.Weight)
	}
	d.applyDrains(d.cfg)
	return control.DrainReply{Drains: targets}, nil
}

func (d *Daemon) undrain(req control.DrainRequest) (control.DrainReply, error) {
	if req.Real == "" {
		return control.DrainReply{}, &control.RequestError{Msg: "no real server given (ADDRESS:PORT or its name)"}
	}
	addr, addrErr := netip.ParseAddrPort(req.Real)
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	var gone []control.Drain
	next := d.op.clone()
	next.Drains = slices.DeleteFunc(next.Drains, func(x control.Drain) bool {
		match := (req.VirtualServer == "" || x.VirtualServer == req.VirtualServer) &&
			(addrErr == nil && x.Real == addr || addrErr != nil && x.RealName == req.Real)
		if match {
			gone = append(gone, x)
		}
		return match
	})
	if len(gone) == 0 {
		what := req.Real
		if req.VirtualServer != "" {
			what += " in virtual server " + req.VirtualServer
		}
		return control.DrainReply{}, &control.RequestError{Msg: what + " is not drained"}
	}
	if err := d.saveOperator(next); err != nil {
		return control.DrainReply{}, fmt.Errorf("nothing changed: %w", err)
	}
	d.op = next
	for _, t := range gone {
		d.log.Info("operator weight override removed", "virtual_server", t.VirtualServer, "real", t.Real.String())
	}
	d.applyDrains(d.cfg)
	return control.DrainReply{Drains: gone}, nil
}

func (d *Daemon) maintenance(req control.MaintenanceRequest) (control.MaintenanceReply, error) {
	next := d.op.clone()
	switch {
	case req.On && next.Maintenance != nil:
		next.Maintenance.Reason = req.Reason // still on since it was turned on
	case req.On:
		next.Maintenance = &control.Maintenance{Reason: req.Reason, Since: time.Now().UTC()}
	default:
		next.Maintenance = nil
	}
	if err := d.saveOperator(next); err != nil {
		return control.MaintenanceReply{}, fmt.Errorf("nothing changed: %w", err)
	}
	was := d.op.Maintenance != nil
	d.op = next
	reply := control.MaintenanceReply{Maintenance: next.Maintenance}
	// BGP first: the prefixes are withdrawn gracefully (the routers move
	// the traffic to the other directors) while VRRP hands over.
	d.decideBGP()
	d.vrrp.SetMaintenance(req.On, req.Reason)
	if req.On {
		reply.Notes = d.ownerNotes()
		d.log.Warn("maintenance on: every VRRP instance at priority 1", "reason", req.Reason, "was_on", was)
		var notes []string
		reply.HandedOver, notes = d.handOver("maintenance")
		reply.Notes = append(reply.Notes, notes...)
	} else {
		// A handoff's release held preemption back; with it released, a
		// higher priority takes mastership back by preemption, which
		// announces before the lower master lets go.
		d.vrrp.ReleaseHold()
		d.log.Warn("maintenance off: VRRP priorities back; preemption takes mastership back", "was_on", was)
	}
	d.tellCluster(nil)
	d.sendStatus()
	return reply, nil
}

// handOver makes every instance this director masters hand over, and
// returns their names. It is the one place maintenance hands over. With a
// cluster, by the planned make-before-break handoff to the best live
// backup (haldir handoff), falling back to the VRRP way (priority 0) for
// an instance the target has not taken over within its timeout; an
// instance no other live director backs up (in the view) is not handed
// over, and notes say so: at priority 1 it stays master only while
// nobody else can be. Without a cluster, the VRRP way (priority 0, then
// backup, as on a graceful stop).
func (d *Daemon) handOver(why string) (names, notes []string) {
	var view *cluster.View
	if d.cluster != nil {
		v := d.cluster.View()
		view = &v
	}
	for _, name := range d.vrrp.Names() {
		if sc, ok := d.vrrpStates[name]; !ok || sc.To != vrrp.StateMaster {
			continue
		}
		if ic, ok := d.vrrp.InstanceConfig(name); ok && view != nil && !backedUp(*view, ic) {
			notes = append(notes, name+": no other director backs it up in the cluster view: not handed over; it stays master at priority 1 until a backup takes over")
			continue
		}
		if view != nil {
			if to, ok := d.startPlannedHandoff(*view, name, why); ok {
				names = append(names, name)
				notes = append(notes, fmt.Sprintf("%s: handing over to %s, make-before-break", name, to))
				continue
			}
		}
		if d.vrrp.Resign(name, why+": handing over") {
			names = append(names, name)
		}
	}
	return names, notes
}

// backedUp says whether another live director of v is backup of ic's
// virtual router.
func backedUp(v cluster.View, ic conf.VRRPInstanceSpec) bool {
	return len(v.Backups(int(ic.VRID), ic.Family.IPVersion())) > 0
}

// ownerNotes names the instances maintenance does not lower: an address
// owner (priority 255) stays master.
func (d *Daemon) ownerNotes() []string {
	var out []string
	for _, name := range d.vrrp.Names() {
		if ic, ok := d.vrrp.InstanceConfig(name); ok && ic.Priority == vrrp.OwnerPriority {
			out = append(out, fmt.Sprintf("%s is the address owner (priority 255): maintenance does not lower it", name))
		}
	}
	return out
}

// startMaintenance gives VRRP the loaded maintenance before its instances
// start, so a director restarted in maintenance never takes mastership.
func (d *Daemon) startMaintenance() {
	if m := d.op.Maintenance; m != nil {
		d.log.Warn("in maintenance since "+m.Since.Format(time.RFC3339)+": every VRRP instance at priority 1", "reason", m.Reason)
		d.vrrp.SetMaintenance(true, m.Reason)
	}
}

// operatorStatus is the part of the status the operator set, copied on
// the loop.
func (d *Daemon) operatorStatus(st *control.Status) {
	if m := d.op.Maintenance; m != nil {
		c := *m
		st.Maintenance = &c
	}
	st.Drains = slices.Clone(d.op.Drains)
}

// maintenanceLine is the status line's part for maintenance.
func (d *Daemon) maintenanceLine() string {
	m := d.op.Maintenance
	if m == nil {
		return ""
	}
	if m.Reason == "" {
		return "MAINTENANCE"
	}
	return "MAINTENANCE (" + strings.TrimSpace(m.Reason) + ")"
}
