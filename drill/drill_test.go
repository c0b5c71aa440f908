package drill

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// fit is a master whose peer backs it up: nothing to refuse.
func fit() control.Status {
	return control.Status{
		VRRP: []vrrp.Status{{Name: "vi", State: vrrp.StateMaster, Priority: 150}},
		Cluster: &cluster.View{Members: []cluster.Member{
			{NodeState: cluster.NodeState{Name: "d1", VRRP: []cluster.InstanceState{{Name: "vi", VRID: 42, Family: 4, State: "master"}}}, Status: "alive", Self: true},
			{NodeState: cluster.NodeState{Name: "d2", VRRP: []cluster.InstanceState{{Name: "vi", VRID: 42, Family: 4, State: "backup"}}}, Status: "alive"},
		}},
	}
}

// syncing gives the fit pair conn sync: this director's master daemon
// with conns, the peer in role with peerConns.
func syncing(s *control.Status, conns uint64, role string, peerConns uint64) {
	s.Sync = &connsync.Status{Running: []ipvs.SyncDaemon{{State: ipvs.SyncMaster}}, Want: ipvs.SyncDaemon{State: ipvs.SyncMaster}}
	s.Cluster.Members[0].Sync = &cluster.ConnSync{Role: "master", Conns: conns}
	s.Cluster.Members[1].Sync = &cluster.ConnSync{Role: role, Conns: peerConns}
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*control.Status)
		want []string // substrings, one per refusal
	}{
		{"fit", func(*control.Status) {}, nil},
		{"no cluster", func(s *control.Status) { s.Cluster = nil }, []string{"no [cluster]"}},
		{"not master", func(s *control.Status) { s.VRRP[0].State = vrrp.StateBackup }, []string{"masters no VRRP instance"}},
		{"in maintenance", func(s *control.Status) { s.Maintenance = &control.Maintenance{Reason: "x"} }, []string{"in maintenance"}},
		{"peer gone", func(s *control.Status) { s.Cluster.Members[1].Status = "gone" }, []string{"director d2 is gone", "no live director backs up vi (VRID 42)"}},
		{"peer in maintenance", func(s *control.Status) { s.Cluster.Members[1].Maintenance = true }, []string{"no live director backs up vi"}},
		{"peer master too", func(s *control.Status) { s.Cluster.Members[1].VRRP[0].State = "master" }, []string{"no live director backs up vi"}},
		{"split brain", func(s *control.Status) {
			s.Cluster.Problems = []string{"split brain: vrid 42 (IPv4) is master on d1/vi and d2/vi"}
		}, []string{"cluster: split brain"}},
		{"config drift", func(s *control.Status) { s.Cluster.Problems = []string{"config drift: vrrp differs"} }, []string{"cluster: config drift"}},
		{"quorum down", func(s *control.Status) { s.Services = []director.ServiceStatus{{Name: "web", QuorumUp: false}} }, []string{"virtual server web", "quorum lost"}},
		{"an instance in fault", func(s *control.Status) {
			s.VRRP = append(s.VRRP, vrrp.Status{Name: "vi6", State: vrrp.StateFault, Failing: []string{"interface eth0 down (fault)"}})
		}, []string{"vrrp vi6: "}},
		{"conn sync: this director's daemon not in its role", func(s *control.Status) {
			syncing(s, 120, "backup", 118)
			s.Sync.Running = []ipvs.SyncDaemon{{State: ipvs.SyncBackup}}
		}, []string{"conn sync: the kernel does not run the wanted master daemon"}},
		{"conn sync: the backup runs no backup daemon", func(s *control.Status) { syncing(s, 120, "none", 0) }, []string{"director d2 runs no backup sync daemon (none)"}},
		{"conn sync: the backup is not receiving", func(s *control.Status) { syncing(s, 120, "backup", 0) }, []string{"director d2 holds none of this director's 120 connections"}},
		{"conn sync: fit", func(s *control.Status) { syncing(s, 120, "backup", 117) }, nil},
		{"conn sync: the backup holds none of one service", func(s *control.Status) {
			syncing(s, 120, "backup", 100)
			s.Cluster.Members[0].Sync.Services = map[string]uint64{"TCP 192.0.2.1:80": 100, "TCP 192.0.2.1:443": 20, "FWM 5": 3}
			s.Cluster.Members[1].Sync.Services = map[string]uint64{"TCP 192.0.2.1:80": 100}
		}, []string{"director d2 holds none of this director's 20 connections of TCP 192.0.2.1:443"}},
		{"a component not running", func(s *control.Status) { s.NotRunning = map[string]string{"director": "no IPVS"} }, []string{"not running: director (no IPVS)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := fit()
			tc.edit(&st)
			got := Preflight(st, KindHandoff)
			joined := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(joined, w) {
					t.Errorf("refusals %q lack %q", got, w)
				}
			}
			if len(tc.want) == 0 && len(got) != 0 {
				t.Errorf("a fit pair refused: %q", got)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kind // "" for refused
	}{
		{"handoff", KindHandoff}, {"failover", KindFailover}, {"fault", KindFault},
		{"nosuch", ""}, {"", ""}, {"Handoff", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			k, err := ParseKind(tc.in)
			if k != tc.want || (err == nil) != (tc.want != "") {
				t.Errorf("ParseKind(%q) = %q, %v; want %q", tc.in, k, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "want handoff, failover or fault") {
				t.Errorf("ParseKind(%q): %v does not say what is wanted", tc.in, err)
			}
		})
	}
}

// TestStore: reports are kept, listed oldest first and shown; a corrupt
// file is an error naming it, and the others still list.
func TestStore(t *testing.T) {
	dir := Dir(t.TempDir())
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	var ids []string
	for i, v := range []string{VerdictPass, VerdictRefused} {
		r := Report{ID: NewID(t0.Add(time.Duration(i)*time.Minute), KindHandoff), Kind: KindHandoff, Director: "d1", Started: t0, Finished: t0.Add(50 * time.Millisecond), Verdict: v, Why: "w",
			Handoff:  []control.HandoffResult{{Instance: "vi", To: "d2", Method: "make-before-break", OK: true, Millis: 7.1}},
			Timeline: []Event{{At: t0.Add(5 * time.Millisecond), Director: "d1", What: "vi master -> backup"}}}
		if err := Save(dir, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	got, err := List(dir)
	if err != nil || len(got) != 2 || got[0].ID != ids[0] || got[1].Verdict != VerdictRefused {
		t.Fatalf("list: %+v, %v", got, err)
	}
	r, err := Load(dir, ids[0])
	if err != nil || r.Handoff[0].Millis != 7.1 {
		t.Fatalf("load: %+v, %v", r, err)
	}
	for _, want := range []string{"drill " + ids[0] + ": handoff on d1, PASS", "handoff vi -> d2 (make-before-break): moved in 7.1 ms", "+     5.0 ms  d1"} {
		if !strings.Contains(r.Text(), want) {
			t.Errorf("text lacks %q:\n%s", want, r.Text())
		}
	}
	if _, err := Load(dir, "../x"); err == nil {
		t.Error("a path was taken for an id")
	}
	bad := filepath.Join(dir, "20260101T000000.000Z-handoff.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = List(dir)
	if err == nil || !strings.Contains(err.Error(), bad) || len(got) != 2 {
		t.Fatalf("a corrupt report: %d listed, %v", len(got), err)
	}
	if !slices.IsSortedFunc(got, func(a, b Report) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("not sorted")
	}
}
