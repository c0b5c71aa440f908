package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/control/controltest"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

var statusNow = time.Date(2026, 11, 24, 13, 12, 5, 0, time.UTC)

// sampleStatus is a director with one healthy pool, one pool that lost its
// quorum and switched to its sorry server, and a foreign service.
func sampleStatus() control.Status {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	web := netip.MustParseAddrPort("192.0.2.10:80")
	dns := netip.MustParseAddrPort("[2001:db8::53]:53")
	r1 := netip.MustParseAddrPort("10.0.0.21:8080")
	r2 := netip.MustParseAddrPort("10.0.0.22:8080")
	d1 := netip.MustParseAddrPort("[2001:db8::1]:53")
	sorry := netip.MustParseAddrPort("[2001:db8::99]:53")
	httpCheck := &conf.Check{Type: "http", Path: "/healthz", Interval: conf.Duration(2 * time.Second)}
	tcpCheck := &conf.Check{Type: "tcp", Interval: conf.Duration(2 * time.Second)}
	udpCheck := &conf.Check{Type: "udp"}
	// The probes' specs, as the daemon compiles them from these checks.
	httpSpec, tcpSpec, udpSpec := conf.CompileCheck(httpCheck, r1), conf.CompileCheck(tcpCheck, r2), conf.CompileCheck(udpCheck, d1)
	other := *httpSpec
	other.HTTP.URLs = []conf.URLSpec{{Path: "/other"}}
	return control.Status{
		Version: "0.3.0", RouterID: "lvs-a", ConfigPath: "/etc/haldir/haldir.toml",
		Started: t0, ConfigLoaded: t0.Add(3 * time.Hour),
		VRRP: []vrrp.Status{
			{Name: "VI_1", State: vrrp.StateMaster, Priority: 150, BasePriority: 150,
				Source: netip.MustParseAddr("192.0.2.2"), MasterAddr: netip.MustParseAddr("192.0.2.2"), LastChange: t0.Add(time.Minute)},
			{Name: "VI_6", State: vrrp.StateBackup, Priority: 90, BasePriority: 100, Failing: []string{"track_script chk_x failing -10"},
				Source: netip.MustParseAddr("2001:db8::2"), MasterAddr: netip.MustParseAddr("2001:db8::3"), LastChange: t0.Add(2 * time.Minute)},
		},
		VirtualServers: []conf.VirtualServer{
			{Name: "web", Address: web.Addr(), Port: 80, Protocol: "tcp", Scheduler: "wlc", Forwarding: "dr",
				PersistenceTimeout: conf.Duration(300 * time.Second), PersistenceGranularity: 24,
				RealServers: []conf.RealServer{
					{Address: r1.Addr(), Port: 8080, Weight: 3, Forwarding: "dr", Check: httpCheck},
					{Address: r2.Addr(), Port: 8080, Weight: 2, Forwarding: "nat", Check: tcpCheck},
				}},
			{Name: "dns", Address: dns.Addr(), Port: 53, Protocol: "udp", Scheduler: "rr", Forwarding: "tun",
				RealServers: []conf.RealServer{{Address: d1.Addr(), Port: 53, Weight: 1, Forwarding: "tun", Check: udpCheck}}},
		},
		Services: []director.ServiceStatus{
			{Name: "web", Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: web}, Scheduler: "wlc", InKernel: true,
				QuorumUp: true, AliveWeight: 5, Quorum: 1,
				Stats: ipvs.Stats{Conns: 1200, PktsIn: 9000, PktsOut: 8000, BytesIn: 700000, BytesOut: 9100000, CPS: 4, PPSIn: 30, PPSOut: 28, BPSIn: 2400, BPSOut: 31000},
				Reals: []director.RealStatus{
					{Addr: r1, Checked: true, Healthy: true, HealthKnown: true, ConfiguredWeight: 3, EffectiveWeight: 5,
						InKernel: true, KernelWeight: 5, ActiveConns: 12, InactiveConns: 40,
						Stats: ipvs.Stats{Conns: 1100, PktsIn: 8500, CPS: 4}},
					{Addr: r2, Checked: true, Healthy: false, HealthKnown: true, ConfiguredWeight: 2, EffectiveWeight: 0,
						Stats: ipvs.Stats{Conns: 100}},
				}},
			{Name: "dns", Key: ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: dns}, Scheduler: "rr", InKernel: true,
				QuorumUp: false, AliveWeight: 0, Quorum: 1, SorryActive: true,
				Reals: []director.RealStatus{
					{Addr: d1, Checked: true, Healthy: false, HealthKnown: false, ConfiguredWeight: 1},
					{Name: "sorry_server", Addr: sorry, Sorry: true, Healthy: true, ConfiguredWeight: 1, EffectiveWeight: 1,
						InKernel: true, KernelWeight: 1, ActiveConns: 0, InactiveConns: 3},
				}},
		},
		Foreign: []ipvs.ServiceKey{{Fwmark: 7}},
		Probes: []healthcheck.ProbeStatus{
			// Same address, another definition (another virtual server's
			// check): must not be picked for web's real server.
			{Key: healthcheck.Target{Addr: r1, Check: &other}.Key(),
				Target: healthcheck.Target{Addr: r1, Check: &other}, Up: false,
				History: []healthcheck.Result{{Up: false, Reason: "HTTP 404", Start: statusNow.Add(-time.Second)}}},
			{Key: healthcheck.Target{Addr: r1, Check: httpSpec}.Key(), Target: healthcheck.Target{Addr: r1, Check: httpSpec}, Up: true,
				History: []healthcheck.Result{{Up: true, Reason: "HTTP 200", Start: statusNow.Add(-3 * time.Second)}}},
			{Key: healthcheck.Target{Addr: r2, Check: tcpSpec}.Key(), Target: healthcheck.Target{Addr: r2, Check: tcpSpec}, Up: false,
				History: []healthcheck.Result{{Up: false, Reason: "connect: connection refused", Start: statusNow.Add(-2 * time.Second)}}},
			{Key: healthcheck.Target{Addr: d1, Check: udpSpec}.Key(), Target: healthcheck.Target{Addr: d1, Check: udpSpec}},
		},
		Director: &director.Counters{Passes: 310, FailedPasses: 1,
			Writes: map[ipvs.OpKind]uint64{ipvs.OpNewDest: 4, ipvs.OpUpdDest: 9},
			Errors: map[director.ErrorKey]uint64{{Op: ipvs.OpNewDest, Reason: "EEXIST"}: 1}},
		NotRunning: map[string]string{"sync": "not configured"},
	}
}

