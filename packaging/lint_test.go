package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// lintFindings are the lines of a linter's report that name a problem:
// rpmlint's "pkg.arch: E: tag ..." / "W: ...", lintian's "E: pkg: tag ...",
// "W:", "I:" (info), "P:" (pedantic) and "X:" (experimental).
var lintFindings = regexp.MustCompile(`(?m)^(?:\S+: )?[EWIPX]: .*$`)

// runRPMLint runs packaging/rpmlint.sh (rpmlint with rpmlint.toml, and a
// cpio that keeps the payload out of the host's /) with config in place of
// rpmlint.toml when it is not "".
func runRPMLint(t *testing.T, rpm, config string) (string, error) {
	t.Helper()
	script, err := filepath.Abs("rpmlint.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, rpm)
	if config != "" {
		// rpmlint.sh reads the rpmlint.toml beside it.
		dir := t.TempDir()
		copyFile(t, script, filepath.Join(dir, "rpmlint.sh"), 0o755)
		if err := os.WriteFile(filepath.Join(dir, "rpmlint.toml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(filepath.Join(dir, "rpmlint.sh"), rpm)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRPMLint: rpmlint, with packaging/rpmlint.toml, reports nothing on
// the built RPM; and every filter there is still needed: without the
// filters each one matches a finding, so a justification cannot outlive
// the problem it excuses.
func TestRPMLint(t *testing.T) {
	rpm, err := filepath.Abs(builtRPM(t))
	if err != nil {
		t.Fatal(err)
	}
	needTool(t, "rpmlint")
	out, err := runRPMLint(t, rpm, "")
	if found := lintFindings.FindAllString(out, -1); err != nil || len(found) > 0 {
		t.Errorf("rpmlint: %v, %d findings not accounted for in packaging/rpmlint.toml:\n%s", err, len(found), out)
	}
	if !regexp.MustCompile(`\b0 errors, 0 warnings\b`).MatchString(out) {
		t.Errorf("rpmlint's summary is not 0 errors, 0 warnings:\n%s", out)
	}

	config, err := os.ReadFile("rpmlint.toml")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?ms)^Filters = \[\n(.*?)^\]\n`)
	m := block.FindSubmatch(config)
	if m == nil {
		t.Fatal("rpmlint.toml has no `Filters = [` ... `]` block")
	}
	var filters []string
	for _, l := range strings.Split(string(m[1]), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			filters = append(filters, strings.Trim(strings.TrimSuffix(l, ","), `'"`))
		}
	}
	unfiltered, _ := runRPMLint(t, rpm, string(block.ReplaceAll(config, nil)))
	findings := lintFindings.FindAllString(unfiltered, -1)
	for _, f := range filters {
		t.Run(f, func(t *testing.T) {
			re, err := regexp.Compile(f)
			if err != nil {
				t.Fatalf("filter %q: %v", f, err)
			}
			for _, l := range findings {
				if re.MatchString(l) {
					return
				}
			}
			t.Errorf("filter %q in rpmlint.toml matches no finding: remove it. Unfiltered report:\n%s", f, unfiltered)
		})
	}
}

// TestDebLint: lintian, at every level (pedantic, info, experimental),
// reports nothing on the built .deb beyond what the package's own
// overrides (packaging/lintian-overrides) justify; lintian itself reports
// an override that no longer matches (unused-override), so none outlives
// its problem.
func TestDebLint(t *testing.T) {
	deb := builtDeb(t)
	needTool(t, "lintian")
	cmd := exec.Command("lintian", "--pedantic", "--display-info", "--display-experimental", deb)
	out, err := cmd.CombinedOutput()
	if found := lintFindings.FindAllString(string(out), -1); err != nil || len(found) > 0 {
		t.Errorf("lintian: %v, %d findings not overridden in packaging/lintian-overrides:\n%s", err, len(found), out)
	}
	overrides, err := os.ReadFile("lintian-overrides")
	if err != nil {
		t.Fatal(err)
	}
	// Every override carries its reason: a comment block right above it.
	lines := strings.Split(string(overrides), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "haldir: ") && (i == 0 || !strings.HasPrefix(lines[i-1], "#") && !strings.HasPrefix(lines[i-1], "haldir: ")) {
			t.Errorf("lintian-overrides:%d: %q has no comment saying why", i+1, l)
		}
	}
}
