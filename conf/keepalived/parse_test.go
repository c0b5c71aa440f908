package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree renders nodes compactly: name(args){children}.
func tree(ns []*Node) string {
	var parts []string
	for _, n := range ns {
		s := n.Name
		if len(n.Args) > 0 {
			s += "(" + strings.Join(n.Args, ",") + ")"
		}
		if n.Block {
			s += "{" + tree(n.Children) + "}"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"directives and blocks", "a 1 2\nb {\n  c\n  d 3\n}\n", "a(1,2) b{c d(3)}"},
		{"comments", "# all\na 1 # tail\n! bang\nb ! x\n", "a(1) b"},
		{"quotes keep blanks", `script "/bin/check --fast x" 2`, "script(/bin/check --fast x,2)"},
		{"brace on the next line", "virtual_server 10.0.0.1 80\n{\n  delay_loop 6\n}", "virtual_server(10.0.0.1,80){delay_loop(6)}"},
		{"block on one line", "group { a b }\nc", "group{a(b)} c"},
		{"nested", "x {\n y {\n  z 1\n }\n}", "x{y{z(1)}}"},
		{"empty block", "a {\n}", "a{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := Parse(tc.src, "k.conf")
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(ns); got != tc.want {
				t.Fatalf("parsed %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unclosed block", "a {\n b\n", `k.conf:1: block "a" is never closed`},
		{"stray close", "a\n}\n", `k.conf:2: "}" closes no block`},
		{"stray open", "{\n}", `k.conf:1: "{" opens a block for no directive`},
		{"unclosed quote", "a \"b\n", "k.conf:1: a quoted argument is never closed"},
		{"include in memory", "include x.conf", "k.conf:1: include x.conf: not allowed here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.src, "k.conf"); err == nil || err.Error() != tc.want {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseFileIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("keepalived.conf", "global_defs {\n router_id A\n}\ninclude conf.d/*.conf\n")
	write("conf.d/1.conf", "vrrp_instance V1 {\n priority 1\n}\n")
	write("conf.d/2.conf", "vrrp_instance V2 {\n include ../prio.inc\n}\n")
	write("prio.inc", "priority 2\n")
	ns, err := ParseFile(filepath.Join(dir, "keepalived.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tree(ns), "global_defs{router_id(A)} vrrp_instance(V1){priority(1)} vrrp_instance(V2){priority(2)}"; got != want {
		t.Fatalf("parsed %q, want %q", got, want)
	}
	// Positions name the file a directive came from.
	if p := ns[2].Children[0]; !strings.HasSuffix(p.File, "prio.inc") || p.Line != 1 {
		t.Fatalf("included priority at %s:%d", p.File, p.Line)
	}
	write("loop.conf", "include loop.conf\n")
	if _, err := ParseFile(filepath.Join(dir, "loop.conf")); err == nil || !strings.Contains(err.Error(), "nested deeper than 8") {
		t.Fatalf("self-include: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/pair.conf"); err == nil {
		f.Add(string(b))
	}
	f.Add("a {\n b \"c d\" # x\n}\n")
	f.Add("}{")
	f.Fuzz(func(t *testing.T, src string) {
		ns, err := Parse(src, "f.conf")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf:") {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		// Whatever parses converts without panicking, into TOML whose
		// every warning has a position.
		for _, w := range Convert(ns, "f.conf").Warnings {
			if w.File != "f.conf" || w.Line < 1 {
				t.Fatalf("warning without a position: %+v", w)
			}
		}
	})
}
