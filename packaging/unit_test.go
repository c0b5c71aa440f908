package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitFile is a systemd unit as section -> key -> the values of its
// assignments in order, with systemd's list semantics: an empty assignment
// (Key=) drops the values before it.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a Key=value in a section (continuation lines are not supported here): %q", path, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if v == "" {
				u[section][k] = []string{}
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the last value of a single-valued setting ("" when unset).
func (u unitFile) one(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// list returns the space-separated words of every assignment of key.
func (u unitFile) list(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// maxExposure is the bound for `systemd-analyze security`: 5.0 is
// the top of its "MEDIUM" band; the unit as first shipped scored 9.6.
const maxExposure = 5.0

// TestUnitSecurityExposure runs systemd's own sandboxing analysis on the
// shipped unit, offline (no running systemd needed).
func TestUnitSecurityExposure(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
			t.Fatal("systemd-analyze not found and HALDIR_REQUIRE_RPM is set (make test): apt-get install systemd")
		}
		t.Skip("systemd-analyze not found (Debian package systemd); the unit's exposure is not measured")
	}
	cmd := exec.Command(analyze, "security", "--offline=true", "--no-pager", "haldir.service")
	out, err := cmd.CombinedOutput()
	// It exits non-zero only above --threshold (default 100): any error is real.
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for haldir\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security --offline=true haldir.service: %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f; the unexposed settings:\n%s", score, maxExposure, unsafeLines(out))
	}
}

func unsafeLines(out []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "✗") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestUnitSettings pins what the daemon relies on and what the hardening
// must not take away from it; the comment block in haldir.service says why
// each one is there.
func TestUnitSettings(t *testing.T) {
	u := parseUnit(t, "haldir.service")
	for _, tc := range []struct{ key, want string }{
		{"Type", "notify"},
		{"WatchdogSec", "30s"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"RuntimeDirectory", "haldir"},
		{"StateDirectory", "haldir"}, // global.state_dir's default
		{"Restart", "on-failure"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := u.one("Service", tc.key); got != tc.want {
				t.Errorf("%s=%q, want %q", tc.key, got, tc.want)
			}
		})
	}
	t.Run("capabilities", func(t *testing.T) {
		got := u.list("Service", "CapabilityBoundingSet")
		slices.Sort(got)
		if want := []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_MODULE"}; !slices.Equal(got, want) {
			t.Errorf("CapabilityBoundingSet %q, want %q", got, want)
		}
	})
	t.Run("address families", func(t *testing.T) {
		got := u.list("Service", "RestrictAddressFamilies")
		for _, want := range []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"} {
			if !slices.Contains(got, want) {
				t.Errorf("RestrictAddressFamilies %q lacks %s", got, want)
			}
		}
	})
	t.Run("modules", func(t *testing.T) {
		// modprobe ip_vs needs finit_module and CAP_SYS_MODULE.
		if v := u.one("Service", "ProtectKernelModules"); v != "" && v != "no" {
			t.Errorf("ProtectKernelModules=%s stops modprobe ip_vs", v)
		}
		if !slices.Contains(u.list("Service", "SystemCallFilter"), "@module") {
			t.Errorf("SystemCallFilter %q lacks @module (modprobe ip_vs)", u.list("Service", "SystemCallFilter"))
		}
	})
	t.Run("sysctls", func(t *testing.T) {
		// use_vmac writes /proc/sys/net/ipv{4,6}/conf/*/...
		if u.one("Service", "ProtectKernelTunables") == "yes" && !slices.Contains(u.list("Service", "ReadWritePaths"), "/proc/sys/net") {
			t.Error("ProtectKernelTunables=yes without ReadWritePaths=/proc/sys/net: use_vmac cannot set its sysctls")
		}
	})
	t.Run("commands", func(t *testing.T) {
		for _, key := range []string{"ExecStartPre", "ExecStart", "ExecReload"} {
			argv := strings.Fields(u.one("Service", key))
			if len(argv) < 2 || argv[0] != "/usr/sbin/haldir" {
				t.Errorf("%s=%q does not run /usr/sbin/haldir, the path the RPM installs", key, argv)
			}
		}
	})
}
