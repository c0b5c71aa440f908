// Package ipvstest is an in-memory ipvs.Kernel for tests, answering like
// the kernel: the contract test of package ipvs runs the same table of
// operations against it and against a real kernel in the VM lab.
package ipvstest

import (
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/ipvs"
)

// Kernel is an in-memory IPVS that answers like the kernel's netlink
// interface (net/netfilter/ipvs/ip_vs_ctl.c): EEXIST on duplicate entries,
// ESRCH when the service of a command is missing, ENOENT for a missing
// destination or an unknown scheduler, ERANGE for bad weights or
// thresholds, EINVAL for a bad inet6 netmask, ENODEV for a sync daemon
// without an interface, EINVAL for families mixed with a sync daemon.
// Deleting a service deletes its destinations.
// Every write is recorded, and faults can be injected. It is safe for
// concurrent use.
type Kernel struct {
	mu       sync.Mutex
	svcs     map[ipvs.ServiceKey]*service
	writes   []ipvs.Op
	fault    func(ipvs.Op) error
	known    map[string]bool // loadable schedulers
	syncd    map[ipvs.SyncState]ipvs.SyncDaemon
	timeouts ipvs.Timeouts
}

type service struct {
	svc   ipvs.ServiceInfo
	dests []ipvs.DestInfo // insertion order, like the kernel's list
}

// Read operations, as the fault hook sees them (they are not ipvs.Op
// writes, so ipvs has no kinds for them).
const (
	OpGetTimeouts    ipvs.OpKind = "get_timeouts"
	OpGetSyncDaemons ipvs.OpKind = "get_sync_daemons"
)

// DefaultTimeouts are the kernel's connection timeouts before anyone sets
// them (ip_vs_proto_tcp.c, ip_vs_proto_udp.c).
var DefaultTimeouts = ipvs.Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}

// New returns an empty table that knows every stock scheduler and has the
// kernel's default timeouts.
func New() *Kernel {
	k := &Kernel{svcs: map[ipvs.ServiceKey]*service{}, known: map[string]bool{},
		syncd: map[ipvs.SyncState]ipvs.SyncDaemon{}, timeouts: DefaultTimeouts}
	for _, s := range ipvs.Schedulers {
		k.known[s] = true
	}
	return k
}

// SetFault installs f, called before every operation (reads included, with
// Kind ipvs.OpGetServices, ipvs.OpGetDests, OpGetTimeouts,
// OpGetSyncDaemons); a non-nil result is returned instead of performing
// the operation. A faulted write is still recorded in Writes, as the
// netlink message was sent.
func (k *Kernel) SetFault(f func(ipvs.Op) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fault = f
}

// Writes returns every write attempted so far, in order.
func (k *Kernel) Writes() []ipvs.Op {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.writes)
}

// ResetWrites forgets the recorded writes.
func (k *Kernel) ResetWrites() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes = nil
}

// SetConns sets the connection counters of a destination, as traffic would.
func (k *Kernel) SetConns(svc ipvs.ServiceKey, addr netip.AddrPort, active, inactive uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.svcs[svc]; s != nil {
		for i := range s.dests {
			if s.dests[i].Addr == addr {
				s.dests[i].ActiveConns, s.dests[i].InactiveConns = active, inactive
				s.dests[i].Stats.Conns = uint64(active + inactive)
			}
		}
	}
}

// SetServiceStats sets the counters of a service, as traffic would.
func (k *Kernel) SetServiceStats(svc ipvs.ServiceKey, st ipvs.Stats) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.svcs[svc]; s != nil {
		s.svc.Stats = st
	}
}

// SetDestStats sets the counters of a destination, as traffic would.
func (k *Kernel) SetDestStats(svc ipvs.ServiceKey, addr netip.AddrPort, st ipvs.Stats) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.svcs[svc]; s != nil {
		for i := range s.dests {
			if s.dests[i].Addr == addr {
				s.dests[i].Stats = st
			}
		}
	}
}

func (k *Kernel) check(op ipvs.Op) error {
	if k.fault != nil {
		return k.fault(op)
	}
	return nil
}

func (k *Kernel) write(op ipvs.Op) error {
	k.writes = append(k.writes, op)
	return k.check(op)
}

// GetServices implements ipvs.Kernel.
func (k *Kernel) GetServices() ([]ipvs.ServiceInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(ipvs.Op{Kind: ipvs.OpGetServices}); err != nil {
		return nil, err
	}
	out := make([]ipvs.ServiceInfo, 0, len(k.svcs))
	for _, s := range k.svcs {
		out = append(out, s.svc)
	}
	slices.SortFunc(out, func(a, b ipvs.ServiceInfo) int {
		if a.Key.Less(b.Key) {
			return -1
		}
		return 1
	})
	return out, nil
}

