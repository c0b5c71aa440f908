package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// constSample is one series of a scrape whose label pairs are shared with the
// other series of the same object: a real server has seven, an IPVS
// backend eight. prometheus.MustNewConstMetric builds every label pair
// anew for each series, about twenty allocations a series, and at 1k real
// servers a scrape's series are held until the whole response is encoded:
// that was most of the 18 MB a scrape allocated (BenchmarkScrape) and of
// the 18 MiB one scrape added to the daemon's peak RSS.
//
// The pairs must be sorted by name, as a Desc's consistency check (a
// pedantic registry's, the tests') requires; labels sorts them.
type constSample struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair // shared and read-only: neither the registry nor the encoders change a metric's pairs
	value   float64
	counter bool
}

func (s *constSample) Desc() *prometheus.Desc { return s.desc }

func (s *constSample) Write(m *dto.Metric) error {
	m.Label = s.labels
	if s.counter {
		m.Counter = &dto.Counter{Value: &s.value}
	} else {
		m.Gauge = &dto.Gauge{Value: &s.value}
	}
	return nil
}

// labelPair holds a pair and the strings it points to, so a pair is one
// allocation, not three.
type labelPair struct {
	pair        dto.LabelPair
	name, value string
}

func pair(name, value string) *dto.LabelPair {
	p := &labelPair{name: name, value: value}
	p.pair.Name, p.pair.Value = &p.name, &p.value
	return &p.pair
}

// labels returns ps sorted by name; a pair may be in several sets.
func labels(ps ...*dto.LabelPair) []*dto.LabelPair {
	slices.SortFunc(ps, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return ps
}

// series sends the series of one object (one set of label pairs).
type series struct {
	ch     chan<- prometheus.Metric
	labels []*dto.LabelPair
}

func (s series) gauge(d *prometheus.Desc, v float64) {
	s.ch <- &constSample{desc: d, labels: s.labels, value: v}
}

func (s series) counter(d *prometheus.Desc, v uint64) {
	s.ch <- &constSample{desc: d, labels: s.labels, value: float64(v), counter: true}
}
