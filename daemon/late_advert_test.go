package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// TestReloadAddsNoLateAdvert: while the daemon's loop is busy, with a
// reload of 1,000 virtual servers × 10 real servers (conf.Compile, the
// director's model, the health targets and the cluster's config hashes:
// 110 to 140 ms under the race detector on the test machine) or held
// outright for as long as 60 adverts take, a master advertising every
// 10 ms sends no late advert. The master keeps changing state meanwhile (a
// track script flips it between Fault and Master): a transition is where
// the old glue made the VRRP goroutine wait for the reload (its
// OnStateChange took the lock the reload held to compute the hashes, then
// 53 ms at this size), so the advert after a takeover came when the
// reload was done; with that glue the held loop stops the adverts. The adverts
// are timed on the wire, as gaps between two adverts of one mastership.
//
// Late is more than maxGap: far past the point where a backup takes over
// (three intervals and the skew), so this is no timing test of the host,
// whose scheduling noise on a loaded two-core test machine reaches about
// 110 ms under the race detector; a VRRP goroutine waiting on the loop
// shows the loop's whole busy time (over a second when held).
func TestReloadAddsNoLateAdvert(t *testing.T) {
	const interval = 10 * time.Millisecond
	const maxGap = 15 * interval
	l := lab.RoutersT(t, "haldir-late", 1)
	obs, err := l.Switch("lan").ObserveWith(lab.ObserverConfig{Capacity: 1 << 16, Keep: func(r lab.Record) bool { return r.Kind == lab.KindVRRP }})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	secret := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flip := filepath.Join(t.TempDir(), "flip")
	head := fmt.Sprintf(`
[global]
router_id = "a"

[cluster]
bind = "127.0.0.1:%d"
secret_file = %q

[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = 150
advert_interval = "10ms"
virtual_addresses = ["192.0.2.1/24"]
track_script = [{ name = "flip", command = ["/bin/sh", "-c", "if [ -e %[3]s ]; then rm %[3]s; exit 1; fi; touch %[3]s"], interval = "150ms", rise = 1, fall = 1 }]
`, freePort(t), secret, flip)
	virtualServers := func(n, reals int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "\n[[virtual_server]]\nname = \"vs%d\"\naddress = \"10.%d.%d.1\"\nport = 80\n", i, 100+i/250, i%250)
			for j := range reals {
				fmt.Fprintf(&b, "\n[[virtual_server.real_server]]\naddress = \"10.%d.%d.%d\"\nport = 8080\n", 100+i/250, i%250, 10+j)
			}
		}
		return b.String()
	}
	small := mustParse(t, head+virtualServers(1, 1))
	big := mustParse(t, head+virtualServers(1000, 10))
	c, logs := startComponents(t, l, "r1", small, ipvstest.New())

	// gaps returns the longest gap between two adverts of one mastership
	// (priority 150, no resignation in between) in the records after seq
	// from up to seq to, and how many adverts it saw.
	gaps := func(from, to uint64) (worst time.Duration, at time.Time, n int) {
		var last time.Time
		for _, r := range obs.RecordsBetween(from, to, func(r lab.Record) bool { return r.Kind == lab.KindVRRP }) {
			if r.VRRP.Priority == 0 {
				last = time.Time{} // resigned: the next advert starts a mastership
				continue
			}
			n++
			if !last.IsZero() && r.Time.Sub(last) > worst {
				worst, at = r.Time.Sub(last), r.Time
			}
			last = r.Time
		}
		return worst, at, n
	}
	// Two masterships and a resignation before measuring anything.
	deadline := time.Now().Add(10 * time.Second)
	for resigned := 0; resigned < 2; {
		resigned = 0
		for _, r := range obs.Records() {
			if r.Kind == lab.KindVRRP && r.VRRP.Priority == 0 {
				resigned++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance never flipped between master and fault:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// waitAdverts polls until n adverts came after seq and returns the
	// last one's seq.
	waitAdverts := func(after uint64, n int) uint64 {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			rs := obs.RecordsBetween(after, obs.LastSeq(), func(r lab.Record) bool { return r.Kind == lab.KindVRRP })
			if len(rs) >= n {
				return rs[n-1].Seq
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d adverts after seq %d, want %d", len(rs), after, n)
			}
			time.Sleep(interval)
		}
	}
	// The baseline: as many adverts without a reload.
	base := obs.LastSeq()
	baseWorst, _, baseN := gaps(base, waitAdverts(base, 100))

	// The loop held as long as a slow reload holds it: the instance's
	// transitions (queued for the loop) must not hold its adverts.
	release := make(chan struct{})
	unhold := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unhold) // before the loop's own cleanup, also on failure
	held := make(chan struct{})
	go c.call(func() { close(held); <-release })
	<-held
	heldSeq := obs.LastSeq()
	heldWorst, heldAt, heldN := gaps(heldSeq, waitAdverts(heldSeq, 60))
	unhold()
	t.Logf("loop held: longest advert gap within a mastership %v (%d adverts)", heldWorst, heldN)
	if heldWorst > maxGap {
		t.Errorf("with the loop held, an advert came %v after the one before (at %v), want at most %v", heldWorst, heldAt.Format("15:04:05.000"), maxGap)
	}

	seq := obs.LastSeq()
	start := time.Now()
	if err := c.reloadOnLoop(small, big); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The adverts the reload overlapped, and the two after it.
	worst, at, n := gaps(seq, waitAdverts(obs.LastSeq(), 2))
	t.Logf("reload of 1000×10 took %v; longest advert gap within a mastership during it %v (%d adverts); baseline without a reload %v (%d adverts)",
		took, worst, n, baseWorst, baseN)
	if n == 0 {
		t.Fatalf("no advert while the reload ran for %v", took)
	}
	if worst > maxGap {
		t.Errorf("an advert came %v after the one before (at %v, %v into the reload), want at most %v",
			worst, at.Format("15:04:05.000"), at.Sub(start), maxGap)
	}
}
