package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// family is one of haldir's metrics: its Desc for client_golang, and the
// name, help and label names the streamed exposition writes (a Desc does
// not give them back).
type family struct {
	desc       *prometheus.Desc
	name, help string
	labels     []string // the variable labels, in the order values are given
}

func newFamily(name, help string, labels ...string) *family {
	name = ns + "_" + name
	return &family{desc: prometheus.NewDesc(name, help, labels, nil), name: name, help: help, labels: labels}
}

// sample is a series of f with the label values given in f's order.
func (f *family) sample(v float64, counter bool, values ...string) *constSample {
	ps := make([]*dto.LabelPair, len(values))
	for i, val := range values {
		ps[i] = pair(f.labels[i], val)
	}
	return &constSample{f: f, labels: labels(ps...), value: v, counter: counter}
}

// constSample is every series haldir's collectors send, so the streamed
// exposition can write it without client_golang's per-series objects.
// Its label pairs may be shared with the other series of the same object
// (a real server has seven, an IPVS backend eight):
// prometheus.MustNewConstMetric builds every pair anew for each series,
// about twenty allocations a series.
//
// The pairs must be sorted by name, as a Desc's consistency check (a
// pedantic registry's, the tests') requires; labels sorts them.
type constSample struct {
	f       *family
	labels  []*dto.LabelPair // shared and read-only: neither the registry nor the encoders change a metric's pairs
	value   float64
	counter bool
}

func (s *constSample) Desc() *prometheus.Desc { return s.f.desc }

// Write is client_golang's way to read the sample (Gather, the tests).
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

func (s series) gauge(f *family, v float64) {
	s.ch <- &constSample{f: f, labels: s.labels, value: v}
}

func (s series) counter(f *family, v uint64) {
	s.ch <- &constSample{f: f, labels: s.labels, value: float64(v), counter: true}
}
