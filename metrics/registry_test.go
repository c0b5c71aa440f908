package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/ipvs"
)

// TestStreamedMatchesGathered holds the streamed exposition to what
// client_golang's own encoder writes for the same collectors: the same
// lines, byte for byte, in another order (families in the order they
// came, not sorted), each family in one block that Prometheus's parser
// takes.
func TestStreamedMatchesGathered(t *testing.T) {
	k, big := scrapeFixture(t)
	odd := sample()
	// What the text format escapes, in a label value and in a help.
	odd.Services = append(odd.Services, director.ServiceStatus{Name: "a\"b\\c\nd", Key: ipvs.ServiceKey{Fwmark: 9},
		Reals: []director.RealStatus{{Addr: netip.MustParseAddrPort("10.0.0.7:1"), Healthy: true, ConfiguredWeight: 1}}})
	odd.VRRP[0].Drops["weird\\reason"] = 2
	haldir := func(st control.Status) prometheus.Collector {
		return &collector{source: func() control.Status { return st }}
	}
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"sample", haldir(sample())},
		{"escapes", haldir(odd)},
		{"empty", haldir(control.Status{})},
		{"1k real servers", haldir(big)},
		{"ipvs 1k", NewIPVS(k, func() (ipvs.Stats, error) { return ipvs.Stats{Conns: 7, BytesIn: 1 << 40}, nil }, time.Second, slog.New(slog.DiscardHandler))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var streamed bytes.Buffer
			w := bufio.NewWriter(&streamed)
			if err := writeCollector(w, tc.c); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(tc.c)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var gathered bytes.Buffer
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(&gathered, mf); err != nil {
					t.Fatal(err)
				}
			}
			got, want := sortedLines(streamed.String()), sortedLines(gathered.String())
			if !slices.Equal(got, want) {
				for _, l := range want {
					if !slices.Contains(got, l) {
						t.Errorf("streamed lacks %q", l)
					}
				}
				for _, l := range got {
					if !slices.Contains(want, l) {
						t.Errorf("streamed has %q, which client_golang does not write", l)
					}
				}
				t.Fatalf("streamed %d lines, client_golang %d", len(got), len(want))
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			parsed, err := parser.TextToMetricFamilies(bytes.NewReader(streamed.Bytes()))
			if err != nil {
				t.Fatalf("Prometheus's parser refuses the streamed text: %v", err)
			}
			if len(parsed) != len(mfs) {
				t.Errorf("parsed %d families, gathered %d", len(parsed), len(mfs))
			}
		})
	}
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// notOurs is a series from another package's collector.
type notOurs struct{}

func (notOurs) Describe(ch chan<- *prometheus.Desc) {}
func (notOurs) Collect(ch chan<- prometheus.Metric) {
	for range 1000 { // more than the channel holds: the writer must drain it
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.GaugeValue, 1)
	}
}

// mixed sends one family as a gauge and then as a counter.
type mixed struct{ notOurs }

func (mixed) Collect(ch chan<- prometheus.Metric) {
	ch <- dBuildInfo.sample(1, false, "a")
	ch <- dBuildInfo.sample(1, true, "b")
}

func TestWriteCollectorRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want string
	}{
		{"another package's series", notOurs{}, "not a series of this package's"},
		{"a counter and a gauge", mixed{}, "haldir_build_info: a counter and a gauge in one family"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := bufio.NewWriter(&b)
			err := writeCollector(w, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("writeCollector = %v, want %q", err, tc.want)
			}
			if w.Buffered() != 0 || b.Len() != 0 {
				t.Errorf("wrote %q before refusing", b.String())
			}
		})
	}
}

func TestRegistryServeHTTP(t *testing.T) {
	reg := NewRegistry(sample)
	get := func(accept string) *http.Response {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		w := httptest.NewRecorder()
		reg.ServeHTTP(w, req)
		return w.Result()
	}
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"identity", false},
	} {
		t.Run("Accept-Encoding "+tc.accept, func(t *testing.T) {
			resp := get(tc.accept)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
				t.Fatalf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
			}
			body := io.Reader(resp.Body)
			if gz := resp.Header.Get("Content-Encoding") == "gzip"; gz != tc.gzip {
				t.Fatalf("gzip %v, want %v", gz, tc.gzip)
			} else if gz {
				z, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = z
			}
			parser := expfmt.NewTextParser(model.UTF8Validation)
			mfs, err := parser.TextToMetricFamilies(body)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"haldir_vrrp_priority", "haldir_real_server_up", "go_goroutines", "process_cpu_seconds_total"} {
				if mfs[name] == nil {
					t.Errorf("no %s", name)
				}
			}
		})
	}
	t.Run("in flight", func(t *testing.T) {
		for range maxScrapes {
			reg.inFlight <- struct{}{}
		}
		if resp := get(""); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("scrape %d: %s, want 503", maxScrapes+1, resp.Status)
		}
		<-reg.inFlight
		if resp := get(""); resp.StatusCode != 200 {
			t.Errorf("scrape with one slot free: %s", resp.Status)
		}
	})
}
