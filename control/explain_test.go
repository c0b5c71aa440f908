package control

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

func TestWhyVRRP(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	peer := netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		name string
		in   vrrp.Status
		want string
	}{
		{"master alone", vrrp.Status{State: vrrp.StateMaster, Priority: 150, BasePriority: 150, LastChange: t0},
			"master with priority 150"},
		{"master hearing a lower advert after its takeover",
			vrrp.Status{State: vrrp.StateMaster, Priority: 150, BasePriority: 150, LastChange: t0,
				PeerAddr: peer, PeerPriority: 100, PeerSeen: t0.Add(time.Second)},
			"master with priority 150; last advert from another router: 10.0.0.2 advertises priority 100"},
		{"master: the advert before the takeover is history",
			vrrp.Status{State: vrrp.StateMaster, Priority: 150, BasePriority: 150, LastChange: t0,
				PeerAddr: peer, PeerPriority: 200, PeerSeen: t0.Add(-time.Second)},
			"master with priority 150"},
		{"backup under a higher master, lowered by tracking",
			vrrp.Status{State: vrrp.StateBackup, Priority: 140, BasePriority: 150, Preempt: true, MasterAddr: peer,
				PeerAddr: peer, PeerPriority: 145, Failing: []string{"track_script chk failing -10"}},
			"backup: master 10.0.0.2 advertises priority 145, above our priority 140 (configured 150; track_script chk failing -10)"},
		{"backup, tie", vrrp.Status{State: vrrp.StateBackup, Priority: 100, BasePriority: 100, MasterAddr: peer, PeerAddr: peer, PeerPriority: 100},
			"backup: master 10.0.0.2 advertises priority 100, equal to our priority 100; the higher address wins"},
		{"backup without preempt", vrrp.Status{State: vrrp.StateBackup, Priority: 200, BasePriority: 200, MasterAddr: peer, PeerAddr: peer, PeerPriority: 100},
			"backup: master 10.0.0.2 advertises priority 100, below our priority 200, and preempt is off"},
		{"backup preempting", vrrp.Status{State: vrrp.StateBackup, Priority: 200, BasePriority: 200, Preempt: true, MasterAddr: peer, PeerAddr: peer, PeerPriority: 100},
			"backup: master 10.0.0.2 advertises priority 100, below our priority 200: taking over (preempt, after preempt_delay)"},
		{"backup after a planned handoff to a lower master", vrrp.Status{State: vrrp.StateBackup, Priority: 200, BasePriority: 200, Preempt: true, Yielded: true, MasterAddr: peer, PeerAddr: peer, PeerPriority: 100},
			"backup: handed over in a planned handoff (haldir handoff); master 10.0.0.2 advertises priority 100; holding back preemption with our priority 200 until mastership moves again (haldir maintenance off, a handoff back, a failover)"},
		{"backup, no master heard", vrrp.Status{State: vrrp.StateBackup, Priority: 100, BasePriority: 100},
			"backup with priority 100; no master heard: takes over when the master-down timer expires"},
		{"fault from tracking", vrrp.Status{State: vrrp.StateFault, Priority: 100, BasePriority: 100,
			Failing: []string{"track_interface eth1 down (fault)", "track_script chk failing -10"}, LastReason: "tracking"},
			"fault: track_interface eth1 down"},
		{"fault, reason only", vrrp.Status{State: vrrp.StateFault, LastReason: "interface eth0 down"}, "fault: interface eth0 down"},
		{"init", vrrp.Status{State: vrrp.StateInit}, "init: not running (not started)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WhyVRRP(tc.in); got != tc.want {
				t.Errorf("WhyVRRP =\n %q\nwant\n %q", got, tc.want)
			}
		})
	}
}

// syncStatus is a director running role with conns connections held, in a
// cluster with the given other members.
func syncStatus(role ipvs.SyncState, conns uint32, others ...cluster.Member) Status {
	st := Status{Sync: &connsync.Status{Want: ipvs.SyncDaemon{State: role}},
		Services: []director.ServiceStatus{{Name: "web", QuorumUp: true,
			Reals: []director.RealStatus{{ActiveConns: conns / 2}, {InactiveConns: conns - conns/2}}}}}
	if role != 0 {
		st.Sync.Running = []ipvs.SyncDaemon{{State: role}}
	}
	if others != nil {
		st.Cluster = &cluster.View{Members: append([]cluster.Member{{NodeState: cluster.NodeState{Name: "self"}, Status: "alive", Self: true}}, others...)}
	}
	return st
}

// gossiped sets the count this director itself gossips.
func gossiped(st Status, conns uint64) Status {
	st.Cluster.Members[0].Sync = &cluster.ConnSync{Role: "backup", Conns: conns}
	return st
}

func member(name, status, role string, conns uint64) cluster.Member {
	return cluster.Member{NodeState: cluster.NodeState{Name: name, Sync: &cluster.ConnSync{Role: role, Conns: conns}}, Status: status}
}

