package packaging

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/control/controltest"
)

// packageScripts are the install scripts as a built package holds them,
// by their packaging/scripts name, and the unpacked package.
type packageScripts struct {
	scripts map[string]string
	root    string
	envFile string // the unit's environment file in this package
}

func rpmScripts(t *testing.T) packageScripts {
	rpm := builtRPM(t)
	s := packageScripts{scripts: map[string]string{}, root: extractRPM(t, rpm), envFile: "/etc/sysconfig/haldir"}
	for name, tag := range map[string]string{"postinstall": "POSTIN", "preremove": "PREUN", "postremove": "POSTUN"} {
		s.scripts[name] = rpmQuery(t, "-qp", "--queryformat", "%{"+tag+"}", rpm)
	}
	return s
}

func debScripts(t *testing.T) packageScripts {
	deb := builtDeb(t)
	s := packageScripts{scripts: map[string]string{}, root: extractDeb(t, deb), envFile: "/etc/default/haldir"}
	dir := t.TempDir()
	dpkgDeb(t, "-e", deb, dir)
	for name, member := range map[string]string{"postinstall": "postinst", "preremove": "prerm", "postremove": "postrm"} {
		raw, err := os.ReadFile(filepath.Join(dir, member))
		if err != nil {
			t.Fatal(err)
		}
		s.scripts[name] = string(raw)
	}
	return s
}

// fakeSystemctl records every call in $FAKE_LOG (default /tmp/calls: in
// TestPackageTransactions' chroot); is-active answers $FAKE_ACTIVE (default:
// whether /tmp/active exists), try-restart exits $FAKE_RESTART_RC.
const fakeSystemctl = `#!/bin/sh
echo "systemctl $*" >>"${FAKE_LOG:-/tmp/calls}"
case "$1" in
is-active) [ "${FAKE_ACTIVE-$([ -e /tmp/active ] && echo yes)}" = yes ]; exit ;;
try-restart) exit "${FAKE_RESTART_RC:-0}" ;;
esac
exit 0
`

// fakeLogger records its message, from its arguments after "--" or from
// standard input, as fakeSystemctl does.
const fakeLogger = `#!/bin/sh
args="$*"
case "$args" in
*" -- "*) echo "logger $args" >>"${FAKE_LOG:-/tmp/calls}" ;;
*) sed "s/^/logger $args: /" >>"${FAKE_LOG:-/tmp/calls}" ;;
esac
`

