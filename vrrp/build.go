package vrrp

import (
	"errors"
	"fmt"

	"github.com/haldir-lb/haldir/conf"
)

// Set is every VRRP instance and sync group of one configuration.
type Set struct {
	Instances []*Instance
	Groups    []*SyncGroup
}

// Close stops the sync groups' notifiers; call it after every instance's
// Run has returned.
func (s *Set) Close() {
	for _, g := range s.Groups {
		g.Close()
	}
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

// SetVirtualServerUp passes a virtual server's quorum to every instance
// that tracks it (see Instance.SetVirtualServerUp).
func (s *Set) SetVirtualServerUp(name string, up bool) {
	for _, in := range s.Instances {
		in.SetVirtualServerUp(name, up)
	}
}

// NewSet builds the instances and sync groups of cfg. opts applies to every
// instance; its NotifyTimeout defaults to cfg.Global.NotifyTimeout.
func NewSet(cfg *conf.Config, opts Options) (*Set, error) {
	if opts.NotifyTimeout == 0 {
		opts.NotifyTimeout = cfg.Global.NotifyTimeout.D()
	}
	s := &Set{}
	var errs []error
	seen := map[string]bool{}
	for i, ic := range cfg.VRRP {
		if seen[ic.Name] {
			errs = append(errs, fmt.Errorf("vrrp[%d]: duplicate instance name %q", i, ic.Name))
			continue
		}
		seen[ic.Name] = true
		in, err := NewInstance(ic, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("vrrp[%d]: %w", i, err))
			continue
		}
		s.Instances = append(s.Instances, in)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Every instance has its own socket and sees its siblings' adverts;
	// those are not "unknown" VRIDs.
	for i, a := range s.Instances {
		others := map[uint8]bool{}
		for j, b := range s.Instances {
			if i == j || a.cfg.Interface != b.cfg.Interface || a.family != b.family {
				continue
			}
			if a.cfg.VRID == b.cfg.VRID {
				if i < j {
					errs = append(errs, fmt.Errorf("vrrp instances %q and %q: both use vrid %d on %s over IPv%d", a.cfg.Name, b.cfg.Name, a.cfg.VRID, a.cfg.Interface, a.family))
				}
				continue
			}
			others[uint8(b.cfg.VRID)] = true
		}
		a.siblings.Store(&others)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i, gc := range cfg.VRRPSyncGroups {
		var members []*Instance
		for j, name := range gc.Instances {
			in := s.Instance(name)
			if in == nil {
				errs = append(errs, fmt.Errorf("vrrp_sync_group[%d] %q: instances[%d]: no vrrp instance %q", i, gc.Name, j, name))
				continue
			}
			members = append(members, in)
		}
		if len(errs) > 0 {
			continue
		}
		g, err := NewSyncGroup(gc, members)
		if err != nil {
			errs = append(errs, fmt.Errorf("vrrp_sync_group[%d]: %w", i, err))
			continue
		}
		s.Groups = append(s.Groups, g)
	}
	if len(errs) > 0 {
		s.Close()
		return nil, errors.Join(errs...)
	}
	return s, nil
}
