package conf

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func compileFile(t *testing.T, path string) *Spec {
	t.Helper()
	s, err := LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func compileSrc(t *testing.T, src string) *Spec {
	t.Helper()
	c, err := Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	return Compile(c)
}

type field struct {
	name      string
	got, want any
}

func checkFields(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		t.Run(f.name, func(t *testing.T) {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("got %#v, want %#v", f.got, f.want)
			}
		})
	}
}

// TestCompileDefaults: every default reaches the typed values.
func TestCompileDefaults(t *testing.T) {
	s := compileFile(t, "testdata/valid/minimal.toml")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	in, ts := s.VRRP[0], s.VRRP[0].TrackScripts[0]
	web, web6, mark := s.VirtualServers[0], s.VirtualServers[1], s.VirtualServers[2]
	chk := web6.RealServers[0].Check
	checkFields(t, []field{
		{"global.router_id", s.Global.RouterID, host},
		{"global.control_socket", s.Global.ControlSocket, DefaultControlSocket},
		{"global.state_dir", s.Global.StateDir, DefaultStateDir},
		{"global.metrics_listen", s.Global.MetricsListen, DefaultMetricsListen},
		{"global.log_level", s.Global.LogLevel, slog.LevelInfo},
		{"global.log_format", s.Global.LogFormat, LogText},
		{"global.notify_timeout", s.Global.NotifyTimeout, 10 * time.Second},
		{"ipvs", s.IPVS, IPVSSpec{}},
		{"vrrp.vrid", in.VRID, uint8(51)},
		{"vrrp.version", in.Version, uint8(3)},
		{"vrrp.advert_interval", in.AdvertInterval, time.Second},
		{"vrrp.priority", in.Priority, uint8(100)},
		{"vrrp.preempt", in.Preempt, true},
		{"vrrp.preempt_delay", in.PreemptDelay, time.Duration(0)},
		{"vrrp.use_vmac", in.UseVMAC, false},
		{"vrrp.vmac_interface", in.VMACInterface, ""},
		{"vrrp.family", in.Family, FamilyInet},
		{"vrrp.virtual_addresses", in.VirtualAddresses, []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}},
		{"vrrp.auth", in.Auth, AuthSpec{}},
		{"vrrp.garp", in.GARP, GARPSpec{Delay: 5 * time.Second, Repeat: 5}},
		{"vrrp.sync_group", in.SyncGroup, ""},
		{"track_script", ts, TrackScriptSpec{Name: "chk", Command: []string{"/bin/true"}, Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1}},
		{"virtual_server.addr", web.Addr, netip.MustParseAddrPort("192.0.2.10:80")},
		{"virtual_server.family", web.Family, FamilyInet},
		{"virtual_server.protocol", web.Protocol, ProtoTCP},
		{"virtual_server.scheduler", web.Scheduler, SchedWLC},
		{"virtual_server.scheduler_flags", web.SchedulerFlags, SchedulerFlags(0)},
		{"virtual_server.forwarding", web.Forwarding, ForwardNAT},
		{"virtual_server.tunnel (nat)", web.Tunnel, TunnelSpec{}},
		{"virtual_server.persistence", web.Persistence, time.Duration(0)},
		{"virtual_server.persistence_granularity v4", web.PersistenceGranularity, 32},
		{"virtual_server.persistence_granularity v6", web6.PersistenceGranularity, 128},
		{"virtual_server.family v6", web6.Family, FamilyInet6},
		{"virtual_server.quorum", web.Quorum, 1},
		{"virtual_server.hysteresis", web.Hysteresis, 0},
		{"virtual_server.sorry", web.Sorry, netip.AddrPort{}},
		{"virtual_server.sorry_weight", web.SorryWeight, 1},
		{"fwmark", mark.Fwmark, uint32(7)},
		{"fwmark family", mark.Family, FamilyInet},
		{"fwmark addr", mark.Addr, netip.AddrPort{}},
		{"fwmark tunnel", mark.Tunnel, TunnelSpec{Type: TunnelIPIP}},
		{"real_server", web.RealServers[0], RealServerSpec{Addr: netip.MustParseAddrPort("10.0.0.21:80"), Weight: 1, Forwarding: ForwardNAT}},
		{"real_server fwmark port", mark.RealServers[0].Addr, netip.MustParseAddrPort("10.0.0.21:0")},
		{"real_server forwarding inherited", mark.RealServers[0].Forwarding, ForwardTunnel},
		{"check", *chk, CheckSpec{
			Kind: CheckHTTPS, Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 2, InitialUp: true,
			Connect: netip.MustParseAddrPort("[2001:db8::21]:443"),
			HTTP: HTTPCheckSpec{
				Host: "[2001:db8::21]", URLs: []URLSpec{{Path: "/", ExpectStatus: StatusCodes{{200, 299}}}},
				TLSVerify: true, ServerName: "2001:db8::21",
			},
		}},
		{"sync", *s.Sync, ConnSyncSpec{Interface: "eth1", VRRPInstance: "VI_1", SyncID: 51}},
		{"cluster", *s.Cluster, ClusterSpec{Name: host, Bind: netip.MustParseAddrPort("10.0.0.1:7946"),
			Advertise: netip.MustParseAddrPort("10.0.0.1:7946"), SecretFile: "/etc/haldir/cluster.key"}},
	})
}

