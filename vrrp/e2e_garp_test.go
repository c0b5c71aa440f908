package vrrp_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// TestE2EGARPSchedule checks the announcement schedule: repeat frames per
// burst, a second burst after delay, refresh bursts while master, and
// silence once the instance stopped.
func TestE2EGARPSchedule(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 1)
			obs := observe(t, l)
			c := instanceConfig("vi", 100, f)
			c.GARP = conf.GARP{Repeat: 3, Delay: conf.Duration(300 * time.Millisecond), Refresh: conf.Duration(400 * time.Millisecond)}
			r := startRouter(t, l.Host("r1"), c)
			mac, err := r.h.HardwareAddr(lanIf)
			if err != nil {
				t.Fatal(err)
			}
			isGARP := func(rec lab.Record) bool {
				switch {
				case rec.ARP != nil:
					return rec.ARP.Gratuitous && rec.ARP.SenderIP == f.vip.Addr() && bytes.Equal(rec.ARP.SenderMAC, mac)
				case rec.NA != nil:
					return !rec.NA.Solicited && rec.NA.Target == f.vip.Addr() && bytes.Equal(rec.NA.TargetMAC, mac)
				}
				return false
			}
			garps := func() []time.Time {
				var out []time.Time
				for _, rec := range obs.Records() {
					if isGARP(rec) {
						out = append(out, rec.Time)
					}
				}
				return out
			}
			waitMaster(t, r, []*router{r})
			// First burst (3), delayed burst (3) at +0.3s, refreshes at
			// +0.7s and +1.1s (3 each): 12 frames by about 1.1s.
			waitFor(t, "12 announcements", settle, func() bool { return len(garps()) >= 12 })
			g := garps()
			first := g[0]
			for i := range 3 {
				if d := g[i].Sub(first); d > 150*time.Millisecond {
					t.Fatalf("frame %d of the first burst came %v after the first", i, d)
				}
			}
			if d := g[3].Sub(first); d < 250*time.Millisecond {
				t.Fatalf("second burst %v after the first, want the 300ms delay", d)
			}
			if d := g[6].Sub(g[3]); d < 350*time.Millisecond {
				t.Fatalf("first refresh %v after the delayed burst, want 400ms", d)
			}
			r.stop()
			n := len(garps())
			seq := obs.LastSeq()
			time.Sleep(time.Second) // a window in which a refresh would have shown up twice
			for _, rec := range obs.Records() {
				if rec.Seq > seq && isGARP(rec) {
					t.Fatalf("announcement after stop (had %d before)", n)
				}
			}
		})
	}
}
