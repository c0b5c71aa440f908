package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pkg is one package as `go list` reports it: its path relative to the
// module ("" for the root, "lab/vm", ...) and the module's packages its
// non-test code depends on, directly or not. Test files are left out on
// purpose: tests may use the lab and the test helpers.
type pkg struct {
	Path string
	Deps []string
}

// rule says that every package Subject matches depends on no package
// Forbidden matches. A rule that matches no package fails, so that a
// renamed package cannot turn its rule off unnoticed.
type rule struct {
	name      string
	subject   func(path string) bool
	forbidden func(dep string) bool
}

// under matches p and the packages below it.
func under(p string) func(string) bool {
	return func(q string) bool { return q == p || strings.HasPrefix(q, p+"/") }
}

// tooling is what ships no code in haldir's binary: the lab (namespace and
// VM test labs, the demo) and the benchmarks (bench/, or a bench directory
// of a package).
func tooling(p string) bool {
	return under("lab")(p) || slices.Contains(strings.Split(p, "/"), "bench")
}

func product(p string) bool { return !tooling(p) }

// testHelpers are imported by tests and benchmarks only.
var testHelpers = []string{"internal/poll", "internal/logbuf", "internal/benchenv", "internal/archtest", "control/controltest", "bgp/bgptest"}

var rules = []rule{
	{name: "no product package imports the lab", subject: product, forbidden: under("lab")},
	{name: "no product package imports a test or benchmark helper", subject: product,
		forbidden: func(d string) bool { return slices.Contains(testHelpers, d) }},
	{name: "ipvs imports nothing of haldir", subject: func(p string) bool { return p == "ipvs" },
		forbidden: func(string) bool { return true }},
	{name: "ipvs's subpackages (its fake) import only ipvs", subject: func(p string) bool { return strings.HasPrefix(p, "ipvs/") },
		forbidden: func(d string) bool { return !under("ipvs")(d) }},
	{name: "director does not import vrrp", subject: under("director"), forbidden: under("vrrp")},
	{name: "conf imports no component (only conf and internal helpers)", subject: under("conf"),
		forbidden: func(d string) bool { return !under("conf")(d) && !under("internal")(d) }},
}

// check returns each rule's violations ("rule: a imports b") and the names
// of the rules that matched no package.
func check(rules []rule, pkgs []pkg) (violations, unmatched []string) {
	for _, r := range rules {
		matched := false
		for _, p := range pkgs {
			if !r.subject(p.Path) {
				continue
			}
			matched = true
			for _, d := range p.Deps {
				if r.forbidden(d) {
					violations = append(violations, r.name+": "+show(p.Path)+" imports "+show(d))
				}
			}
		}
		if !matched {
			unmatched = append(unmatched, r.name)
		}
	}
	return violations, unmatched
}

func show(p string) string {
	if p == "" {
		return "the module root"
	}
	return p
}

// TestImportGraph checks the rules against the module as it is.
func TestImportGraph(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages: %+v", len(pkgs), pkgs)
	}
	violations, unmatched := check(rules, pkgs)
	for _, v := range violations {
		t.Error(v)
	}
	for _, r := range unmatched {
		t.Errorf("rule %q matches no package: renamed or moved? update the rule", r)
	}
	for _, r := range rules {
		var subjects []string
		for _, p := range pkgs {
			if r.subject(p.Path) {
				subjects = append(subjects, show(p.Path))
			}
		}
		if len(subjects) == 0 {
			t.Logf("%s: no such package yet, nothing to check", r.name)
		} else {
			t.Logf("%s: %d packages checked", r.name, len(subjects))
		}
	}
}

