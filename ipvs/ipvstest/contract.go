package ipvstest

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/ipvs"
)

// The contract: one table of kernel operations and what each must answer,
// run in order on one empty IPVS. Package ipvs runs it against Kernel in
// its unit tests and against ipvs.Client on a real kernel in the VM lab,
// so every errno the fake answers (and every read-back it gives) is one the
// kernel was seen to give.

// ContractInterface is the interface the contract's sync daemons use: it
// must exist on the kernel under test ("lo" does in any namespace).
const ContractInterface = "lo"

type step struct {
	name string
	op   ipvs.Op
	want error // nil: must succeed
	// check, when set, reads the kernel after the op and fails t when it
	// does not hold what the op should have left.
	check func(t *testing.T, k ipvs.Kernel)
}

var (
	cVIP     = ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("10.0.0.1:80")}
	cMissing = ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("10.9.9.9:1")}
	cMark6   = ipvs.ServiceKey{Fwmark: 9, V6: true}
	cSvc     = ipvs.Service{Key: cVIP, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}}
	cSvc2    = ipvs.Service{Key: cVIP, ServiceSettings: ipvs.ServiceSettings{Scheduler: "wrr", Flags: ipvs.FlagPersistent, Timeout: 300, NetmaskBits: 24}}
	cSvc6    = ipvs.Service{Key: cMark6, ServiceSettings: ipvs.ServiceSettings{Scheduler: "sh", Flags: ipvs.FlagSched2, NetmaskBits: 128}}
	cReal    = netip.MustParseAddrPort("10.1.0.1:8080")
	cReal2   = netip.MustParseAddrPort("10.1.0.2:8080")
	cReal6   = netip.MustParseAddrPort("[fd00:1::1]:8080")
	cDest    = ipvs.Destination{Addr: cReal, DestSettings: ipvs.DestSettings{Weight: 1}}
	cDest2   = ipvs.Destination{Addr: cReal, DestSettings: ipvs.DestSettings{Weight: 9, Forwarding: ipvs.ForwardDR, UpperThreshold: 100, LowerThreshold: 10}}
	cGUE     = ipvs.Destination{Addr: cReal2, DestSettings: ipvs.DestSettings{Weight: 2, Forwarding: ipvs.ForwardTunnel,
		TunnelType: ipvs.TunnelGUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelCsum}}
	cMixed  = ipvs.Destination{Addr: cReal6, DestSettings: ipvs.DestSettings{Weight: 3, Forwarding: ipvs.ForwardTunnel}}
	cMaster = ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: ContractInterface, SyncID: 9,
		Group: netip.MustParseAddr("239.9.9.9"), Port: 8850, TTL: 2, MaxLen: 1400}
	cBackup = ipvs.SyncDaemon{State: ipvs.SyncBackup, Interface: ContractInterface, SyncID: 9,
		Group: netip.MustParseAddr("239.9.9.9"), Port: 8850}
)

func newSvc(s ipvs.Service) ipvs.Op { return ipvs.Op{Kind: ipvs.OpNewService, Service: s} }
func updSvc(s ipvs.Service) ipvs.Op { return ipvs.Op{Kind: ipvs.OpUpdService, Service: s} }
func delSvc(k ipvs.ServiceKey) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpDelService, Service: ipvs.Service{Key: k}}
}
func newDest(k ipvs.ServiceKey, d ipvs.Destination) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpNewDest, Service: ipvs.Service{Key: k}, Dest: d}
}
func updDest(k ipvs.ServiceKey, d ipvs.Destination) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpUpdDest, Service: ipvs.Service{Key: k}, Dest: d}
}
func delDest(k ipvs.ServiceKey, a netip.AddrPort) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpDelDest, Service: ipvs.Service{Key: k}, Dest: ipvs.Destination{Addr: a}}
}
func startSync(d ipvs.SyncDaemon) ipvs.Op { return ipvs.Op{Kind: ipvs.OpStartSync, Sync: d} }
func stopSync(s ipvs.SyncState) ipvs.Op {
	return ipvs.Op{Kind: ipvs.OpStopSync, Sync: ipvs.SyncDaemon{State: s}}
}

