package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// extractDeb unpacks the .deb's files into a temporary directory and
// returns it.
func extractDeb(t *testing.T, deb string) string {
	t.Helper()
	dir := t.TempDir()
	dpkgDeb(t, "-x", deb, dir)
	return dir
}

// TestDebContents: the .deb built from the same nfpm.yaml as the RPM holds
// the same program, with Debian's places for what differs: /etc/default,
// the unit under /lib (bookworm), copyright and changelog.Debian.gz instead
// of a license file, lintian's overrides.
func TestDebContents(t *testing.T) {
	deb := builtDeb(t)
	// "-rw------- root/root 924 2026-12-03 16:17 ./etc/haldir/haldir.toml"
	entry := regexp.MustCompile(`(?m)^(\S+) \S+\s+\d+ \S+ \S+ \./(.*?)/?$`)
	modes := map[string]string{}
	for _, m := range entry.FindAllStringSubmatch(dpkgDeb(t, "-c", deb), -1) {
		modes["/"+m[2]] = m[1]
	}
	for path, mode := range map[string]string{
		"/usr/sbin/haldir":                          "-rwxr-xr-x",
		"/etc/haldir":                               "drwxr-xr-x",
		"/var/lib/haldir":                           "drwx------",
		"/etc/haldir/haldir.toml":                   "-rw-------",
		"/etc/default/haldir":                       "-rw-r--r--",
		"/lib/systemd/system/haldir.service":        "-rw-r--r--",
		"/usr/share/doc/haldir/README.md":           "-rw-r--r--",
		"/usr/share/doc/haldir/config.md":           "-rw-r--r--",
		"/usr/share/doc/haldir/haldir.toml.example": "-rw-r--r--",
		"/usr/share/doc/haldir/copyright":           "-rw-r--r--",
		"/usr/share/doc/haldir/changelog.Debian.gz": "-rw-r--r--",
		"/usr/share/lintian/overrides/haldir":       "-rw-r--r--",
	} {
		if got, ok := modes[path]; !ok {
			t.Errorf(".deb lacks %s", path)
		} else if got != mode {
			t.Errorf("%s: mode %s, want %s", path, got, mode)
		}
	}
	for _, path := range []string{"/etc/sysconfig/haldir", "/usr/lib/systemd/system/haldir.service", "/usr/share/licenses/haldir/LICENSE"} {
		if _, ok := modes[path]; ok {
			t.Errorf(".deb holds the RPM's %s", path)
		}
	}

	info := dpkgDeb(t, "-I", deb)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ Package: haldir$`),
		regexp.MustCompile(`(?m)^ Version: ` + regexp.QuoteMeta(packageVersion(t)) + `-1$`),
		regexp.MustCompile(`(?m)^ Architecture: amd64$`),
		regexp.MustCompile(`(?m)^ Section: net$`),
		regexp.MustCompile(`(?m)^ Description: high-availability director for Linux Virtual Server$`),
		// The maintainer scripts (the same files as the RPM's scriptlets).
		regexp.MustCompile(`(?m)^ .* postinst +#!/bin/sh$`),
		regexp.MustCompile(`(?m)^ .* prerm +#!/bin/sh$`),
		regexp.MustCompile(`(?m)^ .* postrm +#!/bin/sh$`),
	} {
		if !want.MatchString(info) {
			t.Errorf("dpkg-deb -I lacks %v:\n%s", want, info)
		}
	}
	// Local edits survive upgrades: both files are conffiles.
	dir := t.TempDir()
	dpkgDeb(t, "-e", deb, dir)
	raw, err := os.ReadFile(filepath.Join(dir, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(raw))
	slices.Sort(got)
	if want := []string{"/etc/default/haldir", "/etc/haldir/haldir.toml"}; !slices.Equal(got, want) {
		t.Errorf("conffiles %q, want %q", got, want)
	}
}
