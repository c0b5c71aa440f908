package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The operator's run-time overrides: haldir drain/undrain and haldir
// maintenance. The daemon keeps them in global.state_dir, so they survive
// a reload and a restart.

// API paths of the operator endpoints (POST, JSON bodies; docs/api.md).
const (
	pathDrain       = "/v1/drain"
	pathUndrain     = "/v1/undrain"
	pathMaintenance = "/v1/maintenance"
)

// Drain is an operator's weight override of one real server of one
// virtual server (haldir drain): the director keeps the kernel at Weight
// instead of the configured or dynamic weight until haldir undrain.
type Drain struct {
	VirtualServer string         `json:"virtual_server"`
	Real          netip.AddrPort `json:"real"`
	RealName      string         `json:"real_name,omitempty"`
	Weight        int            `json:"weight"`
	Since         time.Time      `json:"since"`
}

// Maintenance is haldir maintenance on: every VRRP instance of this
// director runs at priority 1 (cause "maintenance") until it is turned
// off.
type Maintenance struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// DrainRequest is the body of /v1/drain and /v1/undrain. Real is
// ADDRESS:PORT or a real server's configured name; without VirtualServer
// the request applies to every virtual server that has the real server.
// Weight is for /v1/drain only.
type DrainRequest struct {
	Real          string `json:"real"`
	VirtualServer string `json:"virtual_server,omitempty"`
	Weight        int    `json:"weight"`
}

// DrainReply answers /v1/drain and /v1/undrain: the drains the request
// set or removed.
type DrainReply struct {
	OK     bool     `json:"ok,omitempty"`
	Errors []string `json:"errors,omitempty"`
	Drains []Drain  `json:"drains,omitempty"`
}

// MaintenanceRequest is the body of /v1/maintenance.
type MaintenanceRequest struct {
	On     bool   `json:"on"`
	Reason string `json:"reason,omitempty"`
}

// MaintenanceReply answers /v1/maintenance: the state now (nil: off),
// the VRRP instances that were master and handed over, and anything the
// operator should know (an address owner keeps priority 255).
type MaintenanceReply struct {
	OK          bool         `json:"ok,omitempty"`
	Errors      []string     `json:"errors,omitempty"`
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	HandedOver  []string     `json:"handed_over,omitempty"`
	Notes       []string     `json:"notes,omitempty"`
}

// Operator is what the operator endpoints need from the daemon. A daemon
// that does not implement it has no such endpoints (404). Each method
// returns a request error (bad address, unknown virtual server) as
// *RequestError and anything else (the state could not be saved) as a
// plain error.
type Operator interface {
	Drain(DrainRequest) (DrainReply, error)
	Undrain(DrainRequest) (DrainReply, error)
	SetMaintenance(MaintenanceRequest) (MaintenanceReply, error)
}

// RequestError is a request the daemon refused as wrong: the client's
// mistake, answered with 422.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// handleOperator registers the operator endpoints on mux.
func handleOperator(mux *http.ServeMux, op Operator) {
	mux.HandleFunc("POST "+pathDrain, jsonHandler(op.Drain, func(r *DrainReply, errs []string) { r.Errors = errs }, func(r *DrainReply) { r.OK = true }))
	mux.HandleFunc("POST "+pathUndrain, jsonHandler(op.Undrain, func(r *DrainReply, errs []string) { r.Errors = errs }, func(r *DrainReply) { r.OK = true }))
	mux.HandleFunc("POST "+pathMaintenance, jsonHandler(op.SetMaintenance, func(r *MaintenanceReply, errs []string) { r.Errors = errs }, func(r *MaintenanceReply) { r.OK = true }))
}

// jsonHandler decodes a Req (unknown fields refused), calls do and
// answers its reply: 200 with ok, 422 for a *RequestError or a body that
// does not decode, 500 for any other error.
func jsonHandler[Req, Reply any](do func(Req) (Reply, error), fail func(*Reply, []string), ok func(*Reply)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		var reply Reply
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(&reply, []string{"request body: " + err.Error()})
			writeJSON(w, http.StatusUnprocessableEntity, reply)
			return
		}
		reply, err := do(req)
		if err != nil {
			code := http.StatusInternalServerError
			if _, bad := errors.AsType[*RequestError](err); bad {
				code = http.StatusUnprocessableEntity
			}
			fail(&reply, []string{err.Error()})
			writeJSON(w, code, reply)
			return
		}
		ok(&reply)
		writeJSON(w, http.StatusOK, reply)
	}
}

// Drain asks the daemon to override a real server's weight.
func (c *Client) Drain(ctx context.Context, req DrainRequest) (DrainReply, error) {
	var reply DrainReply
	err := c.post(ctx, pathDrain, req, &reply, func() []string { return reply.Errors })
	return reply, err
}

// Undrain asks the daemon to drop a real server's weight override.
func (c *Client) Undrain(ctx context.Context, req DrainRequest) (DrainReply, error) {
	var reply DrainReply
	err := c.post(ctx, pathUndrain, req, &reply, func() []string { return reply.Errors })
	return reply, err
}

// SetMaintenance turns maintenance on or off.
func (c *Client) SetMaintenance(ctx context.Context, req MaintenanceRequest) (MaintenanceReply, error) {
	var reply MaintenanceReply
	err := c.post(ctx, pathMaintenance, req, &reply, func() []string { return reply.Errors })
	return reply, err
}

// post sends req as JSON to path and decodes the answer into reply; a
// refusal is an error carrying the daemon's reasons (errs reads them
// from reply).
func (c *Client) post(ctx context.Context, path string, req, reply any, errs func() []string) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	resp, err := c.doBody(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unreachable(err, "%s: reading the daemon's answer on %s: %v", path, c.path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("the daemon does not know %s (an older haldir? restart it onto this version)", path)
	}
	if err := json.Unmarshal(b, reply); err != nil {
		return fmt.Errorf("%s: daemon answered %s with an unreadable body: %q", path, resp.Status, truncate(string(b)))
	}
	if resp.StatusCode != http.StatusOK {
		e := errs()
		if len(e) == 0 {
			e = []string{"daemon answered " + resp.Status + " without a reason"}
		}
		return fmt.Errorf("%s", strings.Join(e, "; "))
	}
	return nil
}
