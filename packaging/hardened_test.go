package packaging

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
)

// installDst is where the sandbox shows the test's install directory
// (binary, config, scripts): under the fresh /run, read-only like /usr.
const installDst = "/run/haldir-install"

// hardenedConfig is a VRRP master with the parts of haldir that meet the
// sandbox: use_vmac (macvlan and /proc/sys/net writes), a notify and a
// track command (exec under the bounding set and no_new_privs), the control
// socket at its default path in the RuntimeDirectory, and metrics.
const hardenedConfig = `
[global]
router_id = "hardened"
metrics_listen = "127.0.0.1:9712"

[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 150
version = 3
advert_interval = "100ms"
use_vmac = true
virtual_addresses = ["192.0.2.100/24"]
notify_master = ["` + installDst + `/notify", "master", "VI_1"]

[[vrrp.track_script]]
name = "ok"
command = ["` + installDst + `/track"]
interval = "200ms"
weight = 0
`

// The notify command reports what it was given: its arguments, the
// capabilities, no_new_privs and seccomp mode it runs with, and whether / and
// /proc/sys/net are mounted read-only, into the RuntimeDirectory.
const notifyScript = `#!/bin/sh
{
  echo "notify $*"
  grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status
  awk '$5 == "/" || $5 == "/proc/sys/net" { split($6, o, ","); print "mount " $5 " " o[1] }' /proc/self/mountinfo
} >> /run/haldir/notify.log
`

const trackScript = `#!/bin/sh
echo track >> /run/haldir/track.log
`

