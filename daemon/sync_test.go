package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// TestConnSyncFollowsVRRP runs the components glue with the in-memory IPVS
// kernel and a VRRP instance in a lab namespace: the sync daemon starts as
// backup, turns master with the instance, follows a reload's new sync_id,
// stops when [sync] goes and when haldir stops. (The demo's VM test shows
// the real kernel syncing a connection that then survives a failover.)
func TestConnSyncFollowsVRRP(t *testing.T) {
	l := lab.RoutersT(t, "haldir-conn-sync", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	real := netip.MustParseAddrPort(ln.Addr().String())
	parse := func(sync string) *conf.Config {
		t.Helper()
		cfg, err := conf.Parse([]byte(fmt.Sprintf(`
[global]
router_id = "t"

[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = 150
advert_interval = "100ms"
virtual_addresses = ["192.0.2.1/24"]

[[virtual_server]]
name = "web"
address = "192.0.2.1"
port = 80

[[virtual_server.real_server]]
address = "%s"
port = %d
%s`, real.Addr(), real.Port(), sync)), "t.toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	k := ipvstest.New()
	cfg := parse("[sync]\ninterface = \"eth0\"\nvrrp_instance = \"vi\"\n")
	c, logs := startComponents(t, l, "r1", cfg, k)
	var seen []string
	waitDaemons := func(what, want string) {
		t.Helper()
		poll.Until(t, 10*time.Second, fmt.Sprintf("%s: kernel runs %q", what, want), func() (bool, any) {
			ds, _ := k.SyncDaemons()
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			s := strings.Join(got, ", ")
			return s == want, s
		}, logs.String)
		seen = append(seen, want)
	}
	// sync_id defaults to the instance's vrid.
	waitDaemons("master with the VRRP master", "master on eth0 syncid 42")
	if _, ok := c.notRunningOnLoop()["sync"]; ok {
		t.Fatal("sync reported as not running")
	}
	if st := c.syncFollower().Status(); st.Want.State != ipvs.SyncMaster || st.LastErr != "" {
		t.Fatalf("follower status %+v", st)
	}

	next := parse("[sync]\ninterface = \"eth0\"\nvrrp_instance = \"vi\"\nsync_id = 7\n")
	if err := c.reloadOnLoop(cfg, next); err != nil {
		t.Fatal(err)
	}
	cfg = next
	waitDaemons("a reload's new sync_id", "master on eth0 syncid 7")

	next = parse("")
	if err := c.reloadOnLoop(cfg, next); err != nil {
		t.Fatal(err)
	}
	cfg = next
	waitDaemons("[sync] removed", "")

	next = parse("[sync]\ninterface = \"eth0\"\nvrrp_instance = \"vi\"\n")
	if err := c.reloadOnLoop(cfg, next); err != nil {
		t.Fatal(err)
	}
	waitDaemons("[sync] added back to a running master", "master on eth0 syncid 42")
	c.call(c.stop) // again at cleanup: stop is idempotent
	waitDaemons("haldir stopped", "")
	// The backup daemon must have run before the instance became master.
	if !strings.Contains(logs.String(), `msg="sync daemon started" component=sync daemon="backup on eth0 syncid 42"`) {
		t.Fatalf("never ran as backup first:\n%s", logs.String())
	}
	t.Logf("daemon sequence: %q", seen)
}
