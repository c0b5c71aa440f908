package ipvstest

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/haldir-lb/haldir/ipvs"
)

func TestFakeKernelErrnos(t *testing.T) {
	k := New()
	key := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	key6 := ipvs.ServiceKey{Fwmark: 9, V6: true}
	d := ipvs.Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), DestSettings: ipvs.DestSettings{Weight: 1}}
	svc := ipvs.Service{Key: key, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr", NetmaskBits: 32}}
	steps := []struct {
		name string
		call func() error
		want error
	}{
		{"dest to missing service", func() error { return k.NewDestination(key, d) }, syscall.ESRCH},
		{"update missing service", func() error { return k.UpdateService(svc) }, syscall.ESRCH},
		{"delete missing service", func() error { return k.DelService(key) }, syscall.ESRCH},
		{"unknown scheduler", func() error { s := svc; s.Scheduler = "nope"; return k.NewService(s) }, syscall.ENOENT},
		{"inet6 netmask 0", func() error {
			return k.NewService(ipvs.Service{Key: key6, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr"}})
		}, syscall.EINVAL},
		{"add service", func() error { return k.NewService(svc) }, nil},
		{"duplicate service", func() error { return k.NewService(svc) }, syscall.EEXIST},
		{"negative weight", func() error { x := d; x.Weight = -1; return k.NewDestination(key, x) }, syscall.ERANGE},
		{"lower above upper", func() error { x := d; x.LowerThreshold = 2; return k.NewDestination(key, x) }, syscall.ERANGE},
		{"family mix without tunnel", func() error {
			x := d
			x.Addr = netip.MustParseAddrPort("[2001:db8::1]:80")
			return k.NewDestination(key, x)
		}, syscall.EINVAL},
		{"add dest", func() error { return k.NewDestination(key, d) }, nil},
		{"duplicate dest", func() error { return k.NewDestination(key, d) }, syscall.EEXIST},
		{"update missing dest", func() error {
			x := d
			x.Addr = netip.MustParseAddrPort("198.51.100.2:80")
			return k.UpdateDestination(key, x)
		}, syscall.ENOENT},
		{"delete missing dest", func() error { return k.DelDestination(key, netip.MustParseAddrPort("198.51.100.2:80")) }, syscall.ENOENT},
		{"delete service", func() error { return k.DelService(key) }, nil},
		{"its destinations went with it", func() error { return k.NewService(svc) }, nil},
	}
	for _, s := range steps {
		if err := s.call(); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.want)
		}
	}
	ds, err := k.GetDestinations(key)
	if err != nil || len(ds) != 0 {
		t.Fatalf("recreated service has destinations %v (%v)", ds, err)
	}
	if n := len(k.Writes()); n != len(steps) {
		t.Fatalf("recorded %d writes, want %d", n, len(steps))
	}
}
