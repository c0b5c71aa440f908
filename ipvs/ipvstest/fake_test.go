package ipvstest

import (
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/haldir-lb/haldir/ipvs"
)

// TestFakeRecordsAndFaults covers what the fake adds to the kernel (whose
// answers the contract test pins): every write is recorded, a faulted one
// too, reads are faulted without being recorded, and SetConns shows in
// the next read.
func TestFakeRecordsAndFaults(t *testing.T) {
	k := New()
	key := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	svc := ipvs.Service{Key: key, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}}
	d := ipvs.Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), DestSettings: ipvs.DestSettings{Weight: 1}}
	if err := k.NewService(svc); err != nil {
		t.Fatal(err)
	}
	if err := k.NewService(svc); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("duplicate: %v", err)
	}
	k.SetFault(func(op ipvs.Op) error {
		if op.Kind == ipvs.OpNewDest || op.Kind == ipvs.OpGetServices {
			return syscall.EIO
		}
		return nil
	})
	if err := k.NewDestination(key, d); !errors.Is(err, syscall.EIO) {
		t.Fatalf("faulted write: %v", err)
	}
	if _, err := k.GetServices(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("faulted read: %v", err)
	}
	kinds := func() []ipvs.OpKind {
		var out []ipvs.OpKind
		for _, op := range k.Writes() {
			out = append(out, op.Kind)
		}
		return out
	}
	if got, want := kinds(), []ipvs.OpKind{ipvs.OpNewService, ipvs.OpNewService, ipvs.OpNewDest}; !slices.Equal(got, want) {
		t.Fatalf("writes %v, want %v", got, want)
	}
	if ds, _ := k.GetDestinations(key); len(ds) != 0 {
		t.Fatalf("a faulted write changed the table: %+v", ds)
	}
	k.SetFault(nil)
	k.ResetWrites()
	if err := k.NewDestination(key, d); err != nil {
		t.Fatal(err)
	}
	k.SetConns(key, d.Addr, 3, 4)
	ds, err := k.GetDestinations(key)
	if err != nil || len(ds) != 1 || ds[0].ActiveConns != 3 || ds[0].InactiveConns != 4 || ds[0].Stats.Conns != 7 || ds[0].Destination != d {
		t.Fatalf("after SetConns: %+v (%v)", ds, err)
	}
	if n := len(k.Writes()); n != 1 {
		t.Fatalf("%d writes after ResetWrites and one write", n)
	}
}
