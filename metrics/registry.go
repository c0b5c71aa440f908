package metrics

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/haldir-lb/haldir/control"
)

// Registry is what /metrics serves: haldir's collectors, whose series are
// written straight from their samples, and the Go runtime's and the
// process's (client_golang's collectors, a few dozen series).
//
// Why not promhttp: its Gather turns every series into client_golang's
// objects, indexes and sorts them, and holds them all until the response
// is written. At 1k real servers (17 series each) three scrapes took the
// whole daemon's peak RSS in the VM from 26.1 to 34.9 MiB that way, with
// the series' label pairs already shared (from 26.3 to 42.9 before);
// written from the samples, from 26.9 to 31.4 (bench/healthcheck
// -keepalived, tcp-1k).
type Registry struct {
	runtime *prometheus.Registry   // the Go and process collectors
	own     []prometheus.Collector // haldir's: every series a *constSample
	// checked holds every collector in a pedantic registry, which
	// refuses a duplicate or inconsistent family at MustRegister and
	// checks every series at Gather (the tests, and tools that want
	// client_golang's view).
	checked  *prometheus.Registry
	inFlight chan struct{}
}

// maxScrapes is how many scrapes may run at once; more are answered 503.
const maxScrapes = 4

// scrapeWriteTimeout bounds how long a slow reader can hold a scrape.
const scrapeWriteTimeout = 10 * time.Second

// NewRegistry returns a registry with haldir's collector reading source
// and the Go runtime and process collectors.
func NewRegistry(source func() control.Status) *Registry {
	r := &Registry{runtime: prometheus.NewRegistry(), checked: prometheus.NewPedanticRegistry(), inFlight: make(chan struct{}, maxScrapes)}
	runtime := []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	r.runtime.MustRegister(runtime...)
	r.checked.MustRegister(runtime...)
	r.MustRegister(New(source))
	return r
}

// MustRegister adds collectors of this package (New, NewIPVS). It panics,
// as prometheus.Registry.MustRegister does, on a family registered twice.
func (r *Registry) MustRegister(cs ...prometheus.Collector) {
	r.checked.MustRegister(cs...)
	r.own = append(r.own, cs...)
}

// Gather is everything the registry serves as client_golang gathers it,
// with a pedantic registry's checks.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) { return r.checked.Gather() }

// ServeHTTP writes the metrics in Prometheus's text format, gzipped when
// the scraper accepts it (Prometheus does).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case r.inFlight <- struct{}{}:
		defer func() { <-r.inFlight }()
	default:
		http.Error(w, fmt.Sprintf("%d scrapes are in flight already", maxScrapes), http.StatusServiceUnavailable)
		return
	}
	// Best effort: a writer that cannot set one is still bounded by the
	// server's own timeouts.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(scrapeWriteTimeout))
	h := w.Header()
	h.Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	var z *gzip.Writer
	if acceptsGzip(req.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		// BestSpeed: at 1k real servers it halves a scrape's CPU
		// (BenchmarkScrape: 20 against 37 ms) for 7% more bytes (69 KB
		// against 65).
		z, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = z
	}
	bw := bufio.NewWriterSize(out, 32<<10)
	err := r.write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && z != nil {
		err = z.Close()
	}
	if err != nil {
		// The status is sent; a scrape cut short fails as a whole in
		// Prometheus (up 0) rather than passing with series missing.
		panic(http.ErrAbortHandler)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			v, err := strconv.ParseFloat(q, 64)
			return err == nil && v > 0
		}
		return true
	}
	return false
}

// write writes every family. A runtime collector's error drops only what
// it could not collect, as promhttp's ContinueOnError did; haldir's own
// collectors cannot fail, but a series that is not a *constSample is a bug
// that fails the scrape.
func (r *Registry) write(w *bufio.Writer) error {
	mfs, _ := r.runtime.Gather()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	for _, c := range r.own {
		if err := writeCollector(w, c); err != nil {
			return err
		}
	}
	return nil
}

// writeCollector writes c's series, family by family in the order each
// family first came. What it holds meanwhile is the samples themselves.
func writeCollector(w *bufio.Writer, c prometheus.Collector) error {
	ch := make(chan prometheus.Metric, 256)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	byFamily := map[*family][]*constSample{}
	var order []*family
	var bad error
	for m := range ch { // to the end: Collect must not block on a full channel
		s, ok := m.(*constSample)
		switch {
		case bad != nil:
			continue
		case !ok:
			bad = fmt.Errorf("metrics: %s: not a series of this package's", m.Desc())
			continue
		}
		ss, seen := byFamily[s.f]
		if !seen {
			order = append(order, s.f)
		} else if s.counter != ss[0].counter {
			bad = fmt.Errorf("metrics: %s: a counter and a gauge in one family", s.f.name)
			continue
		}
		byFamily[s.f] = append(ss, s)
	}
	if bad != nil {
		return bad
	}
	for _, f := range order {
		writeFamily(w, f, byFamily[f])
	}
	return nil
}

// The text format's escapes: a HELP line escapes backslash and newline, a
// label value also the double quote (expfmt's).
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// writeFamily writes f's HELP and TYPE lines and its series, as expfmt
// writes them (TestStreamedMatchesGathered holds the two to the same
// text). bufio.Writer keeps its first error; the caller's Flush returns
// it.
func writeFamily(w *bufio.Writer, f *family, ss []*constSample) {
	typ := "gauge"
	if ss[0].counter {
		typ = "counter"
	}
	w.WriteString("# HELP " + f.name + " ")
	helpEscaper.WriteString(w, f.help)
	w.WriteString("\n# TYPE " + f.name + " " + typ + "\n")
	var num [32]byte
	for _, s := range ss {
		w.WriteString(f.name)
		if len(s.labels) > 0 {
			w.WriteByte('{')
			for i, p := range s.labels {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(p.GetName())
				w.WriteString(`="`)
				valueEscaper.WriteString(w, p.GetValue())
				w.WriteByte('"')
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.Write(strconv.AppendFloat(num[:0], s.value, 'g', -1, 64))
		w.WriteByte('\n')
	}
}
