package main

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestMain lets the completion scripts under test run this test binary
// as haldir (HALDIR_TEST_AS_HALDIR=1), so they call the real __complete.
func TestMain(m *testing.M) {
	if os.Getenv("HALDIR_TEST_AS_HALDIR") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// namesDaemon is a daemon with two instances, two virtual servers and
// real servers with and without names, one in both virtual servers.
func namesDaemon() *fakeDaemon {
	rs := func(name, addr string, port int) conf.RealServer {
		return conf.RealServer{Name: name, Address: netip.MustParseAddr(addr), Port: port}
	}
	return &fakeDaemon{st: control.Status{
		VRRP: []vrrp.Status{{Name: "vi_web"}, {Name: "vi_db"}},
		VirtualServers: []conf.VirtualServer{
			{Name: "web", RealServers: []conf.RealServer{rs("web1", "10.0.0.1", 80), rs("", "10.0.0.2", 80)}},
			{Name: "web6", RealServers: []conf.RealServer{rs("", "fd00::1", 443), rs("web1", "10.0.0.1", 80)}},
		},
	}}
}

func TestCompleteNames(t *testing.T) {
	sock := serveControl(t, namesDaemon())
	for _, tc := range []struct {
		args []string
		want []string
		code int
	}{
		{[]string{completeInstances, "-s", sock}, []string{"vi_db", "vi_web"}, exitOK},
		{[]string{completeVirtualServers, "-s", sock}, []string{"web", "web6"}, exitOK},
		{[]string{completeRealServers, "-s", sock}, []string{"10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:443", "web1"}, exitOK},
		// A shell completion stays quiet when there is no daemon.
		{[]string{completeRealServers, "-s", filepath.Join(t.TempDir(), "none.sock")}, nil, exitOK},
		{[]string{"@nosuch", "-s", sock}, nil, exitUsage},
		{nil, nil, exitUsage},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"__complete"}, tc.args...), &stdout, &stderr)
			got := strings.Fields(stdout.String())
			if code != tc.code || !slices.Equal(got, tc.want) {
				t.Errorf("exit %d, names %q (stderr %q); want exit %d, %q", code, got, &stderr, tc.code, tc.want)
			}
		})
	}
}

// TestCompletionDaemonNames runs both shells' scripts against a daemon:
// drain's REAL and --virtual-server complete from the daemon named by -s.
func TestCompletionDaemonNames(t *testing.T) {
	sock := serveControl(t, namesDaemon())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("bash", func(t *testing.T) {
		bash := needTool(t, "bash")
		script := completionScript(t, "bash")
		for _, tc := range []struct {
			line string
			want []string
		}{
			{"drain -s " + sock + " ", []string{"10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:443", "web1"}},
			{"drain -s " + sock + " w", []string{"web1"}},
			// bash breaks the word at its colon and replaces only the port.
			{"drain -s " + sock + " 10.0.0.1:", []string{"80"}},
			{"undrain -s " + sock + " --virtual-server ", []string{"web", "web6"}},
			{"drain -s " + sock + " --virtual-server web", []string{"web", "web6"}},
			{"drain -s " + sock + " -", []string{"--help", "--virtual-server", "--weight", "-c", "-s"}},
		} {
			t.Run(tc.line, func(t *testing.T) {
				line := self + " " + tc.line
				// COMP_WORDS as bash makes them: ':' is a word break.
				words := strings.Fields(strings.ReplaceAll(line, ":", " : "))
				if strings.HasSuffix(line, " ") {
					words = append(words, "")
				}
				var quoted []string
				for _, w := range words {
					quoted = append(quoted, "'"+w+"'")
				}
				cmd := exec.Command(bash, "--norc", "-c", `source "$1" || exit 1
COMP_LINE=$2 COMP_POINT=${#2}
COMP_WORDS=(`+strings.Join(quoted, " ")+`)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_haldir
printf '%s\n' "${COMPREPLY[@]}"`, "bash", script, line)
				cmd.Env = append(os.Environ(), "HALDIR_TEST_AS_HALDIR=1")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				got := strings.Fields(string(out))
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Errorf("candidates %q, want %q", got, tc.want)
				}
			})
		}
	})
	t.Run("zsh", func(t *testing.T) {
		zsh := needTool(t, "zsh")
		raw, err := os.ReadFile(completionScript(t, "zsh"))
		if err != nil {
			t.Fatal(err)
		}
		// _haldir_names as _arguments calls it, with compadd recording
		// what it is given.
		cmd := exec.Command(zsh, "-f", "-c", `eval "$(sed '$d' "$1")"
compadd() { shift; print -rl -- ${(P)1} }
_haldir_cmd=$2
words=(drain -s $3 '') CURRENT=4
_haldir_names @real-servers`, "zsh", writeTemp(t, raw), self, sock)
		cmd.Env = append(os.Environ(), "HALDIR_TEST_AS_HALDIR=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got, want := strings.Fields(string(out)), []string{"10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:443", "web1"}; !slices.Equal(got, want) {
			t.Errorf("zsh names %q, want %q", got, want)
		}
		if !strings.Contains(string(raw), "'1:REAL:_haldir_names @real-servers'") {
			t.Error("zsh: drain's REAL does not complete with _haldir_names @real-servers")
		}
	})
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
