package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
)

// freePort returns a loopback port nothing listens on (TCP and UDP: the
// cluster uses both).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestClusterSeesSplitBrain runs two directors whose VRRP network is
// silently partitioned (r2's port detached from the switch, carrier up)
// while their cluster gossip (on loopback, a management network) still
// works: both become master, and both report the split brain, by name,
// until the partition heals.
func TestClusterSeesSplitBrain(t *testing.T) {
	l := routerLab(t, "haldir-cluster", 2)
	secret := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p1, p2 := freePort(t), freePort(t)
	parse := func(name string, prio, port int, peers string) *conf.Config {
		t.Helper()
		cfg, err := conf.Parse([]byte(fmt.Sprintf(`
[global]
router_id = %[1]q

[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = %[2]d
advert_interval = "100ms"
virtual_addresses = ["192.0.2.1/24"]

[cluster]
bind = "127.0.0.1:%[3]d"
peers = [%[4]s]
secret_file = %[5]q
`, name, prio, port, peers, secret)), name+".toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	start := func(h string, cfg *conf.Config) (*components, *syncBuffer) { return startComponents(t, l, h, cfg, nil) }
	c1, logs1 := start("r1", parse("r1", 150, p1, ""))
	c2, logs2 := start("r2", parse("r2", 100, p2, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", p1))))
	if c1.cluster == nil || c2.cluster == nil {
		t.Fatalf("cluster not running: %v / %v", c1.notRunningSnapshot(), c2.notRunningSnapshot())
	}
	wait := func(what string, ok func(cluster.View) bool) {
		t.Helper()
		for _, c := range []*components{c1, c2} {
			poll.Until(t, 15*time.Second, what, func() (bool, any) {
				v := c.cluster.View()
				return ok(v), v
			}, logs1.String, logs2.String)
		}
	}
	states := func(v cluster.View) string {
		var out []string
		for _, m := range v.Members {
			for _, in := range m.VRRP {
				out = append(out, m.Name+"/"+in.Name+"="+in.State)
			}
		}
		return strings.Join(out, " ")
	}
	wait("both see r1 master, r2 backup, no problem", func(v cluster.View) bool {
		return states(v) == "r1/vi=master r2/vi=backup" && len(v.Problems) == 0
	})
	if err := l.Host("r2").Link("eth0").Detach(); err != nil {
		t.Fatal(err)
	}
	const split = "split brain: vrid 42 (IPv4) is master on r1/vi and r2/vi"
	wait("both report the split brain", func(v cluster.View) bool {
		return len(v.Problems) == 1 && v.Problems[0] == split
	})
	waitFor(t, logs1, `level=ERROR msg="cluster: `+split+`"`, 1)
	if err := l.Host("r2").Link("eth0").Attach(); err != nil {
		t.Fatal(err)
	}
	wait("split brain over", func(v cluster.View) bool {
		return states(v) == "r1/vi=master r2/vi=backup" && len(v.Problems) == 0
	})
	waitFor(t, logs2, `msg="cluster: resolved: `+split+`"`, 1)
}
