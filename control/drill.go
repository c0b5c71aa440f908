package control

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// The drill endpoints (POST, JSON; docs/api.md). A drill report's shape
// is package drill's Report, carried here as JSON.
const (
	pathDrill  = "/v1/drill"
	pathDrills = "/v1/drills"
)

// DrillRequest is the body of /v1/drill: plan a drill of Kind (pre-flight
// only), or with Run run it; Force runs it past pre-flight's refusals.
type DrillRequest struct {
	Kind    string `json:"kind"`
	Run     bool   `json:"run,omitempty"`
	Force   bool   `json:"force,omitempty"`
	Timeout string `json:"timeout,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Instances are the VRRP instances to drill (default: every one this
	// director masters); Hold is how long a failover or fault drill keeps
	// this director failed, and Failback whether it then takes
	// mastership back (by preemption).
	Instances []string `json:"instances,omitempty"`
	Hold      string   `json:"hold,omitempty"`
	Failback  bool     `json:"failback,omitempty"`
}

// DrillReply answers /v1/drill: pre-flight's refusals (Go when none), and
// for a run its report (also kept in state_dir/drills).
type DrillReply struct {
	OK        bool            `json:"ok,omitempty"`
	Errors    []string        `json:"errors,omitempty"`
	Preflight []string        `json:"preflight"`
	Go        bool            `json:"go"`
	Report    json.RawMessage `json:"report,omitempty"`
}

// DrillsRequest is the body of /v1/drills: every kept report, or the one
// called ID.
type DrillsRequest struct {
	ID string `json:"id,omitempty"`
}

// DrillsReply answers /v1/drills, oldest first.
type DrillsReply struct {
	OK      bool              `json:"ok,omitempty"`
	Errors  []string          `json:"errors,omitempty"`
	Reports []json.RawMessage `json:"reports"`
}

// DrillSummary is the gist of a kept drill report (package drill's
// Report), for status and metrics.
type DrillSummary struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Verdict string `json:"verdict"`
	// At is when the drill started.
	At time.Time `json:"at"`
	// GapMillis is how long the drilled addresses had no holder, and
	// BoundMillis the most the verdict allowed (0: none).
	GapMillis   float64 `json:"gap_ms"`
	BoundMillis float64 `json:"bound_ms"`
}

// Driller is what the drill endpoints need from the daemon.
type Driller interface {
	Drill(DrillRequest) (DrillReply, error)
	DrillReports(DrillsRequest) (DrillsReply, error)
}

func handleDrill(mux *http.ServeMux, d Driller) {
	mux.HandleFunc("POST "+pathDrill, jsonHandler(d.Drill, func(r *DrillReply, errs []string) { r.Errors = errs }, func(r *DrillReply) { r.OK = true }))
	mux.HandleFunc("POST "+pathDrills, jsonHandler(d.DrillReports, func(r *DrillsReply, errs []string) { r.Errors = errs }, func(r *DrillsReply) { r.OK = true }))
}

// Drill plans or runs a drill.
func (c *Client) Drill(ctx context.Context, req DrillRequest) (DrillReply, error) {
	var reply DrillReply
	err := c.post(ctx, pathDrill, req, &reply, func() []string { return reply.Errors })
	return reply, err
}

// DrillReports reads the kept drill reports.
func (c *Client) DrillReports(ctx context.Context, req DrillsRequest) (DrillsReply, error) {
	var reply DrillsReply
	err := c.post(ctx, pathDrills, req, &reply, func() []string { return reply.Errors })
	return reply, err
}
