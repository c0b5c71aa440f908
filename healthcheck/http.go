package healthcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// MaxBody caps how much of a response body a check reads. A health page is
// small; a server streaming an endless body must not cost unbounded memory
// or time.
const MaxBody = 1 << 20

// maxHeader caps the response head for the same reason.
const maxHeader = 64 << 10

type httpChecker struct {
	dial    tcpDialer
	timeout time.Duration
	tls     *tls.Config // nil for plain http
	urls    []*httpURL  // each on its own connection, all within one deadline
	clk     checkClock  // of the running check
}

// httpURL is one request of a check and what its response must be.
type httpURL struct {
	path       string
	reqBytes   []byte // the whole GET request; the only form of it kept
	status     conf.StatusCodes
	statusText string
	body       *regexp.Regexp
	digest     []byte
	newHash    func() hash.Hash
	hashName   string
	// The reason of the last check that passed, and its status.
	okCode   int
	okReason string
}

func newHTTP(c *conf.CheckSpec) (Checker, error) {
	d, err := newTCPDialer(c.Connect, c.Source)
	if err != nil {
		return nil, err
	}
	hc := &httpChecker{dial: d, timeout: c.Timeout}
	scheme := c.Kind.String()
	for i, cu := range c.HTTP.URLs {
		u, err := newHTTPURL(scheme, c.Connect, c.HTTP.Host, cu)
		if err != nil {
			if len(c.HTTP.URLs) > 1 {
				return nil, fmt.Errorf("urls[%d]: %w", i, err)
			}
			return nil, err
		}
		hc.urls = append(hc.urls, u)
	}
	if len(hc.urls) == 0 {
		return nil, fmt.Errorf("no url (a spec from conf.Compile has one)")
	}
	if c.Kind == conf.CheckHTTPS {
		cfg := &tls.Config{InsecureSkipVerify: !c.HTTP.TLSVerify, ServerName: c.HTTP.ServerName} //nolint:gosec // tls_verify=false is an explicit operator choice
		if c.HTTP.CAFile != "" {
			pem, err := os.ReadFile(c.HTTP.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca_file %s: no PEM certificate found", c.HTTP.CAFile)
			}
			cfg.RootCAs = pool
		}
		hc.tls = cfg
	}
	return hc, nil
}

func newHTTPURL(scheme string, da netip.AddrPort, host string, c conf.URLSpec) (*httpURL, error) {
	hc := &httpURL{status: c.ExpectStatus, statusText: c.ExpectStatus.String(), path: c.Path}
	u, err := url.Parse(scheme + "://" + conf.HostLiteral(da.Addr()) + c.Path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %v", c.Path, err)
	}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"User-Agent": {"haldir-healthcheck"}},
		Host:       host,
		Close:      true, // no connection reuse between checks
	}
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, fmt.Errorf("building request: %v", err)
	}
	// Only the bytes are kept: ReadResponse takes a nil request for a
	// GET, and the request's URL, header map and struct would be a
	// kilobyte per probe held for nothing.
	hc.reqBytes = bytes.Clone(buf.Bytes())

	if c.ExpectBody != "" {
		re, err := regexp.Compile(c.ExpectBody)
		if err != nil {
			return nil, fmt.Errorf("expect_body %q: %v", c.ExpectBody, err)
		}
		hc.body = re
	}
	switch len(c.Digest) {
	case 0:
	case md5.Size:
		hc.newHash, hc.hashName = md5.New, "md5" // keepalived's digest
	case sha256.Size:
		hc.newHash, hc.hashName = sha256.New, "sha256"
	default:
		return nil, fmt.Errorf("digest of %d bytes: want 16 (md5) or 32 (sha256)", len(c.Digest))
	}
	hc.digest = c.Digest
	return hc, nil
}

// Run is one request on a fresh connection: connection not reused between
// checks, as the issue asks, so no http.Transport (whose per-connection
// reader and writer goroutines and pool would be pure cost here). The
// request bytes are built once per probe; net/http parses the response
// (on the check loop, httpURL.quick reads the plain ones).
func (c *httpChecker) Run(ctx context.Context, deadline time.Time) Result {
	clk := &c.clk
	clk.start(deadline, c.timeout, c.dial.pause)
	if len(c.urls) == 1 {
		return c.get(ctx, clk, c.urls[0])
	}
	// keepalived's several url blocks: each on its own connection, in
	// order, within the one deadline; the first failure decides.
	var last Result
	for _, u := range c.urls {
		last = c.get(ctx, clk, u)
		if !last.Up {
			last.Reason = u.path + ": " + last.Reason
			return last
		}
	}
	last.Reason = fmt.Sprintf("%d urls: %s", len(c.urls), last.Reason)
	return last
}

