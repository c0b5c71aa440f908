package main

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/control"
)

// fakeOperator records the operator requests it gets and answers like the
// daemon; refuse makes it refuse them.
type fakeOperator struct {
	fakeDaemon
	mu     sync.Mutex
	got    []any
	refuse string
}

func (f *fakeOperator) record(req any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	if f.refuse != "" {
		return &control.RequestError{Msg: f.refuse}
	}
	return nil
}

func (f *fakeOperator) drains(req control.DrainRequest) []control.Drain {
	return []control.Drain{{VirtualServer: "web", Real: netip.MustParseAddrPort("10.0.0.21:80"), RealName: "a", Weight: req.Weight}}
}

func (f *fakeOperator) Drain(req control.DrainRequest) (control.DrainReply, error) {
	if err := f.record(req); err != nil {
		return control.DrainReply{}, err
	}
	return control.DrainReply{Drains: f.drains(req)}, nil
}

func (f *fakeOperator) Undrain(req control.DrainRequest) (control.DrainReply, error) {
	if err := f.record(req); err != nil {
		return control.DrainReply{}, err
	}
	return control.DrainReply{Drains: f.drains(req)}, nil
}

func (f *fakeOperator) SetMaintenance(req control.MaintenanceRequest) (control.MaintenanceReply, error) {
	if err := f.record(req); err != nil {
		return control.MaintenanceReply{}, err
	}
	if !req.On {
		return control.MaintenanceReply{}, nil
	}
	return control.MaintenanceReply{Maintenance: &control.Maintenance{Reason: req.Reason, Since: time.Now()}, HandedOver: []string{"VI_1"}}, nil
}

// TestOperatorCommands: haldir drain, undrain and maintenance parse their
// arguments (flags before and after the positional one), send the
// request they stand for and print the answer; wrong arguments are usage
// errors that send nothing, and a refusal exits 1 with the daemon's reason.
func TestOperatorCommands(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		refuse string
		want   any // the request the daemon gets; nil: none
		code   int
		out    string // in stdout
		stderr string // in stderr
	}{
		{"drain", []string{"drain", "10.0.0.21:80"}, "", control.DrainRequest{Real: "10.0.0.21:80"}, exitOK,
			"10.0.0.21:80 (a) in web: drained by operator (weight 0; established connections carry on)", ""},
		{"drain flags after", []string{"drain", "a", "--virtual-server", "web", "--weight", "3"}, "",
			control.DrainRequest{Real: "a", VirtualServer: "web", Weight: 3}, exitOK, "10.0.0.21:80 (a) in web: weight 3 set by operator", ""},
		{"drain flags before", []string{"drain", "-weight=2", "a"}, "", control.DrainRequest{Real: "a", Weight: 2}, exitOK, "weight 2 set by operator", ""},
		{"drain refused", []string{"drain", "10.0.0.99:80"}, "no real server 10.0.0.99:80 in any virtual server", control.DrainRequest{Real: "10.0.0.99:80"},
			exitInvalid, "", "haldir drain: no real server 10.0.0.99:80 in any virtual server"},
		{"drain without REAL", []string{"drain", "--weight", "0"}, "", nil, exitUsage, "", "haldir drain: REAL (ADDRESS:PORT or a real server's name) missing"},
		{"drain two REALs", []string{"drain", "a", "b"}, "", nil, exitUsage, "", `haldir drain: unexpected argument "b"`},
		{"drain bad weight", []string{"drain", "a", "--weight", "x"}, "", nil, exitUsage, "", "invalid value"},
		{"drain after --", []string{"drain", "--", "-odd-name"}, "", control.DrainRequest{Real: "-odd-name"}, exitOK, "drained by operator", ""},
		{"undrain", []string{"undrain", "a", "--virtual-server", "web"}, "", control.DrainRequest{Real: "a", VirtualServer: "web"}, exitOK,
			"10.0.0.21:80 (a) in web: operator override removed; back to its configured weight", ""},
		{"undrain has no weight", []string{"undrain", "a", "--weight", "0"}, "", nil, exitUsage, "", "flag provided but not defined: -weight"},
		{"maintenance on", []string{"maintenance", "on", "--reason", "kernel upgrade"}, "", control.MaintenanceRequest{On: true, Reason: "kernel upgrade"},
			exitOK, "handed over: VI_1", ""},
		{"maintenance reason first", []string{"maintenance", "--reason=x", "on"}, "", control.MaintenanceRequest{On: true, Reason: "x"}, exitOK, ": x; every VRRP instance at priority 1", ""},
		{"maintenance off", []string{"maintenance", "off"}, "", control.MaintenanceRequest{}, exitOK, "maintenance off; preemption takes mastership back", ""},
		{"maintenance off with reason", []string{"maintenance", "off", "--reason", "x"}, "", nil, exitUsage, "", "--reason is for on"},
		{"maintenance neither", []string{"maintenance", "maybe"}, "", nil, exitUsage, "", `"maybe": want on or off`},
		{"maintenance nothing", []string{"maintenance"}, "", nil, exitUsage, "", "on or off missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeOperator{refuse: tc.refuse}
			path := serveControl(t, d)
			var stdout, stderr bytes.Buffer
			code := run(append(tc.args, "-s", path), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.out) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.out)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			switch {
			case tc.want == nil && len(d.got) > 0:
				t.Errorf("the daemon got %+v, want nothing", d.got)
			case tc.want != nil && (len(d.got) != 1 || d.got[0] != tc.want):
				t.Errorf("the daemon got %+v, want %+v", d.got, tc.want)
			}
		})
	}
}
