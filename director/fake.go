package director

import (
	"net/netip"
	"slices"
	"sync"
	"syscall"
)

// FakeKernel is an in-memory IPVS table that answers like the kernel's
// netlink interface (net/netfilter/ipvs/ip_vs_ctl.c): EEXIST on duplicate
// entries, ESRCH when the service of a command is missing, ENOENT for a
// missing destination or an unknown scheduler, ERANGE for bad weights or
// thresholds, EINVAL for a bad inet6 netmask. Deleting a service deletes its
// destinations. Every write is recorded, and faults can be injected.
// It is safe for concurrent use.
type FakeKernel struct {
	mu     sync.Mutex
	svcs   map[ServiceKey]*fakeSvc
	writes []Op
	fault  func(Op) error
	known  map[string]bool // loadable schedulers
	syncd  map[SyncState]SyncDaemon
}

type fakeSvc struct {
	svc   Service
	dests []Destination // insertion order, like the kernel's list
}

// NewFakeKernel returns an empty table that knows every stock scheduler.
func NewFakeKernel() *FakeKernel {
	k := &FakeKernel{svcs: map[ServiceKey]*fakeSvc{}, known: map[string]bool{}, syncd: map[SyncState]SyncDaemon{}}
	for _, s := range Schedulers {
		k.known[s] = true
	}
	return k
}

// SetFault installs f, called before every operation (reads included, with
// Kind OpGetServices / OpGetDests); a non-nil result is returned instead of
// performing the operation. A faulted write is still recorded in Writes,
// as the netlink message was sent.
func (k *FakeKernel) SetFault(f func(Op) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fault = f
}

// Writes returns every write attempted so far, in order.
func (k *FakeKernel) Writes() []Op {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.writes)
}

// ResetWrites forgets the recorded writes.
func (k *FakeKernel) ResetWrites() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.writes = nil
}

// SetConns sets the connection counters of a destination, as traffic would.
func (k *FakeKernel) SetConns(svc ServiceKey, addr netip.AddrPort, active, inactive uint32) {
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

func (k *FakeKernel) check(op Op) error {
	if k.fault != nil {
		return k.fault(op)
	}
	return nil
}

func (k *FakeKernel) write(op Op) error {
	k.writes = append(k.writes, op)
	return k.check(op)
}

// GetServices implements Kernel.
func (k *FakeKernel) GetServices() ([]Service, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(Op{Kind: OpGetServices}); err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(k.svcs))
	for _, s := range k.svcs {
		out = append(out, s.svc)
	}
	slices.SortFunc(out, func(a, b Service) int {
		if a.Key.Less(b.Key) {
			return -1
		}
		return 1
	})
	return out, nil
}

// GetDestinations implements Kernel.
func (k *FakeKernel) GetDestinations(key ServiceKey) ([]Destination, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(Op{Kind: OpGetDests, Service: Service{Key: key}}); err != nil {
		return nil, err
	}
	s := k.svcs[key]
	if s == nil {
		// The kernel's dump of a missing service is empty, not an error.
		return nil, nil
	}
	return slices.Clone(s.dests), nil
}

func (k *FakeKernel) validService(s Service) error {
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

// NewService implements Kernel.
func (k *FakeKernel) NewService(s Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpNewService, Service: s}); err != nil {
		return err
	}
	if k.svcs[s.Key] != nil {
		return syscall.EEXIST
	}
	if err := k.validService(s); err != nil {
		return err
	}
	s.Stats = Stats{}
	k.svcs[s.Key] = &fakeSvc{svc: s}
	return nil
}

// UpdateService implements Kernel.
func (k *FakeKernel) UpdateService(s Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpUpdService, Service: s}); err != nil {
		return err
	}
	cur := k.svcs[s.Key]
	if cur == nil {
		return syscall.ESRCH
	}
	if err := k.validService(s); err != nil {
		return err
	}
	s.Stats = cur.svc.Stats
	cur.svc = s
	return nil
}

// DelService implements Kernel.
func (k *FakeKernel) DelService(key ServiceKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpDelService, Service: Service{Key: key}}); err != nil {
		return err
	}
	if k.svcs[key] == nil {
		return syscall.ESRCH
	}
	delete(k.svcs, key)
	return nil
}