func (c *httpChecker) get(ctx context.Context, clk *checkClock, u *httpURL) Result {
	// One deadline, set on the socket, covers connect, TLS, request,
	// headers and body, so a server that trickles bytes fails at the
	// deadline, not at deadline per read. It moves only by the time the
	// checker itself was late (turns.go).
	sc, err := c.dial.dial(ctx, clk, true)
	if err != nil {
		return failure("connect", err, clk.deadline, c.timeout)
	}
	defer sc.Close()
	var conn io.ReadWriter = sc
	if c.tls != nil {
		tc := tls.Client(sc, c.tls)
		// Handshake, not HandshakeContext: the socket's deadline and the
		// dialer's cancellation already bound it, without the goroutine
		// HandshakeContext starts to watch a context.
		if err := tc.Handshake(); err != nil {
			return failure("tls handshake", err, clk.deadline, c.timeout)
		}
		conn = tc
	}
	if _, err := conn.Write(u.reqBytes); err != nil {
		return failure("writing request", err, clk.deadline, c.timeout)
	}
	r, phase, err := u.evaluate(conn)
	if err != nil {
		return failure(phase, err, clk.deadline, c.timeout)
	}
	return r
}

// respReader is what reading one response needs besides net/http: the
// buffered reader and the caps on head and body.
type respReader struct {
	head io.LimitedReader // the connection, capped
	br   *bufio.Reader    // reads head
	body io.LimitedReader // the response body, capped
}

// readers recycles the response readers: at thousands of checks per second
// a fresh 4 KiB buffer per check is most of the checker's garbage, and the
// two limited readers would be two more allocations.
var readers = sync.Pool{New: func() any { return &respReader{br: bufio.NewReaderSize(nil, 4096)} }}

// evaluate reads one response from r and judges it: pure protocol logic,
// fuzzed without sockets. An I/O error comes back with the phase it
// happened in so that the caller can name a timeout.
func (c *httpURL) evaluate(r io.Reader) (Result, string, error) {
	rr := readers.Get().(*respReader)
	lr, br := &rr.head, rr.br
	*lr = io.LimitedReader{R: r, N: maxHeader}
	br.Reset(lr)
	defer func() {
		br.Reset(nil)
		rr.head, rr.body = io.LimitedReader{}, io.LimitedReader{}
		readers.Put(rr)
	}()
	resp, err := http.ReadResponse(br, nil) // nil: the response to a GET
	if err != nil {
		if lr.N == 0 {
			return down(fmt.Sprintf("reading headers: response head exceeds %d bytes", maxHeader)), "", nil
		}
		return Result{}, "reading headers", err
	}
	// The head is parsed; from here the body gets its own cap, with room
	// for chunked framing.
	lr.N = MaxBody + maxHeader

	if !c.status.Contains(resp.StatusCode) {
		return c.statusDown(resp.StatusCode), "", nil
	}

	var (
		h    hash.Hash
		body bytes.Buffer
		w    io.Writer = io.Discard
	)
	switch {
	case c.digest != nil && c.body != nil:
		h = c.newHash()
		w = io.MultiWriter(h, &body)
	case c.digest != nil:
		h = c.newHash()
		w = h
	case c.body != nil:
		w = &body
	}
	rr.body = io.LimitedReader{R: resp.Body, N: MaxBody + 1}
	n, err := io.Copy(w, &rr.body)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, "reading body", err
	}
	return c.verdict(resp.StatusCode, body.Bytes(), n > MaxBody, h), "", nil
}

// verdict judges a response whose status is one the check expects, by
// its body: body is what the check keeps of it (for expect_body), over
// whether it passed MaxBody, h the digest's hash of it. evaluate and
// quick share it, so that both give the same reasons.
func (c *httpURL) verdict(code int, body []byte, over bool, h hash.Hash) Result {
	if over && c.digest != nil {
		return down(fmt.Sprintf("body exceeds %d bytes; digest not verifiable", MaxBody))
	}
	if c.body != nil {
		if len(body) > MaxBody {
			body = body[:MaxBody]
		}
		if !c.body.Match(body) {
			return down(fmt.Sprintf("body does not match %q", c.body.String()))
		}
	}
	if h != nil {
		sum := h.Sum(nil)
		if !bytes.Equal(sum, c.digest) {
			return down(fmt.Sprintf("body %s %x does not match digest %x", c.hashName, sum, c.digest))
		}
	}
	return up(c.statusReason(code))
}

