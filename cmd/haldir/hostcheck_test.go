package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// hostCheckLab is one director d1 with eth0 (192.0.2.11/24) and eth1
// (198.51.100.11/24): the shape of the shipped example's directors.
func hostCheckLab(t *testing.T) *lab.Host {
	t.Helper()
	lab.SkipIfNotRoot(t)
	l := lab.BuildT(t, "hostcheck", lab.Topology{Switches: []string{"front", "back"}, Hosts: []lab.HostSpec{{Name: "d1", Links: []lab.LinkSpec{
		{Iface: "eth0", Switch: "front", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.11/24")}},
		{Iface: "eth1", Switch: "back", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}},
	}}}})
	return l.Host("d1")
}

// ipvsFixture is a modules directory with ip_vs and the named schedulers'
// module files; IPVS is not loaded.
func ipvsFixture(t *testing.T, mods ...string) hostEnv {
	t.Helper()
	dir := t.TempDir()
	env := hostEnv{procIPVS: filepath.Join(dir, "no-proc-ip_vs"), sysModule: filepath.Join(dir, "sys-module"),
		modulesDir: filepath.Join(dir, "modules"), modulesDisabled: filepath.Join(dir, "modules_disabled")}
	ipvs := filepath.Join(env.modulesDir, "kernel/net/netfilter/ipvs")
	if err := os.MkdirAll(ipvs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if err := os.WriteFile(filepath.Join(ipvs, m+".ko.xz"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

const hostCheckBase = `
[global]
router_id = "d1"

[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
virtual_addresses = ["192.0.2.10/24"]
`

// TestCheckHost runs the host check of each configuration in a namespace
// whose interfaces are known: every problem is one line naming the path.
func TestCheckHost(t *testing.T) {
	h := hostCheckLab(t)
	var ifs hostIfaces
	if err := h.Do(func() (err error) { ifs, err = readHostIfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "notify.sh")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vs := func(sched string) string {
		return "\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10\"\nport = 80\nscheduler = \"" + sched +
			"\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.21\"\n"
	}
	key := filepath.Join(dir, "bgp.key")
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bgpPeer := func(peer string) string {
		return "\n[bgp]\nasn = 65010\n[[bgp.peer]]\naddress = \"192.0.2.1\"\nasn = 65000\n" + peer
	}
	noIPVS := ipvsFixture(t)
	withRR := ipvsFixture(t, "ip_vs", "ip_vs_rr")
	disabled := ipvsFixture(t, "ip_vs", "ip_vs_rr")
	if err := os.WriteFile(disabled.modulesDisabled, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded := ipvsFixture(t, "ip_vs", "ip_vs_rr")
	if err := os.MkdirAll(filepath.Join(loaded.sysModule, "ip_vs_rr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loaded.procIPVS, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cfg  string // appended to hostCheckBase, or replacing a line of it (edit)
		edit [2]string
		env  hostEnv
		want []string
	}{
		{name: "fine", want: nil},
		{name: "missing interface", edit: [2]string{`interface = "eth0"`, `interface = "eth9"`},
			want: []string{`vrrp.VI_1.interface: no interface "eth9" on this host`}},
		{name: "unicast_source on the other interface",
			cfg:  "unicast_source = \"198.51.100.11\"\nunicast_peers = [\"192.0.2.12\"]\n",
			want: []string{"vrrp.VI_1.unicast_source: 198.51.100.11 is not an address of eth0 (it is on eth1): the instance would stay in FAULT"}},
		{name: "unicast_source not local",
			cfg:  "unicast_source = \"192.0.2.99\"\nunicast_peers = [\"192.0.2.12\"]\n",
			want: []string{"vrrp.VI_1.unicast_source: 192.0.2.99 is not an address of this host: the instance would stay in FAULT"}},
		{name: "unicast_source of its interface", cfg: "unicast_source = \"192.0.2.11\"\nunicast_peers = [\"192.0.2.12\"]\n"},
		{name: "notify commands",
			cfg: "notify_master = [\"" + script + "\"]\nnotify_backup = [\"" + plain + "\"]\nnotify_fault = [\"/nonexistent/notify\"]\nnotify_stop = [\"" + dir + "\"]\n",
			want: []string{
				`vrrp.VI_1.notify_backup: "` + plain + `" is not executable (mode -rw-r--r--)`,
				`vrrp.VI_1.notify_fault: "/nonexistent/notify" does not exist`,
				`vrrp.VI_1.notify_stop: "` + dir + `" is not a regular file`,
			}},
		{name: "track interface and script",
			cfg: "[[vrrp.track_interface]]\nname = \"eth7\"\n[[vrrp.track_script]]\nname = \"chk\"\ncommand = [\"/nonexistent/chk\"]\n" +
				"[[vrrp.track_script]]\nname = \"ok\"\ncommand = [\"/bin/true\"]\n",
			want: []string{
				`vrrp.VI_1.track_interface.eth7: no interface "eth7" on this host`,
				`vrrp.VI_1.track_script.chk.command: "/nonexistent/chk" does not exist`,
			}},
		{name: "address on another interface",
			cfg:  "[[vrrp.address_options]]\naddress = \"192.0.2.10\"\ninterface = \"eth8\"\n",
			want: []string{`vrrp.VI_1.address_options[192.0.2.10].interface: no interface "eth8" on this host`}},
		{name: "address on an interface of this host",
			cfg: "[[vrrp.address_options]]\naddress = \"192.0.2.10\"\ninterface = \"eth1\"\n"},
		{name: "sync interface", cfg: "\n[sync]\ninterface = \"eth2\"\nvrrp_instance = \"VI_1\"\n",
			want: []string{`sync.interface: no interface "eth2" on this host`}},
		{name: "no IPVS", cfg: vs("rr"), env: noIPVS,
			want: []string{"virtual_server: IPVS is not available on this host: module ip_vs is not loaded and not in " + noIPVS.modulesDir}},
		{name: "IPVS and rr loadable", cfg: vs("rr"), env: withRR},
		{name: "scheduler missing", cfg: vs("mh"), env: withRR,
			want: []string{`virtual_server.web.scheduler: IPVS scheduler "mh" cannot be loaded: module ip_vs_mh is not loaded and not in ` + withRR.modulesDir}},
		{name: "modules disabled", cfg: vs("rr"), env: disabled,
			want: []string{"virtual_server: IPVS is not available on this host: module ip_vs is not loaded and kernel.modules_disabled = 1"}},
		{name: "modules disabled but loaded", cfg: vs("rr"), env: loaded},
		{name: "bgp", cfg: bgpPeer("local_address = \"192.0.2.11\"\npassword_file = \"" + key + "\"\n")},
		{name: "bgp local address and password file", cfg: bgpPeer("local_address = \"192.0.2.99\"\npassword_file = \"" + plain + "\"\n"),
			want: []string{
				"bgp.peer[0].local_address: 192.0.2.99 is not an address of this host",
				"bgp.peer[0].password_file: " + plain + ": mode 0644, must be 0600 or stricter (no access for group or others)",
			}},
		{name: "exec check", cfg: vs("rr") + "[virtual_server.check]\ntype = \"exec\"\ncommand = [\"/nonexistent/check\"]\n", env: withRR,
			want: []string{`virtual_server.web.check.command: "/nonexistent/check" does not exist`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := hostCheckBase + tc.cfg
			if tc.edit[0] != "" {
				text = strings.Replace(text, tc.edit[0], tc.edit[1], 1)
			}
			c, err := conf.Parse([]byte(text), "haldir.toml")
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			env := tc.env
			if env == (hostEnv{}) {
				env = noIPVS
			}
			got := checkHost(c, ifs, env)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestCheckHostCommand runs "haldir check --host" in the namespace: a
// problem makes exit status 1 with the line on stderr; without --host the
// file alone is valid.
func TestCheckHostCommand(t *testing.T) {
	h := hostCheckLab(t)
	path := writeFile(t, strings.Replace(hostCheckBase, `interface = "eth0"`, `interface = "eth9"`, 1))
	for _, tc := range []struct {
		args   []string
		status int
		stderr string
	}{
		{[]string{"-c", path}, exitOK, ""},
		{[]string{"--host", "-c", path}, exitInvalid, "vrrp.VI_1.interface: no interface \"eth9\" on this host\n" + path + ": 1 problem on this host\n"},
	} {
		t.Run(strings.Join(tc.args[:len(tc.args)-1], " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := -1
			if err := h.Do(func() error { status = runCheck(tc.args, &stdout, &stderr); return nil }); err != nil {
				t.Fatal(err)
			}
			if status != tc.status || stderr.String() != tc.stderr {
				t.Fatalf("status %d, stderr:\n%s\nwant %d:\n%s", status, stderr.String(), tc.status, tc.stderr)
			}
		})
	}
}

type mapSysctls map[string]string

func (m mapSysctls) ReadSysctl(k string) (string, error) {
	v, ok := m[k]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func (m mapSysctls) WriteSysctl(k, v string) error { m[k] = v; return nil }

// TestBGPNotes: with [bgp] the host check notes the IPVS settings haldir
// will change at start; without, nothing.
func TestBGPNotes(t *testing.T) {
	kernelDefaults := mapSysctls{"net.ipv4.vs.sloppy_tcp": "0", "net.ipv4.vs.sloppy_sctp": "0", "net.ipv4.vs.backup_only": "1"}
	for _, tc := range []struct {
		name string
		bgp  bool
		s    mapSysctls
		want []string // each note starts so
	}{
		{"no [bgp]", false, kernelDefaults, nil},
		{"kernel defaults", true, kernelDefaults, []string{"net.ipv4.vs.sloppy_tcp is 0; haldir sets it to 1", "net.ipv4.vs.sloppy_sctp is 0; haldir sets it to 1", "net.ipv4.vs.backup_only is 1; haldir sets it to 0"}},
		{"already set", true, mapSysctls{"net.ipv4.vs.sloppy_tcp": "1", "net.ipv4.vs.sloppy_sctp": "1", "net.ipv4.vs.backup_only": "0"}, nil},
		{"IPVS not loaded", true, mapSysctls{}, []string{"net.ipv4.vs.sloppy_tcp: cannot be read", "net.ipv4.vs.sloppy_sctp: cannot be read", "net.ipv4.vs.backup_only: cannot be read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &conf.Config{}
			if tc.bgp {
				c.BGP = &conf.BGP{}
			}
			got := bgpNotes(c, tc.s)
			if len(got) != len(tc.want) {
				t.Fatalf("notes %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("note %q, want it to start %q", got[i], w)
				}
			}
		})
	}
}
