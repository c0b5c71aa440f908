package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/vrrp"
)

func sample() control.Status {
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	r1 := netip.MustParseAddrPort("10.0.0.21:8080")
	r2 := netip.MustParseAddrPort("10.0.0.22:8080")
	return control.Status{
		Version: "1.2.3",
		Started: time.Unix(1700000000, 0),
		VRRP: []vrrp.Status{{Name: "VI_1", State: vrrp.StateBackup, Priority: 140, BasePriority: 150,
			AdvertsSent: 3, AdvertsRecv: 120, Transitions: 2,
			Drops:   map[string]uint64{"bad_ttl": 5, "auth_mismatch": 1},
			Ignored: map[string]uint64{"lower_priority": 4}}},
		Director: &director.Counters{Passes: 17, FailedPasses: 1,
			Writes: map[ipvs.OpKind]uint64{ipvs.OpNewDest: 2, ipvs.OpUpdDest: 6},
			Errors: map[director.ErrorKey]uint64{{Op: ipvs.OpNewDest, Reason: "EEXIST"}: 1}},
		Services: []director.ServiceStatus{{Name: "web", Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: vip},
			QuorumUp: false, SorryActive: true, InKernel: true,
			Stats: ipvs.Stats{Conns: 900, BytesIn: 5000, BytesOut: 70000, PktsIn: 40, PktsOut: 60},
			Reals: []director.RealStatus{
				{Addr: r1, Checked: true, Healthy: true, ConfiguredWeight: 3, EffectiveWeight: 5, ActiveConns: 12, InactiveConns: 4},
				{Addr: r2, Checked: true, Healthy: false, ConfiguredWeight: 2, EffectiveWeight: 0},
				{Addr: netip.MustParseAddrPort("10.0.0.99:80"), Sorry: true, Healthy: true, ConfiguredWeight: 1, EffectiveWeight: 1},
			}}},
		Probes: []healthcheck.ProbeStatus{
			{Target: healthcheck.Target{Addr: r1, Check: &conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/a"}}}}}, Up: true, Checks: 30},
			{Target: healthcheck.Target{Addr: r1, Check: &conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/b"}}}}}, Up: false, Checks: 12},
			{Target: healthcheck.Target{Addr: r2, Check: &conf.CheckSpec{Kind: conf.CheckTCP}}, Up: false, Checks: 7},
		},
		Notify:     &healthcheck.NotifyCounts{Run: 5, Failed: 2, Dropped: 1},
		NotRunning: map[string]string{"sync": "not configured"},
	}
}

func TestCollectorValues(t *testing.T) {
	c := New(sample)
	const want = `
# HELP haldir_build_info Always 1; the version label is the running build.
# TYPE haldir_build_info gauge
haldir_build_info{version="1.2.3"} 1
# HELP haldir_vrrp_state 1 for the VRRP instance's current state, 0 for the others.
# TYPE haldir_vrrp_state gauge
haldir_vrrp_state{state="backup",vrrp_instance="VI_1"} 1
haldir_vrrp_state{state="fault",vrrp_instance="VI_1"} 0
haldir_vrrp_state{state="init",vrrp_instance="VI_1"} 0
haldir_vrrp_state{state="master",vrrp_instance="VI_1"} 0
# HELP haldir_vrrp_priority Effective VRRP priority (configured priority adjusted by tracking).
# TYPE haldir_vrrp_priority gauge
haldir_vrrp_priority{vrrp_instance="VI_1"} 140
# HELP haldir_vrrp_adverts_received_total VRRP advertisements received and accepted.
# TYPE haldir_vrrp_adverts_received_total counter
haldir_vrrp_adverts_received_total{vrrp_instance="VI_1"} 120
# HELP haldir_vrrp_drops_total Received VRRP packets discarded, per reason.
# TYPE haldir_vrrp_drops_total counter
haldir_vrrp_drops_total{reason="auth_mismatch",vrrp_instance="VI_1"} 1
haldir_vrrp_drops_total{reason="bad_ttl",vrrp_instance="VI_1"} 5
# HELP haldir_vrrp_ignored_total VRRP events that changed nothing, per reason.
# TYPE haldir_vrrp_ignored_total counter
haldir_vrrp_ignored_total{reason="lower_priority",vrrp_instance="VI_1"} 4
# HELP haldir_vrrp_transitions_total VRRP state changes.
# TYPE haldir_vrrp_transitions_total counter
haldir_vrrp_transitions_total{vrrp_instance="VI_1"} 2
# HELP haldir_director_passes_total IPVS reconciliation passes.
# TYPE haldir_director_passes_total counter
haldir_director_passes_total 17
# HELP haldir_director_writes_total IPVS netlink write calls, per operation.
# TYPE haldir_director_writes_total counter
haldir_director_writes_total{op="new_destination"} 2
haldir_director_writes_total{op="update_destination"} 6
# HELP haldir_director_errors_total Failed IPVS operations, per operation and reason.
# TYPE haldir_director_errors_total counter
haldir_director_errors_total{op="new_destination",reason="EEXIST"} 1
# HELP haldir_service_quorum_up 1 while the virtual server's quorum is met.
# TYPE haldir_service_quorum_up gauge
haldir_service_quorum_up{address="tcp 192.0.2.10:80",virtual_server="web"} 0
# HELP haldir_service_sorry_active 1 while the sorry server replaces the virtual server's pool.
# TYPE haldir_service_sorry_active gauge
haldir_service_sorry_active{address="tcp 192.0.2.10:80",virtual_server="web"} 1
# HELP haldir_real_server_up 1 while the real server is healthy (always 1 without a check).
# TYPE haldir_real_server_up gauge
haldir_real_server_up{address="tcp 192.0.2.10:80",real="10.0.0.21:8080",virtual_server="web"} 1
haldir_real_server_up{address="tcp 192.0.2.10:80",real="10.0.0.22:8080",virtual_server="web"} 0
# HELP haldir_real_server_weight Real server weight: configured, or effective (the weight wanted in the kernel, 0 while down).
# TYPE haldir_real_server_weight gauge
haldir_real_server_weight{address="tcp 192.0.2.10:80",kind="configured",real="10.0.0.21:8080",virtual_server="web"} 3
haldir_real_server_weight{address="tcp 192.0.2.10:80",kind="configured",real="10.0.0.22:8080",virtual_server="web"} 2
haldir_real_server_weight{address="tcp 192.0.2.10:80",kind="effective",real="10.0.0.21:8080",virtual_server="web"} 5
haldir_real_server_weight{address="tcp 192.0.2.10:80",kind="effective",real="10.0.0.22:8080",virtual_server="web"} 0
# HELP haldir_real_server_active_conns Active connections to the real server (kernel).
# TYPE haldir_real_server_active_conns gauge
haldir_real_server_active_conns{address="tcp 192.0.2.10:80",real="10.0.0.21:8080",virtual_server="web"} 12
haldir_real_server_active_conns{address="tcp 192.0.2.10:80",real="10.0.0.22:8080",virtual_server="web"} 0
# HELP haldir_real_server_inactive_conns Inactive connections to the real server (kernel).
# TYPE haldir_real_server_inactive_conns gauge
haldir_real_server_inactive_conns{address="tcp 192.0.2.10:80",real="10.0.0.21:8080",virtual_server="web"} 4
haldir_real_server_inactive_conns{address="tcp 192.0.2.10:80",real="10.0.0.22:8080",virtual_server="web"} 0
# HELP haldir_service_bytes_total Bytes through the virtual server (kernel counter).
# TYPE haldir_service_bytes_total counter
haldir_service_bytes_total{address="tcp 192.0.2.10:80",direction="in",virtual_server="web"} 5000
haldir_service_bytes_total{address="tcp 192.0.2.10:80",direction="out",virtual_server="web"} 70000
# HELP haldir_healthcheck_checks_total Health checks run, per target (real server address and check type).
# TYPE haldir_healthcheck_checks_total counter
haldir_healthcheck_checks_total{target="10.0.0.21:8080",type="http"} 42
haldir_healthcheck_checks_total{target="10.0.0.22:8080",type="tcp"} 7
# HELP haldir_healthcheck_up 1 while the health check's verdict for the target is up.
# TYPE haldir_healthcheck_up gauge
haldir_healthcheck_up{target="10.0.0.21:8080",type="http"} 0
haldir_healthcheck_up{target="10.0.0.22:8080",type="tcp"} 0
# HELP haldir_real_server_notify_total notify_up/notify_down commands of real servers, per outcome: ok, failed (non-zero exit, killed at the timeout, not started), dropped (a full backlog).
# TYPE haldir_real_server_notify_total counter
haldir_real_server_notify_total{outcome="dropped"} 1
haldir_real_server_notify_total{outcome="failed"} 2
haldir_real_server_notify_total{outcome="ok"} 5
`
	names := []string{"haldir_build_info", "haldir_vrrp_state", "haldir_vrrp_priority", "haldir_vrrp_adverts_received_total",
		"haldir_vrrp_drops_total", "haldir_vrrp_ignored_total", "haldir_vrrp_transitions_total",
		"haldir_director_passes_total", "haldir_director_writes_total", "haldir_director_errors_total",
		"haldir_service_quorum_up", "haldir_service_sorry_active", "haldir_real_server_up", "haldir_real_server_weight",
		"haldir_real_server_active_conns", "haldir_real_server_inactive_conns", "haldir_service_bytes_total",
		"haldir_healthcheck_checks_total", "haldir_healthcheck_up", "haldir_real_server_notify_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestCollectorLintAndConsistency(t *testing.T) {
	c := New(sample)
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// The sorry server is not a real_server series: 2 real servers x 2 kinds.
	if n := testutil.CollectAndCount(c, "haldir_real_server_weight"); n != 4 {
		t.Errorf("real_server_weight series = %d, want 4", n)
	}
	// A registry rejects inconsistent or duplicate series on Gather.
	reg := NewRegistry(sample)
	if n, err := testutil.GatherAndCount(reg, "haldir_vrrp_state"); err != nil || n != 4 {
		t.Errorf("GatherAndCount(vrrp_state) = %d, %v; want 4", n, err)
	}
}

// Prometheus owns instance and job: it sets them on every series to the
// scrape target, so an exporter's own label of that name is renamed to
// exported_instance (or, with honor_labels, hides the target). Virtual
// servers are named as configured, with their IPVS address beside.
func TestLabelNames(t *testing.T) {
	st := sample()
	st.Services = append(st.Services, director.ServiceStatus{Name: "mail",
		Key: ipvs.ServiceKey{Fwmark: 5}, Reals: []director.RealStatus{{Addr: netip.MustParseAddrPort("10.0.0.30:25")}}})
	st.Sync = &connsync.Status{}
	st.Cluster = &cluster.View{Problems: []string{"split brain: x"}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(func() control.Status { return st }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
				if n := lp.GetName(); n == "instance" || n == "job" {
					t.Errorf("%s has the label %s, which Prometheus sets to the scrape target", mf.GetName(), n)
				}
			}
			if strings.HasPrefix(mf.GetName(), "haldir_service_") || strings.HasPrefix(mf.GetName(), "haldir_real_server_") {
				services[labels["virtual_server"]+" at "+labels["address"]] = true
			}
		}
	}
	for _, want := range []string{"web at tcp 192.0.2.10:80", "mail at fwmark 5 inet"} {
		if !services[want] {
			t.Errorf("no service series for %s; have %v", want, services)
		}
	}
}

func TestEmptyStatus(t *testing.T) {
	c := New(func() control.Status { return control.Status{} })
	if n := testutil.CollectAndCount(c); n != 2 {
		t.Errorf("series for an empty status = %d, want 2 (build_info, maintenance)", n)
	}
	if n := testutil.CollectAndCount(c, "haldir_director_passes_total"); n != 0 {
		t.Errorf("director_passes_total without a director = %d series, want 0", n)
	}
}

func TestSnapshotPerScrape(t *testing.T) {
	calls := 0
	c := New(func() control.Status {
		calls++
		st := sample()
		st.VRRP[0].AdvertsSent = uint64(calls * 10)
		return st
	})
	for want := 10.0; want <= 20; want += 10 {
		got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
			m := make(chan prometheus.Metric, 100)
			go func() { c.Collect(m); close(m) }()
			for x := range m {
				if strings.Contains(x.Desc().String(), `"haldir_vrrp_adverts_sent_total"`) {
					ch <- x
				}
			}
		}))
		if got != want {
			t.Errorf("adverts_sent = %v, want %v (source read once per scrape)", got, want)
		}
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, NewRegistry(sample)) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	for _, want := range []string{`haldir_vrrp_priority{vrrp_instance="VI_1"} 140`, "go_goroutines "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}

func TestServeBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), NewRegistry(sample))
	if err == nil || !strings.Contains(err.Error(), "metrics: listen "+ln.Addr().String()) {
		t.Errorf("Serve on a taken port = %v", err)
	}
}

