package control

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeOperator is a daemon with the operator endpoints: it records the
// requests and answers what it is told.
type fakeOperator struct {
	fakeDaemon
	drains []DrainRequest
	maint  []MaintenanceRequest
	err    error
}

func (f *fakeOperator) Drain(r DrainRequest) (DrainReply, error) {
	f.drains = append(f.drains, r)
	if f.err != nil {
		return DrainReply{}, f.err
	}
	return DrainReply{Drains: []Drain{{VirtualServer: "web", Real: netip.MustParseAddrPort(r.Real), Weight: r.Weight}}}, nil
}

func (f *fakeOperator) Undrain(r DrainRequest) (DrainReply, error) { return f.Drain(r) }

func (f *fakeOperator) SetMaintenance(r MaintenanceRequest) (MaintenanceReply, error) {
	f.maint = append(f.maint, r)
	if f.err != nil {
		return MaintenanceReply{}, f.err
	}
	return MaintenanceReply{Maintenance: &Maintenance{Reason: r.Reason, Since: time.Unix(1, 0).UTC()}, HandedOver: []string{"VI_1"}}, nil
}

// TestOperatorEndpoints: the client's requests reach the daemon as sent
// and its replies come back; a refused request is an error carrying the
// daemon's reason, told apart from the daemon failing by the status code.
func TestOperatorEndpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	d := &fakeOperator{}
	startServer(t, path, d)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	reply, err := c.Drain(ctx, DrainRequest{Real: "10.0.0.21:80", VirtualServer: "web", Weight: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.drains) != 1 || d.drains[0] != (DrainRequest{Real: "10.0.0.21:80", VirtualServer: "web", Weight: 3}) {
		t.Errorf("daemon got %+v", d.drains)
	}
	if !reply.OK || len(reply.Drains) != 1 || reply.Drains[0].Weight != 3 || reply.Drains[0].Real.String() != "10.0.0.21:80" {
		t.Errorf("reply %+v", reply)
	}
	if _, err := c.Undrain(ctx, DrainRequest{Real: "10.0.0.21:80"}); err != nil || len(d.drains) != 2 {
		t.Errorf("undrain: %v, %+v", err, d.drains)
	}
	mr, err := c.SetMaintenance(ctx, MaintenanceRequest{On: true, Reason: "upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.maint) != 1 || d.maint[0] != (MaintenanceRequest{On: true, Reason: "upgrade"}) {
		t.Errorf("daemon got %+v", d.maint)
	}
	if mr.Maintenance == nil || mr.Maintenance.Reason != "upgrade" || strings.Join(mr.HandedOver, ",") != "VI_1" {
		t.Errorf("reply %+v", mr)
	}

	for _, tc := range []struct {
		name string
		err  error
		code int
	}{
		{"refused", &RequestError{Msg: `no real server 10.0.0.99:80 in any virtual server`}, http.StatusUnprocessableEntity},
		{"failed", errors.New("nothing changed: state file /x/operator.json: read-only file system"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.err = tc.err
			_, err := c.Drain(ctx, DrainRequest{Real: "10.0.0.99:80"})
			if err == nil || err.Error() != tc.err.Error() {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Errorf("%v counts as unreachable", err)
			}
			resp, err := c.doBody(ctx, http.MethodPost, pathMaintenance, strings.NewReader(`{"on": true}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}

	// A body that does not decode, or has unknown fields, is refused
	// before the daemon sees it.
	d.err = nil
	for _, body := range []string{`{"on": "yes"}`, `{"on": true, "weight": 0}`, `not json`} {
		resp, err := c.doBody(ctx, http.MethodPost, pathMaintenance, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", body, resp.StatusCode)
		}
	}
	if len(d.maint) != 3 {
		t.Errorf("the daemon saw %d maintenance requests, want 3 (the bad bodies none)", len(d.maint))
	}
}

// TestOperatorEndpointsAbsent: a daemon without them (an older one) is
// named as such, not reported as a refusal of the request.
func TestOperatorEndpointsAbsent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.sock")
	startServer(t, path, &fakeDaemon{})
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SetMaintenance(context.Background(), MaintenanceRequest{On: true})
	if err == nil || !strings.Contains(err.Error(), "does not know /v1/maintenance") {
		t.Fatalf("error %v", err)
	}
}