// GetDestinations implements ipvs.Kernel.
func (k *Kernel) GetDestinations(key ipvs.ServiceKey) ([]ipvs.DestInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(ipvs.Op{Kind: ipvs.OpGetDests, Service: ipvs.Service{Key: key}}); err != nil {
		return nil, err
	}
	s := k.svcs[key]
	if s == nil {
		// The kernel's dump of a missing service is empty, not an error.
		return nil, nil
	}
	return slices.Clone(s.dests), nil
}

func (k *Kernel) validService(s ipvs.Service) error {
	key := s.Key
	if key.Fwmark == 0 && (!key.Addr.Addr().IsValid() || key.Protocol == 0) {
		return syscall.EINVAL
	}
	if !k.known[s.Scheduler] {
		return syscall.ENOENT // "Scheduler module ip_vs_%s not found"
	}
	if key.IsV6() && (s.NetmaskBits < 1 || s.NetmaskBits > 128) {
		return syscall.EINVAL
	}
	return nil
}

// NewService implements ipvs.Kernel.
func (k *Kernel) NewService(s ipvs.Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpNewService, Service: s}); err != nil {
		return err
	}
	if k.svcs[s.Key] != nil {
		return syscall.EEXIST
	}
	if err := k.validService(s); err != nil {
		return err
	}
	k.svcs[s.Key] = &service{svc: ipvs.ServiceInfo{Service: s}}
	return nil
}

// UpdateService implements ipvs.Kernel.
func (k *Kernel) UpdateService(s ipvs.Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpUpdService, Service: s}); err != nil {
		return err
	}
	cur := k.svcs[s.Key]
	if cur == nil {
		return syscall.ESRCH
	}
	if err := k.validService(s); err != nil {
		return err
	}
	cur.svc.Service = s
	return nil
}

// DelService implements ipvs.Kernel.
func (k *Kernel) DelService(key ipvs.ServiceKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpDelService, Service: ipvs.Service{Key: key}}); err != nil {
		return err
	}
	if k.svcs[key] == nil {
		return syscall.ESRCH
	}
	delete(k.svcs, key)
	return nil
}

// mixed reports whether d is not in svc's address family.
func mixed(svc ipvs.ServiceKey, d ipvs.Destination) bool {
	return d.Addr.Addr().Is6() != svc.IsV6()
}

// validDest checks a destination as the kernel's genl command and
// ip_vs_add_dest/ip_vs_edit_dest do, in their order.
func (k *Kernel) validDest(svc ipvs.ServiceKey, d ipvs.Destination) error {
	if !d.Addr.Addr().IsValid() {
		return syscall.EINVAL
	}
	// Mixed families only work through a tunnel, and not while a sync
	// daemon runs (its protocol cannot carry them).
	if mixed(svc, d) && (d.Forwarding != ipvs.ForwardTunnel || len(k.syncd) > 0) {
		return syscall.EINVAL
	}
	if d.Weight < 0 || d.LowerThreshold > d.UpperThreshold {
		return syscall.ERANGE
	}
	if d.Forwarding == ipvs.ForwardTunnel && d.TunnelType == ipvs.TunnelGUE && d.TunnelPort == 0 {
		return syscall.EINVAL
	}
	return nil
}

// stored is d as the kernel keeps it: the tunnel settings of a
// destination that is not a tunnel are never sent (ipvs.Client encodes
// them for tunnels only), so they read back as zero.
func stored(d ipvs.Destination) ipvs.Destination {
	if d.Forwarding != ipvs.ForwardTunnel {
		d.TunnelType, d.TunnelPort, d.TunnelFlags = 0, 0, 0
	}
	return d
}

func (k *Kernel) destIndex(s *service, addr netip.AddrPort) int {
	return slices.IndexFunc(s.dests, func(d ipvs.DestInfo) bool { return d.Addr == addr })
}

// destService records a destination write and finds its service: ESRCH
// when there is none, which the kernel checks first.
func (k *Kernel) destService(kind ipvs.OpKind, key ipvs.ServiceKey, d ipvs.Destination) (*service, error) {
	if err := k.write(ipvs.Op{Kind: kind, Service: ipvs.Service{Key: key}, Dest: d}); err != nil {
		return nil, err
	}
	if s := k.svcs[key]; s != nil {
		return s, nil
	}
	return nil, syscall.ESRCH
}

