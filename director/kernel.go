package director

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Kernel is the IPVS table as the reconciler sees it. It is shaped after
// github.com/moby/ipvs's Handle, with value types on net/netip. Write
// methods return the kernel's errno (a syscall.Errno, possibly wrapped).
type Kernel interface {
	GetServices() ([]Service, error)
	GetDestinations(svc ServiceKey) ([]Destination, error)
	NewService(svc Service) error
	UpdateService(svc Service) error
	DelService(svc ServiceKey) error
	NewDestination(svc ServiceKey, d Destination) error
	UpdateDestination(svc ServiceKey, d Destination) error
	DelDestination(svc ServiceKey, addr netip.AddrPort) error
}

// Timeouts are the kernel-wide IPVS connection timeouts; a zero value
// leaves the kernel's setting alone.
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// TimeoutSetter is implemented by kernels that can read and set the IPVS
// timeouts. The reconciler writes them only when a configured one differs.
type TimeoutSetter interface {
	Timeouts() (Timeouts, error)
	SetTimeouts(Timeouts) error
}

// OpKind names one kind of kernel operation.
type OpKind string

// Operation kinds. The write kinds are the ones counted as netlink writes.
const (
	OpGetServices  OpKind = "get_services"
	OpGetDests     OpKind = "get_destinations"
	OpNewService   OpKind = "new_service"
	OpUpdService   OpKind = "update_service"
	OpDelService   OpKind = "del_service"
	OpNewDest      OpKind = "new_destination"
	OpUpdDest      OpKind = "update_destination"
	OpDelDest      OpKind = "del_destination"
	OpSetTimeouts  OpKind = "set_timeouts"
	OpStartSync    OpKind = "start_sync_daemon"
	OpStopSync     OpKind = "stop_sync_daemon"
	OpDesiredState OpKind = "build_desired" // not a kernel call: config could not be turned into entries
)

// IsWrite reports whether the operation changes the kernel table.
func (k OpKind) IsWrite() bool {
	switch k {
	case OpNewService, OpUpdService, OpDelService, OpNewDest, OpUpdDest, OpDelDest, OpSetTimeouts:
		return true
	}
	return false
}

// Op is one planned or recorded kernel write.
type Op struct {
	Kind    OpKind
	Service Service     // Key is always set; the rest for new/update service
	Dest    Destination // Addr set for destination ops; the rest for new/update
	Sync    SyncDaemon  // sync daemon ops: State, and the rest for a start
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

// errReason names an error for the per-operation error counters: the errno
// name (EEXIST, ESRCH, ...) when there is one.
func errReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno-%d", int(errno))
	}
	return "other"
}
