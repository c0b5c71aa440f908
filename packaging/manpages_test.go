package packaging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPackagedManPagesAndCompletion: each package holds the committed man
// pages (docs/man, generated from the sources) gzip-compressed, man formats
// them without a warning, and its completion scripts are what its own
// binary prints (haldir completion bash|zsh).
func TestPackagedManPagesAndCompletion(t *testing.T) {
	for _, pkg := range []struct {
		name    string
		extract func(*testing.T) string
		zsh     string
	}{
		{"rpm", func(t *testing.T) string { return extractRPM(t, builtRPM(t)) }, "usr/share/zsh/site-functions/_haldir"},
		{"deb", func(t *testing.T) string { return extractDeb(t, builtDeb(t)) }, "usr/share/zsh/vendor-completions/_haldir"},
	} {
		t.Run(pkg.name, func(t *testing.T) {
			root := pkg.extract(t)
			for page, committed := range map[string]string{
				"usr/share/man/man8/haldir.8.gz":      "../docs/man/haldir.8",
				"usr/share/man/man5/haldir.toml.5.gz": "../docs/man/haldir.toml.5",
			} {
				f, err := os.Open(filepath.Join(root, page))
				if err != nil {
					t.Fatal(err)
				}
				zr, err := gzip.NewReader(f)
				if err != nil {
					t.Fatalf("%s: %v", page, err)
				}
				got, err := io.ReadAll(zr)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", page, err)
				}
				want, err := os.ReadFile(committed)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s is not %s (make %s rebuilds it)", page, committed, pkg.name)
				}
				if _, err := exec.LookPath("man"); err == nil {
					cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", filepath.Join(root, page))
					cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=0")
					var stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = io.Discard, &stderr
					if err := cmd.Run(); err != nil || stderr.Len() > 0 {
						t.Errorf("man --warnings -l %s: %v\n%s", page, err, &stderr)
					}
				}
			}
			bin := filepath.Join(root, "usr/sbin/haldir")
			for shell, path := range map[string]string{"bash": "usr/share/bash-completion/completions/haldir", "zsh": pkg.zsh} {
				want, err := exec.Command(bin, "completion", shell).Output()
				if err != nil {
					t.Fatalf("haldir completion %s: %v", shell, err)
				}
				got, err := os.ReadFile(filepath.Join(root, path))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s is not what the packaged binary's `haldir completion %s` prints", path, shell)
				}
			}
		})
	}
}
