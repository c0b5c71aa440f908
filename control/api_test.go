package control

import (
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// apiObjects walks the document's types from APIStatus and returns, for
// each object type (first reached), its path (".vrrp[]") and its fields
// in order, embedded structs flattened as encoding/json does.
func apiObjects(t *testing.T) (paths []string, fields map[string][]reflect.StructField) {
	t.Helper()
	fields = map[string][]reflect.StructField{}
	seen := map[reflect.Type]bool{}
	var walk func(ty reflect.Type, path string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			if ty.Kind() == reflect.Slice {
				path += "[]"
			}
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || ty == reflect.TypeFor[time.Time]() || seen[ty] {
			return
		}
		seen[ty] = true
		paths = append(paths, path)
		var flat func(ty reflect.Type)
		flat = func(ty reflect.Type) {
			for i := range ty.NumField() {
				f := ty.Field(i)
				if f.Anonymous {
					flat(f.Type)
					continue
				}
				fields[path] = append(fields[path], f)
			}
		}
		flat(ty)
		for _, f := range fields[path] {
			sub := path + "." + jsonName(f)
			if path == "." {
				sub = "." + jsonName(f)
			}
			walk(f.Type, sub)
		}
	}
	walk(reflect.TypeFor[APIStatus](), ".")
	return paths, fields
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// docs/api.md documents every field of every object, and nothing else: a
// field added to the code without its line, or a line left behind by a
// field's removal, fails here.
func TestAPIDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]string{} // path -> documented field names
	heading := regexp.MustCompile("^### `([^`]+)`")
	row := regexp.MustCompile("^\\| `([a-z0-9_]+)` \\|")
	cur := ""
	for _, line := range strings.Split(string(doc), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			cur = m[1]
			if _, dup := sections[cur]; dup {
				t.Errorf("docs/api.md: two sections for %s", cur)
			}
			sections[cur] = []string{}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != "" {
			sections[cur] = append(sections[cur], m[1])
		}
	}
	paths, fields := apiObjects(t)
	for _, p := range paths {
		documented, ok := sections[p]
		if !ok {
			t.Errorf("docs/api.md has no section ### `%s`", p)
			continue
		}
		var names []string
		for _, f := range fields[p] {
			names = append(names, jsonName(f))
			if !slices.Contains(documented, jsonName(f)) {
				t.Errorf("docs/api.md: %s.%s (%s) is not documented", p, jsonName(f), f.Name)
			}
		}
		for _, d := range documented {
			if !slices.Contains(names, d) {
				t.Errorf("docs/api.md documents %s.%s, which the document does not have", p, d)
			}
		}
		if !slices.Equal(documented, names) && len(documented) == len(names) {
			t.Errorf("docs/api.md lists %s's fields as %v, the document as %v", p, documented, names)
		}
	}
	for s := range sections {
		if !slices.Contains(paths, s) {
			t.Errorf("docs/api.md has a section for %s, which is not an object of the document", s)
		}
	}
}

// The document's types keep its conventions: no Go durations (nanosecond
// integers), no Go enums (integers), no zero times, snake_case keys, and
// a duration's key names its unit.
func TestAPITypesConventions(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	paths, fields := apiObjects(t)
	for _, p := range paths {
		for _, f := range fields[p] {
			name, ty := jsonName(f), f.Type
			where := p + "." + name + " (" + f.Name + " " + ty.String() + ")"
			if !snake.MatchString(name) {
				t.Errorf("%s: key is not snake_case", where)
			}
			for ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
				ty = ty.Elem()
			}
			switch {
			case ty == reflect.TypeFor[time.Duration]():
				t.Errorf("%s: a time.Duration marshals as nanoseconds", where)
			case ty == reflect.TypeFor[time.Time]():
				t.Errorf("%s: a time.Time marshals its zero as 0001-01-01; use *time.Time, nil when unknown", where)
			case ty.Kind() >= reflect.Int && ty.Kind() <= reflect.Uint64 && ty.PkgPath() != "":
				t.Errorf("%s: a named integer type is an enum; write it as a string", where)
			}
			if (strings.HasSuffix(name, "_ms") || strings.HasSuffix(name, "_us")) && ty.Kind() != reflect.Int64 {
				t.Errorf("%s: a duration in %s must be an int64", where, name[len(name)-2:])
			}
		}
	}
}

