package keepalived

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// TestConvertPair converts a typical LVS-NAT pair's keepalived.conf: the
// result loads in haldir, carries every setting it can, and every
// directive it cannot is a warning at its line.
func TestConvertPair(t *testing.T) {
	ns, err := ParseFile("testdata/pair.conf")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(ns, "testdata/pair.conf")
	cfg, err := conf.Parse([]byte(res.TOML), "converted.toml")
	if err != nil {
		t.Fatalf("converted configuration does not load: %v\n%s", err, res.TOML)
	}
	var got []string
	for _, w := range res.Warnings {
		// Line and the start of the message: the wording may change.
		msg, _, _ := strings.Cut(w.Msg, ":")
		got = append(got, strings.TrimPrefix(w.File, "testdata/")+":"+strconv.Itoa(w.Line)+" "+msg)
	}
	want := []string{
		"pair.conf:4 notification_email",
		"pair.conf:9 enable_script_security",
		"pair.conf:10 script_user",
		// state BACKUP changes nothing; the positive script weight
		// converts exactly (said in the TOML's comment).
		"pair.conf:52 notify_backup",
		"pair.conf:56 state MASTER (1 instance(s))",
		"pair.conf:79 inhibit_on_failure",
		"pair.conf:93 TCP_CHECK",
		"pair.conf:114 vrrp_track_file",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("warnings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if cfg.Global.RouterID != "LVS_A" {
		t.Errorf("router_id %q", cfg.Global.RouterID)
	}
	if s := cfg.Sync; s == nil || s.Interface != "eth2" || s.VRRPInstance != "VI_FRONT" || s.SyncID != 51 {
		t.Errorf("sync %+v", cfg.Sync)
	}
	if len(cfg.VRRP) != 2 {
		t.Fatalf("%d vrrp instances", len(cfg.VRRP))
	}
	f := cfg.VRRP[0]
	switch {
	case f.Name != "VI_FRONT" || f.Interface != "eth0" || f.VRID != 51 || f.Version != 2:
		t.Errorf("front %s %s vrid %d v%d", f.Name, f.Interface, f.VRID, f.Version)
	case f.Priority != 170 || f.Preempt:
		t.Errorf("front priority %d (150 + the script's +20) preempt %v (nopreempt)", f.Priority, f.Preempt)
	case f.Auth == nil || f.Auth.Type != "pass" || f.Auth.Password != "s3cret":
		t.Errorf("front auth %+v", f.Auth)
	case !slices.Equal(f.VirtualAddresses, []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("192.0.2.11/32")}):
		t.Errorf("front addresses %v", f.VirtualAddresses)
	case len(f.TrackInterfaces) != 1 || f.TrackInterfaces[0].Name != "eth1" || f.TrackInterfaces[0].Weight != -30:
		t.Errorf("front track_interface %+v", f.TrackInterfaces)
	case len(f.TrackScripts) != 1 || f.TrackScripts[0].Weight != -20 || f.TrackScripts[0].Fall != 2 || f.TrackScripts[0].Rise != 3 ||
		!slices.Equal(f.TrackScripts[0].Command, []string{"/usr/bin/test", "-d", "/run"}) || f.TrackScripts[0].Interval.D() != 2*time.Second:
		t.Errorf("front track_script %+v", f.TrackScripts)
	case !slices.Equal(f.NotifyBackup, []string{"/bin/sh", "-c", "/usr/bin/logger backup | /usr/bin/logger"}):
		t.Errorf("front notify_backup %q", f.NotifyBackup)
	case f.GARP.Repeat != 2:
		t.Errorf("front garp %+v (global vrrp_garp_master_repeat 2)", f.GARP)
	}
	if g := cfg.VRRPSyncGroups; len(g) != 1 || !slices.Equal(g[0].Instances, []string{"VI_FRONT", "VI_BACK"}) ||
		!slices.Equal(g[0].NotifyMaster, []string{"/usr/bin/logger", "master"}) {
		t.Errorf("sync groups %+v", g)
	}
	if len(cfg.VirtualServers) != 2 {
		t.Fatalf("%d virtual servers", len(cfg.VirtualServers))
	}
	vs := cfg.VirtualServers[0]
	switch {
	case vs.Name != "192.0.2.10:80" || vs.Scheduler != "wrr" || vs.Forwarding != "nat" || vs.Protocol != "tcp":
		t.Errorf("web %s %s %s %s", vs.Name, vs.Scheduler, vs.Forwarding, vs.Protocol)
	case vs.PersistenceTimeout.D() != 300*time.Second || vs.PersistenceGranularity != 24 || vs.Quorum != 1 || !vs.InhibitOnFailure:
		t.Errorf("web persistence %v/%d quorum %d inhibit %v", vs.PersistenceTimeout.D(), vs.PersistenceGranularity, vs.Quorum, vs.InhibitOnFailure)
	case vs.SorryServer != netip.MustParseAddrPort("10.0.1.99:80"):
		t.Errorf("web sorry_server %v", vs.SorryServer)
	case len(vs.RealServers) != 3:
		t.Fatalf("web has %d real servers", len(vs.RealServers))
	}
	h, tcp, ex := vs.RealServers[0].Check, vs.RealServers[1].Check, vs.RealServers[2].Check
	switch {
	case h.Type != "http" || h.Path != "/healthz" || h.Host != "www.example.com" || h.Timeout.D() != 3*time.Second ||
		h.Interval.D() != 6*time.Second || h.Fall != 3 || h.RetryDelay.D() != time.Second || h.ExpectStatus.String() != "200":
		t.Errorf("http check %+v", h)
	case tcp.Type != "tcp" || tcp.ConnectPort != 8080 || tcp.Timeout.D() != 6*time.Second:
		t.Errorf("tcp check %+v (connect_timeout 10 clamped to delay_loop 6)", tcp)
	case ex.Type != "exec" || !slices.Equal(ex.Command, []string{"/usr/bin/test", "-d", "/tmp"}) || ex.Timeout.D() != 5*time.Second:
		t.Errorf("exec check %+v", ex)
	}
	if fw := cfg.VirtualServers[1]; fw.Fwmark != 7 || fw.Scheduler != "sh" || fw.Forwarding != "dr" || len(fw.RealServers) != 1 {
		t.Errorf("fwmark service %+v", fw)
	}
}

