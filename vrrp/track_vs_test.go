package vrrp

import (
	"slices"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// TestTrackVirtualServerCombination combines a tracked interface, a tracked
// script and two tracked virtual servers as reported by the director,
// including the state before any report.
func TestTrackVirtualServerCombination(t *testing.T) {
	type report struct {
		name string
		up   bool
	}
	cases := []struct {
		name    string
		iface   bool // interface failing
		script  bool // script failing
		reports []report
		want    EvTracking
	}{
		{"nothing reported yet counts as lost", false, false, nil, EvTracking{Fault: true, Delta: -50, Cause: "track_virtual_server db down (fault)"}},
		{"both up", false, false, []report{{"web", true}, {"db", true}}, EvTracking{}},
		{"web lost", false, false, []report{{"web", false}, {"db", true}}, EvTracking{Delta: -50}},
		{"db lost is fault", false, false, []report{{"web", true}, {"db", false}}, EvTracking{Fault: true, Cause: "track_virtual_server db down (fault)"}},
		{"web lost with a failing script", false, true, []report{{"web", false}, {"db", true}}, EvTracking{Delta: -70}},
		{"last report wins", false, false, []report{{"web", false}, {"db", true}, {"web", true}}, EvTracking{}},
		{"untracked name ignored", false, false, []report{{"web", true}, {"db", true}, {"other", false}}, EvTracking{}},
		{"interface fault with web up", true, false, []report{{"web", true}, {"db", true}}, EvTracking{Fault: true, Cause: "interface eth1 down (fault)"}},
		{"interface and db both fault", true, false, []report{{"web", true}, {"db", false}}, EvTracking{Fault: true, Cause: "interface eth1 down (fault); track_virtual_server db down (fault)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := goodInstance()
			c.TrackVirtualSrvs = []conf.TrackVS{{Name: "web", Weight: -50}, {Name: "db", Weight: 0}}
			in := NewInstance(specOf(c), Options{})
			// The items as NewInstance's Run builds them: the fault's Cause
			// names them.
			tr := tracking{
				ifaceKey("eth1"):                         {weight: 0, failing: tc.iface, desc: "interface eth1", down: "down"},
				{kind: trackScript, name: "x", index: 0}: {weight: -20, failing: tc.script, desc: "track_script x", down: "failing"},
			}
			for _, v := range c.TrackVirtualSrvs {
				tr[trackKey{kind: trackVS, name: v.Name}] = &trackItem{weight: v.Weight, desc: "track_virtual_server " + v.Name, down: "down"}
			}
			for _, r := range tc.reports {
				in.SetVirtualServerUp(r.name, r.up)
			}
			in.vs.apply(tr)
			if got := tr.event(); got != tc.want {
				t.Fatalf("tracking %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSetVirtualServerUpNeverBlocks reports many times with nobody running
// the instance: the reports coalesce into one pending wake-up.
func TestSetVirtualServerUpNeverBlocks(t *testing.T) {
	c := goodInstance()
	c.TrackVirtualSrvs = []conf.TrackVS{{Name: "web", Weight: -50}}
	in := NewInstance(specOf(c), Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			in.SetVirtualServerUp("web", i%2 == 0)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SetVirtualServerUp blocked")
	}
	if n := len(in.vs.kick); n != 1 {
		t.Fatalf("%d pending wake-ups, want 1", n)
	}
	tr := tracking{{kind: trackVS, name: "web"}: {weight: -50}}
	in.vs.apply(tr)
	if ev := tr.event(); ev != (EvTracking{Delta: -50}) {
		t.Fatalf("after the last report (lost): %+v", ev)
	}
}

func TestTrackingFailingNames(t *testing.T) {
	tr := tracking{
		ifaceKey("eth0"): {failing: false, desc: "interface eth0", down: "down"},
		ifaceKey("eth1"): {failing: true, desc: "track_interface eth1", down: "down"},
		{kind: trackScript, name: "chk", index: 0}:   {failing: true, weight: -10, desc: "track_script chk", down: "failing"},
		{kind: trackScript, name: "other", index: 1}: {failing: false, desc: "track_script other", down: "failing"},
		{kind: trackVS, name: "web"}:                 {failing: true, weight: -50, desc: "track_virtual_server web", down: "down"},
		{kind: trackVS, name: "db"}:                  {failing: false, desc: "track_virtual_server db", down: "down"},
		keySource:                                    {failing: true, desc: "advert source", down: "unusable", reason: "unicast_source 10.0.0.1 is not an address of eth0"},
	}
	got := tr.failing()
	want := []string{"track_interface eth1 down (fault)", "track_script chk failing -10", "track_virtual_server web down -50",
		"unicast_source 10.0.0.1 is not an address of eth0 (fault)"}
	if !slices.Equal(got, want) {
		t.Fatalf("failing() = %q, want %q", got, want)
	}
}
