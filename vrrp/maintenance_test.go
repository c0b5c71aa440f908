package vrrp

import (
	"reflect"
	"testing"
)

// TestMaintenanceTracking: the maintenance item, while on, makes the
// tracking event Lowest (never a fault, never part of the delta, whatever
// else fails), describes itself with its reason, and its changes are
// counted under the cause "maintenance".
func TestMaintenanceTracking(t *testing.T) {
	var in maintInput
	tr := tracking{
		{kind: trackScript, name: "chk"}: {weight: -10, failing: true, desc: "track_script chk", down: "failing"},
	}
	in.apply(tr)
	before := tr.snapshot()
	for _, tc := range []struct {
		name    string
		on      bool
		reason  string
		ev      EvTracking
		failing []string
		changes []priorityCause
	}{
		{"on with a reason", true, "kernel upgrade", EvTracking{Lowest: true, Delta: -10},
			[]string{"maintenance on: kernel upgrade (priority 1)", "track_script chk failing -10"},
			[]priorityCause{{label: "maintenance", text: "maintenance on: kernel upgrade (priority 1)"}}},
		{"on without one", true, "", EvTracking{Lowest: true, Delta: -10},
			[]string{"maintenance on (priority 1)", "track_script chk failing -10"}, nil},
		{"off", false, "", EvTracking{Delta: -10},
			[]string{"track_script chk failing -10"},
			[]priorityCause{{label: "maintenance", text: "maintenance off"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in.set(tc.on, tc.reason)
			in.apply(tr)
			if ev := tr.event(); ev != tc.ev {
				t.Errorf("event %+v, want %+v", ev, tc.ev)
			}
			if f := tr.failing(); !reflect.DeepEqual(f, tc.failing) {
				t.Errorf("failing %q, want %q", f, tc.failing)
			}
			if c := tr.changes(before); !reflect.DeepEqual(c, tc.changes) {
				t.Errorf("changes %+v, want %+v", c, tc.changes)
			}
			before = tr.snapshot()
		})
	}
}