// The fixture is keepalived's own syntax: keepalived 2.2.7 accepts it
// (config test, in a namespace that has its interfaces).
func TestFixtureIsValidKeepalived(t *testing.T) {
	lab.SkipIfNotRoot(t)
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed")
	}
	var links []lab.LinkSpec
	for i, ifc := range []string{"eth0", "eth1", "eth2"} {
		links = append(links, lab.LinkSpec{Iface: ifc, Switch: "s" + ifc, Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i), 1}), 24)}})
	}
	l := lab.BuildT(t, "haldir-ka-import", lab.Topology{Switches: []string{"seth0", "seth1", "seth2"}, Hosts: []lab.HostSpec{{Name: "d", Links: links}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.Host("d").Run(ctx, []string{bin, "--config-test", "-f", "testdata/pair.conf"}, nil)
	if err != nil {
		t.Fatalf("keepalived --config-test: %v\n%s", err, out)
	}
}

// One rule each: what the TOML says and what the warnings say.
func TestConvertRules(t *testing.T) {
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  192.0.2.9/24\n }\n%s}\n"
	for _, tc := range []struct {
		name, src string
		toml      []string // substrings of the TOML
		warn      []string // substrings of the warnings, in order
	}{
		{"keepalived speaks VRRPv2 by default", fmt.Sprintf(inst, ""), []string{"version = 2"}, nil},
		{"vrrp_version 3 and sub-second adverts", "global_defs {\n vrrp_version 3\n}\n" + fmt.Sprintf(inst, " advert_int 0.1\n"),
			[]string{"version = 3", `advert_interval = "100ms"`}, nil},
		{"sync group without tracking weights", "vrrp_script s {\n script /bin/true\n weight -20\n}\nvrrp_sync_group G {\n group {\n  V\n }\n}\n" +
			fmt.Sprintf(inst, " track_interface {\n  eth1 weight -30\n }\n track_script {\n  s\n }\n"),
			[]string{`track_interface = [{ name = "eth1", weight = 0 }]`}, // and no track_script
			[]string{"eth1: keepalived ignores tracking weights in a sync group", "track_script s: keepalived ignores a weighted script in a sync group"}},
		{"SSL_GET does not verify", "virtual_server 192.0.2.9 443 {\n real_server 10.0.0.1 443 {\n  SSL_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n",
			[]string{`path = "/", tls_verify = false`}, []string{"SSL_GET: keepalived does not verify the certificate"}},
		{"virtual_server group without its group", "virtual_server group G {\n}\n", nil, []string{"no virtual_server_group G"}},
		{"unknown top-level block", "vrrp_track_process p {\n}\n", nil, []string{"vrrp_track_process: not supported by haldir"}},
		{"AH authentication", fmt.Sprintf(inst, " authentication {\n  auth_type AH\n  auth_pass x\n }\n"), nil, []string{"AH is not supported"}},
		// Priorities and trackers: keepalived computes after the block.
		{"priority after a positive track_script weight", "vrrp_script s {\n script /bin/true\n weight 20\n}\n" +
			fmt.Sprintf(inst, " track_script {\n  s\n }\n priority 150\n"),
			[]string{"priority = 170", "weight = -20 }]"}, nil},
		{"positive track_interface weight", fmt.Sprintf(inst, " priority 100\n track_interface {\n  eth1 weight 10\n }\n"),
			[]string{"priority = 110", `track_interface = [{ name = "eth1", weight = -10 }]`}, nil},
		{"weight reverse, positive: taken while up", "vrrp_script s {\n script /bin/true\n weight 20 reverse\n}\n" +
			fmt.Sprintf(inst, " priority 150\n track_script {\n  s\n }\n"),
			[]string{"priority = 130", "weight = 20 }]"}, nil},
		{"weight reverse, negative: added while down", fmt.Sprintf(inst, " priority 150\n track_interface {\n  eth1 weight -10 reverse\n }\n"),
			[]string{"priority = 150", `{ name = "eth1", weight = 10 }`}, nil},
		{"weight 0 reverse cannot be said", fmt.Sprintf(inst, " priority 150\n track_interface {\n  eth1 weight 0 reverse\n }\n"),
			[]string{"priority = 150"}, []string{"weight 0 reverse faults the instance while the tracker is up"}},
		{"raised priority capped at 254", fmt.Sprintf(inst, " priority 250\n track_interface {\n  eth1 weight 20\n }\n"),
			[]string{"priority = 254", "weight = -20"}, []string{"keepalived caps the effective priority at 254"}},
		{"owner's priority never moves", fmt.Sprintf(inst, " priority 255\n track_interface {\n  eth1 weight 20\n  eth2\n }\n"),
			[]string{"priority = 255", `track_interface = [{ name = "eth2", weight = 0 }]`}, []string{"track_interface eth1: keepalived ignores a weighted tracker on the address owner"}},
		{"weight 254 becomes 253", fmt.Sprintf(inst, " priority 1\n track_interface {\n  eth1 weight -254\n }\n"),
			[]string{"weight = -253"}, []string{"weight -254: keepalived uses -253"}},
		{"priority out of range: keepalived's default", fmt.Sprintf(inst, " priority 300\n"), []string{"priority = 100"},
			[]string{"priority 300: keepalived accepts 1..255"}},
		{"state MASTER without priority is the owner", fmt.Sprintf(inst, " state MASTER\n"), []string{"priority = 255"},
			nil}, // an owner starts as master in haldir too
		{"state BACKUP says nothing", fmt.Sprintf(inst, " state BACKUP\n priority 90\n"), []string{"priority = 90"}, nil},
		{"inline track_interface without weight", fmt.Sprintf(inst, " track_interface {\n  eth1\n }\n track_interface eth2\n"),
			[]string{`track_interface = [{ name = "eth1", weight = 0 }, { name = "eth2", weight = 0 }]`}, []string{"track_interface eth2: written without braces"}},
		// Authentication as keepalived uses it.
		{"vrrp_strict drops authentication", "global_defs {\n vrrp_strict\n}\n" + fmt.Sprintf(inst, " authentication {\n  auth_type PASS\n  auth_pass secret\n }\n"),
			nil, []string{"vrrp_strict: haldir has no strict mode", "keepalived ignores it in strict mode"}},
		{"auth_pass truncated to 8 bytes", fmt.Sprintf(inst, " authentication {\n  auth_type PASS\n  auth_pass 0123456789\n }\n"),
			[]string{`auth = { type = "pass", password = "01234567" }`}, []string{`keepalived truncates it to "01234567"`}},
		{"authentication with VRRPv3 is ignored", "global_defs {\n vrrp_version 3\n}\n" + fmt.Sprintf(inst, " authentication {\n  auth_type PASS\n  auth_pass x\n }\n"),
			[]string{"version = 3"}, []string{"keepalived ignores it with VRRP version 3"}},
		// Preemption (defect 11.11).
		{"nopreempt with state MASTER: keepalived preempts", fmt.Sprintf(inst, " state MASTER\n priority 150\n nopreempt\n"),
			nil, []string{"state MASTER (1 instance(s))", "nopreempt: keepalived ignores it on an instance with state MASTER"}},
		{"nopreempt on a backup", fmt.Sprintf(inst, " state BACKUP\n priority 150\n nopreempt\n"), []string{"preempt = false"}, nil},
		{"preempt_delay with nopreempt", fmt.Sprintf(inst, " priority 150\n nopreempt\n preempt_delay 5\n"), []string{"preempt = false"},
			[]string{"preempt_delay: keepalived resets it with nopreempt"}},
		// vrrp_script defaults.
		{"vrrp_script defaults: interval 1s, timeout the interval", "vrrp_script s {\n script /bin/true\n}\nvrrp_script t {\n script /bin/true\n interval 5\n}\n" +
			fmt.Sprintf(inst, " track_script {\n  s\n  t\n }\n"),
			[]string{`interval = "1s", timeout = "1s"`, `interval = "5s", timeout = "5s"`}, nil},
		{"vrrp_script timeout above the interval", "vrrp_script s {\n script /bin/true\n interval 2\n timeout 5\n}\n" + fmt.Sprintf(inst, " track_script {\n  s\n }\n"),
			[]string{`interval = "2s", timeout = "2s"`}, []string{"timeout 5s: longer than the interval 2s"}},
		// Commands: a bare name is resolved as keepalived resolves it.
		{"bare command name resolved on PATH", "vrrp_script s {\n script \"sh -c true\"\n}\n" + fmt.Sprintf(inst, " track_script {\n  s\n }\n"),
			[]string{`command = ["` + lookCommand("sh") + `", "-c", "true"]`}, nil},
		{"unknown bare command runs in a shell", fmt.Sprintf(inst, " notify_master \"no-such-haldir-cmd x\"\n"),
			[]string{`notify_master = ["/bin/sh", "-c", "no-such-haldir-cmd x"]`}, []string{`"no-such-haldir-cmd" is not in /usr/local/sbin`}},
		// Addresses and the sync daemon.
		{"duplicate virtual address kept once", fmt.Sprintf(inst, " virtual_ipaddress {\n  192.0.2.9\n  192.0.2.10\n }\n"),
			[]string{`virtual_addresses = ["192.0.2.9/24", "192.0.2.10/32"]`}, []string{"virtual_ipaddress 192.0.2.9: listed twice (first as 192.0.2.9/24)"}},
		{"IPv6 instance speaks VRRPv3", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  2001:db8::9/64\n }\n}\n",
			[]string{"version = 3"}, nil},
		{"virtual_ipaddress_excluded", fmt.Sprintf(inst, " virtual_ipaddress_excluded {\n  198.51.100.7\n  2001:db8::7/64\n  192.0.2.9\n }\n"),
			[]string{`excluded_addresses = ["198.51.100.7/32", "2001:db8::7/64"]`}, []string{"virtual_ipaddress_excluded 192.0.2.9: listed twice"}},
		{"dev OTHER and label: address_options, the other interface tracked", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  192.0.2.9/24 dev eth1 label eth1:vip\n  192.0.2.10/24 label eth0:b\n }\n}\n",
			[]string{`address_options = [{ address = "192.0.2.9", interface = "eth1", label = "eth1:vip" }, { address = "192.0.2.10", label = "eth0:b" }]`,
				`track_interface = [{ name = "eth1", weight = 0 }]`}, nil},
		{"dev OTHER no_track, dev before interface", "vrrp_instance V {\n virtual_ipaddress {\n  192.0.2.9/24 dev eth1 no_track\n  192.0.2.10/24 dev eth0\n }\n interface eth0\n virtual_router_id 9\n}\n",
			[]string{`address_options = [{ address = "192.0.2.9", interface = "eth1" }]`}, nil},
		{"dev OTHER already tracked keeps its weight", fmt.Sprintf(inst, " virtual_ipaddress {\n  192.0.2.7 dev eth1\n }\n track_interface {\n  eth1 weight -10\n }\n"),
			[]string{`track_interface = [{ name = "eth1", weight = -10 }]`}, nil},
		{"labels haldir cannot take", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  192.0.2.9/24 label web\n }\n virtual_ipaddress_excluded {\n  2001:db8::9 label eth0:6\n }\n}\n",
			[]string{`virtual_addresses = ["192.0.2.9/24"]`}, []string{`label web: haldir wants a label that is "eth0" or starts with "eth0:"`, "label eth0:6: keepalived ignores labels on IPv6 addresses"}},
		{"advert_int rounded as keepalived rounds it, v2", fmt.Sprintf(inst, " advert_int 1.6\n"), []string{`advert_interval = "2s"`},
			[]string{"advert_int 1.6s: keepalived makes it 2s with VRRP version 2"}},
		{"advert_int rounded as keepalived rounds it, v3", "global_defs {\n vrrp_version 3\n}\n" + fmt.Sprintf(inst, " advert_int 0.015\n"), []string{`advert_interval = "20ms"`},
			[]string{"advert_int 15ms: keepalived makes it 20ms"}},
		{"advert_int out of keepalived's range", fmt.Sprintf(inst, " advert_int 0.004\n"), []string{"version = 2"},
			[]string{"advert_int 4ms: keepalived takes 0.01..255 seconds and ignores it"}},
		{"strict mode: state MASTER of a non-owner is BACKUP, nopreempt holds", "global_defs {\n vrrp_strict\n}\n" + fmt.Sprintf(inst, " state MASTER\n priority 150\n nopreempt\n"),
			[]string{"preempt = false", "strict mode starts a non-owner as backup"}, []string{"vrrp_strict"}},
		{"own interface and duplicates are not tracked", "vrrp_script s {\n script /bin/true\n}\n" + fmt.Sprintf(inst, " track_interface {\n  eth0 weight -10\n  eth1\n  eth1 weight -5\n }\n track_script {\n  s\n  s\n }\n"),
			[]string{`track_interface = [{ name = "eth1", weight = 0 }]`}, []string{"track_interface eth0: keepalived ignores tracking the instance's own interface",
				"track_interface eth1: tracked twice", "track_script s: tracked twice"}},
		{"sync group tracking applies to every member", "vrrp_script s {\n script /bin/true\n weight -20\n}\nvrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n track_script {\n  s\n }\n track_interface {\n  eth2 weight -5\n }\n}\n" +
			fmt.Sprintf(inst, "") + "vrrp_instance W {\n interface eth1\n virtual_router_id 10\n virtual_ipaddress {\n  192.0.2.10/24\n }\n}\n",
			[]string{"track_interface = [{ name = \"eth2\", weight = -5 }]\ntrack_script = [{ name = \"s\", command = [\"/bin/true\"], interval = \"1s\", timeout = \"1s\", weight = -20 }]\nvirtual_addresses = [\"192.0.2.9/24\"]",
				"track_interface = [{ name = \"eth2\", weight = -5 }]\ntrack_script = [{ name = \"s\", command = [\"/bin/true\"], interval = \"1s\", timeout = \"1s\", weight = -20 }]\nvirtual_addresses = [\"192.0.2.10/24\"]"}, nil},
		{"sync group with an owner: no tracking weights, said once", "vrrp_script s {\n script /bin/true\n weight -20\n}\nvrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n track_script {\n  s\n }\n}\n" +
			fmt.Sprintf(inst, " priority 255\n") + "vrrp_instance W {\n interface eth1\n virtual_router_id 10\n virtual_ipaddress {\n  192.0.2.10/24\n }\n}\n",
			[]string{"timeout = \"1s\", weight = 0 }]\nvirtual_addresses = [\"192.0.2.10/24\"]"}, []string{"track_script s: keepalived clears a sync group's tracking weight when a member is the address owner"}},
		{"sync group members as keepalived takes them", "vrrp_sync_group G {\n group {\n  V\n  NOPE\n }\n}\nvrrp_sync_group H {\n group {\n  V\n }\n}\nvrrp_sync_group OLD {\n V\n}\n" + fmt.Sprintf(inst, ""),
			[]string{"name = \"G\"\ninstances = [\"V\"]"},
			[]string{"vrrp_sync_group G: no vrrp_instance NOPE", "vrrp_sync_group H: V is in vrrp_sync_group G already", "vrrp_sync_group H: no members", "vrrp_sync_group OLD: no members"}},
		{"an instance defined twice", fmt.Sprintf(inst, " priority 50\n") + fmt.Sprintf(inst, " priority 60\n"), []string{"priority = 50"},
			[]string{"vrrp_instance V: defined twice; keepalived skips this one"}},
		{"vrrp_script without a script", "vrrp_script s {\n interval 2\n}\n" + fmt.Sprintf(inst, " track_script {\n  s\n }\n"), []string{"virtual_addresses"},
			[]string{"vrrp_script s: no script; keepalived removes it"}},
		{"explicit version 2 with IPv6", "vrrp_instance V {\n interface eth0\n version 2\n virtual_router_id 9\n virtual_ipaddress {\n  2001:db8::9/64\n }\n}\n",
			[]string{"version = 3"}, []string{"version 2 with IPv6 addresses: keepalived speaks VRRPv2 over IPv6"}},
		{"an instance without addresses is said", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n}\n", nil,
			[]string{"vrrp_instance V: no virtual_ipaddress; keepalived runs such an instance"}},
		{"instance lvs_sync_daemon_interface", fmt.Sprintf(inst, " lvs_sync_daemon_interface eth2\n"),
			[]string{"[sync]\ninterface = \"eth2\"\nvrrp_instance = \"V\""}, nil},
		// Noise: the mail family is one warning.
		{"mail and SNMP: one warning", "global_defs {\n notification_email {\n  a@b\n }\n notification_email_from x@y\n smtp_server 10.0.0.1\n smtp_connect_timeout 30\n enable_traps\n}\n" +
			fmt.Sprintf(inst, " smtp_alert\n"), nil,
			[]string{"notification_email: haldir sends no mail or SNMP traps (6 directive(s): notification_email, notification_email_from, smtp_server, smtp_connect_timeout, enable_traps, smtp_alert)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := Parse(tc.src, "k.conf")
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(ns, "k.conf")
			// What converts must load in haldir.
			if _, err := conf.Parse([]byte(res.TOML), "converted.toml"); err != nil && tc.toml != nil {
				t.Errorf("converted configuration does not load: %v\n%s", err, res.TOML)
			}
			for _, s := range tc.toml {
				if !strings.Contains(res.TOML, s) {
					t.Errorf("TOML lacks %q:\n%s", s, res.TOML)
				}
			}
			if len(res.Warnings) != len(tc.warn) {
				t.Fatalf("warnings %v, want %d", res.Warnings, len(tc.warn))
			}
			for i, w := range tc.warn {
				if !strings.Contains(res.Warnings[i].Msg, w) {
					t.Errorf("warning %d %q, want it to say %q", i, res.Warnings[i].Msg, w)
				}
			}
		})
	}
}