func with[T any](v T, edit func(*T)) T {
	edit(&v)
	return v
}

// services checks the kernel holds exactly want (configuration only).
func services(want ...ipvs.Service) func(*testing.T, ipvs.Kernel) {
	return func(t *testing.T, k ipvs.Kernel) {
		t.Helper()
		got, err := k.GetServices()
		if err != nil {
			t.Fatalf("GetServices: %v", err)
		}
		var cfg []ipvs.Service
		for _, s := range got {
			cfg = append(cfg, s.Service)
		}
		sortBy(cfg, func(s ipvs.Service) string { return s.Key.String() })
		sortBy(want, func(s ipvs.Service) string { return s.Key.String() })
		if !slices.Equal(cfg, want) {
			t.Fatalf("services %+v, want %+v", cfg, want)
		}
	}
}

// dests checks svc has exactly want (configuration only).
func dests(svc ipvs.ServiceKey, want ...ipvs.Destination) func(*testing.T, ipvs.Kernel) {
	return func(t *testing.T, k ipvs.Kernel) {
		t.Helper()
		got, err := k.GetDestinations(svc)
		if err != nil {
			t.Fatalf("GetDestinations %s: %v", svc, err)
		}
		var cfg []ipvs.Destination
		for _, d := range got {
			cfg = append(cfg, d.Destination)
		}
		sortBy(cfg, func(d ipvs.Destination) string { return d.Addr.String() })
		sortBy(want, func(d ipvs.Destination) string { return d.Addr.String() })
		if !slices.Equal(cfg, want) {
			t.Fatalf("destinations of %s: %+v, want %+v", svc, cfg, want)
		}
	}
}

// order checks svc's destinations come in the order they were added,
// oldest first (Kernel.GetDestinations): the order the kernel's mh, sh and
// dh tables are built from.
func order(svc ipvs.ServiceKey, want ...netip.AddrPort) func(*testing.T, ipvs.Kernel) {
	return func(t *testing.T, k ipvs.Kernel) {
		t.Helper()
		got, err := k.GetDestinations(svc)
		if err != nil {
			t.Fatalf("GetDestinations %s: %v", svc, err)
		}
		var addrs []netip.AddrPort
		for _, d := range got {
			addrs = append(addrs, d.Addr)
		}
		if !slices.Equal(addrs, want) {
			t.Fatalf("destinations of %s in the order %v, want the order of addition %v", svc, addrs, want)
		}
	}
}

// daemons checks the running sync daemons, master first, by what was
// asked for: the kernel reports the TTL and maxlen it settled on.
func daemons(want ...ipvs.SyncDaemon) func(*testing.T, ipvs.Kernel) {
	return func(t *testing.T, k ipvs.Kernel) {
		t.Helper()
		got, err := k.SyncDaemons()
		if err != nil {
			t.Fatalf("SyncDaemons: %v", err)
		}
		same := len(got) == len(want)
		for i := 0; same && i < len(got); i++ {
			g, w := got[i], want[i]
			same = g.State == w.State && g.Interface == w.Interface && g.SyncID == w.SyncID &&
				g.Group == w.Group && g.Port == w.Port && (w.TTL == 0 || g.TTL == w.TTL)
		}
		if !same {
			t.Fatalf("sync daemons %v, want %v", got, want)
		}
	}
}

