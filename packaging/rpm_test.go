package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// builtRPM finds the RPM that `make rpm` left in dist/. `make test` builds it
// first; a bare `go test` without it skips and says how to get one.
func builtRPM(t *testing.T) string {
	t.Helper()
	version, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "dist", "haldir-"+strings.TrimSpace(string(version))+"-1.x86_64.rpm")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
			t.Fatalf("%s: %v (HALDIR_REQUIRE_RPM is set: run make rpm)", path, err)
		}
		t.Skipf("%s not built: run `make rpm` (make test does)", path)
	}
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Skip("rpm not installed (apt-get install rpm)")
	}
	return path
}

func rpmQuery(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("rpm", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRPMFileList(t *testing.T) {
	rpm := builtRPM(t)
	var files []string
	for _, l := range strings.Split(strings.TrimSpace(rpmQuery(t, "-qpl", rpm)), "\n") {
		files = append(files, strings.TrimSpace(l))
	}
	for _, want := range []string{
		"/usr/sbin/haldir",
		"/etc/haldir/haldir.toml",
		"/etc/sysconfig/haldir",
		"/usr/lib/systemd/system/haldir.service",
		"/usr/share/doc/haldir/README.md",
		"/usr/share/doc/haldir/config.md",
		"/usr/share/doc/haldir/haldir.toml.example",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("RPM lacks %s; it holds %q", want, files)
		}
	}

	// Config files must survive upgrades with local edits: %config(noreplace).
	configs := strings.Fields(rpmQuery(t, "-qpc", rpm))
	for _, want := range []string{"/etc/haldir/haldir.toml", "/etc/sysconfig/haldir"} {
		if !slices.Contains(configs, want) {
			t.Errorf("%s is not marked as a config file; config files: %q", want, configs)
		}
	}
	flags := rpmQuery(t, "-qp", "--queryformat", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm)
	if !regexp.MustCompile(`(?m)^/etc/haldir/haldir.toml c?n`).MatchString(flags) {
		t.Errorf("/etc/haldir/haldir.toml is not noreplace:\n%s", flags)
	}

	// The config holds the cluster secret path and VRRP passwords: not world-readable.
	modes := rpmQuery(t, "-qp", "--queryformat", "[%{FILENAMES} %{FILEMODES:perms}\n]", rpm)
	for _, want := range []string{"/usr/sbin/haldir -rwxr-xr-x", "/etc/haldir/haldir.toml -rw-------",
		"/usr/share/doc/haldir/haldir.toml.example -rw-r--r--"} {
		if !strings.Contains(modes, want) {
			t.Errorf("want %q in file modes:\n%s", want, modes)
		}
	}
}

func TestRPMMetadata(t *testing.T) {
	rpm := builtRPM(t)
	info := rpmQuery(t, "-qpi", rpm)
	version, _ := os.ReadFile("../VERSION")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Name\s*: haldir$`),
		regexp.MustCompile(`(?m)^Version\s*: ` + regexp.QuoteMeta(strings.TrimSpace(string(version))) + `$`),
		regexp.MustCompile(`(?m)^Release\s*: 1$`),
		regexp.MustCompile(`(?m)^Architecture\s*: x86_64$`),
		regexp.MustCompile(`(?m)^License\s*: Apache-2.0$`),
		regexp.MustCompile(`(?m)^Summary\s*: .*Linux Virtual Server`),
	} {
		if !want.MatchString(info) {
			t.Errorf("rpm -qpi lacks %v:\n%s", want, info)
		}
	}
	reqs := rpmQuery(t, "-qpR", rpm)
	if !strings.Contains(reqs, "systemd") {
		t.Errorf("RPM does not require systemd:\n%s", reqs)
	}
	scripts := rpmQuery(t, "-qp", "--scripts", rpm)
	if !strings.Contains(scripts, "systemctl daemon-reload") {
		t.Errorf("RPM scripts do not reload systemd:\n%s", scripts)
	}
}

// extractRPM unpacks the whole RPM into a temporary directory and returns it.
func extractRPM(t *testing.T, rpm string) string {
	t.Helper()
	dir := t.TempDir()
	abs, _ := filepath.Abs(rpm)
	cmd := exec.Command("sh", "-c", "rpm2cpio '"+abs+"' | cpio -idm --quiet --no-absolute-filenames")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	return dir
}

// TestRPMConfigs checks what an install followed by "systemctl start"
// does (issue 11, defect 5): the live /etc/haldir/haldir.toml configures
// nothing that acts on the host, and both it and the example shipped as
// documentation pass the packaged binary's `haldir check`.
func TestRPMConfigs(t *testing.T) {
	rpm := builtRPM(t)
	root := extractRPM(t, rpm)
	bin := filepath.Join(root, "usr/sbin/haldir")
	for _, tc := range []struct {
		path     string
		harmless bool
	}{
		{"/etc/haldir/haldir.toml", true},
		{"/usr/share/doc/haldir/haldir.toml.example", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			file := filepath.Join(root, tc.path)
			out, err := exec.Command(bin, "check", "-c", file).CombinedOutput()
			if err != nil {
				t.Fatalf("haldir check -c %s: %v\n%s", tc.path, err, out)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// The tables themselves, not only their parsed result: a
			// commented-out block is fine, a live one is not.
			live := regexp.MustCompile(`(?m)^[ \t]*\[\[?(vrrp|vrrp_sync_group|virtual_server|sync|cluster)\]?\]`).FindAllString(string(raw), -1)
			if tc.harmless {
				if len(live) != 0 {
					t.Errorf("%s has live tables %q", tc.path, live)
				}
				cfg, err := conf.Load(file)
				if err != nil {
					t.Fatal(err)
				}
				assertHarmless(t, tc.path, cfg)
				if !strings.Contains(string(raw), "/usr/share/doc/haldir/haldir.toml.example") {
					t.Errorf("%s does not point to the example", tc.path)
				}
			} else if len(live) == 0 {
				t.Errorf("%s is not the full example: no [[vrrp]] or [[virtual_server]]", tc.path)
			}
		})
	}
}

// The binary inside the RPM must be the static one: CentOS directors may
// not have the glibc this machine built against.
func TestRPMBinaryIsStatic(t *testing.T) {
	rpm := builtRPM(t)
	bin := filepath.Join(extractRPM(t, rpm), "usr/sbin/haldir")
	out, err := exec.Command("file", bin).CombinedOutput()
	if err == nil && !strings.Contains(string(out), "statically linked") {
		t.Errorf("haldir in the RPM is not statically linked: %s", out)
	}
	v, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("haldir version from the RPM: %v\n%s", err, v)
	}
	if !strings.HasPrefix(string(v), "haldir ") {
		t.Errorf("haldir version printed %q", v)
	}
}

// The unit and sysconfig must agree: systemd expands ${HALDIR_CONFIG} from
// the EnvironmentFile, so a renamed variable would start haldir without -c.
func TestUnitUsesSysconfigVariables(t *testing.T) {
	unit, err := os.ReadFile("haldir.service")
	if err != nil {
		t.Fatal(err)
	}
	sysconfig, err := os.ReadFile("haldir.sysconfig")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, l := range strings.Split(string(sysconfig), "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			defined[strings.TrimSpace(k)] = true
		}
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).FindAllStringSubmatch(string(unit), -1) {
		if m[1] == "MAINPID" {
			continue
		}
		if !defined[m[1]] {
			t.Errorf("haldir.service uses $%s, which /etc/sysconfig/haldir does not define", m[1])
		}
	}
	for _, want := range []string{"EnvironmentFile=-/etc/sysconfig/haldir", "Type=notify", "ExecReload="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("haldir.service lacks %q", want)
		}
	}
}
