package healthcheck

import (
	"bytes"
	"crypto/md5"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// quickURLs are the checks the quick tests judge with: status only, a body
// pattern, an md5 digest (of "fine") and a sha256 one that never matches.
func quickURLs(t testing.TB) []*httpURL {
	t.Helper()
	ap := netip.MustParseAddrPort("127.0.0.1:80")
	md5Fine := md5.Sum([]byte("fine"))
	var urls []*httpURL
	for _, u := range []conf.URLSpec{
		{Path: "/"},
		{Path: "/", ExpectBody: `version \d`},
		{Path: "/", Digest: md5Fine[:]},
		{Path: "/", Digest: bytes.Repeat([]byte{0xab}, 32)},
	} {
		ck, err := NewChecker(tgt(ap, conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{u}}}))
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, ck.(*httpChecker).urls[0])
	}
	return urls
}

// TestQuickReadsPlainResponses: the shapes health pages answer with are
// judged by quick, with evaluate's verdicts; anything unusual is left to
// evaluate, and a plain response not yet whole waits.
func TestQuickReadsPlainResponses(t *testing.T) {
	urls := quickURLs(t)
	plain, pattern, digest := urls[0], urls[1], urls[2]
	for _, tc := range []struct {
		name string
		u    *httpURL
		resp string
		eof  bool
		want quickState
		up   bool
	}{
		{"content-length", plain, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nServer: x\r\n\r\nfine", false, quickDone, true},
		{"content-length, more after", plain, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nfine", false, quickDone, true},
		{"until close", plain, "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nfine", true, quickDone, true},
		{"until close, still open", plain, "HTTP/1.0 200 OK\r\n\r\nfi", false, quickWait, false},
		{"body to come", plain, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nfine", false, quickWait, false},
		{"status not expected", plain, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 999\r\n\r\n", false, quickDone, false},
		{"no reason phrase", plain, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, quickDone, true},
		{"pattern", pattern, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nversion 3", false, quickDone, true},
		{"pattern missed", pattern, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine", false, quickDone, false},
		{"digest", digest, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine", false, quickDone, true},
		{"digest missed", digest, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfile", false, quickDone, false},
		// Left to evaluate.
		{"chunked", plain, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfine\r\n0\r\n\r\n", true, quickNo, false},
		{"two lengths", plain, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nfine", true, quickNo, false},
		{"cut short", plain, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nfine", true, quickNo, false},
		{"bare LF", plain, "HTTP/1.1 200 OK\nContent-Length: 4\r\n\r\nfine", true, quickNo, false},
		{"folded header", plain, "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", true, quickNo, false},
		{"no content", plain, "HTTP/1.1 204 No Content\r\n\r\n", true, quickNo, false},
		{"HTTP/2 preface", plain, "HTTP/2 200\r\n\r\n", true, quickNo, false},
		{"head incomplete", plain, "HTTP/1.1 200 OK\r\nContent-Len", false, quickNo, false},
		{"long head", plain, "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("a", quickHead) + "\r\n\r\n", true, quickNo, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, q := tc.u.quick([]byte(tc.resp), tc.eof)
			if q != tc.want {
				t.Fatalf("quick = %v, want %v", q, tc.want)
			}
			if q != quickDone {
				return
			}
			whole, _, err := tc.u.evaluate(&partialReader{b: []byte(tc.resp), eof: tc.eof})
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			if got.Up != tc.up || got != whole {
				t.Fatalf("quick %+v, evaluate %+v, want up=%v", got, whole, tc.up)
			}
		})
	}
}

// FuzzQuickMatchesEvaluate holds quick to evaluate (net/http): whatever
// quick judges, evaluate judges the same, reason and all; what quick
// waits for, evaluate cannot judge yet either.
func FuzzQuickMatchesEvaluate(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"), false)
	f.Add([]byte("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nversion 3"), true)
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\ncontent-length:  007 \r\n\r\nfine!!!"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nfine"), true)
	f.Add([]byte("HTTP/1.1 299 \r\nX-A:\t\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfine\r\n0\r\n\r\n"), true)
	urls := quickURLs(f)
	f.Fuzz(func(t *testing.T, data []byte, eof bool) {
		for _, u := range urls {
			got, q := u.quick(data, eof)
			if q == quickNo {
				continue
			}
			whole, phase, err := u.evaluate(&partialReader{b: data, eof: eof})
			switch {
			case q == quickWait && eof:
				t.Fatalf("quick waits for more after the end: %q", data)
			case q == quickWait && err == nil:
				t.Fatalf("quick waits, evaluate judged %+v: %q", whole, data)
			case q == quickDone && err != nil:
				t.Fatalf("quick judged %+v, evaluate failed %s: %v: %q", got, phase, err, data)
			case q == quickDone && got != whole:
				t.Fatalf("quick judged %+v, evaluate %+v: %q", got, whole, data)
			}
		}
	})
}

// TestArrivalAllocs: asking the kernel when a segment came allocates
// nothing, and answers a time that has passed.
func TestArrivalAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var at time.Time
	var aerr error
	ask := func() {
		_ = rc.Control(func(fd uintptr) { at, aerr = arrival(int(fd), "connect") })
	}
	ask()
	if aerr != nil || at.IsZero() || at.After(time.Now()) {
		t.Fatalf("arrival = %v, %v", at, aerr)
	}
	if raceEnabled {
		return // the race detector allocates
	}
	if n := testing.AllocsPerRun(100, ask); n != 0 {
		t.Errorf("%.0f allocations per arrival, want 0", n)
	}
}
