package ipvs

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportsNothingOfHaldir: the kernel client stands alone, so any part
// of haldir (and nothing of haldir's) can use it. Test files may use the
// lab.
func TestImportsNothingOfHaldir(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			if strings.HasPrefix(strings.Trim(imp.Path.Value, `"`), "github.com/haldir-lb/haldir") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked %d files: run from the package directory", checked)
	}
}
