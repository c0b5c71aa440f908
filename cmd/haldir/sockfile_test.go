package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/daemon"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

func TestSocketFromFile(t *testing.T) {
	def := conf.DefaultControlSocket
	for _, tc := range []struct {
		name, content string
		want          string
		disabled      bool
	}{
		{"valid", "[global]\ncontrol_socket = \"/run/a/x.sock\"\n", "/run/a/x.sock", false},
		{"valid TOML, invalid config", "[global]\ncontrol_socket = \"/run/a/x.sock\"\n[[vrrp]]\nvrid = 0\n", "/run/a/x.sock", false},
		{"no key", "[global]\nrouter_id = \"a\"\n", def, false},
		{"disabled", "[global]\ncontrol_socket = \"\"\n", "", true},
		{"broken after", "[global]\ncontrol_socket = \"/run/b.sock\" # mine\n[[vrrp]\nname = \n", "/run/b.sock", false},
		{"broken before", "router_id = = 1\n[ global ]\ncontrol_socket='/run/c.sock'\n", "/run/c.sock", false},
		{"escaped", "[global]\ncontrol_socket = \"/run/\\u0064.sock\"\n[x\n", "/run/d.sock", false},
		{"dotted at the top", "global.control_socket = \"/run/e.sock\"\n[x\n", "/run/e.sock", false},
		{"other table's key", "[cluster]\ncontrol_socket = \"/run/f.sock\"\n[x\n", def, false},
		{"disabled, broken", "[global]\ncontrol_socket = \"\"\n[x\n", "", true},
		{"last one wins", "[global]\ncontrol_socket = \"/run/1.sock\"\ncontrol_socket = \"/run/2.sock\"\n", "/run/2.sock", false},
		{"not a string", "[global]\ncontrol_socket = 5\n[x\n", def, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, fallback, err := socketFromFile(writeFile(t, tc.content))
			if tc.disabled {
				if !errors.Is(err, errNoControlSocket) {
					t.Errorf("err %v, want errNoControlSocket", err)
				}
				return
			}
			if err != nil || got != tc.want || fallback != "" {
				t.Errorf("got %q, %q, %v; want %q", got, fallback, err, tc.want)
			}
		})
	}
	t.Run("unreadable", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.toml")
		got, fallback, err := socketFromFile(missing)
		if err != nil || got != def || !strings.Contains(fallback, "reading "+missing+" for its control socket") {
			t.Errorf("got %q, %q, %v; want the default and why", got, fallback, err)
		}
	})
}

// FuzzScanControlSocket: any text, no panic, and a found socket is a value
// that was in the text.
func FuzzScanControlSocket(f *testing.F) {
	f.Add("[global]\ncontrol_socket = \"/run/a.sock\"\n[x\n")
	f.Add("global.control_socket='/x'\n")
	f.Add("[global]\ncontrol_socket = \"\\\"\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		if s := scanControlSocket(text); s != nil && *s != "" && !strings.Contains(text, *s) && !strings.Contains(text, "\\") {
			t.Errorf("found %q, not in the text", *s)
		}
	})
}

// TestReloadBrokenFileReachesDaemon: `haldir reload -c FILE` (systemd's
// ExecReload) and `haldir status -c FILE` find the daemon even when FILE
// is broken; the daemon reports the file's errors, reload exits 1, and the
// daemon keeps running the old configuration.
func TestReloadBrokenFileReachesDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "haldir.sock")
	good := strings.Replace(daemonConfig, "\n[global]\n", fmt.Sprintf("\n[global]\ncontrol_socket = %q\nstate_dir = %q\nmetrics_listen = \"\"\n", sock, filepath.Dir(sock)+"/state"), 1)
	if good == daemonConfig {
		t.Fatal("no [global] in daemonConfig")
	}
	path := writeFile(t, good)
	k := ipvstest.New()
	var d *daemon.Daemon
	log, _ := startDaemon(t, path, func(e *runEnv) {
		e.opts.NewKernel = func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }
		e.started = func(x *daemon.Daemon) { d = x }
	})
	waitFor(t, log, "control socket ready", 1)
	running := d.Status().ConfigLoaded

	for _, tc := range []struct {
		name, content string
		daemonSays    string
	}{
		{"invalid values", strings.Replace(good, `port = 80`, `port = 80
scheduler = "bogus"`, 1), "scheduler"},
		{"not TOML", good + "\n[[virtual_server]\n", "toml"},
		{"no control_socket line parses", strings.Replace(good, "[global]", "[global]\nrouter_id = = \"x\"", 1), "toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"reload", "-c", path}, &stdout, &stderr); code != exitInvalid {
				t.Errorf("reload exit %d, want %d\n%s%s", code, exitInvalid, &stdout, &stderr)
			}
			if !strings.Contains(strings.ToLower(stderr.String()), tc.daemonSays) ||
				!strings.Contains(stderr.String(), "the daemon keeps running the previous one") {
				t.Errorf("reload did not print the daemon's errors (%q):\n%s", tc.daemonSays, &stderr)
			}
			if strings.Contains(stderr.String(), "for its control socket") {
				t.Errorf("the client judged the file:\n%s", &stderr)
			}
			if !d.Status().ConfigLoaded.Equal(running) {
				t.Error("the daemon switched configuration")
			}
			stdout.Reset()
			stderr.Reset()
			if code := run([]string{"status", "-c", path}, &stdout, &stderr); code != exitOK {
				t.Errorf("status -c on the broken file: exit %d\n%s", code, &stderr)
			}
		})
	}
	waitFor(t, log, "keeping the running configuration", 3)
}
