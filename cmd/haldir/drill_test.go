package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/drill"
)

// fakeDriller answers the drill endpoints with fixed replies.
type fakeDriller struct {
	fakeDaemon
	preflight []string
	report    drill.Report
	got       []control.DrillRequest
}

func (f *fakeDriller) Drill(req control.DrillRequest) (control.DrillReply, error) {
	f.got = append(f.got, req)
	reply := control.DrillReply{Preflight: f.preflight, Go: len(f.preflight) == 0}
	if req.Run {
		reply.Report, _ = json.Marshal(f.report)
	}
	return reply, nil
}

func (f *fakeDriller) DrillReports(req control.DrillsRequest) (control.DrillsReply, error) {
	if req.ID != "" && req.ID != f.report.ID {
		return control.DrillsReply{}, &control.RequestError{Msg: "no drill " + req.ID}
	}
	b, _ := json.Marshal(f.report)
	return control.DrillsReply{Reports: []json.RawMessage{b}}, nil
}

func TestDrillCommand(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	pass := drill.Report{ID: drill.NewID(t0, drill.KindHandoff), Kind: drill.KindHandoff, Director: "d1", Started: t0, Finished: t0.Add(9 * time.Millisecond),
		Verdict: drill.VerdictPass, Why: "moved", Handoff: []control.HandoffResult{{Instance: "vi", To: "d2", Method: "make-before-break", OK: true, Millis: 6.6}}}
	refused := pass
	refused.Verdict, refused.Preflight = drill.VerdictRefused, []string{"cluster: director d2 is gone"}
	for _, tc := range []struct {
		name      string
		args      []string
		preflight []string
		report    drill.Report
		code      int
		out       string
	}{
		{"plan go", []string{"plan"}, nil, pass, exitOK, "pre-flight: go for a handoff drill"},
		{"plan refused", []string{"plan"}, []string{"cluster: director d2 is gone"}, pass, exitInvalid, "  - cluster: director d2 is gone"},
		{"run passes", []string{"run", "--reason", "quarterly"}, nil, pass, exitOK, "handoff vi -> d2 (make-before-break): moved in 6.6 ms"},
		{"run refused", []string{"run"}, refused.Preflight, refused, exitInvalid, "pre-flight refused:"},
		{"run failover", []string{"run", "--kind", "failover", "--instance", "vi", "--instance", "vi6", "--hold", "30s", "--failback"}, nil, pass, exitOK, "PASS"},
		{"list", []string{"list"}, nil, pass, exitOK, pass.ID + "  handoff  pass"},
		{"show", []string{"show", pass.ID}, nil, pass, exitOK, "drill " + pass.ID + ": handoff on d1, PASS"},
		{"show html", []string{"show", "--html", pass.ID}, nil, pass, exitOK, `<div class="verdict verdict-pass">PASS</div>`},
		{"show unknown", []string{"show", "nosuch"}, nil, pass, exitInvalid, ""},
		{"html not for list", []string{"list", "--html"}, nil, pass, exitUsage, ""},
		{"html and json", []string{"show", "--html", "--json", pass.ID}, nil, pass, exitUsage, ""},
		{"no verb", nil, nil, pass, exitUsage, ""},
		{"show without id", []string{"show"}, nil, pass, exitUsage, ""},
		{"unknown verb", []string{"start"}, nil, pass, exitUsage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDriller{preflight: tc.preflight, report: tc.report}
			sock := serveControl(t, f)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"drill", "-s", sock}, tc.args...), &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, &stdout, &stderr, tc.code, tc.out)
			}
			if tc.name == "show html" && (!strings.HasPrefix(stdout.String(), "<!DOCTYPE html>") || !strings.Contains(stdout.String(), "<td>make-before-break</td>")) {
				t.Errorf("show --html wrote %q, not the report's page", &stdout)
			}
			if tc.name == "run passes" && (len(f.got) != 1 || !f.got[0].Run || f.got[0].Reason != "quarterly" || f.got[0].Kind != "handoff") {
				t.Errorf("sent %+v", f.got)
			}
			if tc.name == "run failover" && (len(f.got) != 1 || f.got[0].Kind != "failover" || f.got[0].Hold != "30s" || !f.got[0].Failback ||
				strings.Join(f.got[0].Instances, ",") != "vi,vi6") {
				t.Errorf("sent %+v", f.got)
			}
		})
	}
}