func TestConnSyncReport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		st        Status
		receiving string
		summary   string
	}{
		{"backup receiving", syncStatus(ipvs.SyncBackup, 19, member("d1", "alive", "master", 20)),
			ReceivingYes, "backup: this director holds 19 connections, the master d1 20"},
		{"backup not receiving", syncStatus(ipvs.SyncBackup, 0, member("d1", "alive", "master", 20)),
			ReceivingNo, "backup: this director holds 0 connections, the master d1 20: NOT RECEIVING (check the sync interface, sync_id and multicast between the directors)"},
		{"idle pair", syncStatus(ipvs.SyncBackup, 0, member("d1", "alive", "master", 0)),
			ReceivingIdle, "backup: this director holds 0 connections, the master d1 0"},
		{"a gone master does not count", syncStatus(ipvs.SyncBackup, 0, member("d1", "gone", "master", 20)),
			ReceivingUnknown, "backup: this director holds 0 connections; no director in the cluster reports a master sync daemon"},
		{"no cluster", syncStatus(ipvs.SyncBackup, 3),
			ReceivingUnknown, "backup: this director holds 3 connections; without [cluster] the master's count is unknown"},
		{"master", syncStatus(ipvs.SyncMaster, 20, member("d2", "alive", "backup", 18), member("d3", "alive", "none", 0)),
			ReceivingMaster, "master: this director holds 20 connections; d2 (backup) holds 18, d3 (none) holds 0"},
		{"master without cluster", syncStatus(ipvs.SyncMaster, 20),
			ReceivingMaster, "master: this director holds 20 connections; without [cluster] the backups' counts are unknown"},
		{"nothing running", syncStatus(0, 0), ReceivingUnknown, "no sync daemon running"},
		// The kernel's count this director gossips wins over the
		// director's last read of its virtual servers.
		{"own count from the gossip", gossiped(syncStatus(ipvs.SyncBackup, 19, member("d1", "alive", "master", 20)), 0),
			ReceivingNo, "backup: this director holds 0 connections, the master d1 20: NOT RECEIVING (check the sync interface, sync_id and multicast between the directors)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.st.ConnSync()
			if r.Receiving != tc.receiving || r.Summary != tc.summary {
				t.Errorf("ConnSync = %q, %q\nwant %q, %q", r.Receiving, r.Summary, tc.receiving, tc.summary)
			}
		})
	}
}

func TestProblemsList(t *testing.T) {
	t0 := time.Unix(1700000000, 0).UTC()
	const split = "split brain: vrid 51 (IPv4) is master on d1/VI_1 and d2/VI_1"
	st := syncStatus(ipvs.SyncBackup, 5, member("d1", "alive", "master", 20), member("d3", "gone", "", 0))
	st.Sync.Want.State = ipvs.SyncMaster
	st.Sync.LastErr = "ENODEV"
	st.Cluster.Problems = []string{split}
	st.Cluster.Since = map[string]time.Time{split: t0}
	st.VRRP = []vrrp.Status{{Name: "VI_1", State: vrrp.StateFault, Failing: []string{"interface eth0 down (fault)"}, LastChange: t0.Add(time.Second)},
		{Name: "VI_2", State: vrrp.StateBackup}}
	st.Services = append(st.Services, director.ServiceStatus{Name: "mail", Key: ipvs.ServiceKey{Fwmark: 5}})
	st.NotRunning = map[string]string{"healthcheck": "stopped: boom"}
	want := []Problem{
		{"cluster: " + split, t0},
		{"cluster: director d3 is gone", time.Time{}},
		{"vrrp VI_1: fault: interface eth0 down", t0.Add(time.Second)},
		{"conn sync: the kernel does not run the wanted master daemon: ENODEV", time.Time{}},
		{"virtual server mail (fwmark 5 inet): quorum lost", time.Time{}},
		{"not running: healthcheck (stopped: boom)", time.Time{}},
	}
	if got := st.Problems(); !slices.Equal(got, want) {
		t.Errorf("Problems =\n%q\nwant\n%q", got, want)
	}
	// A backup holding none of the master's connections is one too.
	st = syncStatus(ipvs.SyncBackup, 0, member("d1", "alive", "master", 20))
	if got := st.Problems(); len(got) != 1 || got[0].What != "conn sync: "+st.ConnSync().Summary {
		t.Errorf("Problems of a backup not receiving = %q", got)
	}
	if got := syncStatus(ipvs.SyncBackup, 19, member("d1", "alive", "master", 20)).Problems(); len(got) != 0 {
		t.Errorf("Problems of a healthy backup = %q", got)
	}
}

