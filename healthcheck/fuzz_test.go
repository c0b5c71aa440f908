package healthcheck

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"testing"

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