// apiSample has every part of the status set, each duration a different
// value, so that a nanosecond or an enum integer cannot hide.
func apiSample() (Status, []time.Duration) {
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	vip := netip.MustParseAddrPort("192.0.2.10:80")
	r1 := netip.MustParseAddrPort("10.0.0.21:8080")
	check := conf.Check{Type: "http", Path: "/healthz", Interval: conf.Duration(2 * time.Second), Timeout: conf.Duration(1500 * time.Millisecond), Rise: 2, Fall: 3}
	durations := []time.Duration{time.Second, 2 * time.Second, 1500 * time.Millisecond, 300 * time.Second, 2345 * time.Microsecond}
	return Status{
		Version: "0.3.0", RouterID: "lvs-a", ConfigPath: "/etc/haldir/haldir.toml", Started: t0, ConfigLoaded: t0.Add(time.Hour),
		VRRP: []vrrp.Status{{Name: "VI_1", State: vrrp.StateBackup, Priority: 90, BasePriority: 100,
			Source: netip.MustParseAddr("192.0.2.2"), MasterAddr: netip.MustParseAddr("192.0.2.3"), MasterInterval: time.Second,
			AdvertsSent: 3, AdvertsRecv: 40, Transitions: 2, Drops: map[string]uint64{"bad_ttl": 1}, LastChange: t0.Add(time.Minute),
			Failing: []string{"track_script chk failing -10"}, SendErrorReasons: map[string]uint64{"ehostunreach": 2},
			PriorityChanges: map[string]uint64{"track_script:chk": 1}}},
		VirtualServers: []conf.VirtualServer{{Name: "web", Address: vip.Addr(), Port: 80, Protocol: "tcp", Forwarding: "dr",
			PersistenceTimeout: conf.Duration(300 * time.Second), PersistenceGranularity: 24,
			RealServers: []conf.RealServer{{Address: r1.Addr(), Port: 8080, Forwarding: "nat", Check: &check}}}},
		Services: []director.ServiceStatus{{Name: "web", Key: ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: vip}, Scheduler: "wlc",
			InKernel: true, QuorumUp: true, AliveWeight: 3, Quorum: 1, Stats: ipvs.Stats{Conns: 7, CPS: 1},
			Reals: []director.RealStatus{{Name: "r1", Addr: r1, Checked: true, Healthy: true, HealthKnown: true, ConfiguredWeight: 3,
				EffectiveWeight: 3, InKernel: true, KernelWeight: 3, ActiveConns: 2, InactiveConns: 5}}}},
		Foreign:  []ipvs.ServiceKey{{Fwmark: 7, V6: true}},
		Director: &director.Counters{Passes: 5, Writes: map[ipvs.OpKind]uint64{ipvs.OpNewDest: 1}, Errors: map[director.ErrorKey]uint64{{Op: ipvs.OpNewDest, Reason: "EEXIST"}: 1}},
		Probes: []healthcheck.ProbeStatus{{Key: "k", Target: healthcheck.Target{Addr: r1, Check: conf.CompileCheck(&check, r1)}, Up: true, Since: t0, Checks: 9,
			Subscribers: 1, History: []healthcheck.Result{{Up: true, Reason: "HTTP 200", Start: t0, Took: 2345 * time.Microsecond}}}},
		Sync: &connsync.Status{Running: []ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 51}},
			Want: ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 51}, Changes: 1},
		Cluster: &cluster.View{Members: []cluster.Member{{NodeState: cluster.NodeState{Name: "lvs-a", Version: "0.3.0", Incarnation: uint64(t0.UnixNano()), Seq: 4,
			Config: map[string]string{"vrrp": "ab"}, VRRP: []cluster.InstanceState{{Name: "VI_1", VRID: 51, Family: 6, State: "backup", Priority: 90}},
			BGPAnnounced: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}},
			Addr: "127.0.0.1:7946", Status: "alive", Self: true}}},
		NotRunning: map[string]string{"metrics": "disabled"},
		LastDrill:  &DrillSummary{ID: "20261124T100000.000Z-handoff", Kind: "handoff", Verdict: "fail", At: t0, GapMillis: 0.4, BoundMillis: 500},
		BGP: &BGPStatus{ASN: 65010, RouterID: netip.MustParseAddr("10.0.0.11"), Device: "haldir0",
			Peers: []bgp.PeerStatus{{Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, State: "established", Up: t0, LocalAddress: netip.MustParseAddr("10.0.0.11"), BFD: "up"},
				{Address: netip.MustParseAddr("10.0.0.2"), ASN: 65000, State: "active"}},
			Prefixes: []bgp.PrefixState{{Prefix: netip.MustParsePrefix("192.0.2.10/32"), VirtualServers: []string{"web"}, Reason: "quorum lost: web", Since: t0,
				Withdrawals: map[string]uint64{"quorum lost: web": 3}}}},
	}, durations
}

