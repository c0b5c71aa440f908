package daemon

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
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
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

// clusterLab is a namespace lab of two routers whose directors gossip over
// loopback with a shared key.
type clusterLab struct {
	l      *lab.Lab
	secret string
	ports  [2]int
}

func newClusterLab(t *testing.T, name string) *clusterLab {
	t.Helper()
	cl := &clusterLab{l: lab.RoutersT(t, name, 2), secret: filepath.Join(t.TempDir(), "gossip.key"), ports: [2]int{freePort(t), freePort(t)}}
	if err := os.WriteFile(cl.secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cl
}

// config is director i's (0: r1, 1: r2) configuration: instance vi at
// prio, r2 joining through r1.
func (cl *clusterLab) config(t *testing.T, i, prio int) *conf.Config {
	t.Helper()
	name, peers := fmt.Sprintf("r%d", i+1), ""
	if i == 1 {
		peers = fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", cl.ports[0]))
	}
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
`, name, prio, cl.ports[i], peers, cl.secret)), name+".toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestClusterSeesSplitBrain runs two directors whose VRRP network is
// silently partitioned (r2's port detached from the switch, carrier up)
// while their cluster gossip (on loopback, a management network) still
// works: both become master, and both report the split brain, by name,
// until the partition heals.
func TestClusterSeesSplitBrain(t *testing.T) {
	cl := newClusterLab(t, "haldir-cluster")
	l := cl.l
	start := func(h string, cfg *conf.Config) (*Daemon, *syncBuffer) { return startComponents(t, l, h, cfg, nil) }
	c1, logs1 := start("r1", cl.config(t, 0, 150))
	c2, logs2 := start("r2", cl.config(t, 1, 100))
	if c1.cluster == nil || c2.cluster == nil {
		t.Fatalf("cluster not running: %v / %v", c1.notRunningOnLoop(), c2.notRunningOnLoop())
	}
	wait := func(what string, ok func(cluster.View) bool) {
		t.Helper()
		for _, c := range []*Daemon{c1, c2} {
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

// pair is the two directors of a cluster lab running "vi": r1 at
// priority 150, master, and r2 at 100, backup.
type pair struct {
	cl           *clusterLab
	c1, c2       *Daemon
	logs1, logs2 *syncBuffer
}

// startPair starts both and waits for r1 master and r2 backup.
func startPair(t *testing.T, name string) *pair {
	t.Helper()
	p := &pair{cl: newClusterLab(t, name)}
	p.c1, p.logs1 = startComponents(t, p.cl.l, "r1", p.cl.config(t, 0, 150), nil)
	p.c2, p.logs2 = startComponents(t, p.cl.l, "r2", p.cl.config(t, 1, 100), nil)
	p.state(t, p.c1, "r1 master", vrrp.StateMaster)
	p.state(t, p.c2, "r2 backup", vrrp.StateBackup)
	return p
}

// state waits for c's "vi" to be in s.
func (p *pair) state(t *testing.T, c *Daemon, what string, s vrrp.State) {
	t.Helper()
	logs := p.logs1
	if c == p.c2 {
		logs = p.logs2
	}
	poll.Until(t, 15*time.Second, what, func() (bool, any) {
		st := c.vrrp.Instance("vi").Status()
		return st.State == s, st
	}, logs.String)
}

// preflightGo waits until r1's pre-flight of a drill of kind finds
// nothing wrong.
func (p *pair) preflightGo(t *testing.T, kind string) {
	t.Helper()
	poll.Until(t, 15*time.Second, "pre-flight on r1 finds nothing wrong", func() (bool, any) {
		reply, err := p.c1.Drill(control.DrillRequest{Kind: kind})
		return err == nil && reply.Go, reply
	}, p.logs1.String)
}
