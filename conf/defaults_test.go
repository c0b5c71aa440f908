package conf

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, path string) *Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := load(t, "testdata/valid/minimal.toml")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	in := c.VRRP[0]
	ts := in.TrackScripts[0]
	web, web6, mark := c.VirtualServers[0], c.VirtualServers[1], c.VirtualServers[2]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"global.router_id", c.Global.RouterID, host},
		{"global.control_socket", c.Global.ControlSocket, "/run/haldir/haldir.sock"},
		{"global.state_dir", c.Global.StateDir, "/var/lib/haldir"},
		{"global.metrics_listen", c.Global.MetricsListen, "127.0.0.1:9712"},
		{"global.log_level", c.Global.LogLevel, "info"},
		{"global.log_format", c.Global.LogFormat, "text"},
		{"global.notify_timeout", c.Global.NotifyTimeout.D(), 10 * time.Second},
		{"vrrp.version", in.Version, 3},
		{"vrrp.advert_interval", in.AdvertInterval.D(), time.Second},
		{"vrrp.priority", in.Priority, 100},
		{"vrrp.preempt", in.Preempt, true},
		{"vrrp.preempt_delay", in.PreemptDelay.D(), time.Duration(0)},
		{"vrrp.accept_mode", in.AcceptMode, true},
		{"vrrp.use_vmac", in.UseVMAC, false},
		{"vrrp.vmac_interface (no vmac)", in.VMACInterface, ""},
		{"vrrp.garp.delay", in.GARP.Delay.D(), 5 * time.Second},
		{"vrrp.garp.repeat", in.GARP.Repeat, 5},
		{"vrrp.garp.refresh", in.GARP.Refresh.D(), time.Duration(0)},
		{"track_script.interval", ts.Interval.D(), 2 * time.Second},
		{"track_script.timeout", ts.Timeout.D(), time.Second},
		{"track_script.rise", ts.Rise, 1},
		{"track_script.fall", ts.Fall, 1},
		{"track_script.weight", ts.Weight, 0},
		{"virtual_server.protocol", web.Protocol, "tcp"},
		{"virtual_server.scheduler", web.Scheduler, "wlc"},
		{"virtual_server.forwarding", web.Forwarding, "nat"},
		{"virtual_server.persistence_granularity v4", web.PersistenceGranularity, 32},
		{"virtual_server.persistence_granularity v6", web6.PersistenceGranularity, 128},
		{"virtual_server.quorum", web.Quorum, 1},
		{"virtual_server.hysteresis", web.Hysteresis, 0},
		{"virtual_server.tunnel_type (nat)", web.TunnelType, ""},
		{"virtual_server.family (fwmark)", mark.Family, "inet"},
		{"virtual_server.tunnel_type (tun)", mark.TunnelType, "ipip"},
		{"real_server.port", web.RealServers[0].Port, 80},
		{"real_server.port (fwmark)", mark.RealServers[0].Port, 0},
		{"real_server.weight", web.RealServers[0].Weight, 1},
		{"real_server.forwarding", mark.RealServers[0].Forwarding, "tun"},
		{"real_server.check (none anywhere)", web.RealServers[0].Check, (*Check)(nil)},
		{"sync.sync_id", c.Sync.SyncID, 51},
		{"cluster.name", c.Cluster.Name, host},
		{"cluster.advertise", c.Cluster.Advertise, netip.MustParseAddrPort("10.0.0.1:7946")},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}

	want := &Check{
		Type: "https", Interval: Duration(2 * time.Second), Timeout: Duration(time.Second),
		Rise: 1, Fall: 2, InitialState: "up", Path: "/",
		ExpectStatus: StatusCodes{{200, 299}}, TLSVerify: true,
	}
	if got := web6.RealServers[0].Check; !reflect.DeepEqual(got, want) {
		t.Errorf("default https check\n got %+v\nwant %+v", got, want)
	}
}

