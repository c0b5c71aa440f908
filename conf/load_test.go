package conf

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.want from the current output (review the diff!)")

// TestInvalid loads every broken config in testdata/invalid and compares the
// complete error text with the .want file next to it.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d invalid configs in testdata/invalid", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".toml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(data, filepath.Base(f))
			if err == nil {
				t.Fatalf("loaded without error: %+v", c)
			}
			if c != nil {
				t.Errorf("returned a config together with an error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want conf.Errors: %v", err, err)
			}
			for _, e := range es {
				if e.Line == 0 {
					t.Errorf("error without a line number: %v", e)
				}
			}
			wantFile := strings.TrimSuffix(f, ".toml") + ".want"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(wantFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

// TestLoadUnreadable checks that a missing file is not reported as
// configuration errors: callers tell the two apart (exit 2 vs 1).
func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.toml"))
	if err == nil {
		t.Fatal("no error for a missing file")
	}
	var es Errors
	if errors.As(err, &es) {
		t.Fatalf("missing file reported as config errors: %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error does not wrap os.ErrNotExist: %v", err)
	}
}

func TestPackagingExampleIsValid(t *testing.T) {
	c, err := Load("../packaging/haldir.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.VRRP) == 0 || len(c.VirtualServers) == 0 || c.Sync == nil {
		t.Errorf("example should show VRRP, virtual servers and sync: %d %d %v", len(c.VRRP), len(c.VirtualServers), c.Sync)
	}
}

func TestValidConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no valid configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestErrorsSortedByLine(t *testing.T) {
	es := Errors{
		{File: "f.toml", Line: 9, Path: "b", Msg: "second"},
		{File: "f.toml", Path: "c", Msg: "no line"},
		{File: "f.toml", Line: 2, Path: "a", Msg: "first"},
	}
	want := "f.toml:2: a: first\nf.toml:9: b: second\nf.toml: c: no line"
	if got := es.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/invalid", "testdata/valid"} {
		files, _ := filepath.Glob(dir + "/*.toml")
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	if data, err := os.ReadFile("../packaging/haldir.toml"); err == nil {
		f.Add(data)
	}
	// Constructs the line scanner must follow.
	for _, s := range []string{
		"a.b.c = 1\n[x.y]\nz = 2\n[[x.y.w]]\n[[x.y.w]]\nq = [1, [2, {r = 3}]]\n",
		"s = '''\nx = 1\n'''\nt = \"\"\"\n[y]\n\\\"\"\"\"\"\n[[u]]\nv = { w.x = 1, y = [\n  2, # c\n] }\n",
		"\"quoted.key\" = 1\n'lit' = 2\n[\"q t\".'r']\nd = 1979-05-27 07:32:00Z\n",
		"[[a]]\n[a.b]\nc = 1\n[[a]]\n[[a.d]]\n[a.d.e]\nf = 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if (c == nil) == (err == nil) {
			t.Fatalf("want exactly one of config and error, got %v and %v", c, err)
		}
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty conf.Errors: %T %v", err, err)
			}
		} else {
			checkCompile(t, c)
		}
		lines := keyLines(data) // must terminate on any input
		var raw map[string]any
		if _, err := toml.Decode(string(data), &raw); err != nil {
			return
		}
		// On valid TOML every key and array element has its line.
		for _, p := range rawPaths(raw, "") {
			if lines[p] == 0 {
				t.Errorf("no line for %s (have %v)", p, lines)
			}
		}
	})
}

// checkCompile asserts what Compile promises for a valid configuration:
// it does not panic, it is deterministic (and so are the cluster's hashes),
// it leaves the configuration alone, and every enum it sets has a
// spelling.
func checkCompile(t *testing.T, c *Config) {
	t.Helper()
	before := Hash(c)
	a, b := Compile(c), Compile(c)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("Compile is not deterministic:\n%+v\n%+v", a, b)
	}
	if ha, hb := a.Hashes(), b.Hashes(); !reflect.DeepEqual(ha, hb) {
		t.Fatalf("Hashes differ for equal specs: %v %v", ha, hb)
	}
	if Hash(c) != before {
		t.Fatal("Compile modified the configuration")
	}
	if bad := enumsValid(reflect.ValueOf(a), "spec"); len(bad) > 0 {
		t.Fatalf("enums without a spelling: %v", bad)
	}
	for _, vs := range a.VirtualServers {
		for _, rs := range vs.RealServers {
			if ck := rs.Check; ck != nil && (ck.Interval <= 0 || ck.Timeout <= 0 || ck.Timeout > ck.Interval || ck.Rise < 1 || ck.Fall < 1) {
				t.Fatalf("%s %s: check timings %+v", vs.Name, rs.Addr, ck)
			}
		}
	}
}

// rawPaths lists the indexed paths of every key and array element.
func rawPaths(v any, path string) []string {
	var out []string
	if path != "" {
		out = append(out, path)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			out = append(out, rawPaths(e, joinPath(path, k))...)
		}
	case []map[string]any:
		for i, e := range x {
			out = append(out, rawPaths(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case []any:
		for i, e := range x {
			out = append(out, rawPaths(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
