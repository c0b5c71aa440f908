package vrrp

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/haldir-lb/haldir/conf"
)

// Change is what a reload does to one instance.
type Change int

// The changes, from least to most disruptive.
const (
	// Keep: the instance's configuration is unchanged; it runs on untouched.
	Keep Change = iota
	// Update: only priority, preempt, preempt_delay or virtual_addresses
	// (within one family) changed; the running instance takes them in
	// place (Instance.Reconfigure), without a transition. A new priority
	// takes effect in the next advert; a master puts new addresses up and
	// announces them, and takes removed ones down.
	Update
	// Restart: something a running instance cannot change in place
	// changed; it stops (a master hands over with priority 0) and a new
	// one starts.
	Restart
	// Add: a new instance.
	Add
	// Remove: the instance is gone from the configuration; it stops.
	Remove
)

var changeNames = [...]string{Keep: "keep", Update: "update", Restart: "restart", Add: "add", Remove: "remove"}

func (c Change) String() string {
	if c >= 0 && int(c) < len(changeNames) {
		return changeNames[c]
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

// Planned is one instance's part of a reload.
type Planned struct {
	Name   string
	Change Change
	Why    string // what changed, for the log; empty for Keep
}

// PlanReload compares the VRRP instances and sync groups of two valid
// configurations. A sync group is one unit: its members share one
// SyncGroup, so when one of them must restart, or the group itself
// changed, all of them restart. The plan lists old instances in their old
// order, then added ones in their new order.
func PlanReload(old, cfg *conf.Spec) []Planned {
	oldIn, newIn := byName(old.VRRP), byName(cfg.VRRP)
	oldGroup, newGroup := groupOf(old.SyncGroups), groupOf(cfg.SyncGroups)
	plan := map[string]*Planned{}
	var order []string
	for _, ic := range old.VRRP {
		order = append(order, ic.Name)
		nc, ok := newIn[ic.Name]
		switch {
		case !ok:
			plan[ic.Name] = &Planned{ic.Name, Remove, "no longer configured"}
		case !reflect.DeepEqual(oldGroup[ic.Name], newGroup[ic.Name]):
			plan[ic.Name] = &Planned{ic.Name, Restart, "its vrrp_sync_group changed"}
		default:
			plan[ic.Name] = planInstance(ic, nc)
		}
	}
	for _, ic := range cfg.VRRP {
		if _, ok := oldIn[ic.Name]; !ok {
			order = append(order, ic.Name)
			plan[ic.Name] = &Planned{ic.Name, Add, "new instance"}
		}
	}
	// A group restarts as a whole when any member restarts, comes or goes;
	// the group's own change is already a restart of each member.
	for _, groups := range []map[string]*conf.SyncGroupSpec{oldGroup, newGroup} {
		for name, g := range groups {
			p := plan[name]
			if p.Change < Restart {
				continue
			}
			for _, m := range g.Instances {
				if q := plan[m]; q != nil && q.Change < Restart {
					q.Change, q.Why = Restart, fmt.Sprintf("sync group %q member %q: %s", g.Name, name, p.Change)
				}
			}
		}
	}
	out := make([]Planned, 0, len(order))
	for _, name := range order {
		out = append(out, *plan[name])
	}
	return out
}

func planInstance(old, cfg conf.VRRPInstanceSpec) *Planned {
	if reflect.DeepEqual(old, cfg) {
		return &Planned{Name: cfg.Name, Change: Keep}
	}
	if why := restartNeeded(old, cfg); why != "" {
		return &Planned{cfg.Name, Restart, why}
	}
	return &Planned{cfg.Name, Update, "changed: " + strings.Join(differing(old, cfg), ", ")}
}

// restartNeeded says why old cannot become cfg in place, or "" when it
// can: only priority, preempt, preempt_delay and virtual_addresses change
// in place; a priority never to or from the address owner's 255 (an owner
// takes over at once; that is a restart's startup), addresses never to
// another family (the sockets are per family).
func restartNeeded(old, cfg conf.VRRPInstanceSpec) string {
	if old.Priority != cfg.Priority && (old.Priority == OwnerPriority || cfg.Priority == OwnerPriority) {
		return "priority changed to or from 255 (address owner)"
	}
	if old.Family != cfg.Family {
		return "virtual_addresses changed address family"
	}
	soft := old
	soft.Priority, soft.Preempt, soft.PreemptDelay = cfg.Priority, cfg.Preempt, cfg.PreemptDelay
	soft.VirtualAddresses, soft.ExcludedAddresses = cfg.VirtualAddresses, cfg.ExcludedAddresses
	if d := differing(soft, cfg); len(d) > 0 {
		return "changed: " + strings.Join(d, ", ")
	}
	return ""
}

// differing names the settings whose values differ between a and b, in
// the file's spelling (AdvertInterval: advert_interval; a field's `key`
// tag where the spelling is not its name's).
func differing(a, b conf.VRRPInstanceSpec) []string {
	return differingFields(reflect.ValueOf(a), reflect.ValueOf(b), nil)
}

func differingFields(va, vb reflect.Value, out []string) []string {
	for i := range va.NumField() {
		if reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		f := va.Type().Field(i)
		switch key := f.Tag.Get("key"); key {
		case ",inline":
			out = differingFields(va.Field(i), vb.Field(i), out)
		case "":
			out = append(out, snake(f.Name))
		default:
			out = append(out, key)
		}
	}
	return out
}

// snake spells a Go field name as a TOML key: AdvertInterval is
// advert_interval, VRID vrid, UseVMAC use_vmac.
func snake(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		upper := unicode.IsUpper(r)
		// A word starts at an upper-case letter after a lower-case one, or
		// before one in an acronym (VMACInterface: vmac_interface).
		if upper && i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func byName(ics []conf.VRRPInstanceSpec) map[string]conf.VRRPInstanceSpec {
	m := make(map[string]conf.VRRPInstanceSpec, len(ics))
	for _, ic := range ics {
		m[ic.Name] = ic
	}
	return m
}

// groupOf maps each member instance's name to its sync group.
func groupOf(gs []conf.SyncGroupSpec) map[string]*conf.SyncGroupSpec {
	m := map[string]*conf.SyncGroupSpec{}
	for i := range gs {
		for _, name := range gs[i].Instances {
			m[name] = &gs[i]
		}
	}
	return m
}

// Reconfigure takes a reload's new settings into the running instance when
// PlanReload says Update: priority, preempt, preempt_delay and the virtual
// addresses. It never blocks; the instance's goroutine applies them (the
// latest call wins, also before Run). Anything else is refused with what
// changed: that needs a new Instance.
func (in *Instance) Reconfigure(cfg conf.VRRPInstanceSpec) error {
	if cfg.Name != in.cfg.Name {
		return fmt.Errorf("vrrp instance %q: cannot take the configuration of %q", in.cfg.Name, cfg.Name)
	}
	if why := restartNeeded(in.cfg, cfg); why != "" {
		return fmt.Errorf("vrrp instance %q: needs a restart: %s", in.cfg.Name, why)
	}
	in.mu.Lock()
	in.status.BasePriority = int(cfg.Priority)
	in.status.Preempt = cfg.Preempt
	in.mu.Unlock()
	in.pendingMu.Lock()
	in.pending = &cfg
	in.pendingMu.Unlock()
	select {
	case in.reconf <- struct{}{}:
	default: // a kick is pending; it will find the latest configuration
	}
	return nil
}

// reconfigure applies a Reconfigure on the instance's goroutine.
func (d *driver) reconfigure(cfg conf.VRRPInstanceSpec) {
	in := d.in
	var vips, excluded []netip.Addr
	for _, p := range cfg.VirtualAddresses {
		vips = append(vips, p.Addr())
	}
	for _, p := range cfg.ExcludedAddresses {
		excluded = append(excluded, p.Addr())
	}
	prefixes := managed(cfg)
	if !slices.Equal(prefixes, d.rt.vips.managed()) {
		var gone []netip.Prefix
		for _, p := range d.rt.vips.managed() {
			if !slices.Contains(prefixes, p) {
				gone = append(gone, p)
			}
		}
		// The announcer's goroutine reads its list: stop it first.
		d.stopAnnounce()
		in.vips, in.excluded = vips, excluded
		d.rt.vips.setManaged(prefixes)
		if err := in.do(func() error { return d.rt.announce.setVIPs(d.rt.vips.here(slices.Concat(vips, excluded))) }); err != nil {
			in.log.Error("announcing the virtual addresses", "err", err)
		}
		e := *in.addrs.Load()
		e.Addrs = vips
		in.addrs.Store(&e)
		if d.m.State() == StateMaster {
			// New addresses up before old ones go, then announce them
			// all (as at takeover) so that neighbours learn the new ones.
			if err := d.rt.vips.add(); err != nil {
				in.log.Error("adding virtual addresses", "err", err)
			}
			if err := d.rt.vips.del(gone); err != nil {
				in.log.Error("removing virtual addresses", "err", err)
			}
			d.do(time.Now(), ActAnnounce{})
		}
		in.log.Info("virtual addresses changed in place", "addresses", fmt.Sprint(prefixes), "removed", fmt.Sprint(gone), "state", d.m.State().String())
	}
	old := d.m.Priority()
	d.handle(EvReconfigure{Priority: int(cfg.Priority), Preempt: cfg.Preempt, PreemptDelay: cfg.PreemptDelay})
	d.priorityChanged(old, []priorityCause{{label: "reload", text: fmt.Sprintf("reload: priority %d", cfg.Priority)}})
}
