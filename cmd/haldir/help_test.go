package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelp: every way of asking for help exits 0 with the help on stdout
// and nothing on stderr, for haldir and for each command; a bad flag still
// exits 2 on stderr.
func TestHelp(t *testing.T) {
	type want struct {
		code   int
		stdout []string // substrings, in order
		stderr string   // substring; "" means stderr must be empty
	}
	cases := map[string]want{
		"--help":      {0, []string{"Usage:", "Commands:", "  run ", "  check ", "  status ", "  reload ", "  import-keepalived", "  completion ", "  version "}, ""},
		"-h":          {0, []string{"Usage:", "Commands:"}, ""},
		"help":        {0, []string{"Usage:", "Commands:"}, ""},
		"help --help": {0, []string{"Usage:", "Commands:"}, ""},
		"help nope":   {2, nil, `unknown command "nope"`},
	}
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		first := c.summary
		for _, h := range []string{"-h", "-help", "--help"} {
			cases[c.name+" "+h] = want{0, []string{"Usage: haldir " + c.name, first}, ""}
		}
		cases["help "+c.name] = want{0, []string{"Usage: haldir " + c.name, first}, ""}
		// Help wins over the other flags, as the flag package parses
		// in order up to it.
		if c.name != "version" && c.name != "import-keepalived" && c.name != "completion" {
			cases[c.name+" -c /nonexistent --help"] = want{0, []string{"Usage: haldir " + c.name}, ""}
		}
		cases[c.name+" -no-such-flag"] = want{2, nil, "see haldir " + c.name + " --help"}
	}
	for args, w := range cases {
		t.Run(args, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(strings.Fields(args), &stdout, &stderr); code != w.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, w.code, &stdout, &stderr)
			}
			containsInOrder(t, "stdout", stdout.String(), w.stdout)
			if w.stdout == nil && stdout.Len() > 0 {
				t.Errorf("unexpected stdout:\n%s", &stdout)
			}
			if w.stderr == "" && stderr.Len() > 0 {
				t.Errorf("unexpected stderr:\n%s", &stderr)
			}
			if !strings.Contains(stderr.String(), w.stderr) {
				t.Errorf("stderr lacks %q:\n%s", w.stderr, &stderr)
			}
		})
	}
}
