package cluster

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/haldir-lb/haldir/conf"
)

// TestClockEstimate: an ack's stamp and round trip give the peer's
// offset, and of several probes the one with the shortest round trip
// counts; an ack without a stamp is ignored.
func TestClockEstimate(t *testing.T) {
	cl := &Cluster{}
	p := (*pingDelegate)(cl)
	node := &memberlist.Node{Name: "d2"}
	stamp := func(ahead time.Duration) []byte {
		return binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(ahead).UnixNano()))
	}
	p.NotifyPingComplete(node, time.Millisecond, []byte{1, 2})
	if cl.clockOf("d2") != nil {
		t.Fatal("an ack without a stamp made an estimate")
	}
	for _, c := range []struct {
		ahead, rtt time.Duration
	}{{5 * time.Second, 40 * time.Millisecond}, {5*time.Second + 2*time.Millisecond, 2 * time.Millisecond}, {5 * time.Second, 30 * time.Millisecond}} {
		p.NotifyPingComplete(node, c.rtt, stamp(c.ahead))
	}
	e := cl.clockOf("d2")
	// The 2 ms probe: 5.002 s ahead at stamping, plus half its round trip.
	if e == nil || e.RTT != 2*time.Millisecond || (e.Offset-(5*time.Second+3*time.Millisecond)).Abs() > time.Millisecond {
		t.Fatalf("estimate %+v, want 5.003 s over a 2 ms round trip", e)
	}
	for range clockSamples {
		p.NotifyPingComplete(node, 10*time.Millisecond, stamp(-time.Second))
	}
	if e := cl.clockOf("d2"); e.RTT != 10*time.Millisecond || (e.Offset-(-time.Second+5*time.Millisecond)).Abs() > time.Millisecond {
		t.Fatalf("after %d newer probes: %+v, want the old ones forgotten", clockSamples, e)
	}
}

// TestClusterClocks: two directors on one host see each other's clock
// within a few milliseconds, from memberlist's probes.
func TestClusterClocks(t *testing.T) {
	a, b := startTwo(t, ClusterOptions{Version: "test", Logger: quiet, Fast: true})
	for _, cl := range []*Cluster{a, b} {
		waitView(t, "the other's clock estimated", cl, func(v View) bool {
			for _, m := range v.Members {
				if !m.Self && m.Clock != nil {
					return m.Clock.Offset.Abs() < 20*time.Millisecond && m.Clock.RTT > 0
				}
			}
			return false
		})
	}
}

// startTwo starts directors a and b on loopback, b joining a, with o.
func startTwo(t *testing.T, o ClusterOptions) (a, b *Cluster) {
	t.Helper()
	key := bytes.Repeat([]byte{1}, 32)
	start := func(name string, peers ...string) *Cluster {
		t.Helper()
		c := conf.Cluster{Name: name, Bind: netip.MustParseAddrPort("127.0.0.1:0"), Peers: peers}
		cl, err := JoinCluster(c, key, NodeState{}, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Leave(time.Second) })
		return cl
	}
	a = start("a")
	return a, start("b", a.ml.LocalNode().Address())
}