func TestCollectorSyncAndCluster(t *testing.T) {
	st := sample()
	st.Sync = &connsync.Status{
		Running: []ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 51}},
		Want:    ipvs.SyncDaemon{State: ipvs.SyncMaster}, Changes: 3, Failures: 1,
	}
	st.Cluster = &cluster.View{
		Members: []cluster.Member{{Status: "alive", Self: true}, {Status: "alive"}, {Status: "gone"}},
		Problems: []string{"split brain: vrid 51 (IPv4) is master on a/vi and b/vi",
			"config drift: virtual_server differs: a (1) vs b (2)", "config drift: sync differs: a (1) vs b (2)"},
		Malformed: 4,
	}
	const want = `
# HELP haldir_sync_daemon_running 1 for each kernel conn-sync daemon role running.
# TYPE haldir_sync_daemon_running gauge
haldir_sync_daemon_running{role="backup"} 1
haldir_sync_daemon_running{role="master"} 0
# HELP haldir_sync_daemon_wanted 1 for the conn-sync daemon role the VRRP state asks for.
# TYPE haldir_sync_daemon_wanted gauge
haldir_sync_daemon_wanted{role="backup"} 0
haldir_sync_daemon_wanted{role="master"} 1
# HELP haldir_sync_daemon_changes_total Kernel conn-sync daemons started or stopped.
# TYPE haldir_sync_daemon_changes_total counter
haldir_sync_daemon_changes_total 3
# HELP haldir_sync_daemon_failures_total Failed attempts to bring the kernel conn-sync daemons to the wanted role.
# TYPE haldir_sync_daemon_failures_total counter
haldir_sync_daemon_failures_total 1
# HELP haldir_cluster_members Directors in the cluster view, per status (this one included, as alive).
# TYPE haldir_cluster_members gauge
haldir_cluster_members{status="alive"} 2
haldir_cluster_members{status="gone"} 1
# HELP haldir_cluster_problems Problems the cluster view reports now (split brain, config drift), per kind.
# TYPE haldir_cluster_problems gauge
haldir_cluster_problems{kind="config_drift"} 2
haldir_cluster_problems{kind="split_brain"} 1
# HELP haldir_cluster_malformed_states_total Gossiped director states dropped because they did not decode.
# TYPE haldir_cluster_malformed_states_total counter
haldir_cluster_malformed_states_total 4
`
	if err := testutil.CollectAndCompare(New(func() control.Status { return st }), strings.NewReader(want),
		"haldir_sync_daemon_running", "haldir_sync_daemon_wanted", "haldir_sync_daemon_changes_total",
		"haldir_sync_daemon_failures_total", "haldir_cluster_members", "haldir_cluster_problems", "haldir_cluster_malformed_states_total"); err != nil {
		t.Error(err)
	}
}

