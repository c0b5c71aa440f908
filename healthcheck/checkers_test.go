package healthcheck

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

const testTimeout = 400 * time.Millisecond

// slack is how far past its timeout a check may return: generous, because
// the race detector and a loaded machine slow everything down, yet far below
// the seconds that trickling servers would take with a per-read deadline.
const slack = time.Second

type checkCase struct {
	name       string
	addr       func(t *testing.T) netip.AddrPort
	check      conf.CheckSpec
	wantUp     bool
	wantWeight int    // checked when wantUp; 0 means WeightConfigured
	wantReason string // substring
}

func runCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.check
			if c.Timeout == 0 {
				// Cases that expect a timeout get a short one; the others a
				// long one, so that a loaded machine cannot fail them.
				c.Timeout = 3 * time.Second
				if strings.Contains(tc.wantReason, "timeout") {
					c.Timeout = testTimeout
				}
			}
			var (
				ap netip.AddrPort
				ok bool
			)
			if tc.addr != nil {
				ap = tc.addr(t)
			}
			ck, err := NewChecker(tgt(ap, c))
			if err != nil {
				t.Fatal(err)
			}
			// Each case on a worker (Run) and, for the kinds the
			// scheduler's loop runs, on the loop: the same verdicts.
			for _, path := range []string{"Run", "loop"} {
				start := time.Now()
				var r Result
				if path == "Run" {
					r = ck.Run(context.Background(), start.Add(c.Timeout))
				} else if r, ok = runOnLoop(t, ck, start.Add(c.Timeout)); !ok {
					continue
				}
				took := time.Since(start)
				if took > c.Timeout+slack {
					t.Errorf("%s: check took %v, timeout is %v", path, took, c.Timeout)
				}
				if r.Up != tc.wantUp || !strings.Contains(r.Reason, tc.wantReason) {
					t.Fatalf("%s: got up=%v reason %q, want up=%v reason containing %q", path, r.Up, r.Reason, tc.wantUp, tc.wantReason)
				}
				w := tc.wantWeight
				if w == 0 {
					w = WeightConfigured
				}
				if r.Up && r.Weight != w {
					t.Fatalf("%s: weight %d, want %d", path, r.Weight, w)
				}
			}
		})
	}
}

func fixed(ap netip.AddrPort) func(*testing.T) netip.AddrPort {
	return func(*testing.T) netip.AddrPort { return ap }
}

func TestTCPCheck(t *testing.T) {
	tcp := conf.CheckSpec{Kind: conf.CheckTCP}
	fromSecond := tcp
	fromSecond.Source = netip.MustParseAddr("127.0.0.2")
	runCases(t, []checkCase{
		{name: "healthy", addr: func(t *testing.T) netip.AddrPort { return serve(t, silent) }, check: tcp, wantUp: true, wantReason: "connected"},
		{name: "refused", addr: refusedAddr, check: tcp, wantReason: "connect: connection refused"},
		{name: "black-holed", addr: blackholeAddr, check: tcp, wantReason: "timeout after 400ms connecting"},
		{name: "dials Connect, not the real server", addr: func(t *testing.T) netip.AddrPort {
			return refusedAddr(t)
		}, check: func() conf.CheckSpec {
			c := tcp
			c.Connect = serveOnPort(t)
			return c
		}(), wantUp: true},
		{name: "source_address binds the local end", addr: func(t *testing.T) netip.AddrPort {
			return serve(t, func(c net.Conn) {
				if !strings.HasPrefix(c.RemoteAddr().String(), "127.0.0.2:") {
					t.Errorf("connection from %s, want 127.0.0.2", c.RemoteAddr())
				}
			})
		}, check: fromSecond, wantUp: true},
	})
}

func serveOnPort(t *testing.T) netip.AddrPort { return serve(t, silent) }

