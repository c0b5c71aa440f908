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
		if n.Name == parseWarning {
			continue
		}
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

// keepalived's preprocessor (lib/parser.c): conditional lines, parameters,
// multiline definitions, ~SEQ, escapes. Every case would have been a
// parse error or a wrong tree before.
func TestParsePreprocessor(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"FOO": "from-env"}[k]
		return v, ok
	}
	for _, tc := range []struct {
		name, src, want string
		o               Options
		warn            []string // substrings of the parser's warnings, in order
	}{
		{"@id lines", "@main router_id A\n@backup router_id B\n", "router_id(A)", Options{ConfigID: "main"}, nil},
		{"@^id lines", "peers {\n @^main 10.0.0.1\n @^backup 10.0.0.2\n}\n", "peers{10.0.0.2}", Options{ConfigID: "main"}, nil},
		{"@id alone is nothing", "@main\na\n", "a", Options{ConfigID: "main"}, nil},
		{"config id defaults to the host, said once", "@no-such-host-name a\n@no-such-host-name b\nc\n", "c", Options{},
			[]string{"conditional lines (@NAME, @^NAME) are read for config id"}},
		{"definition and use", "$PRIO=240\nvrrp_instance V {\n priority $PRIO\n}\n", "vrrp_instance(V){priority(240)}", Options{}, nil},
		{"conditional definitions", "@main $PRIO=240\n@backup $PRIO=200\npriority $PRIO\n", "priority(200)", Options{ConfigID: "backup"}, nil},
		{"braces, recursion, late binding", "$BASE=10.2.${SUB}\n$SUB=0\na ${BASE}.100/32\n$SUB=10\na ${BASE}.100/32\n",
			"a(10.2.0.100/32) a(10.2.10.100/32)", Options{}, nil},
		{"$NAME needs a blank, comma or paren after it", "$A=1\nx $A,$A) $Ab\n", "x(1,1),$Ab)", Options{}, nil},
		{"undefined parameters stay", "script \"kill -0 $PID ${X}\"\n", "script(kill -0 $PID ${X})", Options{}, nil},
		{"a definition makes a block", "$VIP=192.0.2.1\nvirtual_ipaddress {\n $VIP\n}\n", "virtual_ipaddress{192.0.2.1}", Options{}, nil},
		{"multiline definition with conditions", "$INST= \\\nvrrp_instance VI_${NUM} { \\\n @high priority 130 \\\n @low priority 120 \\\n}\n$NUM=0\n$INST\n$NUM=1\n$INST\n",
			"vrrp_instance(VI_0){priority(130)} vrrp_instance(VI_1){priority(130)}", Options{ConfigID: "high"}, nil},
		{"--define", "priority $PRIO\n", "priority(150)", Options{Defines: map[string]string{"PRIO": "150"}}, nil},
		{"the file's definition replaces --define", "$PRIO=99\npriority $PRIO\n", "priority(99)", Options{Defines: map[string]string{"PRIO": "150"}}, nil},
		{"${_ENV} from this host, said", "x ${_ENV FOO}\n", "x(from-env)", Options{LookupEnv: env}, []string{"${_ENV FOO} is read from this host's environment"}},
		{"${_ENV} from --define", "x ${_ENV FOO}\n", "x(defined)", Options{LookupEnv: env, Defines: map[string]string{"FOO": "defined"}}, nil},
		{"${_ENV} unset is empty, said", "x a${_ENV BAR}b\n", "x(ab)", Options{LookupEnv: env}, []string{"BAR is not set here"}},
		{"${_INSTANCE}", "router_id ${_INSTANCE}\n", "router_id(d1)", Options{ConfigID: "d1"}, nil},
		{"${_HASH} in quotes", "a \"x${_HASH}y\"\n", "a(x#y)", Options{}, nil},
		{"escaped comment characters", "a \\#b \\!c # comment\n", "a(#b,!c)", Options{}, nil},
		{"~SEQ", "~SEQ(N, 1, 3) ip 10.0.${N}.1\n", "ip(10.0.1.1) ip(10.0.2.1) ip(10.0.3.1)", Options{}, nil},
		{"~SEQx counts down in hex", "~SEQx(N, 0xa0, -0x10, 0x90) ip fe80::${N}\n", "ip(fe80::a0) ip(fe80::90)", Options{}, nil},
		{"~LST is said, not read", "~LST(X, a, b) x $X\ny\n", "y", Options{}, []string{"~LST: the importer does not expand list blocks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := ParseOptions(tc.src, "k.conf", tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(ns); got != tc.want {
				t.Fatalf("parsed %q, want %q", got, tc.want)
			}
			var warns []string
			for _, n := range ns {
				if n.Name == parseWarning {
					warns = append(warns, n.Args[0])
				}
			}
			if len(warns) != len(tc.warn) {
				t.Fatalf("warnings %q, want %d", warns, len(tc.warn))
			}
			for i, w := range tc.warn {
				if !strings.Contains(warns[i], w) {
					t.Errorf("warning %q, want it to say %q", warns[i], w)
				}
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
		{"self-referring definition", "$A=x$A\nv $A\n", "k.conf:2: parameter substitution does not end (does $A refer to itself?)"},
		{"bad ~SEQ", "~SEQ(N, a) x\n", `k.conf:1: invalid ~SEQ "~SEQ(N, a) x": "a" is not a number`},
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
	// keepalived's glob(GLOB_BRACE): brace alternatives and wildcards,
	// parameters in the pattern, the variants, a block opened in one
	// file and closed in another, and a pattern matching nothing.
	write("d1/a.conf", "a 1\n")
	write("d1/b.conf", "b 2\n")
	write("d1/c7.conf", "c 7\n")
	write("open.inc", "vrrp_instance X {\n")
	write("top.conf", "$D=d1\ninclude ${D}/{b,a}.conf\nincluder d1/c[0-9].conf\ninclude open.inc\n priority 3\n}\nincludea none/*.conf\n")
	ns, err = ParseFile(filepath.Join(dir, "top.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tree(ns), "b(2) a(1) c(7) vrrp_instance(X){priority(3)}"; got != want {
		t.Fatalf("parsed %q, want %q", got, want)
	}
	if w := ns[0]; w.Name != parseWarning || w.Line != 7 || !strings.Contains(w.Args[0], "includea none/*.conf: no file matches here") {
		t.Fatalf("first node %+v, want the warning about includea", w)
	}
	write("loop.conf", "include loop.conf\n")
	if _, err := ParseFile(filepath.Join(dir, "loop.conf")); err == nil || !strings.Contains(err.Error(), "nested deeper than 8") {
		t.Fatalf("self-include: %v", err)
	}
}

func TestExpandBraces(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a.conf", "a.conf"},
		{"{a,b}.conf", "a.conf b.conf"},
		{"x{a,b{c,d}}y", "xay xbcy xbdy"},
		{"{foo/{,cat,dog},bar}", "foo/ foo/cat foo/dog bar"},
		{"{a,b}{1,2}", "a1 a2 b1 b2"},
		{"un{matched", "un{matched"},
		{`\{a,b}`, `\{a,b}`},
	} {
		if got := strings.Join(expandBraces(tc.in), " "); got != tc.want {
			t.Errorf("expandBraces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/pair.conf"); err == nil {
		f.Add(string(b))
	}
	f.Add("a {\n b \"c d\" # x\n}\n")
	f.Add("}{")
	f.Add("@main $P=1\n@^main $P=2\n$M= \\\nx ${P} { \\\n y $P \\\n}\n$M\n")
	f.Add("~SEQx(N, 1, 3) a ${N}\n$A=${_ENV HOME}${_RANDOM 1 2}${_HASH}\nb \"$A\" \\# c\n")
	f.Add("$A=$B\n$B=$A\nc $A\n")
	f.Add("vrrp_instance V {\n priority 300\n state MASTER\n nopreempt\n track_interface eth1\n authentication {\n  auth_type PASS\n  auth_pass 0123456789\n }\n}\n")
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