// TestScriptlets runs each package's own install scripts, in both packages'
// calling conventions (RPM: $1 = instance count; deb: configure/remove/
// upgrade and the old version), against its unpacked files with a fake
// systemctl and logger on PATH. The rule under test: an install starts
// nothing; an upgrade restarts a running daemon only when the new binary
// accepts the installed configuration, and otherwise leaves it running and
// says so on stderr and to the journal; an erase stops and disables it.
func TestScriptlets(t *testing.T) {
	const invalid = "[global]\nlog_levle = \"info\"\n"
	type tc struct {
		name      string
		script    string
		rpmArgs   []string // nil: no such call for the RPM
		debArgs   []string // nil: no such call for the .deb
		notBooted bool     // no /run/systemd/system
		active    bool
		config    string // /etc/haldir/haldir.toml; "" is the package's own
		envConfig string // HALDIR_CONFIG in the environment file, when set
		restartRC string
		// daemon answers on the root's control socket: "" none, "new"
		// (with maintenance), "in maintenance" (the operator's), "old"
		// (without the maintenance endpoint).
		daemon     string
		wantCalls  []string // systemctl calls and the daemon's requests ("daemon ..."), in order
		wantStderr []string // substrings; nil: stderr must be empty
		wantLog    []string // substrings of the logger lines
	}
	reload := "systemctl daemon-reload"
	isActive := "systemctl is-active --quiet haldir.service"
	restart := "systemctl try-restart haldir.service"
	maintOn := "daemon maintenance on reason=package upgrade"
	maintOff := "daemon maintenance off"
	cases := []tc{
		{name: "upgrade hands over before the restart and ends maintenance after it", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, daemon: "new",
			wantCalls: []string{reload, isActive, maintOn, restart, maintOff}},
		{name: "upgrade leaves the operator's maintenance alone", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, daemon: "in maintenance",
			wantCalls: []string{reload, isActive, restart}},
		{name: "upgrade of a daemon without maintenance just restarts", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, daemon: "old",
			wantCalls: []string{reload, isActive, restart}},
		{name: "upgrade onto a file the new binary rejects hands nothing over", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, daemon: "new", config: invalid,
			wantCalls:  []string{reload, isActive},
			wantStderr: []string{"NOT RESTARTED"},
			wantLog:    []string{"NOT RESTARTED"}},
		{name: "install registers the unit and starts nothing", script: "postinstall",
			rpmArgs: []string{"1"}, debArgs: []string{"configure", ""},
			wantCalls: []string{reload}},
		{name: "upgrade restarts a running daemon the new binary accepts", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true,
			wantCalls: []string{reload, isActive, restart}},
		{name: "upgrade leaves a stopped daemon stopped", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"},
			wantCalls: []string{reload, isActive}},
		{name: "upgrade keeps the old daemon when the new binary rejects the file", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, config: invalid,
			wantCalls:  []string{reload, isActive},
			wantStderr: []string{"NOT RESTARTED", "keeps running the previous version", `log_levle: unknown key (did you mean "log_level"?)`},
			wantLog:    []string{"logger -t haldir -p daemon.err -- haldir: NOT RESTARTED", "/etc/haldir/haldir.toml:2: global.log_levle: unknown key"}},
		{name: "upgrade checks the file the environment file names", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, config: invalid,
			envConfig: "/etc/haldir/other.toml",
			wantCalls: []string{reload, isActive, restart}},
		{name: "a failed restart is reported", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, restartRC: "1",
			wantCalls:  []string{reload, isActive, restart},
			wantStderr: []string{"the restart onto the upgraded binary failed"},
			wantLog:    []string{"logger -t haldir -p daemon.err -- haldir: the restart onto the upgraded binary failed"}},
		{name: "not booted with systemd: no systemctl", script: "postinstall",
			rpmArgs: []string{"2"}, debArgs: []string{"configure", "0.0.9-1"}, active: true, notBooted: true},
		{name: "abort-upgrade leaves things as they were", script: "postinstall",
			debArgs: []string{"abort-upgrade", "0.1.0-1"}, active: true},
		{name: "erase stops and disables", script: "preremove",
			rpmArgs: []string{"0"}, debArgs: []string{"remove"}, active: true,
			wantCalls: []string{"systemctl --no-reload disable --now haldir.service"}},
		{name: "upgrade does not stop the old daemon", script: "preremove",
			rpmArgs: []string{"1"}, debArgs: []string{"upgrade", "0.2.0-1"}, active: true},
		{name: "after an erase or an upgrade only reload the units", script: "postremove",
			rpmArgs: []string{"1"}, debArgs: []string{"upgrade", "0.2.0-1"}, active: true,
			wantCalls: []string{reload}},
	}
	for _, pkg := range []struct {
		name    string
		scripts func(*testing.T) packageScripts
		args    func(tc) []string
	}{
		{"rpm", rpmScripts, func(c tc) []string { return c.rpmArgs }},
		{"deb", debScripts, func(c tc) []string { return c.debArgs }},
	} {
		t.Run(pkg.name, func(t *testing.T) {
			ps := pkg.scripts(t)
			bin := t.TempDir()
			for name, text := range map[string]string{"systemctl": fakeSystemctl, "logger": fakeLogger} {
				if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range cases {
				args := pkg.args(c)
				if args == nil {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					// Short: the root holds the daemon's control socket
					// (unix socket paths stop at 107 bytes).
					root, err := os.MkdirTemp("", "hs")
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { os.RemoveAll(root) })
					mkdir := func(p string) {
						if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
							t.Fatal(err)
						}
					}
					write := func(p, text string) {
						mkdir(filepath.Dir(p))
						if err := os.WriteFile(filepath.Join(root, p), []byte(text), 0o644); err != nil {
							t.Fatal(err)
						}
					}
					if !c.notBooted {
						mkdir("run/systemd/system")
					}
					mkdir("usr/sbin")
					if err := os.Symlink(filepath.Join(ps.root, "usr/sbin/haldir"), filepath.Join(root, "usr/sbin/haldir")); err != nil {
						t.Fatal(err)
					}
					shipped, err := os.ReadFile(filepath.Join(ps.root, "etc/haldir/haldir.toml"))
					if err != nil {
						t.Fatal(err)
					}
					config := c.config
					if config == "" {
						config = string(shipped)
					}
					write("etc/haldir/haldir.toml", config)
					env, err := os.ReadFile(filepath.Join(ps.root, ps.envFile))
					if err != nil {
						t.Fatal(err)
					}
					if c.envConfig != "" {
						env = append(env, "HALDIR_CONFIG="+c.envConfig+"\n"...)
						write(c.envConfig, string(shipped))
					}
					write(ps.envFile, string(env))

					script := filepath.Join(t.TempDir(), c.script)
					if err := os.WriteFile(script, []byte(ps.scripts[c.script]), 0o755); err != nil {
						t.Fatal(err)
					}
					log := filepath.Join(t.TempDir(), "calls")
					if c.daemon != "" {
						serveFakeDaemon(t, filepath.Join(root, "run/haldir/haldir.sock"), c.daemon, log)
					}
					cmd := exec.Command("/bin/sh", append([]string{script}, args...)...)
					cmd.Env = []string{
						"PATH=" + bin + ":/usr/bin:/bin",
						"HALDIR_SCRIPTLET_ROOT=" + root,
						"FAKE_LOG=" + log,
						"FAKE_ACTIVE=" + map[bool]string{true: "yes", false: "no"}[c.active],
						"FAKE_RESTART_RC=" + c.restartRC,
					}
					var stderr strings.Builder
					cmd.Stderr = &stderr
					if out, err := cmd.Output(); err != nil || len(out) > 0 {
						// A failing maintainer script fails the whole
						// install or upgrade: never.
						t.Errorf("%s %q: %v, stdout %q\nstderr:\n%s", c.script, args, err, out, &stderr)
					}
					raw, _ := os.ReadFile(log)
					var calls, logged []string
					for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
						switch {
						case strings.HasPrefix(l, "systemctl "), strings.HasPrefix(l, "daemon "):
							calls = append(calls, l)
						case strings.HasPrefix(l, "logger "):
							logged = append(logged, l)
						}
					}
					if !slices.Equal(calls, c.wantCalls) {
						t.Errorf("systemctl calls:\n%q\nwant:\n%q", calls, c.wantCalls)
					}
					if c.wantStderr == nil && stderr.Len() > 0 {
						t.Errorf("unexpected stderr:\n%s", &stderr)
					}
					for _, w := range c.wantStderr {
						if !strings.Contains(stderr.String(), w) {
							t.Errorf("stderr lacks %q:\n%s", w, &stderr)
						}
					}
					for _, w := range c.wantLog {
						if !slices.ContainsFunc(logged, func(l string) bool { return strings.Contains(l, w) }) {
							t.Errorf("journal (logger) lacks %q:\n%s", w, strings.Join(logged, "\n"))
						}
					}
					if c.wantLog == nil && len(logged) > 0 {
						t.Errorf("unexpected logger lines:\n%s", strings.Join(logged, "\n"))
					}
				})
			}
		})
	}
}

