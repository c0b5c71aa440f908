package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseRun(t *testing.T) {
	opts, err := parseRun([]string{"-file", "/bin/true", "-file", "/etc/hostname:/data/h", "-env", "A=1", "-timeout", "30s", "--", "/bin/busybox", "sh", "-c", "exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opts.Args, []string{"/bin/busybox", "sh", "-c", "exit 3"}) || opts.Timeout != 30*time.Second || !slices.Equal(opts.Env, []string{"A=1"}) {
		t.Errorf("parsed %+v", opts)
	}
	if len(opts.Files) != 2 || opts.Files[0].Guest != "/bin/true" || !opts.Files[0].WithLibs || opts.Files[1].Guest != "/data/h" || opts.Files[1].WithLibs {
		t.Errorf("files %+v: want /bin/true with libraries, /etc/hostname as /data/h without", opts.Files)
	}
	bad := [][]string{
		{},                                     // no command
		{"-env", "novalue", "--", "/bin/true"}, // not K=V
		{"-file", "/bin/true:rel", "--", "/bin/true"},
		{"-file", "/no/such/file", "--", "/bin/true"},
		{"-nosuchflag", "/bin/true"},
	}
	for _, args := range bad {
		if _, err := parseRun(args); err == nil {
			t.Errorf("parseRun(%q) accepted bad input", args)
		}
	}
}
