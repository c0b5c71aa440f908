package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// HTTPServer is a tiny web server running in a host, for backends in tests
// and demos.
type HTTPServer struct {
	host     *Host
	ln       net.Listener
	srv      *http.Server
	requests atomic.Int64
	done     chan struct{}
}

// ServeHTTP starts an HTTP server on addr (e.g. ":80") inside the host. A
// nil handler answers every request with the host name and a newline (and
// header X-Lab-Host), so a client can tell which real server it reached.
// The server is closed at lab teardown.
func (h *Host) ServeHTTP(addr string, handler http.Handler) (*HTTPServer, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: http listen %s: %w", h.name, addr, err)
	}
	s := &HTTPServer{host: h, ln: ln, done: make(chan struct{})}
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Lab-Host", h.name)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = fmt.Fprintln(w, h.name)
		})
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		defer close(s.done)
		// Accepted sockets belong to the listener's namespace, whatever
		// thread accepts them.
		_ = s.srv.Serve(ln)
	}()
	h.lab.track(s)
	return s, nil
}

// Addr returns the listening address.
func (s *HTTPServer) Addr() net.Addr { return s.ln.Addr() }

// Requests returns how many requests the server has answered.
func (s *HTTPServer) Requests() int64 { return s.requests.Load() }

// Close stops the server and closes its connections.
func (s *HTTPServer) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Shutdown stops the server gracefully.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// GetName makes one GET request with hc and returns the body of a 200
// answer, trimmed and at most 1 KiB: the answering host's name when the
// server is ServeHTTP's default handler. Any other status is an error.
func GetName(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	name, err := readName(resp)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return name, nil
}

// readName reads and closes an answer's body: at most 1 KiB, trimmed.
func readName(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// KeepAlive is one HTTP/1.1 connection kept open across requests, to see
// whether an established connection survives what a test does to the
// directors (a failover, a restart, a reload).
type KeepAlive struct {
	net.Conn
	br   *bufio.Reader
	host string // the Host header
}

// DialKeepAlive connects from h to addr ("host:port") and returns the
// connection and the name of the server that answered a first request.
func (h *Host) DialKeepAlive(ctx context.Context, addr string, timeout time.Duration) (*KeepAlive, string, error) {
	c, err := h.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	k := &KeepAlive{Conn: c, br: bufio.NewReader(c), host: host}
	who, err := k.Get(timeout)
	if err != nil {
		c.Close()
		return nil, "", fmt.Errorf("first request on %s -> %s: %w", c.LocalAddr(), c.RemoteAddr(), err)
	}
	return k, who, nil
}

// Get sends one request on the connection and returns the trimmed body of
// the answer (the answering host's name, from ServeHTTP's default
// handler); timeout bounds the whole exchange.
func (k *KeepAlive) Get(timeout time.Duration) (string, error) {
	if err := k.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(k, "GET / HTTP/1.1\r\nHost: "+k.host+"\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	return readName(resp)
}