func TestHTTPCheck(t *testing.T) {
	h := conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: httpPath("/health")}
	with := func(f func(*conf.URLSpec)) conf.CheckSpec {
		c := h
		c.HTTP.URLs = []conf.URLSpec{{Path: "/health"}}
		f(&c.HTTP.URLs[0])
		return c
	}
	body := "all good: version 42\n"
	sha := sha256.Sum256([]byte(body))
	md := md5.Sum([]byte(body))
	srv := func(handle func(net.Conn)) func(*testing.T) netip.AddrPort {
		return func(t *testing.T) netip.AddrPort { return serve(t, handle) }
	}
	runCases(t, []checkCase{
		{name: "healthy", addr: srv(respond("200 OK", body)), check: h, wantUp: true, wantReason: "status 200"},
		{name: "refused", addr: refusedAddr, check: h, wantReason: "connect: connection refused"},
		{name: "black-holed", addr: blackholeAddr, check: h, wantReason: "timeout after 400ms connecting"},
		{name: "accepts then sends nothing", addr: srv(silent), check: h, wantReason: "timeout after 400ms reading headers"},
		{name: "slow headers", addr: srv(trickle("HTTP/1.1 200 OK\r\n", strings.Repeat("X-Slow: 1\r\n", 10)+"\r\n")), check: h,
			wantReason: "timeout after 400ms reading headers"},
		{name: "slow body past the deadline", addr: srv(trickle("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", strings.Repeat("x", 40))), check: h,
			wantReason: "timeout after 400ms reading body"},
		{name: "closes before answering", addr: srv(func(c net.Conn) { readRequest(c) }), check: h, wantReason: "reading headers: "},
		{name: "wrong status", addr: srv(respond("503 Service Unavailable", "")), check: h, wantReason: "status 503 not in 200-299"},
		{name: "expect_status list", addr: srv(respond("301 Moved", "")), check: with(func(c *conf.URLSpec) {
			c.ExpectStatus = conf.StatusCodes{{Lo: 200, Hi: 200}, {Lo: 301, Hi: 302}}
		}), wantUp: true, wantReason: "status 301"},
		{name: "expect_status list miss", addr: srv(respond("200 OK", "")), check: with(func(c *conf.URLSpec) {
			c.ExpectStatus = conf.StatusCodes{{Lo: 204, Hi: 204}, {Lo: 301, Hi: 302}}
		}), wantReason: "status 200 not in 204,301-302"},
		{name: "body matches", addr: srv(respond("200 OK", body)), check: with(func(c *conf.URLSpec) { c.ExpectBody = `version \d+` }), wantUp: true},
		{name: "wrong body", addr: srv(respond("200 OK", "maintenance")), check: with(func(c *conf.URLSpec) { c.ExpectBody = `version \d+` }),
			wantReason: `body does not match "version \\d+"`},
		{name: "sha256 digest", addr: srv(respond("200 OK", body)), check: with(func(c *conf.URLSpec) { c.Digest = sha[:] }), wantUp: true},
		{name: "sha256 digest mismatch", addr: srv(respond("200 OK", body+"!")), check: with(func(c *conf.URLSpec) { c.Digest = sha[:] }),
			wantReason: "body sha256 "},
		{name: "md5 digest (keepalived)", addr: srv(respond("200 OK", body)), check: with(func(c *conf.URLSpec) { c.Digest = md[:] }), wantUp: true},
		{name: "md5 digest mismatch", addr: srv(respond("200 OK", "other")), check: with(func(c *conf.URLSpec) { c.Digest = md[:] }),
			wantReason: "body md5 "},
		{name: "virtual host header", addr: srv(func(c net.Conn) {
			host, _ := readRequest(c)
			status := "404 Not Found"
			if host == "www.example" {
				status = "200 OK"
			}
			c.Write([]byte("HTTP/1.1 " + status + "\r\nContent-Length: 0\r\n\r\n"))
		}), check: func() conf.CheckSpec { c := h; c.HTTP.Host = "www.example"; return c }(), wantUp: true},
		{name: "chunked body", addr: srv(func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
		}), check: with(func(c *conf.URLSpec) { c.ExpectBody = "^hello$" }), wantUp: true},
		// The loop judges what arrived so far: a trailer cut short by
		// the end of a read is not the end of the response.
		{name: "chunked trailer in two writes", addr: srv(func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX"))
			time.Sleep(50 * time.Millisecond)
			c.Write([]byte("-T: 1\r\n\r\n"))
		}), check: with(func(c *conf.URLSpec) { c.ExpectBody = "^hello$" }), wantUp: true},
		{name: "endless body is capped", addr: srv(func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			chunk := []byte(strings.Repeat("y", 64<<10))
			for range 64 { // 4 MiB, bounded
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}), check: h, wantUp: true},
		{name: "endless body fails a digest", addr: srv(func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			chunk := []byte(strings.Repeat("y", 64<<10))
			for range 64 {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}), check: with(func(c *conf.URLSpec) { c.Digest = sha[:] }), wantReason: "digest not verifiable"},
		{name: "endless headers are capped", addr: srv(func(c net.Conn) {
			readRequest(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			for range 10000 {
				if _, err := c.Write([]byte("X-Pad: 0123456789012345678901234567890123456789\r\n")); err != nil {
					return
				}
			}
		}), check: h, wantReason: "response head exceeds"},
	})
}