// fakeDaemon answers on a control socket like a running haldir: kind
// "new" has the maintenance endpoint and is not in maintenance, "in
// maintenance" is, "old" has no such endpoint. Each maintenance request
// is appended to log, as the fake systemctl does, so the test sees its
// order among the systemctl calls.
type fakeDaemon struct {
	kind, log string
	mu        sync.Mutex
	on        bool
}

func (f *fakeDaemon) Status() control.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on {
		return control.Status{Maintenance: &control.Maintenance{Reason: "the operator's"}}
	}
	return control.Status{}
}

func (f *fakeDaemon) Reload() ([]string, error) { return nil, nil }

// fakeOperatorDaemon is fakeDaemon with the maintenance endpoint.
type fakeOperatorDaemon struct{ *fakeDaemon }

func (f fakeOperatorDaemon) Drain(control.DrainRequest) (control.DrainReply, error) {
	return control.DrainReply{}, errors.New("not in this test")
}

func (f fakeOperatorDaemon) Undrain(control.DrainRequest) (control.DrainReply, error) {
	return control.DrainReply{}, errors.New("not in this test")
}

func (f fakeOperatorDaemon) SetMaintenance(r control.MaintenanceRequest) (control.MaintenanceReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := "daemon maintenance off\n"
	if r.On {
		line = "daemon maintenance on reason=" + r.Reason + "\n"
	}
	lf, err := os.OpenFile(f.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return control.MaintenanceReply{}, err
	}
	defer lf.Close()
	if _, err := lf.WriteString(line); err != nil {
		return control.MaintenanceReply{}, err
	}
	f.on = r.On
	return control.MaintenanceReply{}, nil
}

func serveFakeDaemon(t *testing.T, sock, kind, log string) {
	t.Helper()
	f := &fakeDaemon{kind: kind, log: log, on: kind == "in maintenance"}
	var d control.Daemon = f
	if kind != "old" {
		d = fakeOperatorDaemon{f}
	}
	controltest.Serve(t, sock, d)
}
