package vrrp_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// BenchmarkFailover measures takeover latency, haldir against keepalived
// 2.2.7 in the same run and the same lab layout: a pair with priorities 200
// and 100, VRRPv3 over IPv4 with a 100ms advert interval. Each round
// measures from the event to the VIP appearing on the backup (polled every
// millisecond through netlink):
//
//   - graceful: the master is stopped (SIGTERM / context cancel) and sends
//     priority 0, so the backup should take over after Skew_Time (~61ms);
//   - hard: the master's cable is cut; its peer must wait out
//     Master_Down_Interval (~361ms).
//
// Run: go test -run XXX -bench Failover -benchtime 1x ./vrrp (as root).
func BenchmarkFailover(b *testing.B) {
	lab.SkipIfNotRoot(b)
	if _, err := exec.LookPath("keepalived"); err != nil {
		b.Skip("skipping: keepalived not installed")
	}
	const rounds = 7
	type row struct {
		scenario, tool string
		d              []time.Duration
	}
	var rows []row
	for b.Loop() {
		rows = rows[:0]
		for _, scenario := range []string{"graceful", "hard"} {
			for _, tool := range []string{"haldir", "keepalived"} {
				var d []time.Duration
				b.Run(scenario+"-"+tool, func(b *testing.B) {
					d = measureFailover(b, tool, scenario, rounds)
				})
				rows = append(rows, row{scenario, tool, d})
			}
		}
	}
	median := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-9s %-11s %6s %10s %10s %10s %8s\n", "scenario", "tool", "rounds", "min", "median", "max", "ratio")
	for i, r := range rows {
		if len(r.d) == 0 {
			continue
		}
		ref := median(rows[i-i%2+1].d) // keepalived row of the same scenario
		ratio := "-"
		if ref > 0 {
			ratio = fmt.Sprintf("%.2f", float64(median(r.d))/float64(ref))
		}
		fmt.Fprintf(&sb, "%-9s %-11s %6d %10v %10v %10v %8s\n", r.scenario, r.tool, len(r.d),
			slices.Min(r.d).Round(time.Millisecond), median(r.d).Round(time.Millisecond), slices.Max(r.d).Round(time.Millisecond), ratio)
	}
	fmt.Fprint(os.Stdout, sb.String())
}

// pairMember is one side of a measured pair, haldir or keepalived.
type pairMember struct {
	start  func()
	signal func() // SIGTERM, without waiting for the exit
	stop   func() // SIGTERM and wait for the exit
	vip    func() bool
}

func measureFailover(b *testing.B, tool, scenario string, rounds int) []time.Duration {
	l := buildLAN(b, 2)
	member := func(h *lab.Host, prio int) *pairMember {
		m := &pairMember{}
		switch tool {
		case "haldir":
			var r *router
			m.start = func() { r = startRouter(b, h, instanceConfig("vi", prio, v4)); r.vip = v4.vip }
			m.signal = func() { r.cancel() }
			m.stop = func() { r.stop() }
			m.vip = func() bool { return r.hasVIP() }
		default:
			var k *keepalived
			m.start = func() { k = startKeepalived(b, h, 3, fast, prio, v4) }
			m.signal = func() { _ = k.proc.Signal(syscall.SIGTERM) }
			m.stop = func() { k.stop() }
			m.vip = func() bool { return k.vip() }
		}
		return m
	}
	master, backup := member(l.Host("r2"), 200), member(l.Host("r1"), 100)
	backup.start()
	master.start()
	link := l.Host("r2").Link(lanIf)
	var out []time.Duration
	for range rounds {
		waitFor(b, "master holds the VIP alone", settle, func() bool { return master.vip() && !backup.vip() })
		// Let the pair settle on the master's adverts before the event.
		time.Sleep(5 * fast)
		start := time.Now()
		if scenario == "graceful" {
			master.signal()
		} else if err := link.Cut(); err != nil {
			b.Fatal(err)
		}
		for !backup.vip() {
			if time.Since(start) > settle {
				b.Fatalf("%s %s: backup did not take over", tool, scenario)
			}
			time.Sleep(time.Millisecond)
		}
		out = append(out, time.Since(start))
		if scenario == "graceful" {
			master.stop()
			master.start()
		} else if err := link.Restore(); err != nil {
			b.Fatal(err)
		}
	}
	master.stop()
	backup.stop()
	return out
}
