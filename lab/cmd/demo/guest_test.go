package main

import (
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// TestConfigValid keeps the demo's generated configuration in step with the
// loader: a schema change that breaks it fails here, not in the VM.
func TestConfigValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		prio int
	}{{"director1", 150}, {"director2", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := conf.Parse([]byte(config(tc.name, tc.prio, "/run/haldir-demo")), tc.name+".toml")
			if err != nil {
				t.Fatalf("demo config does not load: %v", err)
			}
			if len(c.VRRP) != 2 || len(c.VRRPSyncGroups) != 1 || len(c.VirtualServers) != 1 {
				t.Fatalf("want 2 vrrp instances, 1 sync group, 1 virtual server; got %d, %d, %d", len(c.VRRP), len(c.VRRPSyncGroups), len(c.VirtualServers))
			}
			for _, v := range c.VRRP {
				if v.Priority != tc.prio || v.AdvertInterval.D() != 100*time.Millisecond {
					t.Errorf("vrrp %s: priority %d interval %v, want %d and 100ms", v.Name, v.Priority, v.AdvertInterval.D(), tc.prio)
				}
			}
			vs := c.VirtualServers[0]
			if len(vs.RealServers) != 3 {
				t.Fatalf("%d real servers, want 3", len(vs.RealServers))
			}
			for _, rs := range vs.RealServers {
				if rs.Check == nil || rs.Check.Type != "http" || rs.Check.Timeout.D() > rs.Check.Interval.D() {
					t.Errorf("real server %v: effective check %+v, want http with timeout <= interval", rs.Address, rs.Check)
				}
			}
		})
	}
}

func TestOutage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(start, end int) sample { return sample{start: at(start), end: at(end), ok: true} }
	bad := func(start, end int) sample { return sample{start: at(start), end: at(end)} }
	for _, tc := range []struct {
		name     string
		ss       []sample
		cut      int
		want     time.Duration
		measured bool
	}{
		{"gap across the cut", []sample{ok(0, 5), ok(20, 25), bad(40, 340), bad(60, 360), ok(380, 390), ok(400, 405)}, 30, 365 * time.Millisecond, true},
		// A request that started before the cut and finished after it
		// shows the service up until it finished; it is not the first
		// success after the cut.
		{"straddling request", []sample{ok(0, 5), ok(20, 45), ok(60, 70)}, 30, 25 * time.Millisecond, true},
		{"no success after", []sample{ok(0, 5), bad(40, 340)}, 30, 0, false},
		{"no success before", []sample{bad(0, 300), ok(400, 405)}, 30, 0, false},
		{"order does not matter", []sample{ok(400, 405), ok(20, 25), ok(0, 5)}, 30, 380 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, measured := outage(tc.ss, at(tc.cut))
			if got != tc.want || measured != tc.measured {
				t.Errorf("outage = %v, %v; want %v, %v", got, measured, tc.want, tc.measured)
			}
		})
	}
}

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(end int) sample { return sample{start: at(end - 5), end: at(end), ok: true} }
	bad := func(end int) sample { return sample{start: at(end - 300), end: at(end)} }
	for _, tc := range []struct {
		name string
		ss   []sample
		from int
		want time.Duration
	}{
		{"gap after t", []sample{ok(0), ok(20), ok(40), bad(300), ok(500), ok(520)}, 30, 460 * time.Millisecond},
		// The gap spanning t counts: it starts at the last success before t.
		{"gap spanning t", []sample{ok(0), ok(200), ok(220)}, 100, 200 * time.Millisecond},
		{"gaps before t ignored", []sample{ok(0), ok(900), ok(920), ok(940)}, 910, 20 * time.Millisecond},
		{"no samples", nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := longestGap(tc.ss, at(tc.from)); got != tc.want {
				t.Errorf("longestGap = %v, want %v", got, tc.want)
			}
		})
	}
}
