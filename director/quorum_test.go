package director

import (
	"reflect"
	"testing"

	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// TestOnQuorumReportsChangesOnly walks a virtual server (weights 10+20,
// quorum 20) through losing and regaining its quorum and checks that the
// callback hears the first state and each change once, and forgets a
// virtual server dropped by a reload.
func TestOnQuorumReportsChangesOnly(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	vs.Quorum = 20
	key := mustKey(t, vs)
	var got []QuorumState
	r := New(k, Options{Logger: quiet(), OnQuorum: func(q QuorumState) { got = append(got, q) }})
	if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func()
		want []QuorumState
	}{
		{"first pass reports the state", func() {}, []QuorumState{{Name: "web", Service: key, Up: true, AliveWeight: 30, Quorum: 20}}},
		{"no change, no report", func() {}, nil},
		{"still above quorum", func() { health(t, r, vs, rs1, 8080, false) }, nil},
		{"below quorum", func() { health(t, r, vs, rs2, 8080, false) }, []QuorumState{{Name: "web", Service: key, Up: false, AliveWeight: 0, Quorum: 20}}},
		{"one back, still below", func() { health(t, r, vs, rs1, 8080, true) }, nil},
		{"quorum again", func() { health(t, r, vs, rs2, 8080, true) }, []QuorumState{{Name: "web", Service: key, Up: true, AliveWeight: 30, Quorum: 20}}},
		{"dropped by reload", func() {
			if err := r.SetConfig(specOf(cfgOf())); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"back again is reported again", func() {
			if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
				t.Fatal(err)
			}
		}, []QuorumState{{Name: "web", Service: key, Up: true, AliveWeight: 30, Quorum: 20}}},
	}
	for _, s := range steps {
		got = nil
		s.do()
		reconcile(t, r)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: reported %+v, want %+v", s.name, got, s.want)
		}
	}
}
