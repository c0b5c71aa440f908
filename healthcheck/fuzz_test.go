package healthcheck

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// FuzzHTTPEvaluate feeds arbitrary server bytes to the response judge: it
// must never panic, and it may only say up for a parseable 2xx response.
func FuzzHTTPEvaluate(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200\r\n\r\nversion 3"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	f.Add([]byte{})
	plain, err := NewChecker(tgt(netip.MustParseAddrPort("127.0.0.1:80"), conf.CheckSpec{Kind: conf.CheckHTTP}))
	if err != nil {
		f.Fatal(err)
	}
	strict, err := NewChecker(tgt(netip.MustParseAddrPort("127.0.0.1:80"), conf.CheckSpec{Kind: conf.CheckHTTP,
		HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/", ExpectBody: `version \d`, Digest: bytes.Repeat([]byte{0xab}, 32)}}}}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ck := range []*httpURL{plain.(*httpChecker).urls[0], strict.(*httpChecker).urls[0]} {
			r, phase, err := ck.evaluate(bytes.NewReader(data))
			if err != nil {
				if phase == "" || r.Up {
					t.Fatalf("I/O error %v without a phase or with up", err)
				}
				continue
			}
			if r.Reason == "" {
				t.Fatal("verdict without a reason")
			}
			if !r.Up {
				continue
			}
			resp, perr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
			if perr != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
				t.Fatalf("up for a response that is not a 2xx: %q", data)
			}
		}
	})
}

// FuzzIncrementalJudge: the loop judges a response from what has arrived
// so far, read after read; however the server's bytes are cut into reads,
// the verdict is the one evaluating the whole response at once gives, and
// one that needs the end of the response waits for it.
func FuzzIncrementalJudge(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), []byte{3, 17, 40})
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), []byte{1, 30, 50, 52})
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), []byte{57, 60})
	f.Add([]byte("HTTP/1.1 503 Service Unavailable\r\n\r\n"), []byte{20})
	f.Add([]byte("HTTP/1.0 200\r\n\r\nversion 3"), []byte{10, 18})
	f.Add([]byte("HTTP/1.1 200 OK\nX-A: b\n\nversion 7"), []byte{5, 24})
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-Slow: 1\r\nX-Slow: 1\r\n\r\n"), []byte{18, 19, 29})
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"), []byte{})
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"), []byte{4})
	ap := netip.MustParseAddrPort("127.0.0.1:80")
	var urls []*httpURL
	for _, u := range []conf.URLSpec{
		{Path: "/"},
		{Path: "/", ExpectBody: `version \d`},
		{Path: "/", Digest: bytes.Repeat([]byte{0xab}, 16)},
	} {
		ck, err := NewChecker(tgt(ap, conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{u}}}))
		if err != nil {
			f.Fatal(err)
		}
		urls = append(urls, ck.(*httpChecker).urls[0])
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		for _, u := range urls {
			whole, _, err := u.evaluate(bytes.NewReader(data))
			if err != nil {
				whole = failure("", err, time.Time{}, 0)
			}
			fl := &flight{spec: loopSpec{urls: []*httpURL{u}}}
			// Reads end at the cut points (offsets into data, in order).
			at, prev := 0, 0
			var got Result
			done := false
			for i := 0; !done && at < len(data); i++ {
				next := len(data)
				if i < len(cuts) && int(cuts[i]) > prev && int(cuts[i]) < len(data) {
					next = int(cuts[i])
				}
				fl.buf = append(fl.buf, data[at:next]...)
				at, prev = next, next
				got, done = fl.judge(false)
			}
			if !done {
				got, done = fl.judge(true) // the server closed
			}
			if !done {
				t.Fatal("no verdict after the end of the response")
			}
			if got.Up != whole.Up {
				t.Fatalf("judged up=%v (%s) read by read, up=%v (%s) whole: %q cut at %v", got.Up, got.Reason, whole.Up, whole.Reason, data, cuts)
			}
			if got.Up && got.Reason != whole.Reason {
				t.Fatalf("reason %q read by read, %q whole", got.Reason, whole.Reason)
			}
		}
	})
}
