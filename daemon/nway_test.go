package daemon

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// memSysctls is a kernel's settings in memory, safe for the loop and the
// test.
type memSysctls struct {
	mu   sync.Mutex
	vals map[string]string
}

func (m *memSysctls) ReadSysctl(k string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.vals[k], nil
}

func (m *memSysctls) WriteSysctl(k, v string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals[k] = v
	return nil
}

func nwayConf(t *testing.T, sched string, syncID int) *conf.Config {
	t.Helper()
	cfg, err := conf.Parse([]byte(fmt.Sprintf(`
[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80
scheduler = %q

[[virtual_server.real_server]]
address = "198.51.100.1"
port = 80

[bgp]
asn = 65010
router_id = "10.0.0.11"
  [[bgp.peer]]
  address = "192.0.2.254"
  asn = 65000
  [[bgp.announce]]
  prefix = "192.0.2.10/32"
  virtual_servers = ["web"]

[sync]
interface = "lo"
sync_id = %d
`, sched, syncID)), "nway.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestNWaySync: with [bgp] and [sync] without vrrp_instance the daemon
// runs the kernel's master and backup sync daemons together, status says
// N-way, a reload that changes them restarts both, the stop stops both;
// the IPVS settings of BGP mode are set and logged; an announced virtual
// server scheduled by wrr is warned about in the log and the problems, and
// a reload to mh clears it.
func TestNWaySync(t *testing.T) {
	k := ipvstest.New()
	sys := &memSysctls{vals: map[string]string{"net.ipv4.vs.sloppy_tcp": "0", "net.ipv4.vs.sloppy_sctp": "0", "net.ipv4.vs.backup_only": "1"}}
	var logs syncBuffer
	cfg := nwayConf(t, "wrr", 5)
	d := startLoop(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Notify: func(string) {},
		NewKernel: func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }, Sysctls: sys})
	runs := func(what string, syncID uint8) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, any) {
			ds, _ := k.SyncDaemons()
			return len(ds) == 2 && ds[0].State == ipvs.SyncMaster && ds[1].State == ipvs.SyncBackup &&
				ds[0].SyncID == syncID && ds[1].SyncID == syncID, ds
		}, logs.String)
	}
	runs("master and backup, syncid 5", 5)
	st := d.Status()
	if st.Sync == nil || !st.Sync.NWay || !slices.Equal(st.Sync.Wanted(), []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup}) {
		t.Fatalf("status .sync %+v", st.Sync)
	}
	sys.mu.Lock()
	if sys.vals["net.ipv4.vs.sloppy_tcp"] != "1" || sys.vals["net.ipv4.vs.sloppy_sctp"] != "1" || sys.vals["net.ipv4.vs.backup_only"] != "0" {
		t.Errorf("settings %v", sys.vals)
	}
	sys.mu.Unlock()
	for _, l := range []string{"sysctl=net.ipv4.vs.backup_only from=1 to=0", "sysctl=net.ipv4.vs.sloppy_tcp from=0 to=1"} {
		if !strings.Contains(logs.String(), l) {
			t.Errorf("log does not say %q", l)
		}
	}
	warned := func() bool {
		for _, p := range d.Status().Problems() {
			if strings.HasPrefix(p.What, `config: virtual server "web" is announced over BGP (192.0.2.10/32) but scheduled by wrr`) {
				return true
			}
		}
		return false
	}
	if !warned() || !strings.Contains(logs.String(), "scheduled by wrr") {
		t.Errorf("no warning of wrr in the problems %q or the log", d.Status().Problems())
	}

	next := nwayConf(t, "mh", 6)
	if err := d.reloadOnLoop(cfg, next); err != nil {
		t.Fatal(err)
	}
	runs("both restarted with syncid 6", 6)
	if warned() {
		t.Errorf("the warning stays after the reload to mh: %q", d.Status().Problems())
	}
	d.stop()
	if ds, _ := k.SyncDaemons(); len(ds) != 0 {
		t.Fatalf("daemons left after the stop: %v", ds)
	}
}