func sortBy[T any](s []T, key func(T) string) {
	slices.SortFunc(s, func(a, b T) int {
		switch ka, kb := key(a), key(b); {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
}

// contract is the table, in the order it runs.
var contract = []step{
	{name: "empty table", op: ipvs.Op{}, check: services()},
	{name: "update a missing service", op: updSvc(cSvc), want: syscall.ESRCH},
	{name: "delete a missing service", op: delSvc(cVIP), want: syscall.ESRCH},
	{name: "unknown scheduler", op: newSvc(with(cSvc, func(s *ipvs.Service) { s.Scheduler = "nosuch" })), want: syscall.ENOENT},
	{name: "inet6 netmask 0", op: newSvc(with(cSvc6, func(s *ipvs.Service) { s.NetmaskBits = 0 })), want: syscall.EINVAL},
	{name: "add a service", op: newSvc(cSvc), check: services(cSvc)},
	{name: "add it again", op: newSvc(cSvc), want: syscall.EEXIST},
	{name: "update its settings", op: updSvc(cSvc2), check: services(cSvc2)},
	{name: "update with an unknown scheduler", op: updSvc(with(cSvc2, func(s *ipvs.Service) { s.Scheduler = "nosuch" })), want: syscall.ENOENT,
		check: services(cSvc2)},
	{name: "add an inet6 fwmark service", op: newSvc(cSvc6), check: services(cSvc2, cSvc6)},

	{name: "destination of a missing service", op: newDest(cMissing, cDest), want: syscall.ESRCH},
	{name: "update a destination of a missing service", op: updDest(cMissing, cDest), want: syscall.ESRCH},
	{name: "delete a destination of a missing service", op: delDest(cMissing, cReal), want: syscall.ESRCH},
	{name: "destinations of a missing service", op: ipvs.Op{}, check: dests(cMissing)},
	{name: "negative weight", op: newDest(cVIP, with(cDest, func(d *ipvs.Destination) { d.Weight = -1 })), want: syscall.ERANGE},
	{name: "lower threshold above upper", op: newDest(cVIP, with(cDest, func(d *ipvs.Destination) { d.LowerThreshold = 2 })), want: syscall.ERANGE},
	{name: "other family without a tunnel", op: newDest(cVIP, with(cMixed, func(d *ipvs.Destination) { d.Forwarding = ipvs.ForwardDR })), want: syscall.EINVAL},
	{name: "gue without a port", op: newDest(cVIP, with(cGUE, func(d *ipvs.Destination) { d.TunnelPort = 0 })), want: syscall.EINVAL},
	{name: "add a destination", op: newDest(cVIP, cDest), check: dests(cVIP, cDest)},
	{name: "add it again", op: newDest(cVIP, cDest), want: syscall.EEXIST},
	{name: "update a missing destination", op: updDest(cVIP, cGUE), want: syscall.ENOENT},
	{name: "delete a missing destination", op: delDest(cVIP, cReal2), want: syscall.ENOENT},
	{name: "update weight, forwarding and thresholds in place", op: updDest(cVIP, cDest2), check: dests(cVIP, cDest2)},
	{name: "update with a negative weight", op: updDest(cVIP, with(cDest2, func(d *ipvs.Destination) { d.Weight = -1 })), want: syscall.ERANGE,
		check: dests(cVIP, cDest2)},
	{name: "add a gue tunnel", op: newDest(cVIP, cGUE), check: dests(cVIP, cDest2, cGUE)},
	{name: "destinations in the order of addition", op: ipvs.Op{}, check: order(cVIP, cReal, cReal2)},
	{name: "gue to gre in place", op: updDest(cVIP, with(cGUE, func(d *ipvs.Destination) { d.TunnelType, d.TunnelPort = ipvs.TunnelGRE, 0 })),
		check: dests(cVIP, cDest2, with(cGUE, func(d *ipvs.Destination) { d.TunnelType, d.TunnelPort = ipvs.TunnelGRE, 0 }))},
	{name: "tunnel settings of a non-tunnel destination are not kept",
		op:    updDest(cVIP, with(cGUE, func(d *ipvs.Destination) { d.Forwarding = ipvs.ForwardDR })),
		check: dests(cVIP, cDest2, ipvs.Destination{Addr: cReal2, DestSettings: ipvs.DestSettings{Weight: 2, Forwarding: ipvs.ForwardDR}})},
	{name: "other family through a tunnel", op: newDest(cVIP, cMixed), check: order(cVIP, cReal, cReal2, cReal6)},
	{name: "delete the first destination", op: delDest(cVIP, cReal), check: order(cVIP, cReal2, cReal6)},
	{name: "a re-added destination is the newest", op: newDest(cVIP, cDest2), check: order(cVIP, cReal2, cReal6, cReal)},
	{name: "no sync daemon while families are mixed", op: startSync(cMaster), want: syscall.EINVAL, check: daemons()},
	{name: "delete a destination", op: delDest(cVIP, cReal6),
		check: dests(cVIP, cDest2, ipvs.Destination{Addr: cReal2, DestSettings: ipvs.DestSettings{Weight: 2, Forwarding: ipvs.ForwardDR}})},
	{name: "delete a service with destinations", op: delSvc(cVIP), check: services(cSvc6)},
	{name: "delete it again", op: delSvc(cVIP), want: syscall.ESRCH},
	{name: "its destinations went with it", op: newSvc(cSvc), check: dests(cVIP)},

	{name: "stop a master that does not run", op: stopSync(ipvs.SyncMaster), want: syscall.ESRCH},
	{name: "start without an interface", op: startSync(with(cMaster, func(d *ipvs.SyncDaemon) { d.Interface = "" })), want: syscall.ENODEV},
	{name: "start with a group that is not multicast", op: startSync(with(cMaster, func(d *ipvs.SyncDaemon) { d.Group = netip.MustParseAddr("10.0.0.1") })),
		want: syscall.EINVAL},
	{name: "start the master", op: startSync(cMaster), check: daemons(cMaster)},
	{name: "start a second master", op: startSync(cMaster), want: syscall.EEXIST},
	{name: "start the backup", op: startSync(cBackup), check: daemons(cMaster, cBackup)},
	{name: "no mixed families while a sync daemon runs", op: newDest(cVIP, cMixed), want: syscall.EINVAL, check: dests(cVIP)},
	{name: "stop the backup", op: stopSync(ipvs.SyncBackup), check: daemons(cMaster)},
	{name: "stop it again", op: stopSync(ipvs.SyncBackup), want: syscall.ESRCH},
	{name: "stop the master", op: stopSync(ipvs.SyncMaster), check: daemons()},
}

// timeoutSteps run after the table: they read the kernel's current
// timeouts first (a fresh namespace has DefaultTimeouts).
func timeoutSteps(t *testing.T, k ipvs.Kernel) {
	t.Helper()
	before, err := k.Timeouts()
	if err != nil {
		t.Fatalf("Timeouts: %v", err)
	}
	if before != DefaultTimeouts {
		t.Errorf("a fresh IPVS has timeouts %+v, want %+v", before, DefaultTimeouts)
	}
	set := ipvs.Timeouts{TCP: 2 * time.Hour}
	if err := ipvs.Do(k, ipvs.Op{Kind: ipvs.OpSetTimeouts, Timeouts: set}); err != nil {
		t.Fatalf("SetTimeouts %+v: %v", set, err)
	}
	after, err := k.Timeouts()
	want := before
	want.TCP = set.TCP
	if err != nil || after != want {
		t.Fatalf("timeouts after setting tcp only: %+v (%v), want %+v (zero fields left alone)", after, err, want)
	}
}

// RunContract runs the contract on k, which must be an empty IPVS in a
// namespace with interface ContractInterface. It stops any sync daemon it
// leaves running, also when it fails.
func RunContract(t *testing.T, k ipvs.Kernel) {
	t.Cleanup(func() {
		for _, s := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
			_ = k.StopSyncDaemon(s)
		}
	})
	for i, s := range contract {
		// Each step works on what the ones before left: stop at the
		// first that fails.
		if !t.Run(fmt.Sprintf("%02d %s", i, s.name), func(t *testing.T) {
			if s.op.Kind != "" {
				err := ipvs.Do(k, s.op)
				if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
					t.Fatalf("%s: err = %v, want %v", s.op, err, errName(s.want))
				}
			}
			if s.check != nil {
				s.check(t, k)
			}
		}) {
			return
		}
	}
	t.Run("timeouts", func(t *testing.T) { timeoutSteps(t, k) })
}

func errName(err error) string {
	if err == nil {
		return "success"
	}
	return err.Error()
}
