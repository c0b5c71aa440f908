package director

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// TestOverrideKeptAndRestored: an operator's weight (haldir drain) goes
// to the kernel with one write, is not reverted by a full pass that reads
// the kernel, outlives a reload that changes the server's configured
// weight and a dynamic weight from its check, follows health (removed
// while down, back at the override when up), counts in the quorum at its
// weight, and shows in the snapshot; removing it restores the configured
// weight with one write.
func TestOverrideKeptAndRestored(t *testing.T) {
	k := ipvstest.New()
	vs := webVS()
	key := mustKey(t, vs)
	a := netip.AddrPortFrom(rs1, 8080)
	r := newRec(t, k, cfgOf(vs))
	reconcile(t, r)

	steps := []struct {
		name    string
		do      func(t *testing.T)
		changes bool // a changes pass (as Run after a SetX), else a full one
		writes  []string
		check   func(t *testing.T, s ServiceStatus)
	}{
		{"drain", func(*testing.T) { r.SetOverrides([]Override{{Service: key, Real: a, Weight: 0}}) }, true,
			[]string{"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=0 fwd=nat"},
			func(t *testing.T, s ServiceStatus) {
				if rs := s.Reals[0]; !rs.Overridden || rs.OverrideWeight != 0 || rs.EffectiveWeight != 0 || rs.KernelWeight != 0 || rs.ConfiguredWeight != 10 {
					t.Errorf("snapshot %+v", rs)
				}
				if s.Reals[1].Overridden {
					t.Errorf("the other real server is overridden: %+v", s.Reals[1])
				}
				if s.AliveWeight != 20 {
					t.Errorf("alive weight %d, want 20 (the drained server adds nothing)", s.AliveWeight)
				}
			}},
		{"full pass keeps it", func(*testing.T) {}, false, nil, nil},
		{"reload changing its weight", func(t *testing.T) {
			vs.RealServers = slices.Clone(vs.RealServers)
			vs.RealServers[0].Weight = 50
			if err := r.SetConfig(specOf(cfgOf(vs))); err != nil {
				t.Fatal(err)
			}
		}, true, nil, func(t *testing.T, s ServiceStatus) {
			if rs := s.Reals[0]; rs.ConfiguredWeight != 50 || rs.KernelWeight != 0 {
				t.Errorf("snapshot %+v", rs)
			}
		}},
		{"dynamic weight", func(*testing.T) {
			r.SetHealth(Verdict{Service: key, Real: a, Up: true, Weight: 7, WeightSet: true})
		}, true, nil, nil},
		{"down", func(*testing.T) { r.SetHealth(Verdict{Service: key, Real: a, Up: false}) }, true,
			[]string{"del_destination tcp 192.0.2.10:80 198.51.100.1:8080"}, nil},
		{"up again", func(*testing.T) { r.SetHealth(Verdict{Service: key, Real: a, Up: true}) }, true,
			[]string{"new_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=0 fwd=nat"}, nil},
		{"another weight", func(*testing.T) { r.SetOverrides([]Override{{Service: key, Real: a, Weight: 3}}) }, true,
			[]string{"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=3 fwd=nat"},
			func(t *testing.T, s ServiceStatus) {
				if s.AliveWeight != 23 {
					t.Errorf("alive weight %d, want 23", s.AliveWeight)
				}
			}},
		{"the same again", func(*testing.T) { r.SetOverrides([]Override{{Service: key, Real: a, Weight: 3}}) }, true, nil, nil},
		{"undrain", func(*testing.T) { r.SetOverrides(nil) }, true,
			[]string{"update_destination tcp 192.0.2.10:80 198.51.100.1:8080 w=50 fwd=nat"},
			func(t *testing.T, s ServiceStatus) {
				if rs := s.Reals[0]; rs.Overridden || rs.EffectiveWeight != 50 {
					t.Errorf("snapshot %+v", rs)
				}
			}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			k.ResetWrites()
			st.do(t)
			var err error
			if st.changes {
				_, err = r.ReconcileChanges(context.Background())
			} else {
				_, err = r.Reconcile(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			wantOps(t, k.Writes(), st.writes...)
			if st.check != nil {
				st.check(t, r.Snapshot()[0])
			}
		})
	}
}
