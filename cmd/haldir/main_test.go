package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/logbuf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

const validConfig = `
[global]
router_id = "lvs-a"

[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
virtual_addresses = ["192.0.2.10/24"]

[[vrrp_sync_group]]
name = "G"
instances = ["VI_1"]

[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80

[virtual_server.check]
type = "http"
path = "/healthz"

[[virtual_server.real_server]]
address = "10.0.0.21"
port = 8080

[[virtual_server.real_server]]
address = "10.0.0.22"
port = 8080
check = { type = "tcp" }

[[virtual_server]]
name = "dns"
address = "192.0.2.10"
port = 53
protocol = "udp"

[[virtual_server.real_server]]
address = "10.0.0.21"
`

// daemonConfig is validConfig without VRRP: daemon tests here run without a
// network namespace (VRRP in the daemon is covered by the namespace tests)
// and with the in-memory IPVS kernel.
var daemonConfig = strings.Replace(validConfig, `[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
virtual_addresses = ["192.0.2.10/24"]

[[vrrp_sync_group]]
name = "G"
instances = ["VI_1"]
`, "", 1)

// idleConfig runs no component: enough for signal handling through the
// real entry point, on any kernel. Its control socket is private to the
// test and metrics are off, so tests never meet on a shared address.
func idleConfig(t *testing.T) string {
	dir := t.TempDir()
	return fmt.Sprintf("[global]\nrouter_id = \"lvs-a\"\ncontrol_socket = %q\nstate_dir = %q\nmetrics_listen = \"\"\n",
		filepath.Join(dir, "haldir.sock"), filepath.Join(dir, "state"))
}

// withFakeKernel runs the daemon on the in-memory IPVS kernel, with a
// private control socket and state directory and an ephemeral metrics
// port.
func withFakeKernel(t *testing.T, k *ipvstest.Kernel) func(*runEnv) {
	dir := t.TempDir()
	return func(e *runEnv) {
		e.opts.NewKernel = func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }
		e.cfg.Global.ControlSocket = filepath.Join(dir, "haldir.sock")
		e.cfg.Global.StateDir = filepath.Join(dir, "state")
		e.cfg.Global.MetricsListen = "127.0.0.1:0"
	}
}

