package failover

import (
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// The benchmark's lab: routers and the tap on one switch, as in vrrp's
// end-to-end tests.
const (
	lanIf  = "eth0"
	lanSw  = "lan"
	vrid   = 42
	fast   = 100 * time.Millisecond // the smoke test's advert interval
	settle = 10 * time.Second       // generous deadline for anything that should take < 1s
)

var vip4 = netip.MustParsePrefix("192.0.2.1/24")

// newWireTap observes the failover frames (VRRP, ARP, NA) the switch
// passes to the tap host's port. lab.Observer dates each frame with the
// kernel's receive timestamp, not when its reader woke, which matters at
// a 10ms advert interval whose whole graceful-failover budget is ~8ms.
func newWireTap(tb testing.TB, l *lab.Lab) *lab.Observer {
	tb.Helper()
	// A 10-instance CPU window at 100 adverts/s keeps ~1000 records per 10s.
	o, err := l.Host("tap").Link(lanIf).ObserveWith(lab.ObserverConfig{Capacity: 1 << 15, Keep: lab.KeepControl})
	if err != nil {
		tb.Fatalf("tap: %v", err)
	}
	return o
}