// statusDown is the verdict on a status the check does not expect.
func (c *httpURL) statusDown(code int) Result {
	return down(fmt.Sprintf("status %d not in %s", code, c.statusText))
}

// quickState is what quick made of a response.
type quickState uint8

const (
	quickNo   quickState = iota // not a response quick reads: evaluate judges it
	quickWait                   // a response quick reads, whose rest is still to come
	quickDone                   // judged
)

// quickHead and quickBody bound the responses quick reads: a head within
// the first read of evaluate's buffered reader, a body a health page has.
const (
	quickHead = 4096
	quickBody = 64 << 10
)

// quick judges the response in b (all of it if eof) as evaluate would,
// without net/http: at ten thousand checks a second, ReadResponse's
// header map and strings were half the checker's garbage, and the
// collections they caused a third of its CPU above a bare epoll loop. It
// reads only the plain shape nearly every health page has: HTTP/1.0 or
// 1.1, a status of 200 or more (not 204 or 304), header lines of a token,
// a colon and printable bytes, each ending in CRLF, at most one
// Content-Length and no Transfer-Encoding or Trailer; anything else, or a
// body cut short at the end, is quickNo, for evaluate.
// FuzzQuickMatchesEvaluate holds it to evaluate's verdicts.
func (c *httpURL) quick(b []byte, eof bool) (Result, quickState) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 || end+4 > quickHead {
		return Result{}, quickNo
	}
	head := b[:end+2] // every line with its CRLF
	line, head, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] != '0' && line[7] != '1' || line[8] != ' ' {
		return Result{}, quickNo
	}
	code, ok := digits(line[9:12])
	if !ok {
		return Result{}, quickNo
	}
	if len(line) > 12 && line[12] != ' ' || !printable(line[12:]) || code < 200 || code == 204 || code == 304 {
		return Result{}, quickNo
	}
	length := -1
	for len(head) > 0 {
		line, head, _ = bytes.Cut(head, []byte("\r\n"))
		colon := bytes.IndexByte(line, ':')
		if colon < 1 || !token(line[:colon]) || !printable(line[colon+1:]) {
			return Result{}, quickNo
		}
		switch key := line[:colon]; {
		case bytes.EqualFold(key, []byte("Transfer-Encoding")), bytes.EqualFold(key, []byte("Trailer")):
			return Result{}, quickNo
		case bytes.EqualFold(key, []byte("Content-Length")):
			n, ok := digits(bytes.Trim(line[colon+1:], " \t"))
			if length >= 0 || !ok || n > quickBody {
				return Result{}, quickNo
			}
			length = n
		}
	}
	if !c.status.Contains(code) {
		return c.statusDown(code), quickDone
	}
	body := b[end+4:]
	switch {
	case length >= 0 && len(body) >= length:
		body = body[:length]
	case length >= 0 && eof:
		return Result{}, quickNo // cut short: evaluate names the error
	case !eof:
		return Result{}, quickWait
	case len(body) > quickBody:
		return Result{}, quickNo
	}
	var h hash.Hash
	if c.digest != nil {
		h = c.newHash()
		h.Write(body)
	}
	return c.verdict(code, body, false, h), quickDone
}

// token reports whether b is an HTTP token (RFC 9110 5.6.2), as a header
// name must be.
func token(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// printable reports whether b holds only visible ASCII, spaces and tabs.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\t' {
			return false
		}
	}
	return true
}

// digits is the decimal number b, when it is one of at most 9 digits.
func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}

// statusReason is "status N", kept from the last check: a healthy server
// answers the same status every time, and formatting it anew was one of a
// check's allocations. A probe's checks never overlap (Checker), so the
// cache needs no lock.
func (c *httpURL) statusReason(code int) string {
	if code != c.okCode || c.okReason == "" {
		c.okCode, c.okReason = code, "status "+strconv.Itoa(code)
	}
	return c.okReason
}
