package vrrp

import (
	"log/slog"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/fifo"
)

// Set is every VRRP instance and sync group of one configuration.
type Set struct {
	Instances []*Instance
	Groups    []*SyncGroup
}

// Instance returns the instance called name, or nil.
func (s *Set) Instance(name string) *Instance {
	for _, in := range s.Instances {
		if in.Name() == name {
			return in
		}
	}
	return nil
}

// NewSet builds the instances and sync groups of spec, which conf
// validated: instance names and sync-group members are unique, and no two
// instances share a vrid on one interface and family. opts applies to
// every instance; its NotifyTimeout defaults to global.notify_timeout.
func NewSet(spec *conf.Spec, opts Options) *Set {
	if opts.NotifyTimeout == 0 {
		opts.NotifyTimeout = spec.Global.NotifyTimeout
	}
	if opts.links == nil {
		opts.links = newLinkSockets(opts.Logger)
	}
	if opts.timers == nil {
		opts.timers = newTimerSet()
	}
	s := &Set{}
	for _, ic := range spec.VRRP {
		s.Instances = append(s.Instances, NewInstance(ic, opts))
	}
	for _, gc := range spec.SyncGroups {
		var members []*Instance
		for _, name := range gc.Instances {
			members = append(members, s.Instance(name))
		}
		s.Groups = append(s.Groups, NewSyncGroup(gc, members))
	}
	return s
}

// NewInstance returns an instance of spec ready to Run. It does no I/O and
// checks nothing: spec is conf.Compile's, of a validated file.
func NewInstance(spec conf.VRRPInstanceSpec, opts Options) *Instance {
	if opts.links == nil {
		// Its own, so that an instance alone reads its socket the way a
		// Set's do (timerFired's readWaiting among it).
		opts.links = newLinkSockets(opts.Logger)
	}
	in := &Instance{cfg: spec, opts: opts, log: opts.Logger, inbox: fifo.New[Event](), vs: newVSInputs(), stopped: make(chan struct{}), ping: make(chan chan struct{})}
	if in.log == nil {
		in.log = slog.Default()
	}
	if in.host = opts.host; in.host == nil {
		in.host = openHost
	}
	in.log = in.log.With("vrrp_instance", spec.Name)
	in.family = 4
	if spec.Family == conf.FamilyInet6 {
		in.family = 6
	}
	for _, p := range spec.VirtualAddresses {
		in.vips = append(in.vips, p.Addr())
	}
	for _, p := range spec.ExcludedAddresses {
		in.excluded = append(in.excluded, p.Addr())
	}
	e := Expect{Version: int(spec.Version), Addrs: in.vips, Interval: spec.AdvertInterval, Peers: spec.UnicastPeers}
	if spec.Auth.Type == conf.AuthPass {
		e.AuthType, e.AuthData = AuthPass, Password(spec.Auth.Password)
	}
	in.expect = e
	in.addrs.Store(&e)
	in.reconf = make(chan struct{}, 1)
	in.status = Status{Name: spec.Name, BasePriority: int(spec.Priority), Priority: spec.Priority, Ignored: map[string]uint64{}, Preempt: spec.Preempt}
	return in
}