// TestVRRPExtrasDefaults covers the defaults that depend on other keys:
// the virtual MAC interface's name and a tracked virtual server's weight.
func TestVRRPExtrasDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		want        VRRPInstance
	}{
		{"vmac default name", "use_vmac = true", VRRPInstance{UseVMAC: true, VMACInterface: "vrrp.51"}},
		{"vmac named", "use_vmac = true\nvmac_interface = \"vmac0\"", VRRPInstance{UseVMAC: true, VMACInterface: "vmac0"}},
		{"track_virtual_server weight 0 = fault", "track_virtual_server = [{ name = \"web\" }]",
			VRRPInstance{TrackVirtualSrvs: []TrackVS{{Name: "web"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "[[vrrp]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\nvirtual_addresses = [\"192.0.2.10/24\"]\n" + tc.extra +
				"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\n"
			c, err := Parse([]byte(src), "t.toml")
			if err != nil {
				t.Fatal(err)
			}
			in := c.VRRP[0]
			got := VRRPInstance{UseVMAC: in.UseVMAC, VMACInterface: in.VMACInterface, TrackVirtualSrvs: in.TrackVirtualSrvs}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestExplicitZeroes checks that keys set to their zero value are not
// overwritten by defaults.
func TestExplicitZeroes(t *testing.T) {
	c := load(t, "testdata/valid/explicit.toml")
	in := c.VRRP[0]
	web := c.VirtualServers[0]
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"global.metrics_listen", c.Global.MetricsListen, ""},
		{"global.control_socket", c.Global.ControlSocket, ""},
		{"vrrp.preempt", in.Preempt, false},
		{"vrrp.garp.delay", in.GARP.Delay.D(), time.Duration(0)},
		{"vrrp.garp.repeat", in.GARP.Repeat, 1},
		{"vrrp.auth", *in.Auth, VRRPAuth{Type: "pass", Password: "12345678"}},
		{"virtual_server.persistence_granularity", web.PersistenceGranularity, 24},
		{"virtual_server.sorry_server port 0 = vs port", web.SorryServer, netip.MustParseAddrPort("10.0.0.30:80")},
		{"real_server.weight", web.RealServers[0].Weight, 0},
		{"sync.sync_id", c.Sync.SyncID, 0},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

// TestEffectiveCheck covers the inheritance of the virtual server's check.
func TestEffectiveCheck(t *testing.T) {
	c := load(t, "testdata/valid/explicit.toml")
	vs := c.VirtualServers[0]
	template := Check{
		Type: "https", Interval: Duration(10 * time.Second), Timeout: Duration(3 * time.Second),
		Rise: 1, Fall: 2, InitialState: "down", Path: "/healthz",
		ExpectStatus: StatusCodes{{200, 200}, {301, 302}}, TLSVerify: false,
	}
	if !reflect.DeepEqual(*vs.Check, template) {
		t.Errorf("virtual server check\n got %+v\nwant %+v", *vs.Check, template)
	}

	sameType := template
	sameType.Interval = Duration(5 * time.Second)

	// Changing the type keeps the generic keys and drops the https ones
	// (path, expect_status, tls_verify fall back to the tcp defaults).
	otherType := Check{
		Type: "tcp", Interval: Duration(10 * time.Second), Timeout: Duration(3 * time.Second),
		Rise: 1, Fall: 2, InitialState: "down", ConnectPort: 8080,
	}
	for i, want := range []*Check{&template, &sameType, &otherType, nil} {
		got := vs.RealServers[i].Check
		if !reflect.DeepEqual(got, want) {
			t.Errorf("real_server[%d].check\n got %+v\nwant %+v", i, got, want)
		}
	}
	// Every real server must own its check: the integrator's checkers may
	// keep pointers.
	if vs.RealServers[0].Check == vs.Check {
		t.Error("real server check aliases the virtual server's")
	}
	vs.RealServers[0].Check.ExpectStatus[0].Lo = 100
	if vs.Check.ExpectStatus[0].Lo != 200 {
		t.Error("real server check shares expect_status with the virtual server's")
	}
}

// TestLines checks the position scanner on the constructs a config uses.
func TestLines(t *testing.T) {
	src := `# comment
[global]
log_level = "info" # trailing [comment]
s = """multi
line [x]"""

[[virtual_server]]
name = "a"
[[virtual_server.real_server]]
address = "1"
[[virtual_server]]
name = 'b'
check = { type = "tcp",
  interval = "1s" }
[[virtual_server.real_server]]
[[virtual_server.real_server]]
weight = 3
"quoted.key" = [
  1,
  [2, 3],
]
`
	got := keyLines([]byte(src))
	for path, line := range map[string]int{
		"global":                                              2,
		"global.log_level":                                    3,
		"global.s":                                            4,
		"virtual_server[0]":                                   7,
		"virtual_server[0].name":                              8,
		"virtual_server[0].real_server[0]":                    9,
		"virtual_server[1].name":                              12,
		"virtual_server[1].check.type":                        13,
		"virtual_server[1].check.interval":                    14,
		"virtual_server[1].real_server[0]":                    15,
		"virtual_server[1].real_server[1]":                    16,
		"virtual_server[1].real_server[1].weight":             17,
		`virtual_server[1].real_server[1]."quoted.key"[0]`:    19,
		`virtual_server[1].real_server[1]."quoted.key"[1][1]`: 20,
	} {
		if got[path] != line {
			t.Errorf("line of %s = %d, want %d", path, got[path], line)
		}
	}
}

// TestDocsListEveryKey keeps docs/config.md in step with the schema: every
// key of every table must appear in a table row as "| `key` |".
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(rt reflect.Type, path string) {
		if reflect.PointerTo(rt).Implements(typeOfUnmarshaler) {
			return // a value, not a table
		}
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || rt.PkgPath() != typeOfConfig.PkgPath() || seen[rt] {
			return
		}
		seen[rt] = true
		for key, f := range tomlFields(rt) {
			if path != "" && !strings.Contains(string(doc), "| `"+key+"` |") {
				t.Errorf("docs/config.md does not document %s.%s", path, key)
			}
			walk(f.Type, joinPath(path, key))
		}
	}
	walk(typeOfConfig, "")
}

// The keys that carry keepalived's variants of a check type default to
// haldir's stricter behaviour; each url gets expect_status's default, and
// a real server's urls are its own.
func TestCheckVariantDefaults(t *testing.T) {
	c, err := Parse([]byte(`
[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80
check = { type = "http", urls = [{ path = "/a" }, { path = "/b", expect_status = [204] }] }
[[virtual_server.real_server]]
address = "10.0.0.1"
[[virtual_server.real_server]]
address = "10.0.0.2"
check = { type = "udp" }
[[virtual_server.real_server]]
address = "10.0.0.3"
check = { type = "udp", require_reply = false }
[[virtual_server.real_server]]
address = "10.0.0.4"
check = { type = "exec", command = ["/bin/true"] }
[[virtual_server.real_server]]
address = "10.0.0.5"
check = { type = "exec", command = ["/bin/true"], dynamic_weight = false }
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	rs := c.VirtualServers[0].RealServers
	wantURLs := []CheckURL{{Path: "/a", ExpectStatus: StatusCodes{{200, 299}}}, {Path: "/b", ExpectStatus: StatusCodes{{204, 204}}}}
	if !reflect.DeepEqual(rs[0].Check.URLs, wantURLs) {
		t.Errorf("urls %+v, want %+v", rs[0].Check.URLs, wantURLs)
	}
	rs[0].Check.URLs[1].ExpectStatus[0].Lo = 100
	if c.VirtualServers[0].Check.URLs[1].ExpectStatus[0].Lo != 204 {
		t.Error("a real server's urls share expect_status with the virtual server's")
	}
	if !rs[1].Check.RequireReply || rs[2].Check.RequireReply {
		t.Errorf("require_reply: default %v, false %v", rs[1].Check.RequireReply, rs[2].Check.RequireReply)
	}
	if !rs[3].Check.DynamicWeight || rs[4].Check.DynamicWeight {
		t.Errorf("dynamic_weight: default %v, false %v", rs[3].Check.DynamicWeight, rs[4].Check.DynamicWeight)
	}
}
