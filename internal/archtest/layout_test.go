package archtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// layoutRow matches a row of the README's layout table: | `path` | job |.
var layoutRow = regexp.MustCompile("^\\| `([a-z0-9_/.-]+)` \\|")

// layoutPaths returns the paths the README's "## Layout" table names.
func layoutPaths(readme string) []string {
	var paths []string
	in := false
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Layout"
			continue
		}
		if m := layoutRow.FindStringSubmatch(line); in && m != nil {
			paths = append(paths, m[1])
		}
	}
	return paths
}

// uncovered returns the packages no row of the table covers (a row covers
// its path and what is below it) and the rows that cover no package.
func uncovered(rows []string, pkgs []pkg) (pkgsLeft, rowsLeft []string) {
	used := map[string]bool{}
	for _, p := range pkgs {
		if p.Path == "" {
			continue // the module root holds no package of its own today
		}
		covered := false
		for _, r := range rows {
			if under(r)(p.Path) {
				covered, used[r] = true, true
			}
		}
		if !covered {
			pkgsLeft = append(pkgsLeft, p.Path)
		}
	}
	for _, r := range rows {
		if !used[r] {
			rowsLeft = append(rowsLeft, r)
		}
	}
	return pkgsLeft, rowsLeft
}

// TestLayoutTable keeps the README's layout table true: every package of
// the module falls under a row, and every row names packages that exist.
func TestLayoutTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := layoutPaths(string(b))
	if len(rows) < 10 {
		t.Fatalf("README's ## Layout table has %d rows: %q", len(rows), rows)
	}
	pkgsLeft, rowsLeft := uncovered(rows, list(t))
	for _, p := range pkgsLeft {
		t.Errorf("package %s has no row in README's layout table", p)
	}
	for _, r := range rowsLeft {
		t.Errorf("README's layout table names %s, which holds no package", r)
	}
}

// TestLayoutCheckCatches shows both ways the table can drift being caught.
func TestLayoutCheckCatches(t *testing.T) {
	readme := "# x\n## Layout\n| path | job |\n| --- | --- |\n| `vrrp` | VRRP |\n| `gone` | old |\n## Next\n| `ipvs` | not in the table |\n"
	rows := layoutPaths(readme)
	if want := []string{"vrrp", "gone"}; strings.Join(rows, ",") != strings.Join(want, ",") {
		t.Fatalf("rows %q, want %q", rows, want)
	}
	p, r := uncovered(rows, []pkg{{Path: "vrrp"}, {Path: "vrrp/sub"}, {Path: "ipvs"}})
	if strings.Join(p, ",") != "ipvs" || strings.Join(r, ",") != "gone" {
		t.Errorf("uncovered packages %q (want ipvs), unused rows %q (want gone)", p, r)
	}
}