// nwayStatus is an N-way director running roles, gossiping conns in all and
// svcs per virtual server, in a cluster with others (none: no cluster).
func nwayStatus(roles []ipvs.SyncState, conns uint64, svcs map[string]uint64, others ...cluster.Member) Status {
	st := Status{Sync: &connsync.Status{NWay: true, Want: ipvs.SyncDaemon{State: ipvs.SyncBackup}}}
	for _, r := range roles {
		st.Sync.Running = append(st.Sync.Running, ipvs.SyncDaemon{State: r})
	}
	if others != nil {
		self := cluster.Member{NodeState: cluster.NodeState{Name: "self", Sync: &cluster.ConnSync{Role: "master+backup", Conns: conns, Services: svcs}},
			Status: "alive", Self: true}
		st.Cluster = &cluster.View{Members: append([]cluster.Member{self}, others...)}
	}
	return st
}

func nwayPeer(name string, conns uint64, svcs map[string]uint64) cluster.Member {
	return cluster.Member{NodeState: cluster.NodeState{Name: name, Sync: &cluster.ConnSync{Role: "master+backup", Conns: conns, Services: svcs}}, Status: "alive"}
}

// TestConnSyncNWay: with N-way sync every director should hold every
// director's connections; the report compares with each other director.
func TestConnSyncNWay(t *testing.T) {
	both := []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup}
	web := func(n uint64) map[string]uint64 { return map[string]uint64{"tcp 192.0.2.10:80": n} }
	for _, tc := range []struct {
		name      string
		st        Status
		receiving string
		summary   string
		problem   string // "" none
	}{
		{"three directors in step", nwayStatus(both, 300, web(300), nwayPeer("d2", 298, web(298)), nwayPeer("d3", 301, web(301))),
			ReceivingYes, "N-way: this director holds 300 connections; d2 (master+backup) holds 298, d3 (master+backup) holds 301", ""},
		{"holding only its own: a virtual server missing",
			nwayStatus(both, 100, map[string]uint64{"tcp 192.0.2.10:80": 100},
				nwayPeer("d2", 300, map[string]uint64{"tcp 192.0.2.10:80": 200, "udp 192.0.2.10:53": 100})),
			ReceivingNo, "N-way: this director holds 100 connections; d2 (master+backup) holds 300: NOT RECEIVING udp 192.0.2.10:53 (check the sync interface, sync_id and multicast between the directors)",
			"conn sync: N-way: this director holds 100 connections; d2 (master+backup) holds 300: NOT RECEIVING udp 192.0.2.10:53 (check the sync interface, sync_id and multicast between the directors)"},
		{"a few young ones of a service not here yet: fine", nwayStatus(both, 100, web(100),
			nwayPeer("d2", 105, map[string]uint64{"tcp 192.0.2.10:80": 100, "udp 192.0.2.10:53": MinNWayReceived - 1})),
			ReceivingYes, "N-way: this director holds 100 connections; d2 (master+backup) holds 105", ""},
		{"none here, some there", nwayStatus(both, 0, nil, nwayPeer("d2", 20, web(20))),
			ReceivingNo, "N-way: this director holds 0 connections; d2 (master+backup) holds 20: NOT RECEIVING tcp 192.0.2.10:80 (check the sync interface, sync_id and multicast between the directors)",
			"conn sync: N-way: this director holds 0 connections; d2 (master+backup) holds 20: NOT RECEIVING tcp 192.0.2.10:80 (check the sync interface, sync_id and multicast between the directors)"},
		{"idle", nwayStatus(both, 0, nil, nwayPeer("d2", 0, nil)), ReceivingIdle, "N-way: this director holds 0 connections; d2 (master+backup) holds 0", ""},
		{"no cluster", nwayStatus(both, 0, nil), ReceivingUnknown,
			"N-way: this director holds 0 connections; without [cluster] the other directors' counts are unknown", ""},
		{"the backup missing", nwayStatus(both[:1], 5, nil, nwayPeer("d2", 5, nil)), ReceivingUnknown,
			"N-way: this director holds 5 connections; the kernel runs master, not master+backup",
			"conn sync: the kernel does not run the wanted master+backup daemons (N-way)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.st.ConnSync()
			if r.Receiving != tc.receiving || r.Summary != tc.summary {
				t.Errorf("ConnSync = %q, %q\nwant %q, %q", r.Receiving, r.Summary, tc.receiving, tc.summary)
			}
			var probs []string
			for _, p := range tc.st.Problems() {
				probs = append(probs, p.What)
			}
			want := []string{}
			if tc.problem != "" {
				want = []string{tc.problem}
			}
			if len(probs) != len(want) || (len(want) == 1 && probs[0] != want[0]) {
				t.Errorf("Problems = %q, want %q", probs, want)
			}
		})
	}
}

func TestConfigWarningsAreProblems(t *testing.T) {
	st := Status{ConfigWarnings: []string{`virtual server "web" is announced over BGP (192.0.2.10/32) but scheduled by wrr`}}
	if got := st.Problems(); len(got) != 1 || got[0].What != `config: virtual server "web" is announced over BGP (192.0.2.10/32) but scheduled by wrr` {
		t.Errorf("Problems = %q", got)
	}
}
