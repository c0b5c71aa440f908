package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrUnreachable marks errors where the daemon could not be asked at all
// (no socket, nobody listening, no permission, broken connection), as
// opposed to the daemon answering with an error: errors.Is(err,
// ErrUnreachable) tells them apart.
var ErrUnreachable = errors.New("control socket unreachable")

// unreachableError is an ErrUnreachable whose text is only the helpful
// message, without ErrUnreachable's own.
type unreachableError struct {
	msg string
	err error
}

func (e *unreachableError) Error() string        { return e.msg }
func (e *unreachableError) Unwrap() error        { return e.err }
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

func unreachable(err error, format string, args ...any) error {
	return &unreachableError{msg: fmt.Sprintf(format, args...), err: err}
}

// ReloadError is a reload the daemon refused; Errors holds every reason
// (one per validation error).
type ReloadError struct {
	Status int
	Errors []string
}

func (e *ReloadError) Error() string {
	return "reload failed: " + strings.Join(e.Errors, "; ")
}

// Client talks to a running daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// Dial checks that a daemon answers on the control socket at path and
// returns a client for it.
func Dial(path string) (*Client, error) {
	c := &Client{path: path}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dial(ctx) },
		// One short-lived command: no pool worth keeping.
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	conn.Close()
	return c, nil
}

// dial connects and turns the usual failures into errors that say what to do.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err == nil {
		return conn, nil
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, unreachable(err, "haldir is not running? no control socket at %s", c.path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, unreachable(err, "haldir is not running? nothing answers on control socket %s", c.path)
	case errors.Is(err, os.ErrPermission):
		return nil, unreachable(err, "permission denied on control socket %s (it is mode 0600: run as the daemon's user, usually root)", c.path)
	}
	return nil, unreachable(err, "control socket %s: %v", c.path, err)
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	resp, err := c.do(ctx, http.MethodGet, pathStatus)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: daemon answered %s: %s", resp.Status, errorBody(resp.Body))
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("status: decoding the daemon's answer: %w", err)
	}
	return st, nil
}

// Reload asks the daemon to re-read its configuration file. A refused
// reload is a *ReloadError.
func (c *Client) Reload(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, pathReload)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unreachable(err, "reload: reading the daemon's answer on %s: %v", c.path, err)
	}
	var r reloadReply
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("reload: daemon answered %s with an unreadable body: %q", resp.Status, truncate(string(body)))
	}
	if resp.StatusCode == http.StatusOK && r.OK {
		return nil
	}
	if len(r.Errors) == 0 {
		r.Errors = []string{"daemon answered " + resp.Status + " without a reason"}
	}
	return &ReloadError{Status: resp.StatusCode, Errors: r.Errors}
}

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	return c.doBody(ctx, method, path, nil)
}

func (c *Client) doBody(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	// The host part is ignored: DialContext always goes to the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://haldir"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrUnreachable) {
			return nil, unwrapURL(err)
		}
		return nil, unreachable(err, "control socket %s: %v", c.path, unwrapURL(err))
	}
	return resp, nil
}

// unwrapURL drops net/http's `Get "http://haldir/v1/status":` prefix,
// which names a URL that does not exist for the user.
func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

func errorBody(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	var rr reloadReply
	if json.Unmarshal(b, &rr) == nil && len(rr.Errors) > 0 {
		return strings.Join(rr.Errors, "; ")
	}
	return truncate(string(b))
}

func truncate(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
