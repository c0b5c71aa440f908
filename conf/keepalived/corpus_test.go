package keepalived

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/corpus/EXPECTED from the current results (reasons are kept)")

// corpusRow is one file's outcome: the line of EXPECTED that pins it.
type corpusRow struct {
	file        string
	result      string // valid | invalid | parse-error
	warnings    int
	unexplained int    // semantic differences no warning names
	reason      string // why a file is not (yet) valid
}

func (r corpusRow) String() string {
	s := fmt.Sprintf("%-48s %-11s %3d %3d", r.file, r.result, r.warnings, r.unexplained)
	if r.reason != "" {
		s += "  # " + r.reason
	}
	return s
}

func readExpected(t *testing.T, path string) map[string]corpusRow {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-corpus to create it)", err)
	}
	out := map[string]corpusRow{}
	for i, line := range strings.Split(string(b), "\n") {
		body, reason, _ := strings.Cut(line, "#")
		f := strings.Fields(body)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			t.Fatalf("%s:%d: want FILE RESULT WARNINGS UNEXPLAINED [# reason], got %q", path, i+1, line)
		}
		w, err1 := strconv.Atoi(f[2])
		u, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s:%d: counts are not numbers: %q", path, i+1, line)
		}
		out[f[0]] = corpusRow{file: f[0], result: f[1], warnings: w, unexplained: u, reason: strings.TrimSpace(reason)}
	}
	return out
}

// TestCorpus converts every real keepalived configuration kept in
// testdata/corpus (each names its source in its first line) and pins, per
// file, whether the result is a valid haldir configuration, how many
// warnings it has, and how many semantic differences between keepalived
// and haldir no warning names (the goal is 0 everywhere). A change to any
// of those fails until EXPECTED is updated (-update-corpus), so that
// regressions and improvements are both seen in review. -v prints the
// table and each unexplained difference.
func TestCorpus(t *testing.T) {
	const dir = "testdata/corpus"
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	expectPath := filepath.Join(dir, "EXPECTED")
	var want map[string]corpusRow
	if !*updateCorpus {
		want = readExpected(t, expectPath)
	} else if _, err := os.Stat(expectPath); err == nil {
		want = readExpected(t, expectPath)
	}
	var rows []corpusRow
	total := corpusRow{}
	namedTotal := 0
	for _, path := range files {
		name := filepath.Base(path)
		row := corpusRow{file: name}
		var diffs []string
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s: panic: %v", name, p)
					row.result = "panic"
				}
			}()
			nodes, err := ParseFile(path)
			if err != nil {
				row.result = "parse-error"
				t.Logf("%s: %v", name, err)
				return
			}
			res := Convert(nodes, path)
			row.warnings = len(res.Warnings)
			cfg, err := conf.Parse([]byte(res.TOML), name+".toml")
			if err != nil {
				row.result = "invalid"
				t.Logf("%s: %v", name, err)
				return
			}
			row.result = "valid"
			var named int
			diffs, named = compareSemanticsCount(nodes, cfg, res.Warnings)
			namedTotal += named
			row.unexplained = len(diffs)
		}()
		for _, d := range diffs {
			t.Logf("%s: unexplained difference: %s", name, d)
		}
		if w, ok := want[name]; ok {
			row.reason = w.reason
			if !*updateCorpus && (w.result != row.result || w.warnings != row.warnings || w.unexplained != row.unexplained) {
				t.Errorf("%s: %s %d warnings %d unexplained, EXPECTED says %s %d %d", name, row.result, row.warnings, row.unexplained, w.result, w.warnings, w.unexplained)
			}
		} else if !*updateCorpus {
			t.Errorf("%s: not in EXPECTED (run with -update-corpus)", name)
		}
		rows = append(rows, row)
		if row.result == "valid" {
			total.result = strconv.Itoa(atoi(total.result) + 1)
		}
		if row.warnings == 0 && row.result == "valid" {
			total.reason = strconv.Itoa(atoi(total.reason) + 1)
		}
		total.warnings += row.warnings
		total.unexplained += row.unexplained
	}
	for name := range want {
		if !slices.ContainsFunc(rows, func(r corpusRow) bool { return r.file == name }) {
			t.Errorf("EXPECTED lists %s, which is not in the corpus", name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# TestCorpus expectations: FILE RESULT WARNINGS UNEXPLAINED-DIFFERENCES [# why not valid]\n")
	fmt.Fprintf(&b, "# Regenerate with: go test ./conf/keepalived -run TestCorpus -update-corpus\n")
	for _, r := range rows {
		fmt.Fprintln(&b, r.String())
	}
	summary := fmt.Sprintf("%d files: %s valid, %s valid with no warning, %d warnings; semantic differences: %d named by a warning, %d unexplained",
		len(rows), or0(total.result), or0(total.reason), total.warnings, namedTotal, total.unexplained)
	t.Logf("\n%s# %s", b.String(), summary)
	if *updateCorpus {
		if err := os.WriteFile(expectPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func or0(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// FuzzConvertLVS starts from the corpus: whatever parses converts, and
// whatever converts into a loadable file goes through the semantic
// comparison, without a panic (group ranges, inheritance, DR ports).
func FuzzConvertLVS(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.conf")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.0.0/30 81\n fwmark 1\n}\nvirtual_server group G {\n lb_kind DR\n real_server 10.0.1.1 90 {\n  TCP_CHECK {\n  }\n }\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		ns, err := Parse(src, "f.conf")
		if err != nil {
			return
		}
		res := Convert(ns, "f.conf")
		if cfg, err := conf.Parse([]byte(res.TOML), "f.toml"); err == nil {
			compareSemantics(ns, cfg, res.Warnings)
		}
	})
}