// TestCompileExplicit: explicit values, zeroes included, survive, and the
// effective checks are compiled per real server.
func TestCompileExplicit(t *testing.T) {
	s := compileFile(t, "testdata/valid/explicit.toml")
	in, web := s.VRRP[0], s.VirtualServers[0]
	https := CheckSpec{
		Kind: CheckHTTPS, Interval: 10 * time.Second, Timeout: 3 * time.Second, Rise: 1, Fall: 2,
		Connect: netip.MustParseAddrPort("10.0.0.21:80"),
		HTTP: HTTPCheckSpec{
			Host: "10.0.0.21:80", URLs: []URLSpec{{Path: "/healthz", ExpectStatus: StatusCodes{{200, 200}, {301, 302}}}},
			ServerName: "10.0.0.21",
		},
	}
	https5 := https
	https5.Interval, https5.Connect = 5*time.Second, netip.MustParseAddrPort("10.0.0.22:80")
	https5.HTTP.Host, https5.HTTP.ServerName = "10.0.0.22:80", "10.0.0.22"
	checkFields(t, []field{
		{"global.metrics_listen", s.Global.MetricsListen, ""},
		{"global.control_socket", s.Global.ControlSocket, ""},
		{"global.state_dir", s.Global.StateDir, "/srv/haldir/state"},
		{"vrrp.version", in.Version, uint8(2)},
		{"vrrp.advert_interval", in.AdvertInterval, 3 * time.Second},
		{"vrrp.preempt", in.Preempt, false},
		{"vrrp.garp", in.GARP, GARPSpec{Repeat: 1}},
		{"vrrp.auth", in.Auth, AuthSpec{Type: AuthPass, Password: "12345678"}},
		{"vrrp.excluded_addresses", in.ExcludedAddresses, []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32"), netip.MustParsePrefix("2001:db8:10::10/64")}},
		{"vrrp.address_options", in.AddressOptions, []AddressOptionSpec{
			{Address: netip.MustParseAddr("192.0.2.10"), Interface: "eth1", Label: "eth1:vip"},
			{Address: netip.MustParseAddr("198.51.100.10"), Interface: "eth0", Label: "eth0:ex"}, // the instance's interface by default
		}},
		{"virtual_server.persistence", web.Persistence, time.Minute},
		{"virtual_server.persistence_granularity", web.PersistenceGranularity, 24},
		{"virtual_server.sorry port 0 = vs port", web.Sorry, netip.MustParseAddrPort("10.0.0.30:80")},
		{"real_server.weight 0", web.RealServers[0].Weight, 0},
		{"check inherited", web.RealServers[0].Check, &https},
		{"check interval overridden", web.RealServers[1].Check, &https5},
		{"check type changed", web.RealServers[2].Check, &CheckSpec{
			Kind: CheckTCP, Interval: 10 * time.Second, Timeout: 3 * time.Second, Rise: 1, Fall: 2,
			Connect: netip.MustParseAddrPort("10.0.0.23:8080"),
		}},
		{"check none", web.RealServers[3].Check, (*CheckSpec)(nil)},
		{"sync.sync_id 0", s.Sync.SyncID, uint8(0)},
	})
}

// TestCompileEnums: every spelling of every enumerated key compiles to
// its typed value.
func TestCompileEnums(t *testing.T) {
	const vs = "[[virtual_server]]\nname = \"v\"\naddress = \"192.0.2.10\"\nport = 80\n"
	const rs = "[[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n"
	for _, tc := range []struct {
		name string
		src  string
		get  func(*Spec) any
		want any
	}{
		{"protocol tcp", vs + "protocol = \"tcp\"\n", func(s *Spec) any { return s.VirtualServers[0].Protocol }, ProtoTCP},
		{"protocol udp", vs + "protocol = \"udp\"\n", func(s *Spec) any { return s.VirtualServers[0].Protocol }, ProtoUDP},
		{"protocol sctp", vs + "protocol = \"sctp\"\n", func(s *Spec) any { return s.VirtualServers[0].Protocol }, ProtoSCTP},
		{"family inet6", "[[virtual_server]]\nname = \"m\"\nfwmark = 1\nfamily = \"inet6\"\n", func(s *Spec) any { return s.VirtualServers[0].Family }, FamilyInet6},
		{"forwarding dr", vs + "forwarding = \"dr\"\n", func(s *Spec) any { return s.VirtualServers[0].Forwarding }, ForwardDR},
		{"forwarding per real server", vs + rs + "forwarding = \"dr\"\n", func(s *Spec) any { return s.VirtualServers[0].RealServers[0].Forwarding }, ForwardDR},
		{"tunnel gue csum", vs + "forwarding = \"tun\"\ntunnel_type = \"gue\"\ntunnel_port = 5555\ntunnel_checksum = \"remcsum\"\n",
			func(s *Spec) any { return s.VirtualServers[0].Tunnel }, TunnelSpec{Type: TunnelGUE, Port: 5555, Checksum: TunnelRemCsum}},
		{"tunnel gre default checksum", vs + "forwarding = \"tun\"\ntunnel_type = \"gre\"\n",
			func(s *Spec) any { return s.VirtualServers[0].Tunnel }, TunnelSpec{Type: TunnelGRE, Checksum: TunnelCsumNone}},
		{"tunnel gre csum", vs + "forwarding = \"tun\"\ntunnel_type = \"gre\"\ntunnel_checksum = \"csum\"\n",
			func(s *Spec) any { return s.VirtualServers[0].Tunnel }, TunnelSpec{Type: TunnelGRE, Checksum: TunnelCsum}},
		{"tunnel for a tun real server", vs + rs + "forwarding = \"tun\"\n",
			func(s *Spec) any { return s.VirtualServers[0].Tunnel }, TunnelSpec{Type: TunnelIPIP}},
		{"sh flags", vs + "scheduler = \"sh\"\nscheduler_flags = [\"sh-port\", \"sh-fallback\"]\n",
			func(s *Spec) any { return s.VirtualServers[0].SchedulerFlags }, SchedFlagPort | SchedFlagFallback},
		{"mh flags", vs + "scheduler = \"mh\"\nscheduler_flags = [\"mh-fallback\"]\n",
			func(s *Spec) any { return s.VirtualServers[0].SchedulerFlags }, SchedFlagFallback},
		{"ops", vs + "protocol = \"udp\"\nscheduler_flags = [\"ops\"]\n",
			func(s *Spec) any { return s.VirtualServers[0].SchedulerFlags }, SchedFlagOnePacket},
		{"log_level debug", "[global]\nlog_level = \"debug\"\n", func(s *Spec) any { return s.Global.LogLevel }, slog.LevelDebug},
		{"log_level warn", "[global]\nlog_level = \"warn\"\n", func(s *Spec) any { return s.Global.LogLevel }, slog.LevelWarn},
		{"log_level error", "[global]\nlog_level = \"error\"\n", func(s *Spec) any { return s.Global.LogLevel }, slog.LevelError},
		{"log_format json", "[global]\nlog_format = \"json\"\n", func(s *Spec) any { return s.Global.LogFormat }, LogJSON},
		{"initial_state down", vs + rs + "check = { type = \"tcp\", initial_state = \"down\" }\n",
			func(s *Spec) any { return s.VirtualServers[0].RealServers[0].Check.InitialUp }, false},
		{"auth none", "[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 1\nversion = 2\nvirtual_addresses = [\"192.0.2.1/24\"]\nauth = { type = \"none\" }\n",
			func(s *Spec) any { return s.VRRP[0].Auth }, AuthSpec{}},
		{"vmac", "[[vrrp]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 7\nuse_vmac = true\nvirtual_addresses = [\"2001:db8::1/64\"]\naddress_options = [{ address = \"2001:db8::1\" }]\n",
			func(s *Spec) any {
				in := s.VRRP[0]
				return []any{in.VMACInterface, in.Family, in.AddressOptions[0].Interface}
			}, []any{"vrrp.7", FamilyInet6, "vrrp.7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.get(compileSrc(t, tc.src)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}

	// Each kind, scheduler and spelling round-trips through String.
	for _, name := range schedulerNames.allowed() {
		s := compileSrc(t, vs+"scheduler = \""+name+"\"\n")
		if got := s.VirtualServers[0].Scheduler.String(); got != name {
			t.Errorf("scheduler %q compiled to %v", name, got)
		}
	}
	for _, name := range checkKindNames.allowed() {
		extra := map[string]string{"exec": ", command = [\"/bin/true\"]", "dns": ", query_name = \"example.org\""}[name]
		s := compileSrc(t, vs+rs+"check = { type = \""+name+"\""+extra+" }\n")
		if got := s.VirtualServers[0].RealServers[0].Check.Kind.String(); got != name {
			t.Errorf("check type %q compiled to %v", name, got)
		}
	}
}

// TestCompileChecks: the per-kind parts of a check.
func TestCompileChecks(t *testing.T) {
	const head = "[[virtual_server]]\nname = \"v\"\naddress = \"192.0.2.10\"\nport = 80\n[[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n"
	md5 := strings.Repeat("ab", 16)
	md5b, _ := hex.DecodeString(md5)
	for _, tc := range []struct {
		name, check string
		get         func(*CheckSpec) any
		want        any
	}{
		{"http host default on port 80", `{ type = "http" }`, func(c *CheckSpec) any { return c.HTTP.Host }, "10.0.0.1"},
		{"http host with connect_port", `{ type = "http", connect_port = 8080 }`, func(c *CheckSpec) any { return c.HTTP.Host }, "10.0.0.1:8080"},
		{"https host on port 80", `{ type = "https" }`, func(c *CheckSpec) any { return c.HTTP.Host }, "10.0.0.1:80"},
		{"host set", `{ type = "https", host = "svc.example:8443" }`, func(c *CheckSpec) any { return []string{c.HTTP.Host, c.HTTP.ServerName} },
			[]string{"svc.example:8443", "svc.example"}},
		{"server_name set", `{ type = "https", host = "a.example", server_name = "b.example" }`, func(c *CheckSpec) any { return c.HTTP.ServerName }, "b.example"},
		{"digest decoded", `{ type = "http", digest = "` + md5 + `" }`, func(c *CheckSpec) any { return c.HTTP.URLs[0].Digest }, md5b},
		{"urls keep their own status", `{ type = "http", urls = [{ path = "/a" }, { path = "/b", expect_status = [204] }] }`,
			func(c *CheckSpec) any { return c.HTTP.URLs },
			[]URLSpec{{Path: "/a", ExpectStatus: StatusCodes{{200, 299}}}, {Path: "/b", ExpectStatus: StatusCodes{{204, 204}}}}},
		{"connect address", `{ type = "tcp", connect_address = "10.9.9.9" }`, func(c *CheckSpec) any { return c.Connect }, netip.MustParseAddrPort("10.9.9.9:80")},
		{"source address", `{ type = "tcp", source_address = "10.0.0.99" }`, func(c *CheckSpec) any { return c.Source }, netip.MustParseAddr("10.0.0.99")},
		{"exec defaults", `{ type = "exec", command = ["/bin/true", "x"] }`, func(c *CheckSpec) any { return c.Exec },
			ExecCheckSpec{Command: []string{"/bin/true", "x"}, DynamicWeight: true}},
		{"dns default type", `{ type = "dns", query_name = "example.org" }`, func(c *CheckSpec) any { return c.DNS },
			DNSCheckSpec{QueryName: "example.org", QueryType: 1}},
		{"dns type", `{ type = "dns", query_name = "example.org", query_type = "aaaa", expect_answer = "2001" }`,
			func(c *CheckSpec) any { return c.DNS }, DNSCheckSpec{QueryName: "example.org", QueryType: 28, ExpectAnswer: "2001"}},
		{"udp defaults", `{ type = "udp" }`, func(c *CheckSpec) any { return c.UDP }, UDPCheckSpec{RequireReply: true}},
		{"udp payloads", `{ type = "udp", payload = "ping", expect_payload = "pong", require_reply = false }`,
			func(c *CheckSpec) any { return c.UDP }, UDPCheckSpec{Payload: []byte("ping"), ExpectPayload: []byte("pong")}},
		{"timings", `{ type = "tcp", interval = "3s", timeout = "2s", rise = 3, fall = 4, retry_delay = "500ms", warmup = "1s" }`,
			func(c *CheckSpec) any { return []any{c.Interval, c.Timeout, c.Rise, c.Fall, c.RetryDelay, c.Warmup} },
			[]any{3 * time.Second, 2 * time.Second, 3, 4, 500 * time.Millisecond, time.Second}},
		{"timeout default capped by interval", `{ type = "tcp", interval = "500ms" }`, func(c *CheckSpec) any { return c.Timeout }, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileSrc(t, head+"check = "+tc.check+"\n")
			if got := tc.get(s.VirtualServers[0].RealServers[0].Check); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// TestCompileSyncGroup: an instance knows its group.
func TestCompileSyncGroup(t *testing.T) {
	s := compileSrc(t, `[[vrrp]]
name = "a"
interface = "eth0"
vrid = 1
virtual_addresses = ["192.0.2.1/24"]
[[vrrp]]
name = "b"
interface = "eth0"
vrid = 2
virtual_addresses = ["192.0.2.2/24"]
[[vrrp_sync_group]]
name = "g"
instances = ["b"]
notify_master = ["/bin/true"]
`)
	checkFields(t, []field{
		{"a", s.VRRP[0].SyncGroup, ""},
		{"b", s.VRRP[1].SyncGroup, "g"},
		{"group", s.SyncGroups, []SyncGroupSpec{{Name: "g", Instances: []string{"b"}, Notify: GroupNotifySpec{Master: []string{"/bin/true"}}}}},
		{"Instance", s.Instance("b").VRID, uint8(2)},
		{"Instance missing", s.Instance("c"), (*VRRPInstanceSpec)(nil)},
	})
}

// TestCompileOwnsSlices: the spec shares nothing with the configuration.
func TestCompileOwnsSlices(t *testing.T) {
	c, err := Load("testdata/valid/explicit.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := Compile(c)
	before := Hash(s.VirtualServers)
	c.VirtualServers[0].Check.ExpectStatus[0].Lo = 100
	c.VirtualServers[0].RealServers[0].Check.ExpectStatus[0].Lo = 100
	c.VRRP[0].VirtualAddresses[0] = netip.MustParsePrefix("203.0.113.1/24")
	if Hash(s.VirtualServers) != before || s.VRRP[0].VirtualAddresses[0] != netip.MustParsePrefix("192.0.2.10/24") {
		t.Error("editing the configuration changed the compiled spec")
	}
}

// TestHashes: the cluster's drift detection compares these; a change that
// matters to peers changes its part only, a per-director setting none.
func TestHashes(t *testing.T) {
	base := compileFile(t, "testdata/valid/minimal.toml")
	for _, tc := range []struct {
		name    string
		edit    func(*Spec)
		changed []string
	}{
		{"nothing", func(*Spec) {}, nil},
		{"priority is per director", func(s *Spec) { s.VRRP[0].Priority = 200 }, nil},
		{"interface is per director", func(s *Spec) { s.VRRP[0].Interface = "eth9" }, nil},
		{"notify is per director", func(s *Spec) { s.VRRP[0].Notify.Master = []string{"/bin/true"} }, nil},
		{"advert interval", func(s *Spec) { s.VRRP[0].AdvertInterval = 2 * time.Second }, []string{"vrrp"}},
		{"vrid", func(s *Spec) { s.VRRP[0].VRID = 9 }, []string{"vrrp"}},
		{"auth", func(s *Spec) { s.VRRP[0].Auth = AuthSpec{Type: AuthPass, Password: "x"} }, []string{"vrrp"}},
		{"address", func(s *Spec) { s.VRRP[0].VirtualAddresses = []netip.Prefix{netip.MustParsePrefix("192.0.2.11/24")} }, []string{"vrrp"}},
		{"real server weight", func(s *Spec) { s.VirtualServers[0].RealServers[0].Weight = 7 }, []string{"virtual_server"}},
		{"scheduler", func(s *Spec) { s.VirtualServers[0].Scheduler = SchedRR }, []string{"virtual_server"}},
		{"check interval", func(s *Spec) { s.VirtualServers[1].RealServers[0].Check.Interval = time.Minute }, []string{"virtual_server"}},
		{"ipvs timeout", func(s *Spec) { s.IPVS.TimeoutUDP = time.Minute }, []string{"ipvs"}},
		{"sync id", func(s *Spec) { s.Sync.SyncID = 3 }, []string{"sync"}},
		{"sync interface is per director", func(s *Spec) { s.Sync.Interface = "eth7" }, nil},
		{"sync off", func(s *Spec) { s.Sync = nil }, []string{"sync"}},
		{"bgp on", func(s *Spec) {
			s.BGP = &BGPSpec{Announce: []BGPAnnounceSpec{{Prefix: netip.MustParsePrefix("192.0.2.10/32")}}}
		}, []string{"bgp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compileFile(t, "testdata/valid/minimal.toml")
			tc.edit(s)
			a, b := base.Hashes(), s.Hashes()
			var changed []string
			for _, k := range []string{"bgp", "ipvs", "sync", "virtual_server", "vrrp"} {
				if a[k] == "" || b[k] == "" {
					t.Fatalf("no hash for %s", k)
				}
				if a[k] != b[k] {
					changed = append(changed, k)
				}
			}
			if len(a) != 5 || len(b) != 5 {
				t.Errorf("hashes %v, want five parts", b)
			}
			if !reflect.DeepEqual(changed, tc.changed) {
				t.Errorf("changed %v, want %v", changed, tc.changed)
			}
		})
	}
	if got := base.Hashes()["sync"]; got == "off" {
		t.Errorf("sync hash %q with [sync]", got)
	}
}

// TestHashIgnoresRealServerOrder: the same real servers listed in
// another order are no drift; another real server is.
func TestHashIgnoresRealServerOrder(t *testing.T) {
	s := compileFile(t, "testdata/valid/minimal.toml")
	rs := s.VirtualServers[0].RealServers[0]
	second := rs
	second.Addr = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.22"), 80)
	s.VirtualServers[0].RealServers = []RealServerSpec{rs, second}
	h := s.Hashes()["virtual_server"]
	s.VirtualServers[0].RealServers = []RealServerSpec{second, rs}
	if got := s.Hashes()["virtual_server"]; got != h {
		t.Errorf("reordered real servers hash %s, want %s", got, h)
	}
	if s.VirtualServers[0].RealServers[0].Addr != second.Addr {
		t.Error("hashing reordered the spec's own real servers")
	}
	second.Addr = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.23"), 80)
	s.VirtualServers[0].RealServers = []RealServerSpec{rs, second}
	if s.Hashes()["virtual_server"] == h {
		t.Error("another real server hashes alike")
	}
}

// TestBGPHashIgnoresPeers: directors announcing the same prefixes agree,
// whatever their own AS, router ID and routers.
func TestBGPHashIgnoresPeers(t *testing.T) {
	a := compileFile(t, "testdata/valid/bgp.toml")
	b := compileFile(t, "testdata/valid/bgp.toml")
	b.BGP.ASN, b.BGP.RouterID = 65011, netip.MustParseAddr("10.0.0.12")
	b.BGP.Peers[0].Address = netip.MustParseAddr("10.0.0.2")
	if ha, hb := a.Hashes()["bgp"], b.Hashes()["bgp"]; ha != hb || ha == "off" {
		t.Errorf("bgp hashes %s and %s, want equal and not off", ha, hb)
	}
	b.BGP.Announce[0].MED = 5
	if a.Hashes()["bgp"] == b.Hashes()["bgp"] {
		t.Error("a different MED hashes alike")
	}
}

// TestCompileBGP: [bgp] comes out typed, every default applied.
func TestCompileBGP(t *testing.T) {
	s := compileFile(t, "testdata/valid/bgp.toml")
	want := &BGPSpec{
		ASN: 65010, GracefulShutdown: true, Device: "haldir0",
		Peers: []BGPPeerSpec{{
			Address: netip.MustParseAddr("10.0.0.1"), ASN: 65000, Port: 179, HoldTime: 9 * time.Second,
			BFD: &BFDSpec{MinTx: 100 * time.Millisecond, MinRx: 100 * time.Millisecond, Multiplier: 3},
		}},
		Announce: []BGPAnnounceSpec{{
			Prefix: netip.MustParsePrefix("192.0.2.10/32"), VirtualServers: []string{"web"}, Communities: []uint32{65010<<16 | 100},
		}},
	}
	if !reflect.DeepEqual(s.BGP, want) {
		t.Errorf("BGP = %+v\nwant %+v", s.BGP, want)
	}
	if !s.Sync.NWay() || s.Sync.SyncID != 7 {
		t.Errorf("sync = %+v, want N-way with sync_id 7", s.Sync)
	}
}

// TestCommunities: the two spellings round-trip; anything else is refused.
func TestCommunities(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"65010:100", 65010<<16 | 100, true},
		{"0:0", 0, true},
		{"65535:65535", 1<<32 - 1, true},
		{"65536:1", 0, false},
		{"1:-1", 0, false},
		{"100", 0, false},
		{"a:b", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCommunity(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseCommunity(%q) = %d, %v", tc.in, got, err)
			}
			if tc.ok && FormatCommunity(got) != tc.in {
				t.Errorf("FormatCommunity(%d) = %q", got, FormatCommunity(got))
			}
		})
	}
}

// TestHashDistinguishes: the encoding is unambiguous where a naive
// concatenation would not be.
func TestHashDistinguishes(t *testing.T) {
	type pair struct{ A, B string }
	for _, tc := range []struct {
		name string
		a, b any
	}{
		{"string boundaries", pair{"ab", "c"}, pair{"a", "bc"}},
		{"nil and empty slice", []string(nil), []string{}},
		{"nil pointer and zero", (*CheckSpec)(nil), &CheckSpec{}},
		{"address families", netip.MustParseAddr("0.0.0.1"), netip.MustParseAddr("::1")},
		{"slice lengths", [][]string{{"a"}, {}}, [][]string{{}, {"a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if Hash(tc.a) == Hash(tc.b) {
				t.Errorf("%#v and %#v hash alike", tc.a, tc.b)
			}
		})
	}
}

// enumsValid reports the path of every enum field of v that holds a value
// with no spelling: a validated configuration compiles into none.
func enumsValid(v reflect.Value, path string) []string {
	if s, ok := v.Interface().(interface{ String() string }); ok && v.Kind() == reflect.Uint8 {
		// A tunnel is unset unless something forwards with tun.
		if strings.HasPrefix(s.String(), "invalid(") && !(strings.HasSuffix(path, ".Tunnel.Type") && v.Uint() == 0) {
			return []string{path}
		}
		return nil
	}
	var out []string
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			out = enumsValid(v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			out = append(out, enumsValid(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, enumsValid(v.Field(i), path+"."+v.Type().Field(i).Name)...)
			}
		}
	}
	return out
}
