package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestReloadCommand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          *fakeDaemon
		code       int
		wantOut    string
		wantStderr []string
	}{
		{name: "ok", d: &fakeDaemon{}, code: exitOK, wantOut: "reloaded\n"},
		{name: "invalid", d: &fakeDaemon{errs: []string{
			"haldir.toml:4: vrrp[0].vrid: must be 1..255, got 300",
			"haldir.toml:12: virtual_server[0].real_server[1].address: required",
		}}, code: exitInvalid, wantStderr: []string{
			"haldir.toml:4: vrrp[0].vrid: must be 1..255, got 300\n",
			"haldir.toml:12: virtual_server[0].real_server[1].address: required\n",
			"haldir reload: invalid configuration (2 errors); the daemon keeps running the previous one",
		}},
		{name: "daemon error", d: &fakeDaemon{err: errors.New("open /etc/haldir/haldir.toml: no such file or directory")},
			code: exitInvalid, wantStderr: []string{
				"open /etc/haldir/haldir.toml: no such file or directory\n",
				"haldir reload: the daemon could not reload",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := serveControl(t, tc.d)
			var stdout, stderr bytes.Buffer
			code := run([]string{"reload", "-s", path}, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if stdout.String() != tc.wantOut {
				t.Errorf("stdout = %q, want %q", stdout.String(), tc.wantOut)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), w)
				}
			}
		})
	}
}

func TestReloadUnreachable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"reload", "-s", missing}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if want := "haldir is not running? no control socket at " + missing; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}