// TestHardenedDaemon runs haldir under the restrictions of the shipped
// haldir.service (see sandbox_test.go for how, without systemd) in a
// namespace lab, and checks it still does its whole job there: ExecStartPre
// (check) passes, it becomes VRRP master and adds its VIP on the virtual
// MAC interface (which writes /proc/sys/net), runs its notify and track
// commands, answers `haldir status` on the control socket and serves
// metrics, takes an ExecReload, keeps haldir maintenance in its
// StateDirectory, and stops cleanly, giving the VIP back.
//
// Not covered: IPVS (the host kernel has none, so no virtual server, health
// checks, modprobe ip_vs or kernel sync under the sandbox: the VM tests run
// those unsandboxed) and the settings in notApplied.
func TestHardenedDaemon(t *testing.T) {
	lab.SkipIfNotRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	u := parseUnit(t, "haldir.service")

	dir := t.TempDir()
	install := filepath.Join(dir, "install")
	rundir := filepath.Join(dir, "run")
	statedir := filepath.Join(dir, "state")
	for _, d := range []string{install, rundir, statedir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Under make test (HALDIR_REQUIRE_RPM) the binary the RPM ships, built
	// with the Makefile's flags; otherwise one built from this tree now.
	var bin string
	if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
		bin = filepath.Join(extractRPM(t, builtRPM(t)), "usr/sbin/haldir")
	} else {
		bin = lab.BuildHaldir(t)
	}
	copyFile(t, bin, filepath.Join(install, "haldir"), 0o755)
	for name, content := range map[string]string{"haldir.toml": hardenedConfig, "notify": notifyScript, "track": trackScript} {
		mode := os.FileMode(0o755)
		if name == "haldir.toml" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(install, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	sb := sandboxFromUnit(t, u, install, installDst, rundir, statedir)
	if t.Failed() {
		t.FailNow()
	}
	// The unit's commands, with the RPM's paths mapped to this install and
	// the variables /etc/sysconfig/haldir sets.
	vars := map[string]string{"HALDIR_CONFIG": installDst + "/haldir.toml", "HALDIR_OPTS": ""}
	command := func(key string) []string {
		var argv []string
		for _, w := range strings.Fields(u.one("Service", key)) {
			w = strings.Replace(w, "/usr/sbin/haldir", installDst+"/haldir", 1)
			w = regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).ReplaceAllStringFunc(w, func(m string) string {
				return vars[strings.Trim(m, "${}")]
			})
			if w != "" {
				argv = append(argv, w)
			}
		}
		return argv
	}

	l := lab.BuildT(t, "hard", lab.Topology{
		Switches: []string{"lan"},
		Hosts: []lab.HostSpec{{Name: "r1", Links: []lab.LinkSpec{{
			Iface: "eth0", Switch: "lan", Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.11/24")},
		}}}},
	})
	h := l.Host("r1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// ExecStartPre, as systemd runs it: in its own sandbox.
	argv, env := sb.argv(t, command("ExecStartPre"))
	if out, err := h.Run(ctx, argv, env); err != nil {
		t.Fatalf("ExecStartPre %q: %v\n%s", command("ExecStartPre"), err, out)
	}

	argv, env = sb.argv(t, command("ExecStart"))
	p, err := h.Start(ctx, argv, env)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()

	// Master, with the VIP on the virtual MAC interface.
	vip := netip.MustParsePrefix("192.0.2.100/24")
	waitDaemon(t, ctx, p, "the VIP on vrrp.51", func() (bool, string) {
		addrs, err := h.Addrs("vrrp.51")
		return err == nil && slices.Contains(addrs, vip), fmt.Sprint(addrs, err)
	})
	for key, want := range map[string]string{"net.ipv4.conf.eth0.arp_ignore": "1", "net.ipv4.conf.eth0.arp_announce": "2"} {
		if got, err := h.ReadSysctl(key); err != nil || got != want {
			t.Errorf("%s = %q (%v), want %s: use_vmac could not write /proc/sys/net", key, got, err, want)
		}
	}

	// The control socket, from outside the sandbox, as an operator uses it.
	sock := filepath.Join(rundir, "haldir.sock")
	waitDaemon(t, ctx, p, "haldir status: VI_1 MASTER", func() (bool, string) {
		out, err := exec.CommandContext(ctx, bin, "status", "-s", sock).CombinedOutput()
		return err == nil && regexp.MustCompile(`(?m)^\s+VI_1\s+MASTER\b`).Match(out), string(out)
	})

	// The notify command ran, bounded like the daemon.
	var notify string
	waitDaemon(t, ctx, p, "the notify command", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(rundir, "notify.log"))
		notify = string(b)
		return strings.Contains(notify, "mount /proc/sys/net"), notify
	})
	wants := []string{"notify master VI_1", "mount / ro", "mount /proc/sys/net rw"}
	if sb.CapsSet {
		wants = append(wants, "CapBnd:\t"+capMask(sb.Caps))
	}
	if sb.NoNewPrivs {
		wants = append(wants, "NoNewPrivs:\t1")
	}
	if sb.Seccomp != nil {
		wants = append(wants, "Seccomp:\t2") // filter mode
	}
	t.Logf("notify command's report:\n%s", notify)
	for _, want := range wants {
		if !strings.Contains(notify, want) {
			t.Errorf("the notify command's report lacks %q:\n%s", want, notify)
		}
	}
	waitDaemon(t, ctx, p, "the track command", func() (bool, string) {
		_, err := os.Stat(filepath.Join(rundir, "track.log"))
		return err == nil, fmt.Sprint(err)
	})

	// Metrics, inside the host's namespace.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return h.Dial(ctx, network, addr) },
	}}
	waitDaemon(t, ctx, p, "metrics", func() (bool, string) {
		resp, err := hc.Get("http://127.0.0.1:9712/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "haldir_"), resp.Status
	})

	// ExecReload, in a sandbox of its own, reaches the daemon.
	seq := p.LastSeq()
	argv, env = sb.argv(t, command("ExecReload"))
	if out, err := h.Run(ctx, argv, env); err != nil {
		t.Errorf("ExecReload %q: %v\n%s", command("ExecReload"), err, out)
	}
	if _, err := p.WaitForLineAfter(ctx, seq, regexp.MustCompile(`config reloaded`)); err != nil {
		t.Errorf("no reload: %v\n%s", err, p.Output())
	}

	// The operator's state: the sandboxed daemon writes it into the
	// StateDirectory, the one writable place under /var.
	for _, arg := range []string{"on", "off"} {
		if out, err := exec.CommandContext(ctx, bin, "maintenance", arg, "-s", sock).CombinedOutput(); err != nil {
			t.Errorf("haldir maintenance %s: %v\n%s", arg, err, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(statedir, "operator.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("operator.json in the StateDirectory: %v, %v; want it, 0600", fi, err)
	}

	// Stop: the master gives its VIP up and exits 0.
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("haldir exited with %v:\n%s", err, p.Output())
	}
	if addrs, _ := h.Addrs("vrrp.51"); slices.Contains(addrs, vip) {
		t.Errorf("VIP still on vrrp.51 after stop: %v", addrs)
	}
	if t.Failed() {
		t.Logf("haldir output:\n%s", p.Output())
	}
}

// waitDaemon polls check (internal/poll) until it holds, failing the test
// with its last detail and the daemon's output after 30 s, when ctx ends
// or when the daemon exits.
func waitDaemon(t *testing.T, ctx context.Context, p *lab.Proc, what string, check func() (bool, string)) {
	t.Helper()
	// Master-down time is 0.3s here; 30s is only for a loaded machine.
	poll.UntilEvery(t, 30*time.Second, 50*time.Millisecond, what, func() (bool, any) {
		ok, detail := check()
		if ok {
			return true, nil
		}
		select {
		case <-p.Done():
			t.Fatalf("%s: haldir exited (%v); last: %s\nhaldir output:\n%s", what, p.Wait(), detail, p.Output())
		case <-ctx.Done():
			t.Fatalf("%s: %v; last: %s\nhaldir output:\n%s", what, ctx.Err(), detail, p.Output())
		default:
		}
		return false, detail
	}, func() string { return "haldir output:\n" + p.Output() })
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}
