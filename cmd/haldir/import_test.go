package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

func TestImportKeepalived(t *testing.T) {
	const fixture = "../../conf/keepalived/testdata/pair.conf"
	t.Run("warnings: exit 1, valid TOML on stdout", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"import-keepalived", fixture}, &stdout, &stderr); code != exitInvalid {
			t.Fatalf("exit %d, want %d\n%s", code, exitInvalid, stderr.String())
		}
		if _, err := conf.Parse(stdout.Bytes(), "out.toml"); err != nil {
			t.Fatalf("stdout does not load: %v", err)
		}
		if !strings.Contains(stderr.String(), "warning: "+fixture+":114: vrrp_track_file: not supported by haldir") ||
			!strings.Contains(stderr.String(), "8 warning(s)") || strings.Contains(stderr.String(), "invalid:") {
			t.Fatalf("stderr:\n%s", stderr.String())
		}
	})
	t.Run("clean: exit 0, -o writes the file", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(src, []byte("vrrp_instance V {\n interface eth0\n virtual_router_id 9\n priority 150\n virtual_ipaddress {\n  192.0.2.9/24\n }\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "haldir.toml")
		var stdout, stderr bytes.Buffer
		if code := run([]string{"import-keepalived", "-o", out, src}, &stdout, &stderr); code != exitOK {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Fatalf("stdout not empty with -o: %q", stdout.String())
		}
		cfg, err := conf.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if v := cfg.VRRP[0]; v.Name != "V" || v.VRID != 9 || v.Priority != 150 || v.Version != 2 {
			t.Fatalf("imported %+v", v)
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("output mode %v %v", fi.Mode(), err)
		}
	})
	// keepalived's conditional lines and parameters, read for the
	// director named by --config-id and with --define's values: before,
	// "$PRIO=..." was a directive and "@d1" an unknown keyword.
	t.Run("--config-id and --define", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "keepalived.conf")
		os.WriteFile(src, []byte("@d1 $PRIO=150\n@d2 $PRIO=100\nvrrp_instance V {\n interface ${_ENV IFACE}\n virtual_router_id 9\n priority $PRIO\n virtual_ipaddress {\n  $VIP\n }\n}\n"), 0o644)
		for _, tc := range []struct {
			id   string
			prio int
		}{{"d1", 150}, {"d2", 100}} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"import-keepalived", "--config-id", tc.id, "--define", "VIP=192.0.2.9/24", "--define", "IFACE=eth3", src}, &stdout, &stderr); code != exitOK {
				t.Fatalf("%s: exit %d\n%s", tc.id, code, stderr.String())
			}
			cfg, err := conf.Parse(stdout.Bytes(), "out.toml")
			if err != nil {
				t.Fatal(err)
			}
			if v := cfg.VRRP[0]; v.Priority != tc.prio || v.Interface != "eth3" || v.VirtualAddresses[0].String() != "192.0.2.9/24" {
				t.Fatalf("%s: imported %+v", tc.id, v)
			}
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"import-keepalived", "--define", "NOEQUALS", src}, &stdout, &stderr); code != exitUsage {
			t.Fatalf("--define without =: exit %d", code)
		}
	})
	t.Run("unreadable: exit 2", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"import-keepalived", "/nonexistent/keepalived.conf"}, &stdout, &stderr); code != exitUsage {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("unbalanced braces: exit 2 with the line", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "k.conf")
		os.WriteFile(src, []byte("global_defs {\n router_id x\n"), 0o644)
		var stdout, stderr bytes.Buffer
		if code := run([]string{"import-keepalived", src}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "k.conf:1: block \"global_defs\" is never closed") {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	})
}
