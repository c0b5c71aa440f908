package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// manPages renders both pages from their sources as they are now.
func manPages(t *testing.T) map[string]string {
	t.Helper()
	md, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"haldir.8":      manPage8(),
		"haldir.toml.5": manPage5(string(md)),
	}
}

// TestManPages: the committed docs/man pages are what the sources (the
// command table, docs/config.md) generate, so they cannot drift from the
// help or the configuration reference. HALDIR_UPDATE_MAN=1 (make man)
// rewrites them instead.
func TestManPages(t *testing.T) {
	for name, want := range manPages(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("../../docs/man", name)
			if os.Getenv("HALDIR_UPDATE_MAN") == "1" {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run make man)", err)
			}
			if string(got) != want {
				gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
				i := 0
				for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
					i++
				}
				t.Errorf("docs/man/%s differs from what its sources generate, first at line %d:\n got: %q\nwant: %q\nrun make man", name, i+1, line(gl, i), line(wl, i))
			}
		})
	}
}

// needTool skips a test when a program it runs is missing, or fails it
// when HALDIR_REQUIRE_RPM is set (make test and CI, where
// lab/install-deps.sh installed it).
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HALDIR_REQUIRE_RPM") != "" {
			t.Fatalf("%s not installed (HALDIR_REQUIRE_RPM is set: run lab/install-deps.sh)", name)
		}
		t.Skipf("%s not installed (lab/install-deps.sh installs it)", name)
	}
	return path
}

func line(ls []string, i int) string {
	if i < len(ls) {
		return ls[i]
	}
	return "(end of file)"
}

// TestManPagesFormat: groff, with all warnings on, formats both pages
// without one (lintian runs man --warnings on the packaged pages too).
func TestManPagesFormat(t *testing.T) {
	needTool(t, "groff")
	for name, page := range manPages(t) {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("groff", "-man", "-ww", "-z", "-rCHECKSTYLE=3")
			cmd.Stdin = strings.NewReader(page)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("groff: %v\n%s", err, &stderr)
			}
		})
	}
}

// TestManPageCoverage: haldir(8) names every command and every one of its
// flags; haldir.toml(5) names every key of the configuration schema (walked
// from conf.Config's toml tags) as a tagged paragraph, which only a row of
// a key table in docs/config.md becomes.
func TestManPageCoverage(t *testing.T) {
	pages := manPages(t)
	for _, c := range commands {
		if !strings.Contains(pages["haldir.8"], `.SS "haldir `+strings.ReplaceAll(c.name, "-", `\-`)) {
			t.Errorf("haldir.8 has no section for %s", c.name)
		}
		for _, f := range c.flags {
			if !strings.Contains(pages["haldir.8"], ".TP\n.B"+map[bool]string{true: "I", false: ""}[f.arg != ""]+" "+strings.ReplaceAll(f.name, "-", `\-`)) {
				t.Errorf("haldir.8 lacks %s %s", c.name, f.name)
			}
		}
	}
	for _, key := range schemaKeys(reflect.TypeOf(conf.Config{}), "") {
		t.Run(key, func(t *testing.T) {
			leaf := key[strings.LastIndex(key, ".")+1:]
			if !strings.Contains(pages["haldir.toml.5"], ".TP\n\\fB"+strings.ReplaceAll(leaf, "-", `\-`)+"\\fR\n") {
				t.Errorf("haldir.toml.5 (docs/config.md) has no entry for %s", key)
			}
		})
	}
}

// schemaKeys lists the configuration's keys as dotted paths, tables and
// arrays of tables included.
func schemaKeys(typ reflect.Type, prefix string) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		// A top-level table ([global]) is a heading, not a key.
		if prefix != "" || ft.Kind() != reflect.Struct {
			keys = append(keys, key)
		}
		if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
			keys = append(keys, schemaKeys(ft, key+".")...)
		}
	}
	return keys
}

// TestCommandFlags: every command documents exactly the flags its FlagSet
// defines, a value for exactly the non-boolean ones, and the FlagSet's
// default where it has one; so the help, the man page and the completion,
// all rendered from the table, offer only flags that exist.
func TestCommandFlags(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			var fs *flag.FlagSet
			if c.flagSet != nil {
				fs = c.flagSet()
			} else {
				fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
			}
			var real []string
			fs.VisitAll(func(f *flag.Flag) { real = append(real, f.Name) })
			var documented []string
			for _, d := range c.flags {
				name := strings.TrimLeft(d.name, "-")
				documented = append(documented, name)
				f := fs.Lookup(name)
				if f == nil {
					continue
				}
				isBool := false
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
					isBool = b.IsBoolFlag()
				}
				if isBool != (d.arg == "") {
					t.Errorf("%s: boolean %v, but documented with value %q", d.name, isBool, d.arg)
				}
				if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(d.help, "(default "+f.DefValue+")") {
					t.Errorf("%s: help %q does not give the default %q", d.name, d.help, f.DefValue)
				}
			}
			slices.Sort(real)
			slices.Sort(documented)
			if !slices.Equal(real, documented) {
				t.Errorf("flags defined %q, documented %q", real, documented)
			}
		})
	}
}