func render(t *testing.T, st control.Status, mode statusMode) string {
	t.Helper()
	var b bytes.Buffer
	renderStatus(&b, st, mode, statusNow)
	t.Logf("\n%s", b.String())
	return b.String()
}

// assertLines checks that every want line appears in out exactly.
func assertLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("output lacks the line\n%q", w)
		}
	}
}

func TestRenderStatus(t *testing.T) {
	out := render(t, sampleStatus(), modeState)
	assertLines(t, out,
		"haldir 0.3.0, router_id lvs-a, up 3h12m",
		"config /etc/haldir/haldir.toml, loaded 12m5s ago",
		"  Instance  State   Priority                                             Master                 Since",
		"  VI_1      MASTER  150                                                  this node (192.0.2.2)  3h11m ago",
		"  VI_6      BACKUP  90 (configured 100; track_script chk_x failing -10)  2001:db8::3            3h10m ago",
		"  not running: sync (not configured)",
		"Prot LocalAddress:Port Scheduler Flags",
		"  -> RemoteAddress:Port Forward Weight ActiveConn InActConn Health         CfgWeight EffWeight LastCheck",
		"TCP  192.0.2.10:80 wlc persistent 300 mask /24  [web, quorum up (alive weight 5, quorum 1)]",
		// The probe with web's own check definition, not the other one on
		// the same address that answers 404.
		"  -> 10.0.0.21:8080     Route   5      12         40        up             3         5         http ok: HTTP 200 (3s ago)",
		"  -> 10.0.0.22:8080     Masq    -      -          -         down           2         0         tcp failed: connect: connection refused (2s ago)",
		"UDP  [2001:db8::53]:53 rr  [dns, QUORUM DOWN (alive weight 0, quorum 1), SORRY SERVER ACTIVE]",
		"  -> [2001:db8::1]:53   Tunnel  -      -          -         down (initial) 1         0         udp: pending",
		"  -> [2001:db8::99]:53  Tunnel  1      0          3         sorry (active) 1         1         -",
		"FWM  7 IPv4  [not managed by haldir]",
		"director: 310 passes (1 failed), 13 kernel writes; errors: new_destination EEXIST 1",
	)
	if strings.Contains(out, "HTTP 404") {
		t.Error("the probe of another check definition on the same address was shown")
	}
	// Service lines come before their real servers, in order.
	iWeb, iR1, iDNS := strings.Index(out, "TCP  192.0.2.10:80"), strings.Index(out, "-> 10.0.0.21:8080"), strings.Index(out, "UDP  [2001:db8::53]:53")
	if !(iWeb < iR1 && iR1 < iDNS) {
		t.Errorf("rows out of order: web %d, real %d, dns %d", iWeb, iR1, iDNS)
	}
}