// NewDestination implements ipvs.Kernel.
func (k *Kernel) NewDestination(key ipvs.ServiceKey, d ipvs.Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.destService(ipvs.OpNewDest, key, d)
	if err != nil {
		return err
	}
	if err := k.validDest(key, d); err != nil {
		return err
	}
	if k.destIndex(s, d.Addr) >= 0 {
		return syscall.EEXIST
	}
	s.dests = append(s.dests, ipvs.DestInfo{Destination: stored(d)})
	return nil
}

// UpdateDestination implements ipvs.Kernel.
func (k *Kernel) UpdateDestination(key ipvs.ServiceKey, d ipvs.Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.destService(ipvs.OpUpdDest, key, d)
	if err != nil {
		return err
	}
	if err := k.validDest(key, d); err != nil {
		return err
	}
	i := k.destIndex(s, d.Addr)
	if i < 0 {
		return syscall.ENOENT
	}
	s.dests[i].Destination = stored(d)
	return nil
}

// DelDestination implements ipvs.Kernel.
func (k *Kernel) DelDestination(key ipvs.ServiceKey, addr netip.AddrPort) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	s, err := k.destService(ipvs.OpDelDest, key, ipvs.Destination{Addr: addr})
	if err != nil {
		return err
	}
	i := k.destIndex(s, addr)
	if i < 0 {
		return syscall.ENOENT
	}
	s.dests = slices.Delete(s.dests, i, i+1)
	return nil
}

// Timeouts implements ipvs.Kernel.
func (k *Kernel) Timeouts() (ipvs.Timeouts, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(ipvs.Op{Kind: OpGetTimeouts}); err != nil {
		return ipvs.Timeouts{}, err
	}
	return k.timeouts, nil
}

// SetTimeouts implements ipvs.Kernel: zero fields are left alone.
func (k *Kernel) SetTimeouts(t ipvs.Timeouts) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpSetTimeouts, Timeouts: t}); err != nil {
		return err
	}
	for _, f := range []struct{ set, cur *time.Duration }{{&t.TCP, &k.timeouts.TCP}, {&t.TCPFin, &k.timeouts.TCPFin}, {&t.UDP, &k.timeouts.UDP}} {
		if *f.set != 0 {
			*f.cur = *f.set
		}
	}
	return nil
}

// SyncDaemons implements ipvs.Kernel: master first, as the kernel lists
// them.
func (k *Kernel) SyncDaemons() ([]ipvs.SyncDaemon, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(ipvs.Op{Kind: OpGetSyncDaemons}); err != nil {
		return nil, err
	}
	var out []ipvs.SyncDaemon
	for _, s := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		if d, ok := k.syncd[s]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// StartSyncDaemon implements ipvs.Kernel, checking in the kernel's order:
// EINVAL for a group that is not multicast or while a destination is in
// another family than its service, ENODEV without an interface, EEXIST
// when a daemon of that state runs, EINVAL for another state.
func (k *Kernel) StartSyncDaemon(d ipvs.SyncDaemon) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpStartSync, Sync: d}); err != nil {
		return err
	}
	if d.Group.IsValid() && !d.Group.IsMulticast() {
		return syscall.EINVAL
	}
	for key, s := range k.svcs {
		if slices.ContainsFunc(s.dests, func(x ipvs.DestInfo) bool { return mixed(key, x.Destination) }) {
			return syscall.EINVAL
		}
	}
	if d.Interface == "" {
		return syscall.ENODEV
	}
	if d.State != ipvs.SyncMaster && d.State != ipvs.SyncBackup {
		return syscall.EINVAL
	}
	if _, ok := k.syncd[d.State]; ok {
		return syscall.EEXIST
	}
	k.syncd[d.State] = d
	return nil
}

// StopSyncDaemon implements ipvs.Kernel: ESRCH when none of that state
// runs, EINVAL for another state.
func (k *Kernel) StopSyncDaemon(s ipvs.SyncState) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(ipvs.Op{Kind: ipvs.OpStopSync, Sync: ipvs.SyncDaemon{State: s}}); err != nil {
		return err
	}
	if s != ipvs.SyncMaster && s != ipvs.SyncBackup {
		return syscall.EINVAL
	}
	if _, ok := k.syncd[s]; !ok {
		return syscall.ESRCH
	}
	delete(k.syncd, s)
	return nil
}

var _ ipvs.Kernel = (*Kernel)(nil)