// TestRulesCatch shows that each rule fails on the import it forbids, and
// passes the graph it allows.
func TestRulesCatch(t *testing.T) {
	ok := []pkg{
		{Path: "conf", Deps: []string{"internal/inetsum"}},
		{Path: "conf/keepalived", Deps: []string{"conf"}},
		{Path: "director", Deps: []string{"conf", "ipvs"}},
		{Path: "vrrp", Deps: []string{"conf", "internal/inetsum"}},
		{Path: "ipvs"},
		{Path: "ipvs/ipvstest", Deps: []string{"ipvs"}},
		{Path: "lab", Deps: []string{"internal/inetsum"}},
		{Path: "lab/cmd/demo", Deps: []string{"lab", "lab/vm", "internal/poll"}},
		{Path: "bench/vrrp", Deps: []string{"lab", "vrrp", "internal/benchenv"}},
		{Path: "bench/director", Deps: []string{"lab/vm", "director"}},
		{Path: "director/bench", Deps: []string{"lab/vm", "director"}},
		{Path: "cmd/haldir", Deps: []string{"conf", "director", "vrrp", "ipvs"}},
	}
	if v, u := check(rules, ok); len(v) != 0 || len(u) != 0 {
		t.Fatalf("the allowed graph: violations %q, unmatched rules %q", v, u)
	}
	for _, tc := range []struct {
		name string
		pkg  pkg
		want string
	}{
		{"a product package imports the lab", pkg{Path: "healthcheck", Deps: []string{"conf", "lab"}},
			"no product package imports the lab: healthcheck imports lab"},
		{"through a subpackage", pkg{Path: "cmd/haldir", Deps: []string{"lab/vm"}},
			"no product package imports the lab: cmd/haldir imports lab/vm"},
		{"the module root", pkg{Path: "", Deps: []string{"lab"}},
			"no product package imports the lab: the module root imports lab"},
		{"product code imports a test helper", pkg{Path: "director", Deps: []string{"internal/poll"}},
			"no product package imports a test or benchmark helper: director imports internal/poll"},
		{"ipvs imports conf", pkg{Path: "ipvs", Deps: []string{"conf"}},
			"ipvs imports nothing of haldir: ipvs imports conf"},
		{"ipvs imports a shared helper", pkg{Path: "ipvs", Deps: []string{"internal/inetsum"}},
			"ipvs imports nothing of haldir: ipvs imports internal/inetsum"},
		{"the fake imports director", pkg{Path: "ipvs/ipvstest", Deps: []string{"ipvs", "director"}},
			"ipvs's subpackages (its fake) import only ipvs: ipvs/ipvstest imports director"},
		{"director imports vrrp", pkg{Path: "director", Deps: []string{"conf", "vrrp"}},
			"director does not import vrrp: director imports vrrp"},
		{"a director subpackage imports vrrp", pkg{Path: "director/plan", Deps: []string{"vrrp/codec"}},
			"director does not import vrrp: director/plan imports vrrp/codec"},
		{"conf imports a component", pkg{Path: "conf", Deps: []string{"healthcheck"}},
			"conf imports no component (only conf and internal helpers): conf imports healthcheck"},
		{"conf/keepalived imports a component", pkg{Path: "conf/keepalived", Deps: []string{"conf", "vrrp"}},
			"conf imports no component (only conf and internal helpers): conf/keepalived imports vrrp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := append(slices.Clone(ok), tc.pkg)
			v, _ := check(rules, pkgs)
			if !slices.Contains(v, tc.want) {
				t.Errorf("violations %q, want %q among them", v, tc.want)
			}
		})
	}
	// A rule whose subject is gone fails.
	_, u := check(rules, []pkg{{Path: "cmd/haldir"}})
	if want := []string{"ipvs imports nothing of haldir", "ipvs's subpackages (its fake) import only ipvs",
		"director does not import vrrp", "conf imports no component (only conf and internal helpers)"}; !slices.Equal(u, want) {
		t.Errorf("unmatched rules %q, want %q", u, want)
	}
}

// list runs go list over the module and returns its packages with their
// in-module dependencies, paths relative to the module.
func list(t *testing.T) []pkg {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		// go test sets GOROOT for its children even when PATH lacks
		// the toolchain's bin (sudo, a service manager).
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	mod, err := exec.Command(goTool, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", stderr(err))
	}
	module := strings.TrimSpace(string(mod))
	out, err := exec.Command(goTool, "list", "-json=ImportPath,Deps,Error", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list %s/...: %v", module, stderr(err))
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return "", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Deps       []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list's output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		path, ok := rel(p.ImportPath)
		if !ok {
			t.Fatalf("go list %s/... listed %s, outside the module", module, p.ImportPath)
		}
		q := pkg{Path: path}
		for _, d := range p.Deps {
			if r, ok := rel(d); ok {
				q.Deps = append(q.Deps, r)
			}
		}
		pkgs = append(pkgs, q)
	}
	return pkgs
}

func stderr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return errors.New(err.Error() + ": " + strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