// TestRenderWhy: the 3 a.m. answers. Why each instance is (not) master
// with the peer's priority and the last transition's reason, the conn-sync
// picture from the cluster, and every problem with since when.
func TestRenderWhy(t *testing.T) {
	st := sampleStatus()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	st.VRRP[0].LastReason = "master down timer expired"
	st.VRRP[1].LastReason = "higher priority advert from 2001:db8::3"
	st.VRRP[1].Preempt = true
	st.VRRP[1].PeerAddr, st.VRRP[1].PeerPriority, st.VRRP[1].PeerSeen = netip.MustParseAddr("2001:db8::3"), 100, statusNow.Add(-time.Second)
	st.VRRP = append(st.VRRP, vrrp.Status{Name: "VI_9", State: vrrp.StateFault, Priority: 100, BasePriority: 100,
		Failing: []string{"interface eth9 down (fault)"}, LastChange: statusNow.Add(-90 * time.Second), LastReason: "interface eth9 down"})
	const split = "split brain: vrid 9 (IPv4) is master on lvs-a/VI_9 and lvs-b/VI_9"
	st.Sync = &connsync.Status{Running: []ipvs.SyncDaemon{{State: ipvs.SyncBackup}}, Want: ipvs.SyncDaemon{State: ipvs.SyncBackup}}
	st.Cluster = &cluster.View{
		Members: []cluster.Member{{NodeState: cluster.NodeState{Name: "lvs-a"}, Status: "alive", Self: true},
			{NodeState: cluster.NodeState{Name: "lvs-b", Sync: &cluster.ConnSync{Role: "master", Conns: 60, At: statusNow}}, Status: "alive"}},
		Problems: []string{split}, Since: map[string]time.Time{split: t0.Add(3 * time.Hour)},
	}
	out := render(t, st, modeState)
	assertLines(t, out,
		"  VI_1: master with priority 150",
		"  VI_1: became master 3h11m ago: master down timer expired",
		"  VI_6: backup: master 2001:db8::3 advertises priority 100, above our priority 90 (configured 100; track_script chk_x failing -10) (last advert from 2001:db8::3 1s ago)",
		"  VI_6: became backup 3h10m ago: higher priority advert from 2001:db8::3",
		"  VI_9: fault: interface eth9 down",
		// web's 12+40 and the sorry server's 3.
		"conn sync: backup: this director holds 55 connections, the master lvs-b 60 (receiving: yes)",
		"Problems:",
		"  cluster: "+split+" (since 2026-11-24T13:00:00Z, 12m5s ago)",
		"  vrrp VI_9: fault: interface eth9 down (since 2026-11-24T13:10:35Z, 1m30s ago)",
		"  virtual server dns (udp [2001:db8::53]:53): quorum lost",
		"  not running: sync (not configured)",
	)
}

func TestRenderStatsAndRate(t *testing.T) {
	assertLines(t, render(t, sampleStatus(), modeStats),
		"Prot LocalAddress:Port  Conns InPkts OutPkts InBytes OutBytes",
		"  -> RemoteAddress:Port",
		"TCP  192.0.2.10:80       1200   9000    8000  700000  9100000",
		"  -> 10.0.0.21:8080      1100   8500       0       0        0",
		"  -> 10.0.0.22:8080       100      0       0       0        0",
		"FWM  7 IPv4  [not managed by haldir]",
	)
	assertLines(t, render(t, sampleStatus(), modeRate),
		"Prot LocalAddress:Port  CPS InPPS OutPPS InBPS OutBPS",
		"TCP  192.0.2.10:80        4    30     28  2400  31000",
		"  -> 10.0.0.21:8080       4     0      0     0      0",
	)
}

