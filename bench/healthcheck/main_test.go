package main

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// benchMainEnv makes the test binary the benchmark program: the smoke test
// starts it with this set, and the scenario and server processes it starts
// (as its own executable) inherit it.
const benchMainEnv = "HALDIR_HEALTHCHECK_BENCH_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(benchMainEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs the benchmark on two small scenarios for a short
// window, so the program keeps compiling and working between `make bench`
// runs: every scenario has a row that checked something and a row per
// failure mode. It asserts no timing (the goals table may say FAIL on a
// busy machine).
func TestBenchSmoke(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-duration", "2s", "-scenarios", "http-100,tcp-100", "-down", "10")
	cmd.Env = append(os.Environ(), benchMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, sc := range []string{"http-100", "tcp-100"} {
		m := regexp.MustCompile(`(?m)^\| ` + sc + ` \| (\d+) \| 100 \|`).FindSubmatch(out)
		if m == nil {
			t.Errorf("no row for %s with its checks/s and 100 expected/s:\n%s", sc, out)
		} else if n, _ := strconv.Atoi(string(m[1])); n == 0 {
			t.Errorf("%s made no checks:\n%s", sc, out)
		}
		for _, mode := range []string{"refused", "black-holed"} {
			if !regexp.MustCompile(`(?m)^\| ` + sc + ` \| ` + mode + ` \| \d+/10 \|`).Match(out) {
				t.Errorf("no %s row for %s:\n%s", mode, sc, out)
			}
		}
	}
}

// TestHaldirConfigMatchesKeepalived: the whole-daemon rows give haldir the
// configuration keepalived gets, in haldir's terms: haldir accepts it,
// and it checks the same targets, spread over the same virtual servers,
// with the same check, interval, timeout, fall and rise, every server up
// before its first check.
func TestHaldirConfigMatchesKeepalived(t *testing.T) {
	for _, kind := range []string{"tcp", "http"} {
		t.Run(kind, func(t *testing.T) {
			const n = 250
			c, err := conf.Parse([]byte(haldirConfig(kind, n, time.Second, t.TempDir())), "haldir.toml")
			if err != nil {
				t.Fatal(err)
			}
			spec := conf.Compile(c)
			want, err := conf.ParseCheckKind(kind)
			if err != nil {
				t.Fatal(err)
			}
			ka := kaConfig(kind, n, time.Second)
			if got, wantVS := len(spec.VirtualServers), strings.Count(ka, "virtual_server "); got != wantVS {
				t.Fatalf("%d virtual servers, keepalived's configuration has %d", got, wantVS)
			}
			i := 0
			for v, vs := range spec.VirtualServers {
				if want := netip.AddrPortFrom(vsAddr(v), 80); vs.Addr != want {
					t.Fatalf("virtual server %d at %v, keepalived's at %v", v, vs.Addr, want)
				}
				for _, rs := range vs.RealServers {
					ck := rs.Check
					if rs.Addr != addr(i) || ck == nil || ck.Connect != addr(i) {
						t.Fatalf("real server %d: %v checked at %+v, want %v", i, rs.Addr, ck, addr(i))
					}
					if ck.Kind != want || ck.Interval != time.Second || ck.Timeout != time.Second || ck.Rise != 1 || ck.Fall != 1 || !ck.InitialUp {
						t.Fatalf("real server %d: check %+v, want %s every 1s, timeout 1s, rise 1, fall 1, up at first", i, ck, kind)
					}
					i++
				}
			}
			if i != n || strings.Count(ka, "real_server ") != n {
				t.Fatalf("%d real servers, keepalived's configuration has %d, want %d", i, strings.Count(ka, "real_server "), n)
			}
			if got, want := spec.Global.MetricsListen, haldirDaemon("haldir").metrics; "http://"+got+"/metrics" != want {
				t.Fatalf("metrics on %q, the bench scrapes %s", got, want)
			}
		})
	}
}

// TestScrape counts what a Prometheus scrape would: samples, not the
// HELP and TYPE lines, through gzip when the server compresses, and keeps
// the values of the samples without labels.
func TestScrape(t *testing.T) {
	const text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\na_total{x=\"2\"} 4\n# HELP b B.\n# TYPE b gauge\nb 0.25\n"
	for _, gz := range []bool{false, true} {
		t.Run("gzip="+strconv.FormatBool(gz), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !gz {
					io.WriteString(w, text)
					return
				}
				if r.Header.Get("Accept-Encoding") != "gzip" {
					t.Errorf("Accept-Encoding %q, want gzip", r.Header.Get("Accept-Encoding"))
				}
				w.Header().Set("Content-Encoding", "gzip")
				z := gzip.NewWriter(w)
				io.WriteString(z, text)
				z.Close()
			}))
			defer srv.Close()
			sc, err := scrape(srv.URL)
			if err != nil || sc.series != 3 || sc.size != len(text) {
				t.Fatalf("scrape = %d series, %d bytes, %v; want 3, %d", sc.series, sc.size, err, len(text))
			}
			if len(sc.plain) != 1 || sc.plain["b"] != 0.25 {
				t.Fatalf("samples without labels %v, want b 0.25", sc.plain)
			}
		})
	}
}