func TestHTTPSCheck(t *testing.T) {
	pki := newPKI(t)
	ok := respond("200 OK", "fine")
	plain := func(t *testing.T) netip.AddrPort { return serveTLS(t, pki, false, ok) }
	sni := func(t *testing.T) netip.AddrPort { return serveTLS(t, pki, true, ok) }
	hs := func(f func(*conf.HTTPCheckSpec)) conf.CheckSpec {
		c := conf.CheckSpec{Kind: conf.CheckHTTPS, HTTP: conf.HTTPCheckSpec{TLSVerify: true}}
		f(&c.HTTP)
		return c
	}
	runCases(t, []checkCase{
		{name: "untrusted certificate with verify on", addr: plain, check: hs(func(c *conf.HTTPCheckSpec) {}),
			wantReason: "tls handshake: tls: failed to verify certificate"},
		{name: "untrusted certificate with verify off", addr: plain, check: hs(func(c *conf.HTTPCheckSpec) { c.TLSVerify = false }), wantUp: true, wantReason: "status 200"},
		{name: "trusted via ca_file and server_name", addr: plain, check: hs(func(c *conf.HTTPCheckSpec) { c.CAFile = pki.caFile; c.ServerName = "svc.example" }),
			wantUp: true},
		{name: "trusted CA but name mismatch", addr: plain, check: hs(func(c *conf.HTTPCheckSpec) { c.CAFile = pki.caFile; c.ServerName = "other.example" }),
			wantReason: "certificate is valid for svc.example, not other.example"},
		{name: "SNI required, none sent", addr: sni, check: hs(func(c *conf.HTTPCheckSpec) { c.TLSVerify = false }), wantReason: "tls handshake: "},
		{name: "SNI from server_name", addr: sni, check: hs(func(c *conf.HTTPCheckSpec) { c.TLSVerify = false; c.ServerName = "svc.example" }), wantUp: true},
		{name: "SNI from host", addr: sni, check: hs(func(c *conf.HTTPCheckSpec) {
			c.CAFile = pki.caFile
			c.Host = "svc.example:8443"
			c.ServerName = "svc.example"
		}), wantUp: true},
		{name: "plain http server", addr: func(t *testing.T) netip.AddrPort {
			return serve(t, func(c net.Conn) {
				c.Read(make([]byte, 512))
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			})
		}, check: hs(func(c *conf.HTTPCheckSpec) {}), wantReason: "tls handshake: tls: first record does not look like a TLS handshake"},
		{name: "handshake never answered", addr: func(t *testing.T) netip.AddrPort { return serve(t, silent) }, check: hs(func(c *conf.HTTPCheckSpec) {}),
			wantReason: "timeout after 400ms in tls handshake"},
	})
}

func TestExecCheck(t *testing.T) {
	// dynamic_weight is conf's default (true): keepalived's misc_dynamic.
	sh := func(script string) conf.CheckSpec {
		return conf.CheckSpec{Kind: conf.CheckExec, Exec: conf.ExecCheckSpec{Command: []string{"/bin/sh", "-c", script}, DynamicWeight: true}}
	}
	static := func(script string) conf.CheckSpec {
		return conf.CheckSpec{Kind: conf.CheckExec, Exec: conf.ExecCheckSpec{Command: []string{"/bin/sh", "-c", script}}}
	}
	runCases(t, []checkCase{
		{name: "exit 0", check: sh("exit 0"), wantUp: true, wantReason: "exit status 0"},
		{name: "exit 1", check: sh("exit 1"), wantReason: "exit status 1"},
		{name: "exit 7 is weight 5", check: sh("exit 7"), wantUp: true, wantWeight: 5, wantReason: "exit status 7 (weight 5)"},
		{name: "dynamic_weight=false: exit 0 is up", check: static("exit 0"), wantUp: true, wantReason: "exit status 0"},
		{name: "dynamic_weight=false: exit 7 is down", check: static("exit 7"), wantReason: "exit status 7"},
		{name: "dynamic_weight=false: exit 2 is down", check: static("exit 2"), wantReason: "exit status 2"},
		{name: "killed by a signal", check: sh("kill -TERM $$"), wantReason: "killed by signal terminated"},
		{name: "no such program", check: conf.CheckSpec{Kind: conf.CheckExec, Exec: conf.ExecCheckSpec{Command: []string{"/nonexistent/check"}}}, wantReason: "exec: "},
		{name: "sees the target in its environment", addr: fixed(netip.MustParseAddrPort("127.0.0.9:8080")),
			check: sh(`[ "$HALDIR_REAL_ADDRESS:$HALDIR_REAL_PORT" = 127.0.0.9:8080 ]`), wantUp: true},
	})
}

