package main

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/haldir-lb/haldir/control"
)

// fakeHandoffer answers /v1/handoff with reply and records the requests.
type fakeHandoffer struct {
	fakeDaemon
	mu    sync.Mutex
	got   []control.HandoffRequest
	reply control.HandoffReply
}

func (f *fakeHandoffer) Handoff(req control.HandoffRequest) (control.HandoffReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	return f.reply, nil
}

func TestHandoffCommand(t *testing.T) {
	ok := control.HandoffResult{Instance: "VI_1", Group: []string{"VI_2"}, To: "d2", Method: "make-before-break", OK: true, Millis: 7.1}
	failed := control.HandoffResult{Instance: "VI_3", To: "d2", Method: "make-before-break", Reason: "d2 did not take over within 5s (its log says why); this director stays master"}
	for _, tc := range []struct {
		name    string
		args    []string
		results []control.HandoffResult
		want    *control.HandoffRequest
		code    int
		out     string
	}{
		{"all", []string{"--all"}, []control.HandoffResult{ok}, &control.HandoffRequest{Timeout: "5s"}, exitOK,
			"VI_1 (with VI_2): handed over to d2, make-before-break, in 7.1 ms"},
		{"named, to, timeout", []string{"--instance", "VI_1", "--instance", "VI_3", "--to", "d2", "--timeout", "2s", "--reason", "kernel"},
			[]control.HandoffResult{ok, failed}, &control.HandoffRequest{Instances: []string{"VI_1", "VI_3"}, To: "d2", Timeout: "2s", Reason: "kernel"}, exitInvalid,
			"VI_3: NOT handed over: d2 did not take over within 5s"},
		{"neither --all nor --instance", nil, nil, nil, exitUsage, ""},
		{"both", []string{"--all", "--instance", "VI_1"}, nil, nil, exitUsage, ""},
		{"a positional argument", []string{"--all", "VI_1"}, nil, nil, exitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHandoffer{reply: control.HandoffReply{Results: tc.results}}
			sock := serveControl(t, f)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"handoff", "-s", sock}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, &stdout, &stderr, tc.code, tc.out)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			switch {
			case tc.want == nil && len(f.got) > 0:
				t.Errorf("sent %+v", f.got)
			case tc.want != nil && (len(f.got) != 1 || !reflect.DeepEqual(f.got[0], *tc.want)):
				t.Errorf("sent %+v, want %+v", f.got, *tc.want)
			}
		})
	}
}
