package control

import (
	"context"
	"net/http"
)

// pathHandoff is the planned handoff's endpoint (POST, JSON; docs/api.md).
const pathHandoff = "/v1/handoff"

// HandoffRequest is the body of /v1/handoff: hand mastership of
// Instances (none: every instance this director masters) over to the
// director called To (empty: the best live backup of each in the cluster
// view), make-before-break. Timeout (a Go duration, default 5s) bounds
// how long the target may take; after it the old master keeps mastership.
type HandoffRequest struct {
	Instances []string `json:"instances,omitempty"`
	To        string   `json:"to,omitempty"`
	Timeout   string   `json:"timeout,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// HandoffResult is the outcome for one VRRP instance (its sync group's
// other members are listed in Group and move with it).
type HandoffResult struct {
	Instance string   `json:"instance"`
	Group    []string `json:"group,omitempty"`
	To       string   `json:"to,omitempty"`
	// Method is "make-before-break" (the target confirmed and took over
	// first), or "priority 0" without [cluster]: the backup takes over
	// after its Skew_Time, a gap the make-before-break method does not
	// have.
	Method string `json:"method"`
	OK     bool   `json:"ok"`
	// Reason says why it failed, or what to know.
	Reason string `json:"reason,omitempty"`
	// Millis is how long it took, from the request to this director
	// releasing the addresses.
	Millis float64 `json:"millis"`
}

// HandoffReply answers /v1/handoff; OK only when every instance moved.
type HandoffReply struct {
	OK      bool            `json:"ok,omitempty"`
	Errors  []string        `json:"errors,omitempty"`
	Results []HandoffResult `json:"results,omitempty"`
}

// Handoffer is what the handoff endpoint needs from the daemon; a daemon
// without it has no such endpoint (404).
type Handoffer interface {
	Handoff(HandoffRequest) (HandoffReply, error)
}

func handleHandoff(mux *http.ServeMux, h Handoffer) {
	mux.HandleFunc("POST "+pathHandoff, jsonHandler(h.Handoff, func(r *HandoffReply, errs []string) { r.Errors = errs }, func(r *HandoffReply) {
		r.OK = len(r.Results) > 0
		for _, x := range r.Results {
			r.OK = r.OK && x.OK
		}
	}))
}

// Handoff asks the daemon for a planned handoff and waits for its
// outcome; a reply with OK false names what did not move.
func (c *Client) Handoff(ctx context.Context, req HandoffRequest) (HandoffReply, error) {
	var reply HandoffReply
	err := c.post(ctx, pathHandoff, req, &reply, func() []string { return reply.Errors })
	return reply, err
}