func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The grandchild holds no pipe, but outlives its parent unless the
	// whole process group is killed.
	c := conf.CheckSpec{Kind: conf.CheckExec, Timeout: 300 * time.Millisecond,
		Exec: conf.ExecCheckSpec{Command: []string{"/bin/sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"}}}
	ck, err := NewChecker(tgt(netip.AddrPort{}, c))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := ck.Run(context.Background(), start.Add(c.Timeout))
	if took := time.Since(start); took > 300*time.Millisecond+slack {
		t.Fatalf("took %v", took)
	}
	if r.Up || r.Reason != "timeout after 300ms (process group killed)" {
		t.Fatalf("got %+v", r)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "grandchild to die", func() bool {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
		// Reparented to a PID 1 that may not reap: a zombie is dead too.
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

// TestNewCheckerErrors: what conf cannot know (files, the host's
// families) or a spec that did not come from conf.Compile.
func TestNewCheckerErrors(t *testing.T) {
	tcp := conf.CheckSpec{Kind: conf.CheckTCP}
	tests := []struct {
		c    conf.CheckSpec
		want string
	}{
		{conf.CheckSpec{}, "unknown kind"},
		{conf.CheckSpec{Kind: conf.CheckTCP, Interval: -1}, "must be positive"},
		{conf.CheckSpec{Kind: conf.CheckExec}, "no command"},
		{conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: []conf.URLSpec{{Path: "/", Digest: []byte("abc")}}}}, "digest of 3 bytes"},
		{conf.CheckSpec{Kind: conf.CheckHTTPS, HTTP: conf.HTTPCheckSpec{CAFile: "/nonexistent.pem"}}, "ca_file"},
		{func() conf.CheckSpec { c := tcp; c.Source = netip.MustParseAddr("::1"); return c }(), "different address families"},
		{conf.CheckSpec{Kind: conf.CheckHTTP, Source: netip.MustParseAddr("::1")}, "different address families"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := NewChecker(tgt(netip.MustParseAddrPort("127.0.0.1:80"), tt.c))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "127.0.0.1:80") {
				t.Fatalf("err = %v does not name the target", err)
			}
		})
	}
}

// byPath answers each request by its path: keepalived's several url
// blocks of one HTTP_GET become haldir's urls, each on its own connection.
func byPath(delay time.Duration, status map[string]string, seen chan<- string) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		if seen != nil {
			select {
			case seen <- f[1]:
			default:
			}
		}
		time.Sleep(delay) // bounded: the server side of a slow health page
		st, ok := status[f[1]]
		if !ok {
			st = "404 Not Found"
		}
		c.Write([]byte("HTTP/1.1 " + st + "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
	}
}

func TestHTTPCheckURLs(t *testing.T) {
	okSum := md5.Sum([]byte("ok"))
	urls := func(us ...conf.URLSpec) conf.CheckSpec {
		return conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: conf.HTTPCheckSpec{URLs: us}}
	}
	pages := map[string]string{"/a": "200 OK", "/b": "204 No Content", "/down": "503 Service Unavailable"}
	srv := func(delay time.Duration) func(*testing.T) netip.AddrPort {
		return func(t *testing.T) netip.AddrPort { return serve(t, byPath(delay, pages, nil)) }
	}
	runCases(t, []checkCase{
		{name: "all pass", addr: srv(0), check: urls(conf.URLSpec{Path: "/a"}, conf.URLSpec{Path: "/b", ExpectStatus: conf.StatusCodes{{Lo: 204, Hi: 204}}}),
			wantUp: true, wantReason: "2 urls: status 204"},
		{name: "each url has its own status", addr: srv(0), check: urls(conf.URLSpec{Path: "/a"}, conf.URLSpec{Path: "/b", ExpectStatus: conf.StatusCodes{{Lo: 200, Hi: 200}}}),
			wantReason: "/b: status 204 not in 200"},
		{name: "the second fails", addr: srv(0), check: urls(conf.URLSpec{Path: "/a"}, conf.URLSpec{Path: "/down"}),
			wantReason: "/down: status 503 not in 200-299"},
		{name: "each url has its own digest", addr: srv(0), check: urls(conf.URLSpec{Path: "/a", Digest: okSum[:]},
			conf.URLSpec{Path: "/b", Digest: make([]byte, 16)}), wantReason: "/b: body md5 "},
		// 250 ms each: either alone fits in 400 ms, both do not.
		{name: "one deadline for all urls", addr: srv(250 * time.Millisecond), check: func() conf.CheckSpec {
			c := urls(conf.URLSpec{Path: "/a"}, conf.URLSpec{Path: "/a"})
			c.Timeout = testTimeout
			return c
		}(), wantReason: "/a: timeout after 400ms reading headers"},
	})

	// Every url is requested, in order.
	seen := make(chan string, 4)
	ap := serve(t, byPath(0, pages, seen))
	ck, err := NewChecker(tgt(ap, urls(conf.URLSpec{Path: "/a"}, conf.URLSpec{Path: "/b"})))
	if err != nil {
		t.Fatal(err)
	}
	if r := ck.Run(context.Background(), time.Now().Add(3*time.Second)); !r.Up {
		t.Fatalf("got %+v", r)
	}
	for _, want := range []string{"/a", "/b"} {
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("requested %s, want %s", got, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s never requested", want)
		}
	}
}
