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
	// haldir-VERSION-RELEASE.DIST.x86_64.rpm: the dist tag is the Makefile's
	// RPM_DIST, so any one is taken, but only one may be there.
	return builtPackage(t, "haldir-"+packageVersion(t)+"-1*.x86_64.rpm", "rpm", "rpm")
}

// builtDeb finds the .deb that `make deb` left in dist/, as builtRPM.
func builtDeb(t *testing.T) string {
	t.Helper()
	return builtPackage(t, "haldir_"+packageVersion(t)+"-1_amd64.deb", "deb", "dpkg-deb")
}

func packageVersion(t *testing.T) string {
	t.Helper()
	version, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(version))
}

func builtPackage(t *testing.T, pattern, target, tool string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("..", "dist", pattern))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case len(matches) > 1:
		t.Fatalf("dist/ holds %d packages matching %s (%q): remove the stale ones", len(matches), pattern, matches)
	case len(matches) == 0 && os.Getenv("HALDIR_REQUIRE_RPM") != "":
		t.Fatalf("dist/%s: not built (HALDIR_REQUIRE_RPM is set: run make %s)", pattern, target)
	case len(matches) == 0:
		t.Skipf("dist/%s not built: run `make %s` (make test does)", pattern, target)
	}
	needTool(t, tool)
	return matches[0]
}

// needTool skips a test when a program it runs is missing, or fails it
// when HALDIR_REQUIRE_RPM is set (make test, CI: lab/install-deps.sh
// installs them all).
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
			t.Fatalf("%s not installed (HALDIR_REQUIRE_RPM is set: run lab/install-deps.sh)", name)
		}
		t.Skipf("%s not installed (lab/install-deps.sh installs it)", name)
	}
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
		"/usr/share/licenses/haldir/LICENSE",
		"/etc/haldir",     // owned: rpm -qf /etc/haldir names the package
		"/var/lib/haldir", // global.state_dir, owned likewise
		"/usr/share/man/man8/haldir.8.gz",
		"/usr/share/man/man5/haldir.toml.5.gz",
		"/usr/share/bash-completion/completions/haldir",
		"/usr/share/zsh/site-functions/_haldir",
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
	for _, want := range []string{"/usr/sbin/haldir -rwxr-xr-x", "/etc/haldir/haldir.toml -rw-------", "/var/lib/haldir drwx------",
		"/usr/share/doc/haldir/haldir.toml.example -rw-r--r--"} {
		if !strings.Contains(modes, want) {
			t.Errorf("want %q in file modes:\n%s", want, modes)
		}
	}
}

func TestRPMMetadata(t *testing.T) {
	rpm := builtRPM(t)
	info := rpmQuery(t, "-qpi", rpm)
	version := packageVersion(t)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Name\s*: haldir$`),
		regexp.MustCompile(`(?m)^Version\s*: ` + regexp.QuoteMeta(version) + `$`),
		// RELEASE and a %{?dist}-style tag (Makefile RPM_DIST).
		regexp.MustCompile(`(?m)^Release\s*: 1\.el\d+$`),
		regexp.MustCompile(`(?m)^Architecture\s*: x86_64$`),
		regexp.MustCompile(`(?m)^License\s*: Apache-2.0$`),
		regexp.MustCompile(`(?m)^Summary\s*: .*Linux Virtual Server`),
	} {
		if !want.MatchString(info) {
			t.Errorf("rpm -qpi lacks %v:\n%s", want, info)
		}
	}
	// systemctl in the scriptlets: Requires(post) and a plain Requires
	// (nfpm has no Requires(preun)/(postun); nfpm.yaml says why the plain
	// one stands in).
	reqs := rpmQuery(t, "-qp", "--queryformat", "[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]", rpm)
	for _, want := range []string{"systemd post", "systemd manual"} {
		if !slices.Contains(strings.Split(reqs, "\n"), want) {
			t.Errorf("RPM requires lack %q:\n%s", want, reqs)
		}
	}

	// %doc, %license and a changelog whose newest entry is this version.
	docs := strings.Fields(rpmQuery(t, "-qpd", rpm))
	for _, want := range []string{"/usr/share/doc/haldir/README.md", "/usr/share/doc/haldir/config.md", "/usr/share/doc/haldir/haldir.toml.example"} {
		if !slices.Contains(docs, want) {
			t.Errorf("%s is not %%doc; docs: %q", want, docs)
		}
	}
	if lic := strings.Fields(rpmQuery(t, "-qpL", rpm)); !slices.Equal(lic, []string{"/usr/share/licenses/haldir/LICENSE"}) {
		t.Errorf("%%license files: %q", lic)
	}
	changelog := rpmQuery(t, "-qp", "--changelog", rpm)
	if first, _, _ := strings.Cut(changelog, "\n"); !strings.HasSuffix(first, " - "+version+"-1") {
		t.Errorf("the changelog's newest entry is not %s-1:\n%s", version, changelog)
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

// TestRPMInstallOwnsDirectories installs the RPM into an empty root (rpm
// --root, no scriptlets: they would run in a chroot without a shell) and
// asks rpm who owns what: `rpm -qf /etc/haldir` names the package, so an
// erase takes the directory with it.
func TestRPMInstallOwnsDirectories(t *testing.T) {
	rpm := builtRPM(t)
	if os.Geteuid() != 0 {
		t.Skip("rpm --root installs files owned by root: run as root")
	}
	root := t.TempDir()
	rpmQuery(t, "--root", root, "--initdb")
	rpmQuery(t, "--root", root, "-i", "--nodeps", "--noscripts", rpm)
	nevra := strings.TrimSpace(rpmQuery(t, "-qp", "--queryformat", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}", rpm))
	for _, path := range []string{"/etc/haldir", "/etc/haldir/haldir.toml", "/var/lib/haldir", "/usr/sbin/haldir", "/usr/share/licenses/haldir/LICENSE"} {
		if got := strings.TrimSpace(rpmQuery(t, "--root", root, "-qf", path)); got != nevra {
			t.Errorf("rpm -qf %s: %q, want %q", path, got, nevra)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/haldir/haldir.toml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("installed /etc/haldir/haldir.toml: %v, %v; want mode 0600", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/haldir")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("installed /var/lib/haldir: %v, %v; want mode 0700", fi, err)
	}
	rpmQuery(t, "--root", root, "-e", "--nodeps", "--noscripts", "haldir")
	for _, dir := range []string{"etc/haldir", "var/lib/haldir"} {
		if _, err := os.Stat(filepath.Join(root, dir)); !os.IsNotExist(err) {
			t.Errorf("/%s after an erase: %v, want it gone with the package", dir, err)
		}
	}
}