// TestCollectorVRRPCauses exports the counts of priority changes per cause
// and of send errors per reason.
func TestCollectorVRRPCauses(t *testing.T) {
	c := New(func() control.Status {
		return control.Status{VRRP: []vrrp.Status{{Name: "VI_1",
			PriorityChanges:  map[string]uint64{"track_script:chk": 2, "reload": 1},
			SendErrorReasons: map[string]uint64{"ehostunreach": 3}}}}
	})
	const want = `
# HELP haldir_vrrp_priority_changes_total Changes of the effective VRRP priority, per cause (track_script:NAME, track_interface:NAME, track_virtual_server:NAME, maintenance, reload).
# TYPE haldir_vrrp_priority_changes_total counter
haldir_vrrp_priority_changes_total{cause="reload",vrrp_instance="VI_1"} 1
haldir_vrrp_priority_changes_total{cause="track_script:chk",vrrp_instance="VI_1"} 2
# HELP haldir_vrrp_send_error_reasons_total VRRP advertisements that could not be sent, per reason (the errno's name, e.g. ehostunreach).
# TYPE haldir_vrrp_send_error_reasons_total counter
haldir_vrrp_send_error_reasons_total{reason="ehostunreach",vrrp_instance="VI_1"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"haldir_vrrp_priority_changes_total", "haldir_vrrp_send_error_reasons_total"); err != nil {
		t.Error(err)
	}
}

// TestCollectorOperator: haldir_maintenance is 1 in maintenance and 0
// out of it; each real server says whether an operator override (haldir
// drain) is in force.
func TestCollectorOperator(t *testing.T) {
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	st := control.Status{
		Maintenance: &control.Maintenance{Reason: "upgrade", Since: time.Unix(1700000000, 0)},
		Services: []director.ServiceStatus{{Name: "web", Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: vip}, Reals: []director.RealStatus{
			{Addr: netip.MustParseAddrPort("10.0.0.21:8080"), Healthy: true, ConfiguredWeight: 3, Overridden: true},
			{Addr: netip.MustParseAddrPort("10.0.0.22:8080"), Healthy: true, ConfiguredWeight: 2, EffectiveWeight: 2},
		}}},
	}
	const want = `
# HELP haldir_maintenance 1 while this director is in maintenance (haldir maintenance on: every VRRP instance at priority 1).
# TYPE haldir_maintenance gauge
haldir_maintenance %d
# HELP haldir_real_server_operator_override 1 while an operator's weight override (haldir drain) is in force for the real server; real_server_weight{kind="effective"} shows its weight.
# TYPE haldir_real_server_operator_override gauge
haldir_real_server_operator_override{address="tcp 192.0.2.10:80",real="10.0.0.21:8080",virtual_server="web"} 1
haldir_real_server_operator_override{address="tcp 192.0.2.10:80",real="10.0.0.22:8080",virtual_server="web"} 0
`
	for _, on := range []bool{true, false} {
		s := st
		if !on {
			s.Maintenance = nil
		}
		c := New(func() control.Status { return s })
		if err := testutil.CollectAndCompare(c, strings.NewReader(fmt.Sprintf(want, b2i(on))),
			"haldir_maintenance", "haldir_real_server_operator_override"); err != nil {
			t.Errorf("maintenance %v: %v", on, err)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestCollectorCheckLag exports the checker's lag as status has it (the
// scheduler measures it: TestSchedulerLag), and when each VRRP instance
// last changed state.
func TestCollectorCheckLag(t *testing.T) {
	for _, tc := range []struct {
		name string
		lag  time.Duration
		want string
	}{
		{"keeps up", 0, "0"},
		{"late", 2500 * time.Millisecond, "2.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(func() control.Status {
				return control.Status{Probes: []healthcheck.ProbeStatus{}, CheckLag: tc.lag,
					VRRP: []vrrp.Status{{Name: "VI_1", LastChange: time.Unix(1700000050, 500e6)}}}
			})
			want := `
# HELP haldir_healthcheck_lag_seconds ` + dCheckLag.help + `
# TYPE haldir_healthcheck_lag_seconds gauge
haldir_healthcheck_lag_seconds ` + tc.want + `
# HELP haldir_vrrp_last_transition_timestamp_seconds When the VRRP instance last changed state.
# TYPE haldir_vrrp_last_transition_timestamp_seconds gauge
haldir_vrrp_last_transition_timestamp_seconds{vrrp_instance="VI_1"} 1.7000000505e+09
`
			if err := testutil.CollectAndCompare(c, strings.NewReader(want),
				"haldir_healthcheck_lag_seconds", "haldir_vrrp_last_transition_timestamp_seconds"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCollectorPeerAndReceiving exports the peer's advertised priority once
// an advert came, and whether a conn-sync backup receives the master's
// connections (only where that is known: a backup whose master gossips).
func TestCollectorPeerAndReceiving(t *testing.T) {
	backup := func(held uint32, master uint64) control.Status {
		return control.Status{
			VRRP: []vrrp.Status{{Name: "VI_1", PeerAddr: netip.MustParseAddr("10.0.0.2"), PeerPriority: 200, PeerSeen: time.Unix(1700000000, 0)},
				{Name: "VI_2"}},
			Services: []director.ServiceStatus{{Name: "web", Reals: []director.RealStatus{{ActiveConns: held}}}},
			Sync:     &connsync.Status{Running: []ipvs.SyncDaemon{{State: ipvs.SyncBackup}}, Want: ipvs.SyncDaemon{State: ipvs.SyncBackup}},
			Cluster: &cluster.View{Members: []cluster.Member{{Self: true, Status: "alive"},
				{NodeState: cluster.NodeState{Name: "d1", Sync: &cluster.ConnSync{Role: "master", Conns: master}}, Status: "alive"}}},
		}
	}
	const head = `
# HELP haldir_vrrp_peer_priority Priority in the last advert accepted from another router (absent until one came).
# TYPE haldir_vrrp_peer_priority gauge
haldir_vrrp_peer_priority{vrrp_instance="VI_1"} 200
`
	const recv = `
# HELP haldir_sync_backup_receiving On a conn-sync backup whose master gossips its count: 0 while this director holds no connection and the master holds some (not receiving), 1 otherwise.
# TYPE haldir_sync_backup_receiving gauge
haldir_sync_backup_receiving `
	noCluster := backup(0, 20)
	noCluster.Cluster = nil
	for _, tc := range []struct {
		name string
		st   control.Status
		want string
	}{
		{"receiving", backup(19, 20), head + recv + "1\n"},
		{"not receiving", backup(0, 20), head + recv + "0\n"},
		{"idle", backup(0, 0), head + recv + "1\n"},
		{"unknown without cluster", noCluster, head},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(New(func() control.Status { return tc.st }), strings.NewReader(tc.want),
				"haldir_vrrp_peer_priority", "haldir_sync_backup_receiving"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCollectorLastDrill: the newest kept drill is exported with its start,
// gap and verdict, per kind; without one there is no series at all (not a
// 0 that would read as a failed drill).
func TestCollectorLastDrill(t *testing.T) {
	names := []string{"haldir_drill_last_timestamp_seconds", "haldir_drill_last_gap_seconds", "haldir_drill_last_pass", "haldir_drill_last_info"}
	const head = `
# HELP haldir_drill_last_gap_seconds How long the newest kept drill's addresses had no holder (0 for a make-before-break handoff).
# TYPE haldir_drill_last_gap_seconds gauge
haldir_drill_last_gap_seconds{kind="%[1]s"} %[2]s
# HELP haldir_drill_last_info Always 1; the labels name the newest kept drill (haldir drill show ID) and its verdict: pass, fail or refused.
# TYPE haldir_drill_last_info gauge
haldir_drill_last_info{id="%[3]s",kind="%[1]s",verdict="%[4]s"} 1
# HELP haldir_drill_last_pass 1 when the newest kept drill passed, 0 when it failed or pre-flight refused it.
# TYPE haldir_drill_last_pass gauge
haldir_drill_last_pass{kind="%[1]s"} %[5]d
# HELP haldir_drill_last_timestamp_seconds When the newest kept drill (haldir drill run) started.
# TYPE haldir_drill_last_timestamp_seconds gauge
haldir_drill_last_timestamp_seconds{kind="%[1]s"} %[6]s
`
	at := time.Unix(1700000000, 250e6)
	for _, tc := range []struct {
		name string
		last *control.DrillSummary
		gap  string // the expected gap in seconds
		pass int
	}{
		{"none", nil, "", 0},
		{"handoff passed", &control.DrillSummary{ID: "20231114T221320.250Z-handoff", Kind: "handoff", Verdict: "pass", At: at}, "0", 1},
		{"failover failed", &control.DrillSummary{ID: "20231114T221320.250Z-failover", Kind: "failover", Verdict: "fail", At: at, GapMillis: 1250, BoundMillis: 1000}, "1.25", 0},
		{"refused", &control.DrillSummary{ID: "20231114T221320.250Z-handoff", Kind: "handoff", Verdict: "refused", At: at}, "0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := sample()
			st.LastDrill = tc.last
			c := New(func() control.Status { return st })
			want := ""
			if tc.last != nil {
				want = fmt.Sprintf(head, tc.last.Kind, tc.gap, tc.last.ID, tc.last.Verdict, tc.pass, "1.70000000025e+09")
			}
			if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
				t.Error(err)
			}
			if n := testutil.CollectAndCount(c, names...); tc.last == nil && n != 0 {
				t.Errorf("%d drill series without a drill, want none", n)
			}
			problems, err := testutil.CollectAndLint(c, names...)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
			if _, err := testutil.GatherAndCount(NewRegistry(func() control.Status { return st })); err != nil {
				t.Errorf("the registry rejects the series: %v", err)
			}
		})
	}
}

func TestCollectorBGP(t *testing.T) {
	names := []string{"haldir_bgp_peer_up", "haldir_bgp_peer_bfd_up", "haldir_bgp_prefix_announced", "haldir_bgp_withdrawals_total"}
	st := sample()
	st.BGP = &control.BGPStatus{ASN: 65010,
		Peers: []bgp.PeerStatus{
			{Address: netip.MustParseAddr("10.0.0.1"), State: "established", BFD: "up"},
			{Address: netip.MustParseAddr("10.0.0.2"), State: "active"},
		},
		Prefixes: []bgp.PrefixState{
			{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Announced: true, Withdrawals: map[string]uint64{"quorum lost: web": 2, "maintenance": 1}},
			{Prefix: netip.MustParsePrefix("2001:db8::10/128"), Reason: "no quorum yet: dns", Withdrawals: map[string]uint64{}},
		}}
	want := `
# HELP haldir_bgp_peer_bfd_up 1 while the peer's BFD session is up (absent for a peer without BFD).
# TYPE haldir_bgp_peer_bfd_up gauge
haldir_bgp_peer_bfd_up{peer="10.0.0.1"} 1
# HELP haldir_bgp_peer_up 1 while the BGP session with the peer is established.
# TYPE haldir_bgp_peer_up gauge
haldir_bgp_peer_up{peer="10.0.0.1"} 1
haldir_bgp_peer_up{peer="10.0.0.2"} 0
# HELP haldir_bgp_prefix_announced 1 while this director announces the prefix over BGP.
# TYPE haldir_bgp_prefix_announced gauge
haldir_bgp_prefix_announced{prefix="192.0.2.10/32"} 1
haldir_bgp_prefix_announced{prefix="2001:db8::10/128"} 0
# HELP haldir_bgp_withdrawals_total Withdraws of an announced prefix, per reason (quorum lost: NAMES, maintenance, stopping, removed from the configuration).
# TYPE haldir_bgp_withdrawals_total counter
haldir_bgp_withdrawals_total{prefix="192.0.2.10/32",reason="maintenance"} 1
haldir_bgp_withdrawals_total{prefix="192.0.2.10/32",reason="quorum lost: web"} 2
`
	c := New(func() control.Status { return st })
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(New(sample), names...); n != 0 {
		t.Errorf("%d BGP series without [bgp], want none", n)
	}
}

// scrapeFixture is a daemon at 1k real servers in 10 virtual servers,
// each with its probe, and the same table in the kernel: 17 series a real
// server across haldir's and the IPVS collector.
func scrapeFixture(tb testing.TB) (*ipvstest.Kernel, control.Status) {
	k := ipvstest.New()
	var st control.Status
	for v := range 10 {
		key := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 255, 0, byte(v + 1)}), 80)}
		if err := k.NewService(ipvs.Service{Key: key, ServiceSettings: ipvs.ServiceSettings{Scheduler: "rr"}}); err != nil {
			tb.Fatal(err)
		}
		svc := director.ServiceStatus{Name: fmt.Sprintf("vs%d", v), Key: key, QuorumUp: true, InKernel: true}
		for i := range 100 {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(v), byte(i + 1)}), 8080)
			if err := k.NewDestination(key, ipvs.Destination{Addr: addr, DestSettings: ipvs.DestSettings{Weight: 1, Forwarding: ipvs.ForwardNAT}}); err != nil {
				tb.Fatal(err)
			}
			svc.Reals = append(svc.Reals, director.RealStatus{Addr: addr, Checked: true, Healthy: true, ConfiguredWeight: 1, EffectiveWeight: 1})
			st.Probes = append(st.Probes, healthcheck.ProbeStatus{Target: healthcheck.Target{Addr: addr, Check: &conf.CheckSpec{Kind: conf.CheckTCP}}, Up: true, Checks: 30})
		}
		st.Services = append(st.Services, svc)
	}
	return k, st
}

// TestCollectAllocs holds a scrape's collectors to a few allocations a
// series: every sample of a collector is held until its families are
// written, so what Collect builds per series is most of what a scrape adds
// to the daemon's peak RSS. Built with prometheus.MustNewConstMetric
// (label pairs per series) it was about 24 a series.
func TestCollectAllocs(t *testing.T) {
	k, st := scrapeFixture(t)
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"haldir", New(func() control.Status { return st })},
		{"ipvs", NewIPVS(k, func() (ipvs.Stats, error) { return ipvs.Stats{}, nil }, time.Second, slog.New(slog.DiscardHandler))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := make(chan prometheus.Metric, 20000)
			n := 0
			collect := func() {
				tc.c.Collect(ch)
				n = len(ch)
				for len(ch) > 0 {
					<-ch
				}
			}
			collect()
			if n < 8*1000 {
				t.Fatalf("%d series, want at least 8 a real server", n)
			}
			perSeries := testing.AllocsPerRun(5, collect) / float64(n)
			t.Logf("%d series, %.2f allocations a series", n, perSeries)
			if perSeries > 2.5 {
				t.Errorf("%.2f allocations a series, want at most 2.5", perSeries)
			}
		})
	}
}

// BenchmarkScrape is one scrape of /metrics as Prometheus asks for it
// (gzip) of scrapeFixture's daemon. Its bytes allocated per scrape bound
// what a scrape adds to the daemon's peak RSS (bench/healthcheck's VM
// comparison scrapes the whole daemon and reports its peak).
func BenchmarkScrape(b *testing.B) {
	k, st := scrapeFixture(b)
	h := NewRegistry(func() control.Status { return st })
	h.MustRegister(NewIPVS(k, func() (ipvs.Stats, error) { return ipvs.Stats{}, nil }, time.Second, slog.New(slog.DiscardHandler)))
	scrape := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	first := scrape()
	if first.Code != 200 || first.Header().Get("Content-Encoding") != "gzip" {
		b.Fatalf("scrape: %d, %q", first.Code, first.Header().Get("Content-Encoding"))
	}
	mfs, err := h.Gather()
	if err != nil {
		b.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	if series < 17*1000 {
		b.Fatalf("%d series, want at least 17 a real server", series)
	}
	b.ReportAllocs()
	for b.Loop() {
		scrape()
	}
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(first.Body.Len()), "gzip-bytes")
}