func TestRenderWithoutConfig(t *testing.T) {
	// A status without VirtualServers: forwarding is unknown and probes
	// are matched by address alone.
	st := sampleStatus()
	st.VirtualServers = nil
	st.Probes = st.Probes[2:] // 10.0.0.21 has no probe left
	out := render(t, st, modeState)
	assertLines(t, out,
		"TCP  192.0.2.10:80 wlc  [web, quorum up (alive weight 5, quorum 1)]",
		"  -> 10.0.0.22:8080     ?       -      -          -         down           2         0         tcp failed: connect: connection refused (2s ago)",
		"  -> 10.0.0.21:8080     ?       5      12         40        up             3         5         no probe",
	)
}

func TestRenderEmpty(t *testing.T) {
	out := render(t, control.Status{RouterID: "x"}, modeState)
	assertLines(t, out, "haldir -, router_id x", "no virtual servers configured")
}

func TestAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {1500 * time.Millisecond, "2s"}, {61 * time.Second, "1m1s"},
		{3*time.Hour + 59*time.Second, "3h0m"}, {50 * time.Hour, "2d2h"}, {-time.Second, "0s"},
	} {
		if got := age(tc.d); got != tc.want {
			t.Errorf("age(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

type fakeDaemon struct {
	st   control.Status
	errs []string
	err  error
}

func (f *fakeDaemon) Status() control.Status    { return f.st }
func (f *fakeDaemon) Reload() ([]string, error) { return f.errs, f.err }

// serveControl runs a control server for d on a socket in a temp dir.
func serveControl(t *testing.T, d control.Daemon) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haldir.sock")
	controltest.Serve(t, path, d)
	return path
}

func TestStatusCommand(t *testing.T) {
	path := serveControl(t, &fakeDaemon{st: sampleStatus()})

	t.Run("json round trip", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"status", "-s", path, "--json"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var got control.APIStatus
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if want := sampleStatus().API(); !reflect.DeepEqual(got, want) {
			t.Errorf("--json round trip differs:\n got %+v\nwant %+v", got, want)
		}
	})
	// The document of docs/api.md: versioned, states and kinds as words,
	// durations in named units (not Go's enum integers and nanoseconds).
	t.Run("json api", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"status", "-s", path, "--json"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var doc struct {
			APIVersion *int `json:"api_version"`
			VRRP       []struct {
				State any `json:"state"`
			} `json:"vrrp"`
			VirtualServers []struct {
				Name                 string `json:"name"`
				Protocol             any    `json:"protocol"`
				PersistenceTimeoutMS *int64 `json:"persistence_timeout_ms"`
			} `json:"virtual_servers"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.APIVersion == nil || *doc.APIVersion != control.APIVersion {
			t.Errorf("api_version %v, want %d", doc.APIVersion, control.APIVersion)
		}
		var states []any
		for _, in := range doc.VRRP {
			states = append(states, in.State)
		}
		if !reflect.DeepEqual(states, []any{"master", "backup"}) {
			t.Errorf("vrrp states %#v, want master and backup as strings", states)
		}
		if len(doc.VirtualServers) == 0 || doc.VirtualServers[0].Name != "web" || doc.VirtualServers[0].Protocol != "tcp" ||
			doc.VirtualServers[0].PersistenceTimeoutMS == nil || *doc.VirtualServers[0].PersistenceTimeoutMS != 300000 {
			t.Errorf("virtual server web: %+v, want protocol \"tcp\" and persistence_timeout_ms 300000", doc.VirtualServers)
		}
		if strings.Contains(stdout.String(), "300000000000") {
			t.Errorf("a duration in nanoseconds:\n%s", stdout.String())
		}
	})
	t.Run("table", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"status", "-s", path}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		assertLines(t, stdout.String(), "TCP  192.0.2.10:80 wlc persistent 300 mask /24  [web, quorum up (alive weight 5, quorum 1)]")
	})
	t.Run("stats", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"status", "-s", path, "--stats"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		assertLines(t, stdout.String(), "TCP  192.0.2.10:80       1200   9000    8000  700000  9100000")
	})
	t.Run("socket from config", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "haldir.toml")
		body := strings.Replace(validConfig, `router_id = "lvs-a"`, `router_id = "lvs-a"`+"\ncontrol_socket = \""+path+"\"", 1)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"status", "-c", cfg}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "haldir 0.3.0, router_id lvs-a, up ") {
			t.Errorf("status via -c printed %q", stdout.String())
		}
	})
}

// The VM tests read `haldir status --json` through vmStatus; it must keep
// matching the document, or they would read zeros and wait in vain.
func TestVMStatusReadsTheDocument(t *testing.T) {
	b, err := json.Marshal(sampleStatus().API())
	if err != nil {
		t.Fatal(err)
	}
	var st vmStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	r := st.Services[0].Reals[0]
	if !st.ConfigLoaded.Equal(sampleStatus().ConfigLoaded) || st.Director == nil || st.Director.Passes != 310 || st.writes() != 13 ||
		len(st.Director.Errors) != 1 || st.Services[0].Name != "web" ||
		r.Addr != netip.MustParseAddrPort("10.0.0.21:8080") || !r.Healthy || !r.InKernel || r.ConfiguredWeight != 3 || r.KernelWeight != 5 ||
		len(st.Probes) != 4 || !st.Probes[1].Up || st.Probes[1].Key == "" {
		t.Errorf("vmStatus read %+v from\n%s", st, b)
	}
}

func TestStatusCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"not running", []string{"status", "-s", missing}, exitUsage, "haldir status: haldir is not running? no control socket at " + missing},
		{"both -s and -c", []string{"status", "-s", missing, "-c", "/x.toml"}, exitUsage, "-s and -c are mutually exclusive"},
		{"stats and rate", []string{"status", "--stats", "--rate"}, exitUsage, "--stats and --rate are mutually exclusive"},
		// An unreadable file falls back to the default socket, and says so
		// when nothing answers there.
		{"config unreadable", []string{"status", "-c", missing + ".toml"}, exitUsage, "(the default socket: reading " + missing + ".toml for its control socket"},
		{"config disables the socket", []string{"status", "-c", writeFile(t, "[global]\ncontrol_socket = \"\"\n")}, exitUsage, `global.control_socket = "" disables the control socket`},
		{"extra argument", []string{"status", "now"}, exitUsage, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

// FuzzRenderStatus feeds arbitrary daemon answers to the renderer: a
// newer or broken daemon must never crash `haldir status`.
func FuzzRenderStatus(f *testing.F) {
	b, err := json.Marshal(sampleStatus())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"Services":[{"Reals":[{"Checked":true,"Addr":"10.0.0.1:80"}]}],"Probes":[{"Target":{"Addr":"10.0.0.1:80"},"History":[]}]}`))
	f.Add([]byte(`{"VRRP":[{"State":99,"Priority":255}],"Foreign":[{"Fwmark":1,"V6":true}],"Director":{"Errors":{"x/y":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st control.Status
		if json.Unmarshal(data, &st) != nil {
			return
		}
		for _, m := range []statusMode{modeState, modeStats, modeRate} {
			var out bytes.Buffer
			renderStatus(&out, st, m, statusNow)
			if !strings.HasPrefix(out.String(), "haldir ") {
				t.Fatalf("output does not start with the header: %q", out.String())
			}
		}
	})
}

// TestRenderOperator: maintenance heads the status, a drained real server
// says so in its EffWeight cell, another override gives its weight, and a
// cluster member in maintenance is marked.
func TestRenderOperator(t *testing.T) {
	st := sampleStatus()
	st.Maintenance = &control.Maintenance{Reason: "kernel upgrade", Since: st.ConfigLoaded.Add(2 * time.Minute)}
	r := &st.Services[0].Reals[0]
	r.Overridden, r.OverrideWeight, r.EffectiveWeight = true, 0, 0
	r2 := &st.Services[0].Reals[1]
	r2.Overridden, r2.OverrideWeight = true, 7
	st.Cluster = &cluster.View{Members: []cluster.Member{{NodeState: cluster.NodeState{Name: "lvs-a", Maintenance: true}, Addr: "10.0.0.1:7946", Status: "alive", Self: true}}}
	out := render(t, st, modeState)
	assertLines(t, out,
		"MAINTENANCE since 10m5s ago: kernel upgrade (every VRRP instance at priority 1; haldir maintenance off ends it)",
	)
	for _, want := range []string{"0 (drained by operator)", "0 (operator: 7)", "alive, maintenance"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestRenderLastDrill: the newest kept drill heads the status in one
// line; without one there is no line.
func TestRenderLastDrill(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		last *control.DrillSummary
		want string // "" for no line
	}{
		{"none", nil, ""},
		{"passed", &control.DrillSummary{ID: "20261204T030000.000Z-handoff", Kind: "handoff", Verdict: "pass", At: at},
			"last drill: 20261204T030000.000Z-handoff handoff PASS gap 0.0 ms"},
		{"failed with a gap", &control.DrillSummary{ID: "20261204T030000.000Z-failover", Kind: "failover", Verdict: "fail", At: at, GapMillis: 812.46, BoundMillis: 500},
			"last drill: 20261204T030000.000Z-failover failover FAIL gap 812.5 ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := sampleStatus()
			st.LastDrill = tc.last
			out := render(t, st, modeState)
			if tc.want == "" {
				if strings.Contains(out, "last drill") {
					t.Errorf("a last drill line without a drill:\n%s", out)
				}
				return
			}
			assertLines(t, out, tc.want)
		})
	}
}

// TestRenderBGP: the speaker's peers and prefixes (announced, or why not,
// with the withdrawals per reason), a peer not established among the
// problems, and the cluster view's column of announced prefixes.
func TestRenderBGP(t *testing.T) {
	st := sampleStatus()
	web := netip.MustParsePrefix("192.0.2.10/32")
	st.BGP = &control.BGPStatus{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.11"), Device: "haldir0",
		Peers: []bgp.PeerStatus{
			{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: "established", Up: statusNow.Add(-90 * time.Second),
				LocalAddress: netip.MustParseAddr("10.0.0.11"), BFD: "up"},
			{Address: netip.MustParseAddr("10.0.0.2"), ASN: 65000, State: "active"},
		},
		Prefixes: []bgp.PrefixState{
			{Prefix: web, VirtualServers: []string{"web", "web-tls"}, Announced: true, Since: statusNow.Add(-time.Hour),
				Withdrawals: map[string]uint64{"quorum lost: web": 2, "maintenance": 1}},
			{Prefix: netip.MustParsePrefix("2001:db8::53/128"), VirtualServers: []string{"dns"}, Reason: "quorum lost: dns",
				Since: statusNow.Add(-time.Minute), Withdrawals: map[string]uint64{"quorum lost: dns": 1}},
		}}
	st.Cluster = &cluster.View{Members: []cluster.Member{
		{NodeState: cluster.NodeState{Name: "lvs-a", BGPAnnounced: []netip.Prefix{web}}, Addr: "10.0.0.11:7946", Status: "alive", Self: true},
		{NodeState: cluster.NodeState{Name: "lvs-b"}, Addr: "10.0.0.12:7946", Status: "alive"},
	}}
	out := render(t, st, modeState)
	assertLines(t, out,
		"BGP: asn 65010, router id 10.0.0.11, addresses on haldir0",
		"  PEER      ASN    STATE        UP     LOCAL      BFD",
		"  10.0.0.1  65000  established  1m30s  10.0.0.11  up",
		"  10.0.0.2  65000  active       -      -          -",
		"  PREFIX            VIRTUAL SERVERS  ANNOUNCED             SINCE     WITHDRAWALS",
		"  192.0.2.10/32     web,web-tls      yes                   1h0m ago  maintenance 1; quorum lost: web 2",
		"  2001:db8::53/128  dns              no: quorum lost: dns  1m0s ago  quorum lost: dns 1",
		"  bgp: peer 10.0.0.2 (asn 65000) is active, not established",
	)
	for _, want := range []string{"VRRP  BGP ANNOUNCES\n", "alive                  192.0.2.10/32\n", "alive                  -\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestRenderCheckOverload: status says when the health checker runs late
// (from healthcheck.OverloadLag on) and how many timeouts it retried; a
// checker that keeps up gets no line.
func TestRenderCheckOverload(t *testing.T) {
	st := sampleStatus()
	st.CheckLag, st.CheckLateRetries = 1234*time.Millisecond, 7
	assertLines(t, render(t, st, modeState),
		"health checks: running up to 1.234s late (last 10-20 s): the checker is overloaded and checks less often",
		"health checks: 7 failures retried before counting: the checker was late (overloaded)")
	st.CheckLag, st.CheckLateRetries = healthcheck.OverloadLag-time.Millisecond, 0
	if out := render(t, st, modeState); strings.Contains(out, "health checks:") {
		t.Errorf("a checker %v late is not overloaded, yet status says so", st.CheckLag)
	}
}