const invalidConfig = `[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 0
priority = 300
virtual_addresses = ["192.0.2.10/24"]
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "haldir.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	valid := writeFile(t, validConfig)
	invalid := writeFile(t, invalidConfig)
	missing := filepath.Join(t.TempDir(), "nope.toml")
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings, in order
		stderr     []string
		noStdout   bool
		exactError string
	}{
		{
			name: "valid", args: []string{"check", "-c", valid}, code: 0,
			stdout: []string{
				valid + ": configuration is valid",
				"router_id lvs-a", "state /var/lib/haldir",
				"VRRP instances: 1", "VI_1", "eth0 vrid 51", "v3 prio 150 every 1s", "192.0.2.10/24",
				"Sync groups: 1", "G: VI_1",
				"Virtual servers: 2", "web  tcp 192.0.2.10:80  wlc, nat",
				"-> 10.0.0.21:8080", "weight 1", "http GET /healthz expect 200-299, every 2s timeout 1s rise 1 fall 2",
				"-> 10.0.0.22:8080", "weight 1", "tcp connect, every 2s timeout 1s rise 1 fall 2",
				"dns", "udp 192.0.2.10:53",
				"-> 10.0.0.21:53", "no check (always up)",
			},
		},
		{
			name: "valid with bgp", args: []string{"check", "-c", filepath.Join("..", "..", "conf", "testdata", "valid", "bgp.toml")}, code: 0,
			stdout: []string{
				"Connection sync: on eth2, N-way (master and backup on every director), sync_id 7",
				"BGP: asn 65010, router id chosen at start, connect out only, graceful shutdown on, addresses on haldir0",
				"  peer 10.0.0.1: asn 65000, port 179, hold 9s, bfd 100ms/100ms x3",
				"  192.0.2.10/32 for web, communities 65010:100",
			},
		},
		{
			name: "invalid", args: []string{"check", "-c", invalid}, code: 1, noStdout: true,
			exactError: invalid + ":4: vrrp[0].vrid: must be 1..255, got 0\n" +
				invalid + ":5: vrrp[0].priority: must be 1..255, got 300\n" +
				invalid + ": 2 errors\n",
		},
		{
			name: "unreadable", args: []string{"check", "-c", missing}, code: 2, noStdout: true,
			stderr: []string{"haldir check: read config: open " + missing + ": no such file or directory"},
		},
		{
			name: "directory", args: []string{"check", "-c", t.TempDir()}, code: 2, noStdout: true,
			stderr: []string{"is a directory"},
		},
		{
			name: "stray argument", args: []string{"check", "-c", valid, "extra"}, code: 2, noStdout: true,
			stderr: []string{`unexpected argument "extra"`},
		},
		{
			name: "bad flag", args: []string{"check", "-x"}, code: 2, noStdout: true,
			stderr: []string{"flag provided but not defined: -x"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			if tc.noStdout && stdout.Len() > 0 {
				t.Errorf("unexpected stdout:\n%s", &stdout)
			}
			containsInOrder(t, "stdout", stdout.String(), tc.stdout)
			containsInOrder(t, "stderr", stderr.String(), tc.stderr)
			if tc.exactError != "" && stderr.String() != tc.exactError {
				t.Errorf("stderr\n got %q\nwant %q", stderr.String(), tc.exactError)
			}
		})
	}
}

// TestCheckPackagingExample runs check on the shipped example, as the
// systemd unit's ExecStartPre does.
func TestCheckPackagingExample(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", "../../packaging/haldir.toml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d:\n%s", code, &stderr)
	}
	// One screen: the summary of the full example must fit 50 lines.
	if n := strings.Count(stdout.String(), "\n"); n > 50 {
		t.Errorf("summary is %d lines:\n%s", n, &stdout)
	}
}

func containsInOrder(t *testing.T, name, s string, want []string) {
	t.Helper()
	rest := s
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("%s: missing %q (in order) in:\n%s", name, w, s)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "haldir dev\n", ""},
		{[]string{"help"}, 0, "Commands:", ""},
		{nil, 2, "", "Commands:"},
		{[]string{"frobnicate"}, 2, "", `haldir: unknown command "frobnicate"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(stdout.String(), tc.stdout) || (tc.stdout == "" && stdout.Len() > 0) {
				t.Errorf("stdout %q, want %q", &stdout, tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr %q, want %q", &stderr, tc.stderr)
			}
		})
	}
	var out bytes.Buffer
	run([]string{"help"}, &out, &out)
	for _, cmd := range []string{"run", "check", "version"} {
		if !strings.Contains(out.String(), "\n  "+cmd+" ") {
			t.Errorf("usage does not list %q:\n%s", cmd, &out)
		}
	}
}

