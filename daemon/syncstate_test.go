package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// TestConnSyncGossiped: the director gossips its conn-sync side, the
// kernel daemon's role and the connections its kernel holds, counted off
// the loop every refresh; a count that changed spreads, an unchanged one
// does not.
func TestConnSyncGossiped(t *testing.T) {
	l := lab.RoutersT(t, "haldir-syncgossip", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	real := netip.MustParseAddrPort(ln.Addr().String())
	secret := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse([]byte(fmt.Sprintf(`
[global]
router_id = "r1"

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

[sync]
interface = "eth0"
vrrp_instance = "vi"

[cluster]
bind = "127.0.0.1:%d"
secret_file = %q
`, real.Addr(), real.Port(), freePort(t), secret)), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	k := ipvstest.New()
	var logs syncBuffer
	d := startLoop(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), VRRPDo: l.Host("r1").Do, Notify: func(string) {},
		NewKernel:       func() (ipvs.Kernel, func(), error) { return k, func() {}, nil },
		ConnSyncRefresh: 50 * time.Millisecond})
	self := func() cluster.Member {
		var v cluster.View
		d.call(func() { v = d.cluster.View() })
		for _, m := range v.Members {
			if m.Self {
				return m
			}
		}
		t.Fatal("no self in the cluster view")
		return cluster.Member{}
	}
	gossips := func(role string, conns uint64) {
		t.Helper()
		poll.Until(t, 10*time.Second, fmt.Sprintf("gossips %s holding %d", role, conns), func() (bool, any) {
			s := self().Sync
			return s != nil && s.Role == role && s.Conns == conns && !s.At.IsZero(), s
		}, logs.String)
	}
	gossips("master", 0)
	svc := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	k.SetConns(svc, real, 3, 4)
	gossips("master", 7)
	if s := self().Sync; s.Services[svc.String()] != 7 || len(s.Services) != 1 {
		t.Errorf("per service: %v, want %s: 7", s.Services, svc)
	}

	// The same count again spreads nothing: no new Seq. (The refresh
	// keeps counting meanwhile; the kernel holds what is given here.)
	seq := self().Seq
	d.call(func() { d.connsCounted(7, map[string]uint64{svc.String(): 7}, time.Now(), nil) })
	if got := self().Seq; got != seq {
		t.Errorf("an unchanged count moved Seq from %d to %d", seq, got)
	}
	k.SetConns(svc, real, 4, 4)
	d.call(func() { d.connsCounted(8, map[string]uint64{svc.String(): 8}, time.Now(), nil) })
	if got := self().Seq; got != seq+1 {
		t.Errorf("a new count moved Seq from %d to %d, want %d", seq, got, seq+1)
	}
}
