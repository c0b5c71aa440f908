package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestPlannedHandoff runs two directors with a cluster: haldir handoff on
// the master (150) moves the VIP to the backup (100) make-before-break,
// the VIP sampled every millisecond on both hosts is never missing, and
// the old master stays backup under the lower one; refusals name what is
// wrong and change nothing; a handoff whose target's VRRP is gone leaves
// the old master master and says so.
func TestPlannedHandoff(t *testing.T) {
	p := startPair(t, "haldir-handoff")
	cl, c1, c2, logs1, logs2 := p.cl, p.c1, p.c2, p.logs1, p.logs2
	if c1.cluster == nil || c2.cluster == nil {
		t.Fatalf("cluster not running: %v / %v", c1.notRunningOnLoop(), c2.notRunningOnLoop())
	}
	state := func(c *Daemon, _ *syncBuffer, what string, s vrrp.State) { t.Helper(); p.state(t, c, what, s) }
	poll.Until(t, 15*time.Second, "r1's view: r2 backup of vi with its advert source", func() (bool, any) {
		v := c1.cluster.View()
		for _, m := range v.Members {
			if m.Name == "r2" && len(m.VRRP) == 1 && m.VRRP[0].State == "backup" && m.VRRP[0].Source.IsValid() {
				return true, m
			}
		}
		return false, v.Members
	}, logs1.String)

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			req  control.HandoffRequest
			want string
		}{
			{control.HandoffRequest{To: "r9"}, "no director r9 in the cluster view"},
			{control.HandoffRequest{Instances: []string{"nosuch"}}, `no VRRP instance "nosuch"`},
			{control.HandoffRequest{Timeout: "1h"}, "want a duration from 100ms"},
		} {
			_, err := c1.Handoff(tc.req)
			if _, ok := err.(*control.RequestError); !ok || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want a request error with %q", tc.req, err, tc.want)
			}
		}
		if _, err := c2.Handoff(control.HandoffRequest{}); err == nil || !strings.Contains(err.Error(), "masters no VRRP instance") {
			t.Errorf("a backup's handoff: %v", err)
		}
		state(c1, logs1, "r1 still master", vrrp.StateMaster)
	})

	t.Run("make-before-break", func(t *testing.T) {
		var samples, none atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		vip := netip.MustParsePrefix("192.0.2.1/24")
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				held := false
				for _, h := range []*lab.Host{cl.l.Host("r1"), cl.l.Host("r2")} {
					if a, err := h.Addrs("eth0"); err == nil && slices.Contains(a, vip) {
						held = true
					}
				}
				samples.Add(1)
				if !held {
					none.Add(1)
				}
			}
		}()
		reply, err := c1.Handoff(control.HandoffRequest{Reason: "test"})
		if err != nil || len(reply.Results) != 1 {
			t.Fatalf("handoff: %+v, %v", reply, err)
		}
		r := reply.Results[0]
		if !r.OK || r.To != "r2" || r.Method != "make-before-break" || r.Instance != "vi" {
			t.Fatalf("result %+v", r)
		}
		state(c2, logs2, "r2 master", vrrp.StateMaster)
		// Well past Master_Down_Interval (0.34 s): r1 (150) holds back
		// under r2, sampled throughout.
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if s1, s2 := c1.vrrp.Instance("vi").Status(), c2.vrrp.Instance("vi").Status(); s1.State != vrrp.StateBackup || s2.State != vrrp.StateMaster {
				t.Fatalf("after the handoff: r1 %v, r2 %v; want backup and master", s1.State, s2.State)
			}
		}
		close(stop)
		<-done
		if st := c1.vrrp.Instance("vi").Status(); st.State != vrrp.StateBackup || !st.Yielded {
			t.Errorf("r1 after the handoff: %+v, want backup, yielded", st)
		}
		if n := none.Load(); n != 0 {
			t.Errorf("the VIP was on neither host in %d of %d samples", n, samples.Load())
		}
		t.Logf("handoff in %.1f ms; VIP sampled %d times at 1 ms, never missing", r.Millis, samples.Load())
	})

	t.Run("target's VRRP gone", func(t *testing.T) {
		// Back to r1: r2 hands over the same way.
		if reply, err := c2.Handoff(control.HandoffRequest{}); err != nil || !reply.Results[0].OK {
			t.Fatalf("handing back: %+v, %v", reply, err)
		}
		state(c1, logs1, "r1 master again", vrrp.StateMaster)
		poll.Until(t, 15*time.Second, "r1's view: r2 backup again", func() (bool, any) {
			v := c1.cluster.View()
			i := slices.IndexFunc(v.Members, func(m cluster.Member) bool { return m.Name == "r2" })
			return i >= 0 && len(v.Members[i].VRRP) == 1 && v.Members[i].VRRP[0].State == "backup", v.Members
		}, logs1.String)
		c2.call(c2.vrrp.Stop) // the cluster still says backup: it is not told
		reply, err := c1.Handoff(control.HandoffRequest{Timeout: "500ms"})
		if err != nil || len(reply.Results) != 1 {
			t.Fatalf("handoff: %+v, %v", reply, err)
		}
		if r := reply.Results[0]; r.OK || !strings.Contains(r.Reason, "r2 did not take over within 500ms") {
			t.Fatalf("result %+v, want a failure naming r2", r)
		}
		st := c1.vrrp.Instance("vi").Status()
		if st.State != vrrp.StateMaster {
			t.Fatalf("r1 %+v, want master", st)
		}
		if addrs, _ := cl.l.Host("r1").Addrs("eth0"); !slices.Contains(addrs, netip.MustParsePrefix("192.0.2.1/24")) {
			t.Fatalf("r1 lost the VIP: %v", addrs)
		}
	})
}
