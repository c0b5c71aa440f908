package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// completionScript writes `haldir completion SHELL` to a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"completion", shell}, &stdout, &stderr); code != exitOK || stderr.Len() > 0 {
		t.Fatalf("haldir completion %s: exit %d\n%s", shell, code, &stderr)
	}
	path := filepath.Join(t.TempDir(), "haldir."+shell)
	if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBashCompletion loads the bash script into bash, checks that it is
// registered for haldir (complete -p), and calls its function with
// COMP_WORDS/COMP_CWORD as bash's programmable completion would.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	script := completionScript(t, "bash")
	dir := t.TempDir() // the working directory: file names complete from it
	for _, f := range []string{"haldir.toml", "keepalived.conf", "other file"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bash, "--norc", "-c", `source "$1" && complete -p haldir`, "bash", script).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F _haldir haldir" {
		t.Fatalf("complete -p haldir: %v: %q", err, out)
	}
	for _, tc := range []struct {
		line string // the words typed; the last one ("" after a space) is completed
		want []string
	}{
		{"haldir ", commandNames()},
		{"haldir st", []string{"status"}},
		{"haldir re", []string{"reload"}},
		{"haldir status --", []string{"--help", "--json", "--stats", "--rate"}},
		{"haldir status -", []string{"--help", "-s", "-c", "--json", "--stats", "--rate"}},
		{"haldir run -log-level ", []string{"debug", "info", "warn", "error"}},
		{"haldir run -log-level w", []string{"warn"}},
		{"haldir check -c ", []string{"haldir.toml", "keepalived.conf", "other file"}},
		{"haldir check -c k", []string{"keepalived.conf"}},
		{"haldir check --host ", []string{"--help", "-c", "--host"}},
		{"haldir import-keepalived ", []string{"haldir.toml", "keepalived.conf", "other file"}},
		{"haldir import-keepalived --de", []string{"--define"}},
		{"haldir import-keepalived --config-id ", nil},
		{"haldir completion ", []string{"bash", "zsh"}},
		{"haldir help imp", []string{"import-keepalived"}},
		{"haldir version ", []string{"--help"}},
		{"haldir nosuch ", nil},
	} {
		t.Run(tc.line, func(t *testing.T) {
			words := strings.Split(tc.line, " ")
			var quoted []string
			for _, w := range words {
				quoted = append(quoted, "'"+w+"'")
			}
			cmd := exec.Command(bash, "--norc", "-c", `source "$1" || exit 1
COMP_WORDS=(`+strings.Join(quoted, " ")+`)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_haldir
printf '%s\n' "${COMPREPLY[@]}"`, "bash", script)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
				if l != "" {
					got = append(got, l)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("candidates %q, want %q", got, want)
			}
		})
	}
}

// TestZshCompletion: the zsh script parses (zsh -n), is a #compdef
// function for haldir, and compinit loads it from $fpath as _haldir.
func TestZshCompletion(t *testing.T) {
	zsh := needTool(t, "zsh")
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(script)
	if !strings.HasPrefix(string(raw), "#compdef haldir\n") {
		t.Errorf("the script does not start with #compdef haldir:\n%.80s", raw)
	}
	for _, c := range commands {
		if !strings.Contains(string(raw), "\t"+c.name+")\n") {
			t.Errorf("no case for %s", c.name)
		}
	}
	fpath := t.TempDir()
	if err := os.WriteFile(filepath.Join(fpath, "_haldir"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zsh, "-f", "-c", `fpath=("$1" $fpath); autoload -Uz compinit && compinit -u -D && print -r -- $_comps[haldir]`, "zsh", fpath)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_haldir" {
		t.Errorf("compinit does not bind haldir to _haldir: %v: %q", err, out)
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"completion"}, exitUsage, "want one shell"},
		{[]string{"completion", "fish"}, exitUsage, `unknown shell "fish"`},
		{[]string{"completion", "bash", "zsh"}, exitUsage, "want one shell"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) || stdout.Len() > 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, &stdout, &stderr, tc.code, tc.stderr)
			}
		})
	}
}
