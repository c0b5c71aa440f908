package keepalived

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
)

// kaState is what keepalived itself makes of one vrrp_instance: its
// configuration dump (-d) and the effective priority once every tracked
// script has reported.
type kaState struct {
	priority int // effective
	preempt  bool
	auth     string // "" or the password
	advert   time.Duration
	fault    bool // FAULT once the trackers have reported
	version  int
}

// TestConvertMatchesKeepalived runs keepalived 2.2.7 on each case (in a
// namespace with eth0 and eth1 up) and compares what it does with what
// the converted haldir configuration does: the effective priority with
// the tracked scripts as they are (/bin/true up, /bin/false down; haldir
// adds a weight while its tracker is down and clamps to 1..254, an
// owner's 255 never moves), preemption, authentication and the advert
// interval. keepalived's C source says what these should be; this checks
// the importer against the program.
func TestConvertMatchesKeepalived(t *testing.T) {
	lab.SkipIfNotRoot(t)
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("keepalived not installed")
	}
	var links []lab.LinkSpec
	for i, ifc := range []string{"eth0", "eth1"} {
		links = append(links, lab.LinkSpec{Iface: ifc, Switch: "k" + ifc, Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(i), 1}), 24)}})
	}
	l := lab.BuildT(t, "haldir-ka-diff", lab.Topology{Switches: []string{"keth0", "keth1"}, Hosts: []lab.HostSpec{{Name: "d", Links: links}}})
	const scripts = "vrrp_script up {\n script /bin/true\n interval 1\n}\nvrrp_script down {\n script /bin/false\n interval 1\n}\n"
	const w = "vrrp_instance W {\n interface eth1\n virtual_router_id 10\n virtual_ipaddress {\n  192.0.2.10/24\n }\n}\n"
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  192.0.2.9/24\n }\n%s}\n"
	// warned: a difference haldir cannot avoid, which a warning must name;
	// the version is then not compared.
	for _, tc := range []struct{ name, src, warned string }{
		{"priority after a positive script weight", fmt.Sprintf(inst, " track_script {\n  up weight 20\n }\n priority 150\n"), ""},
		{"positive script weight, script down", fmt.Sprintf(inst, " track_script {\n  down weight 20\n }\n priority 150\n"), ""},
		{"negative script weight, script down", fmt.Sprintf(inst, " priority 150\n track_script {\n  down weight -30\n }\n"), ""},
		{"reverse positive weight, script up", fmt.Sprintf(inst, " priority 150\n track_script {\n  up weight 20 reverse\n }\n"), ""},
		{"reverse negative weight, script down", fmt.Sprintf(inst, " priority 150\n track_script {\n  down weight -10 reverse\n }\n"), ""},
		{"two scripts", fmt.Sprintf(inst, " priority 100\n track_script {\n  up weight 15\n  down weight -40\n }\n"), ""},
		{"positive interface weight", fmt.Sprintf(inst, " priority 150\n track_interface {\n  eth1 weight 10\n }\n"), ""},
		{"raised priority capped", fmt.Sprintf(inst, " priority 250\n track_script {\n  up weight 20\n }\n"), ""},
		{"owner's priority never moves", fmt.Sprintf(inst, " priority 255\n track_script {\n  up weight 20\n  down weight -20\n }\n"), ""},
		{"state MASTER without priority", fmt.Sprintf(inst, " state MASTER\n"), ""},
		{"priority out of range", fmt.Sprintf(inst, " priority 300\n"), ""},
		{"nopreempt with state MASTER", fmt.Sprintf(inst, " state MASTER\n priority 150\n nopreempt\n"), ""},
		{"nopreempt with state BACKUP", fmt.Sprintf(inst, " state BACKUP\n priority 150\n nopreempt\n"), ""},
		{"nopreempt on the owner", fmt.Sprintf(inst, " priority 255\n nopreempt\n"), ""},
		{"auth_pass truncated", fmt.Sprintf(inst, " authentication {\n  auth_type PASS\n  auth_pass 0123456789\n }\n"), ""},
		{"strict mode drops auth, keeps nopreempt", "global_defs {\n vrrp_strict\n}\n" + fmt.Sprintf(inst, " state MASTER\n priority 150\n nopreempt\n authentication {\n  auth_type PASS\n  auth_pass secret\n }\n"), ""},
		{"VRRPv3 drops auth", "global_defs {\n vrrp_version 3\n}\n" + fmt.Sprintf(inst, " authentication {\n  auth_type PASS\n  auth_pass secret\n }\n"), ""},
		{"advert_int rounded for v2", fmt.Sprintf(inst, " advert_int 1.6\n"), ""},
		{"advert_int in 10ms steps for v3", "global_defs {\n vrrp_version 3\n}\n" + fmt.Sprintf(inst, " advert_int 0.015\n"), ""},
		{"sync group without tracking weights ignores a weighted script", "vrrp_sync_group G {\n group {\n  V\n  W\n }\n}\n" + fmt.Sprintf(inst, " track_script {\n  down weight -20\n }\n") + w, ""},
		{"sync group with tracking weights", "vrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n}\n" + fmt.Sprintf(inst, " track_script {\n  down weight -20\n }\n") + w, ""},
		{"sync group's own track_script", "vrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n track_script {\n  down weight -20\n }\n}\n" + fmt.Sprintf(inst, "") + w, ""},
		{"sync group's own track_script with an owner member", "vrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n track_script {\n  down weight -20\n }\n}\n" + fmt.Sprintf(inst, "") + strings.Replace(w, "{\n", "{\n priority 255\n", 1), ""},
		{"instance and sync group track one script", "vrrp_sync_group G {\n group {\n  V\n  W\n }\n sync_group_tracking_weight\n track_script {\n  down weight -20\n }\n}\n" + fmt.Sprintf(inst, " track_script {\n  down weight -5\n }\n") + w, ""},
		{"owner's weighted trackers are ignored", fmt.Sprintf(inst, " priority 255\n track_script {\n  down weight -20\n }\n"), ""},
		{"owner's unweighted failing script faults", fmt.Sprintf(inst, " priority 255\n track_script {\n  down\n }\n"), ""},
		{"a parameter holding a condition", "$IF_D=@kadiff\n$IF_N=@^kadiff\n" + fmt.Sprintf(inst, " $IF_D priority 140\n $IF_N priority 90\n"), ""},
		{"multiline definition", "$INST= \\\nvrrp_instance V { \\\n interface eth0 \\\n @kadiff priority ${P} \\\n virtual_router_id 9 \\\n virtual_ipaddress { \\\n  192.0.2.9/24 \\\n } \\\n}\n$P=130\n$INST\n", ""},
		{"IPv6 speaks VRRPv3", "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  2001:db8::9/64\n }\n}\n", ""},
		{"IPv6 with version 2", "vrrp_instance V {\n interface eth0\n version 2\n virtual_router_id 9\n virtual_ipaddress {\n  2001:db8::9/64\n }\n}\n",
			"keepalived speaks VRRPv2 over IPv6"},
		{"parameters and conditions", "@kadiff $P=140\n@^kadiff $P=90\n" + fmt.Sprintf(inst, " priority $P\n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := scripts + tc.src
			ka, kaLog := runKeepalived(t, l.Host("d"), bin, src)
			ns, err := ParseOptions(src, "k.conf", Options{ConfigID: "kadiff"})
			if err != nil {
				t.Fatal(err)
			}
			res := Convert(ns, "k.conf")
			cfg, err := conf.Parse([]byte(res.TOML), "converted.toml")
			if err != nil {
				t.Fatalf("converted configuration does not load: %v\n%s", err, res.TOML)
			}
			in := cfg.VRRP[0]
			prio, fault := in.Priority, false
			for _, s := range in.TrackScripts {
				if strings.HasSuffix(s.Command[0], "/false") {
					prio += s.Weight
					fault = fault || s.Weight == 0
				}
			}
			if in.Priority == 255 {
				prio = 255
			}
			prio = min(max(prio, 1), 255)
			auth := ""
			if in.Auth != nil && in.Auth.Type == "pass" {
				auth = in.Auth.Password
			}
			got := kaState{priority: prio, preempt: in.Preempt, auth: auth, advert: in.AdvertInterval.D(), fault: fault, version: in.Version}
			if got.fault {
				got.priority = ka.priority // a faulted instance has no priority to compare
			}
			if tc.warned != "" {
				if !slices.ContainsFunc(res.Warnings, func(w Warning) bool { return strings.Contains(w.Msg, tc.warned) }) {
					t.Errorf("no warning says %q: %v", tc.warned, res.Warnings)
				}
				got.version = ka.version
			}
			if got != ka {
				t.Errorf("keepalived %+v\nhaldir    %+v\n%s\nwarnings %v\n%s", ka, got, res.TOML, res.Warnings, kaLog)
			}
		})
	}
}

