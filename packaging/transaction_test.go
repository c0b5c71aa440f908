package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scriptRoot is an empty system for rpm --root / dpkg --root: the package
// managers run the install scripts chrooted into it, so it gets a shell
// and sed (busybox, static), /dev/null, the fake systemctl and logger, and
// /run/systemd/system (booted with systemd).
func scriptRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("rpm --root and dpkg --root chroot to run the install scripts: run as root")
	}
	busybox := needBusybox(t)
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "tmp", "dev", "run/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mknod", "-m", "666", filepath.Join(root, "dev/null"), "c", "1", "3").CombinedOutput(); err != nil {
		t.Fatalf("mknod /dev/null: %v\n%s", err, out)
	}
	copyFile(t, busybox, filepath.Join(root, "bin/busybox"), 0o755)
	for link, target := range map[string]string{"bin/sh": "busybox", "usr/bin/sed": "/bin/busybox"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"usr/bin/systemctl": fakeSystemctl, "usr/bin/logger": fakeLogger} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// needBusybox finds a static busybox (busybox-static, which the VM lab
// installs too): the chroot has no libraries.
func needBusybox(t *testing.T) string {
	t.Helper()
	needTool(t, "busybox")
	path, _ := exec.LookPath("busybox")
	if out, _ := exec.Command("file", "-L", path).Output(); !strings.Contains(string(out), "statically linked") {
		t.Skipf("%s is not static (apt-get install busybox-static)", path)
	}
	return path
}

// TestPackageTransactions installs, upgrades and removes each package
// with its own package manager into an empty root, so the install scripts
// run in the order rpm and dpkg really run them (RPM: the new %post before
// the old %preun and %postun; dpkg: old prerm, old postrm, new postinst),
// not just one by one. An upgrade onto the same version stands for any
// upgrade: the scripts see the same arguments. The operator's state in
// /var/lib/haldir outlives every step. Between steps the fake
// service is running (/tmp/active) and the live file is valid or not.
func TestPackageTransactions(t *testing.T) {
	type step struct {
		name       string
		args       []string // the package manager's, before the package
		config     string   // written to /etc/haldir/haldir.toml first; "" leaves it
		wantCalls  []string
		wantOutput string // in the package manager's output
		wantNot    string // not in it
	}
	const invalid = "[global]\nlog_levle = \"info\"\n"
	reload := "systemctl daemon-reload"
	isActive := "systemctl is-active --quiet haldir.service"
	restart := "systemctl try-restart haldir.service"
	stop := "systemctl --no-reload disable --now haldir.service"
	for _, pkg := range []struct {
		name    string
		file    func(*testing.T) string
		tool    string
		prepare func(t *testing.T, root string)
		steps   []step
	}{
		{
			name: "rpm", file: builtRPM, tool: "rpm",
			prepare: func(t *testing.T, root string) { rpmQuery(t, "--root", root, "--initdb") },
			steps: []step{
				{name: "install", args: []string{"-i", "--nodeps"}, wantCalls: []string{reload}},
				// New %post, then the old package's %preun and %postun.
				{name: "upgrade, file accepted", args: []string{"-U", "--nodeps", "--replacepkgs"},
					wantCalls: []string{reload, isActive, restart, reload}},
				{name: "upgrade, file rejected", args: []string{"-U", "--nodeps", "--replacepkgs"}, config: invalid,
					wantCalls:  []string{reload, isActive, reload},
					wantOutput: "NOT RESTARTED after the upgrade", wantNot: "try-restart"},
				{name: "erase", args: []string{"-e", "--nodeps"}, wantCalls: []string{stop, reload}},
			},
		},
		{
			name: "deb", file: builtDeb, tool: "dpkg",
			prepare: func(t *testing.T, root string) {
				for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
					if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
					if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			},
			steps: []step{
				{name: "install", args: []string{"-i"}, wantCalls: []string{reload}},
				// Old prerm (upgrade: nothing), old postrm, new postinst.
				{name: "upgrade, file accepted", args: []string{"-i"},
					wantCalls: []string{reload, reload, isActive, restart}},
				{name: "upgrade, file rejected", args: []string{"-i"}, config: invalid,
					wantCalls:  []string{reload, reload, isActive},
					wantOutput: "NOT RESTARTED after the upgrade", wantNot: "try-restart"},
				{name: "remove", args: []string{"-r"}, wantCalls: []string{stop, reload}},
			},
		},
	} {
		t.Run(pkg.name, func(t *testing.T) {
			file, err := filepath.Abs(pkg.file(t))
			if err != nil {
				t.Fatal(err)
			}
			needTool(t, pkg.tool)
			root := scriptRoot(t)
			pkg.prepare(t, root)
			// The operator's state (haldir maintenance, drains) is the
			// daemon's, not the package's: upgrades and the erase keep it.
			state := filepath.Join(root, "var/lib/haldir/operator.json")
			const stateDoc = `{"version": 1, "data": {"maintenance": {"reason": "upgrade test"}, "drains": []}}`
			for i, s := range pkg.steps {
				if i == 1 {
					if err := os.WriteFile(state, []byte(stateDoc), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if i > 0 {
					// The service runs from the first upgrade on.
					if err := os.WriteFile(filepath.Join(root, "tmp/active"), nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if s.config != "" {
					if err := os.WriteFile(filepath.Join(root, "etc/haldir/haldir.toml"), []byte(s.config), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				calls := filepath.Join(root, "tmp/calls")
				if err := os.WriteFile(calls, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				args := append([]string{"--root", root}, s.args...)
				if pkg.tool == "dpkg" {
					args = append([]string{"--root=" + root}, s.args...)
				}
				if s.args[0] == "-e" || s.args[0] == "-r" {
					args = append(args, "haldir")
				} else {
					args = append(args, file)
				}
				out, err := exec.Command(pkg.tool, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %s %q: %v\n%s", s.name, pkg.tool, args, err, out)
				}
				if strings.Contains(string(out), "scriptlet failed") || strings.Contains(string(out), "subprocess") {
					t.Errorf("%s: a script failed:\n%s", s.name, out)
				}
				raw, _ := os.ReadFile(calls)
				var got []string
				for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
					if strings.HasPrefix(l, "systemctl ") {
						got = append(got, l)
					}
				}
				if !slices.Equal(got, s.wantCalls) {
					t.Errorf("%s: systemctl calls\n%q\nwant\n%q\n%s", s.name, got, s.wantCalls, out)
				}
				if s.wantOutput != "" && !strings.Contains(string(out), s.wantOutput) {
					t.Errorf("%s: output lacks %q:\n%s", s.name, s.wantOutput, out)
				}
				if s.wantNot != "" && strings.Contains(string(raw), s.wantNot) {
					t.Errorf("%s: %q happened:\n%s", s.name, s.wantNot, raw)
				}
				if b, err := os.ReadFile(state); i > 0 && string(b) != stateDoc {
					t.Errorf("%s: the operator state is gone or changed: %q, %v", s.name, b, err)
				}
			}
		})
	}
}