// startDaemon runs "haldir run -c path" in this process, hook adjusting
// the daemon before it starts, and stops it with SIGTERM at the test's
// end (it must exit within 15 s). It returns the daemon's log and its
// signal channel.
func startDaemon(t *testing.T, path string, hook func(*runEnv)) (*syncBuffer, chan<- os.Signal) {
	t.Helper()
	// The host's /var/lib/haldir is never a test's.
	stateDir := t.TempDir()
	inner := hook
	hook = func(e *runEnv) {
		if e.cfg.Global.StateDir == conf.DefaultStateDir {
			e.cfg.Global.StateDir = stateDir
		}
		if inner != nil {
			inner(e)
		}
	}
	sigs := make(chan os.Signal)
	log := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- runDaemonWith([]string{"-c", path}, log, sigs, hook) }()
	t.Cleanup(func() {
		select {
		case sigs <- syscall.SIGTERM:
		case <-done: // it stopped by itself (a failed start)
			return
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return log, sigs
}

// syncBuffer is the daemon's log, read by the test while it runs.
type syncBuffer = logbuf.Buffer

// waitFor polls until the log contains want, or fails after a deadline.
func waitFor(t *testing.T, log *syncBuffer, want string, count int) {
	t.Helper()
	poll.True(t, 10*time.Second, fmt.Sprintf("%d× %q in the log", count, want),
		func() bool { return strings.Count(log.String(), want) >= count }, log.String)
}

func TestRunReloadAndStop(t *testing.T) {
	if daemonConfig == validConfig {
		t.Fatal("daemonConfig still has the vrrp section")
	}
	path := writeFile(t, daemonConfig)
	sigs := make(chan os.Signal)
	var log syncBuffer
	done := make(chan int, 1)
	k := ipvstest.New()
	go func() { done <- runDaemonWith([]string{"-c", path}, &log, sigs, withFakeKernel(t, k)) }()

	waitFor(t, &log, "haldir started", 1)

	// A broken file is rejected error by error; the old config stays.
	if err := os.WriteFile(path, []byte(invalidConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, &log, "keeping the running configuration", 1)
	for _, want := range []string{"vrrp[0].vrid: must be 1..255, got 0", "vrrp[0].priority: must be 1..255, got 300"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("reload log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "config reloaded") {
		t.Fatalf("invalid config reported as reloaded:\n%s", log.String())
	}

	// A good file is taken.
	if err := os.WriteFile(path, []byte("[global]\nlog_level = \"debug\"\n"+daemonConfig[len("\n[global]\n"):]), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, &log, "config reloaded", 1)

	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
	if !strings.Contains(log.String(), "stopped") {
		t.Errorf("no stop message:\n%s", log.String())
	}
}

func TestRunInvalidConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"invalid", []string{"-c", writeFile(t, invalidConfig)}, 1, "vrrp[0].vrid: must be 1..255, got 0"},
		{"missing", []string{"-c", "/nonexistent/haldir.toml"}, 1, "no such file or directory"},
		{"bad level", []string{"-log-level", "loud"}, 2, `unknown log level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			if code := runDaemon(tc.args, &log, make(chan os.Signal)); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(log.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, log.String())
			}
		})
	}
}

// TestRunNotifiesSystemd checks the sd_notify messages the Type=notify unit
// relies on, over a real unixgram socket.
func TestRunNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	recv := func() string {
		t.Helper()
		buf := make([]byte, 512)
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no sd_notify message: %v", err)
			}
			// STATUS= lines come whenever the state changes; see
			// TestStatusLines.
			if msg := string(buf[:n]); !strings.HasPrefix(msg, "STATUS=") {
				return msg
			}
		}
	}

	sigs := make(chan os.Signal)
	var log syncBuffer
	done := make(chan int, 1)
	go func() { done <- runDaemon([]string{"-c", writeFile(t, idleConfig(t))}, &log, sigs) }()
	if got := recv(); got != "READY=1" {
		t.Errorf("first message %q, want READY=1", got)
	}
	sigs <- syscall.SIGHUP
	if got := recv(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reload message %q", got)
	}
	if got := recv(); got != "READY=1" {
		t.Errorf("after reload %q, want READY=1", got)
	}
	sigs <- syscall.SIGINT
	if got := recv(); got != "STOPPING=1" {
		t.Errorf("stop message %q, want STOPPING=1", got)
	}
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestRunRealSignals sends real signals to the test process: the "run"
// subcommand must have registered for them before it logs "haldir started".
func TestRunRealSignals(t *testing.T) {
	path := writeFile(t, idleConfig(t))
	var log syncBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"run", "-c", path}, &log, &log) }()
	waitFor(t, &log, "haldir started", 1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &log, "config reloaded", 1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func mustLoad(t *testing.T, content string) *conf.Config {
	t.Helper()
	c, err := conf.Load(writeFile(t, content))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