// runKeepalived runs keepalived on src in a namespace until it has dumped
// its configuration and every tracked script has reported, and reads what
// it made of instance V.
func runKeepalived(t *testing.T, h *lab.Host, bin, src string) (kaState, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := h.Start(ctx, []string{bin, "--dont-fork", "--log-console", "--log-detail", "--dump-conf", "--dont-release-vrrp",
		"--vrrp", "-f", path, "-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "v.pid"), "-i", "kadiff"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Kill()
		p.Wait()
	}()
	// Scripts report within their 1s interval; wait for each tracked one.
	tracked := 0
	for _, s := range []string{"up", "down"} {
		// Referenced in a track_script block of an instance or group.
		if regexp.MustCompile(`(?m)^\s+` + s + `\b`).MatchString(src[strings.Index(src, "\n}\n")+3:]) {
			tracked++
		}
	}
	// The socket pool line follows the configuration dump.
	if _, err := p.WaitForLine(ctx, regexp.MustCompile(`VRRP sockpool`)); err != nil {
		t.Fatalf("keepalived did not start: %v\n%s", err, p.Output())
	}
	// An owner's scripts change nothing, and keepalived may not say
	// when they ran: give them three intervals.
	deadline := time.Now().Add(3 * time.Second)
	for strings.Count(p.Output(), "VRRP_Script(") < tracked && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// A transition or priority change follows the script's line, and an
	// instance enters its first state after the dump; give them a moment
	// to be written (an instance that stays in INIT writes nothing).
	n := len(p.Lines())
	deadline = time.Now().Add(time.Second)
	for time.Now().Before(deadline) && (!strings.Contains(p.Output(), "(V) Entering") || tracked > 0 && len(p.Lines()) == n) {
		time.Sleep(20 * time.Millisecond)
	}
	out := p.Output()
	field := func(re string) string {
		m := regexp.MustCompile(re).FindAllStringSubmatch(out, -1)
		if m == nil {
			return ""
		}
		return m[len(m)-1][1]
	}
	var st kaState
	st.priority, _ = strconv.Atoi(field(`\n.*   Priority = (\d+)`))
	if eff := field(`\(V\) Changing effective priority from \d+ to (\d+)`); eff != "" {
		st.priority, _ = strconv.Atoi(eff)
	}
	// An instance whose unweighted script fails before it starts never
	// leaves INIT: down, like FAULT.
	st.version, _ = strconv.Atoi(field(`   VRRP Version = (\d)`))
	st.fault = strings.Contains(out, "(V) Entering FAULT STATE") ||
		!strings.Contains(out, "(V) Entering BACKUP STATE") && !strings.Contains(out, "(V) Entering MASTER STATE")
	st.preempt = field(`   Preempt = (\w+)`) == "enabled"
	if field(`   Authentication type = (.*)`) == "SIMPLE_PASSWORD" {
		st.auth = strings.TrimSpace(field(`   Password = (.*)`))
	}
	adv := field(`   Advert interval = (.*)`)
	num, unit, _ := strings.Cut(strings.TrimSpace(adv), " ")
	v, err := strconv.ParseFloat(num, 64)
	switch {
	case err != nil:
	case unit == "sec":
		st.advert = time.Duration(v * float64(time.Second))
	case unit == "milli-sec" || unit == "ms":
		st.advert = time.Duration(v * float64(time.Millisecond))
	}
	if st.priority == 0 || st.advert == 0 {
		t.Fatalf("could not read keepalived's dump (priority %d, advert %q):\n%s", st.priority, adv, out)
	}
	var events []string
	for _, line := range strings.Split(out, "\n") {
		if regexp.MustCompile(`Entering|effective priority|VRRP_Script\(|FAULT|[Ss]ync|weight`).MatchString(line) {
			events = append(events, line)
		}
	}
	return st, strings.Join(events, "\n")
}
