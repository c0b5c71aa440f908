package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

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
		for _, g := range s.Groups {
			g.Close()
		}
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// NewInstance checks cfg and returns an instance ready to Run. It does no
// I/O. cfg is expected to have passed conf's validation; the checks here
// are the ones the protocol itself needs.
func NewInstance(cfg conf.VRRPInstance, opts Options) (*Instance, error) {
	in := &Instance{cfg: cfg, opts: opts, log: opts.Logger, inbox: fifo.New[Event](), vs: newVSInputs(), stopped: make(chan struct{}), ping: make(chan chan struct{})}
	if in.log == nil {
		in.log = slog.Default()
	}
	if in.host = opts.host; in.host == nil {
		in.host = openHost
	}
	in.log = in.log.With("vrrp_instance", cfg.Name)
	where := fmt.Sprintf("vrrp instance %q", cfg.Name)
	if cfg.Interface == "" {
		return nil, fmt.Errorf("%s: no interface", where)
	}
	if cfg.VRID < 1 || cfg.VRID > 255 {
		return nil, fmt.Errorf("%s: vrid %d, want 1..255", where, cfg.VRID)
	}
	if len(cfg.VirtualAddresses) == 0 {
		return nil, fmt.Errorf("%s: no virtual_addresses", where)
	}
	if cfg.UseVMAC && (cfg.VMACInterface == "" || cfg.VMACInterface == cfg.Interface) {
		return nil, fmt.Errorf("%s: use_vmac needs a vmac_interface other than %q", where, cfg.Interface)
	}
	for i, p := range cfg.VirtualAddresses {
		f := Family(p.Addr())
		if i == 0 {
			in.family = f
		} else if f != in.family {
			return nil, fmt.Errorf("%s: virtual_addresses[%d] %v: all addresses of an instance must be of one family", where, i, p)
		}
		in.vips = append(in.vips, p.Addr().Unmap())
	}
	for _, p := range cfg.ExcludedAddresses {
		in.excluded = append(in.excluded, p.Addr().Unmap())
	}
	if cfg.Version == 2 && in.family == 6 {
		return nil, fmt.Errorf("%s: version 2 is IPv4 only (RFC 3768); use version 3 for IPv6", where)
	}
	e := Expect{Version: cfg.Version, Addrs: in.vips, Interval: cfg.AdvertInterval.D()}
	for i, p := range cfg.UnicastPeers {
		if p.Is4() != (in.family == 4) {
			return nil, fmt.Errorf("%s: unicast_peers[%d] %v is not of the virtual addresses' family", where, i, p)
		}
		e.Peers = append(e.Peers, p.Unmap())
	}
	if cfg.Auth != nil && cfg.Version == 2 {
		switch cfg.Auth.Type {
		case "", "none":
		case "pass":
			if len(cfg.Auth.Password) > 8 {
				return nil, fmt.Errorf("%s: auth password longer than 8 bytes", where)
			}
			e.AuthType, e.AuthData = AuthPass, Password(cfg.Auth.Password)
		default:
			return nil, fmt.Errorf("%s: auth type %q, want none or pass", where, cfg.Auth.Type)
		}
	}
	in.expect = e
	in.addrs.Store(&e)
	in.reconf = make(chan struct{}, 1)
	// Check the rest (version, priority, interval) by building a machine
	// with a placeholder address and a trial advert.
	if _, err := NewMachine(in.machineConfig(netip.IPv4Unspecified())); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	trial := in.advert(0)
	src, dst := netip.MustParseAddr("192.0.2.1"), GroupV4
	if in.family == 6 {
		src, dst = netip.MustParseAddr("fe80::1"), GroupV6
	}
	if _, err := trial.Marshal(src, dst); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	in.status = Status{Name: cfg.Name, BasePriority: cfg.Priority, Priority: uint8(min(max(cfg.Priority, 0), 255)), Ignored: map[string]uint64{}}
	return in, nil
}