// keepalived's generic notify runs as `CMD INSTANCE NAME STATE PRIORITY`
// (GROUP NAME STATE 0 for a sync group) after the state's own notify_*;
// the converted command, run as haldir runs it (HALDIR_PRIORITY in the
// environment), passes the same arguments.
func TestConvertGenericNotify(t *testing.T) {
	dir := t.TempDir()
	log := dir + "/log"
	script := dir + "/notify it.sh" // a blank in the path: quoting
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$*\" >> '"+log+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("vrrp_sync_group G {\n group {\n  V\n }\n notify \"'%s'\"\n}\nvrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  192.0.2.9/24\n }\n notify_master \"/bin/sh -c 'echo specific >> %s'\"\n notify \"'%s' arg1\"\n}\n", script, log, script)
	ns, err := Parse(src, "k.conf")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(ns, "k.conf")
	cfg, err := conf.Parse([]byte(res.TOML), "converted.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, res.TOML)
	}
	in, g := cfg.VRRP[0], cfg.VRRPSyncGroups[0]
	for _, argv := range [][]string{in.NotifyMaster, in.NotifyFault, in.NotifyStop, g.NotifyBackup} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "HALDIR_PRIORITY=123")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v %s", argv, err, out)
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "specific\narg1 INSTANCE V MASTER 123\narg1 INSTANCE V FAULT 123\narg1 INSTANCE V STOP 123\nGROUP G BACKUP 0\n"
	if string(b) != want {
		t.Fatalf("notify calls\n%s\nwant\n%s\n%s", b, want, res.TOML)
	}
}
