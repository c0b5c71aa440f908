package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestTrackVirtualServerQuorum runs the components glue end to end: a
// loopback real server's TCP check drives the director (in-memory kernel),
// whose quorum of the virtual server drives a VRRP instance (in a lab
// namespace) that tracks it with weight -100. Its priority drops while the
// real server is down and comes back with it.
func TestTrackVirtualServerQuorum(t *testing.T) {
	l := lab.RoutersT(t, "haldir-track-vs", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	real := netip.MustParseAddrPort(ln.Addr().String())
	src := fmt.Sprintf(`
[global]
router_id = "t"

[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.1/24"]
track_virtual_server = [{ name = "web", weight = -100 }]

[[virtual_server]]
name = "web"
address = "192.0.2.1"
port = 80
check = { type = "tcp", interval = "50ms", timeout = "40ms", rise = 1, fall = 1 }

[[virtual_server.real_server]]
address = "%s"
port = %d
`, real.Addr(), real.Port())
	cfg, err := conf.Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, logs := startComponents(t, l, "r1", cfg, ipvstest.New())
	in := c.vrrp.Instance("vi")
	wait := func(what string, ok func(vrrp.Status) bool) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, any) {
			st := in.Status()
			return ok(st), st
		}, logs.String)
	}
	wait("master at 150 with quorum", func(s vrrp.Status) bool { return s.State == vrrp.StateMaster && s.Priority == 150 })

	ln.Close()
	wait("priority 50 without quorum", func(s vrrp.Status) bool {
		return s.Priority == 50 && len(s.Failing) == 1 && s.Failing[0] == "track_virtual_server web down -100"
	})
	waitFor(t, logs, `msg="virtual server quorum" virtual_server=web up=false`, 1)

	ln, err = net.Listen("tcp", real.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wait("priority 150 with quorum again", func(s vrrp.Status) bool { return s.Priority == 150 && len(s.Failing) == 0 })
	waitFor(t, logs, `msg="virtual server quorum" virtual_server=web up=true`, 2)
}