func TestAPIValues(t *testing.T) {
	st, durations := apiSample()
	b, err := json.Marshal(st.API())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	get := func(path ...any) any {
		var v any = doc
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	for _, tc := range []struct {
		path []any
		want any
	}{
		{[]any{"api_version"}, 1.0},
		{[]any{"started"}, "2026-11-24T10:00:00Z"},
		{[]any{"vrrp", 0, "state"}, "backup"},
		{[]any{"vrrp", 0, "master"}, "192.0.2.3"},
		{[]any{"vrrp", 0, "master_interval_ms"}, 1000.0},
		{[]any{"vrrp", 0, "failing", 0}, "track_script chk failing -10"},
		{[]any{"vrrp", 0, "send_error_reasons", "ehostunreach"}, 2.0},
		{[]any{"vrrp", 0, "priority_changes", "track_script:chk"}, 1.0},
		{[]any{"virtual_servers", 0, "service"}, "tcp 192.0.2.10:80"},
		{[]any{"virtual_servers", 0, "protocol"}, "tcp"},
		{[]any{"virtual_servers", 0, "family"}, "inet"},
		{[]any{"virtual_servers", 0, "persistence_timeout_ms"}, 300000.0},
		{[]any{"virtual_servers", 0, "real_servers", 0, "forwarding"}, "nat"},
		{[]any{"virtual_servers", 0, "real_servers", 0, "inactive_connections"}, 5.0},
		{[]any{"foreign_services", 0, "service"}, "fwmark 7 inet6"},
		{[]any{"director", "errors", 0, "op"}, "new_destination"},
		{[]any{"health_checks", 0, "interval_ms"}, 2000.0},
		{[]any{"health_checks", 0, "timeout_ms"}, 1500.0},
		{[]any{"health_checks", 0, "history", 0, "took_us"}, 2345.0},
		{[]any{"sync", "running", 0, "role"}, "backup"},
		{[]any{"sync", "wanted", "role"}, "master"},
		{[]any{"cluster", "members", 0, "vrrp", 0, "family"}, "inet6"},
		{[]any{"last_drill", "verdict"}, "fail"},
		{[]any{"last_drill", "started"}, "2026-11-24T10:00:00Z"},
		{[]any{"last_drill", "gap_us"}, 400.0},
		{[]any{"last_drill", "bound_us"}, 500000.0},
		{[]any{"bgp", "router_id"}, "10.0.0.11"},
		{[]any{"bgp", "peers", 0, "up"}, true},
		{[]any{"bgp", "peers", 0, "since"}, "2026-11-24T10:00:00Z"},
		{[]any{"bgp", "peers", 1, "up"}, false},
		{[]any{"bgp", "peers", 1, "since"}, nil},
		{[]any{"bgp", "peers", 1, "local_address"}, ""},
		{[]any{"bgp", "prefixes", 0, "announced"}, false},
		{[]any{"bgp", "prefixes", 0, "reason"}, "quorum lost: web"},
		{[]any{"bgp", "prefixes", 0, "withdrawals", "quorum lost: web"}, 3.0},
		{[]any{"cluster", "members", 0, "bgp_announced", 0}, "192.0.2.10/32"},
	} {
		if got := get(tc.path...); got != tc.want {
			t.Errorf("%v = %#v, want %#v", tc.path, got, tc.want)
		}
	}
	// No number anywhere is a duration in nanoseconds, nor the start time
	// (the cluster's incarnation) in nanoseconds.
	ns := map[float64]bool{float64(st.Started.UnixNano()): true}
	for _, d := range durations {
		ns[float64(d.Nanoseconds())] = true
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
		case float64:
			if ns[v] {
				t.Errorf("%s = %v: nanoseconds", path, v)
			}
		}
	}
	walk("", doc)
}

// An empty status has its lists and maps empty, not null, and leaves out
// the times it does not know and the components it does not run.
func TestAPIEmpty(t *testing.T) {
	b, err := json.Marshal(Status{}.API())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"api_version":1,"version":"","router_id":"","config_path":"","vrrp":[],"virtual_servers":[],"foreign_services":[],"health_checks":[],"not_running":{},"maintenance":{"on":false,"reason":""},"drains":[],"problems":[],"check_late_retries":0,"check_lag_seconds":0}`
	if string(b) != want {
		t.Errorf("empty status:\n got %s\nwant %s", b, want)
	}
}