func validDest(svc ServiceKey, d Destination) error {
	if d.Weight < 0 || d.LowerThreshold > d.UpperThreshold {
		return syscall.ERANGE
	}
	if !d.Addr.Addr().IsValid() {
		return syscall.EINVAL
	}
	// Mixed families only work through a tunnel (kernel >= 4.?: "af != svc->af" check).
	if d.Addr.Addr().Is6() != svc.IsV6() && d.Forwarding != ForwardTunnel {
		return syscall.EINVAL
	}
	if d.Forwarding != ForwardTunnel && (d.TunnelType != 0 || d.TunnelPort != 0 || d.TunnelFlags != 0) {
		return syscall.EINVAL
	}
	if d.TunnelType == TunnelGUE && d.TunnelPort == 0 {
		return syscall.EINVAL
	}
	return nil
}

func (k *FakeKernel) destIndex(s *fakeSvc, addr netip.AddrPort) int {
	return slices.IndexFunc(s.dests, func(d Destination) bool { return d.Addr == addr })
}

// NewDestination implements Kernel.
func (k *FakeKernel) NewDestination(key ServiceKey, d Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpNewDest, Service: Service{Key: key}, Dest: d}); err != nil {
		return err
	}
	s := k.svcs[key]
	if s == nil {
		return syscall.ESRCH
	}
	if err := validDest(key, d); err != nil {
		return err
	}
	if k.destIndex(s, d.Addr) >= 0 {
		return syscall.EEXIST
	}
	d.ActiveConns, d.InactiveConns, d.Stats = 0, 0, Stats{}
	s.dests = append(s.dests, d)
	return nil
}

// UpdateDestination implements Kernel.
func (k *FakeKernel) UpdateDestination(key ServiceKey, d Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpUpdDest, Service: Service{Key: key}, Dest: d}); err != nil {
		return err
	}
	s := k.svcs[key]
	if s == nil {
		return syscall.ESRCH
	}
	if err := validDest(key, d); err != nil {
		return err
	}
	i := k.destIndex(s, d.Addr)
	if i < 0 {
		return syscall.ENOENT
	}
	cur := s.dests[i]
	d.ActiveConns, d.InactiveConns, d.Stats = cur.ActiveConns, cur.InactiveConns, cur.Stats
	s.dests[i] = d
	return nil
}

// DelDestination implements Kernel.
func (k *FakeKernel) DelDestination(key ServiceKey, addr netip.AddrPort) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpDelDest, Service: Service{Key: key}, Dest: Destination{Addr: addr}}); err != nil {
		return err
	}
	s := k.svcs[key]
	if s == nil {
		return syscall.ESRCH
	}
	i := k.destIndex(s, addr)
	if i < 0 {
		return syscall.ENOENT
	}
	s.dests = slices.Delete(s.dests, i, i+1)
	return nil
}

var _ Kernel = (*FakeKernel)(nil)

// SyncDaemons implements SyncDaemonKernel: master first, as the kernel
// lists them.
func (k *FakeKernel) SyncDaemons() ([]SyncDaemon, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.check(Op{Kind: OpKind("get_sync_daemons")}); err != nil {
		return nil, err
	}
	var out []SyncDaemon
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		if d, ok := k.syncd[s]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// StartSyncDaemon implements SyncDaemonKernel: EEXIST when a daemon of
// that state runs, EINVAL for another state or no interface.
func (k *FakeKernel) StartSyncDaemon(d SyncDaemon) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpStartSync, Sync: d}); err != nil {
		return err
	}
	if (d.State != SyncMaster && d.State != SyncBackup) || d.Interface == "" {
		return syscall.EINVAL
	}
	if _, ok := k.syncd[d.State]; ok {
		return syscall.EEXIST
	}
	k.syncd[d.State] = d
	return nil
}

// StopSyncDaemon implements SyncDaemonKernel: ESRCH when none of that
// state runs.
func (k *FakeKernel) StopSyncDaemon(s SyncState) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.write(Op{Kind: OpStopSync, Sync: SyncDaemon{State: s}}); err != nil {
		return err
	}
	if _, ok := k.syncd[s]; !ok {
		return syscall.ESRCH
	}
	delete(k.syncd, s)
	return nil
}
