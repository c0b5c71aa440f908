package ipvs

import (
	"fmt"
	"net/netip"
	"time"
)

// Kernel is the kernel's IPVS: its table of services and destinations,
// its connection timeouts and its connection sync daemons. It is shaped
// after github.com/moby/ipvs's Handle, with value types on net/netip.
// Write methods return the kernel's errno (a syscall.Errno, possibly
// wrapped); the contract test (contract_test.go, run against Client in the
// VM lab and against ipvstest.Kernel everywhere) pins which one for what.
type Kernel interface {
	GetServices() ([]ServiceInfo, error)
	// GetDestinations of a missing service is empty, not an error (the
	// kernel's dump finds nothing). The destinations come in the order
	// they were added, oldest first (a re-added one is newest): the order
	// that decides the lookup tables of the mh, sh and dh schedulers.
	GetDestinations(svc ServiceKey) ([]DestInfo, error)
	NewService(svc Service) error
	UpdateService(svc Service) error
	DelService(svc ServiceKey) error
	NewDestination(svc ServiceKey, d Destination) error
	UpdateDestination(svc ServiceKey, d Destination) error
	DelDestination(svc ServiceKey, addr netip.AddrPort) error

	Timeouts() (Timeouts, error)
	// SetTimeouts leaves the kernel's setting of a zero field alone.
	SetTimeouts(Timeouts) error

	// SyncDaemons lists the running sync daemons, master first. Start
	// fails with EEXIST when a daemon of that state runs; Stop with ESRCH
	// when none does.
	SyncDaemons() ([]SyncDaemon, error)
	StartSyncDaemon(SyncDaemon) error
	StopSyncDaemon(SyncState) error
}

// Timeouts are the kernel-wide IPVS connection timeouts; a zero value
// leaves the kernel's setting alone.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// OpKind names one kind of kernel operation.
type OpKind string

// Operation kinds. The write kinds are the ones counted as netlink writes.
const (
	OpGetServices OpKind = "get_services"
	OpGetDests    OpKind = "get_destinations"
	OpNewService  OpKind = "new_service"
	OpUpdService  OpKind = "update_service"
	OpDelService  OpKind = "del_service"
	OpNewDest     OpKind = "new_destination"
	OpUpdDest     OpKind = "update_destination"
	OpDelDest     OpKind = "del_destination"
	OpSetTimeouts OpKind = "set_timeouts"
	OpStartSync   OpKind = "start_sync_daemon"
	OpStopSync    OpKind = "stop_sync_daemon"
)

// IsWrite reports whether the operation changes the kernel table.
func (k OpKind) IsWrite() bool {
	switch k {
	case OpNewService, OpUpdService, OpDelService, OpNewDest, OpUpdDest, OpDelDest, OpSetTimeouts:
		return true
	}
	return false
}

// Op is one planned or recorded kernel operation.
type Op struct {
	Kind     OpKind
	Service  Service     // Key is always set; the rest for new/update service
	Dest     Destination // Addr set for destination ops; the rest for new/update
	Timeouts Timeouts    // set_timeouts
	Sync     SyncDaemon  // sync daemon ops: State, and the rest for a start
}

// Do performs a write op on k (a read kind is an error: its result would
// be lost).
func Do(k Kernel, op Op) error {
	switch op.Kind {
	case OpNewService:
		return k.NewService(op.Service)
	case OpUpdService:
		return k.UpdateService(op.Service)
	case OpDelService:
		return k.DelService(op.Service.Key)
	case OpNewDest:
		return k.NewDestination(op.Service.Key, op.Dest)
	case OpUpdDest:
		return k.UpdateDestination(op.Service.Key, op.Dest)
	case OpDelDest:
		return k.DelDestination(op.Service.Key, op.Dest.Addr)
	case OpSetTimeouts:
		return k.SetTimeouts(op.Timeouts)
	case OpStartSync:
		return k.StartSyncDaemon(op.Sync)
	case OpStopSync:
		return k.StopSyncDaemon(op.Sync.State)
	}
	return fmt.Errorf("ipvs: %s is not a write", op.Kind)
}

// String renders the op compactly; tests compare op sequences through it.
func (o Op) String() string {
	switch o.Kind {
	case OpNewService, OpUpdService:
		s := o.Service
		return fmt.Sprintf("%s %s sched=%s flags=%#x timeout=%d mask=%d", o.Kind, s.Key, s.Scheduler, s.Flags, s.Timeout, s.NetmaskBits)
	case OpDelService:
		return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
	case OpNewDest, OpUpdDest:
		d := o.Dest
		s := fmt.Sprintf("%s %s %s w=%d fwd=%s", o.Kind, o.Service.Key, d.Addr, d.Weight, d.Forwarding)
		if d.Forwarding == ForwardTunnel {
			s += fmt.Sprintf(" tun=%s port=%d flags=%d", d.TunnelType, d.TunnelPort, d.TunnelFlags)
		}
		if d.UpperThreshold != 0 || d.LowerThreshold != 0 {
			s += fmt.Sprintf(" u=%d l=%d", d.UpperThreshold, d.LowerThreshold)
		}
		return s
	case OpDelDest:
		return fmt.Sprintf("%s %s %s", o.Kind, o.Service.Key, o.Dest.Addr)
	case OpStartSync:
		return fmt.Sprintf("%s %s", o.Kind, o.Sync)
	case OpStopSync:
		return fmt.Sprintf("%s %s", o.Kind, o.Sync.State)
	}
	return string(o.Kind)
}
