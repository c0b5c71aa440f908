package cluster

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
)

// TestTakeOverRequest: a request reaches the named member's OnTakeOver;
// a director not in the cluster (or this one) is an error; a malformed
// message is dropped and counted.
func TestTakeOverRequest(t *testing.T) {
	key := bytes.Repeat([]byte{2}, 32)
	var mu sync.Mutex
	var got []TakeOverRequest
	start := func(name string, on func(TakeOverRequest), peers ...string) *Cluster {
		t.Helper()
		c := conf.Cluster{Name: name, Bind: netip.MustParseAddrPort("127.0.0.1:0"), Peers: peers}
		cl, err := JoinCluster(c, key, NodeState{}, ClusterOptions{Logger: quiet, Fast: true, OnTakeOver: on})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Leave(time.Second) })
		return cl
	}
	a := start("a", nil)
	b := start("b", func(r TakeOverRequest) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}, a.ml.LocalNode().Address())
	waitView(t, "b joined", a, func(v View) bool { return len(v.Members) == 2 })
	want := TakeOverRequest{From: "a", Instance: "vi", Window: 2 * time.Second, Reason: "haldir handoff"}
	if err := a.SendTakeOver("b", want); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 5*time.Second, "b receives the request", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1 && got[0] == want
	})
	for _, to := range []string{"c", "a"} {
		if err := a.SendTakeOver(to, want); err == nil {
			t.Errorf("a request to %s was sent", to)
		}
	}
	deliver(b, []byte{msgTakeOver, '{', '}'})
	if v := b.View(); v.Malformed != 1 {
		t.Errorf("malformed requests counted %d, want 1", v.Malformed)
	}
}

// deliver hands b to cl as memberlist would.
func deliver(cl *Cluster, b []byte) { (*delegate)(cl).NotifyMsg(b) }
