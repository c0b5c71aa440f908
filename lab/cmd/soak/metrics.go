package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metricSample is one scrape of a daemon's metrics at steady state.
type metricSample struct {
	At         time.Time
	Goroutines float64
	FDs        float64
	RSS        float64
}

// Growth limits: a daemon's steady-state samples late in its life against
// early ones (the least of the last three against the most of the first
// three, so one busy moment does not count).
const (
	growGoroutines = 10
	growFDs        = 5
	growRSS        = 16 << 20
	growMinSamples = 6
)

// scrapeAll scrapes both daemons' metrics endpoints.
func (s *soak) scrapeAll(ctx context.Context) {
	for _, name := range s.directorNames() {
		d := s.daemons[name]
		s.mu.Lock()
		key := fmt.Sprintf("%s#%d", name, d.starts)
		s.mu.Unlock()
		m, err := s.scrape(ctx, d)
		if err != nil {
			s.printf("metrics of %s: %v", name, err)
			continue
		}
		s.mu.Lock()
		s.metrics[key] = append(s.metrics[key], m)
		s.mu.Unlock()
	}
}

func (s *soak) scrape(ctx context.Context, d *daemon) (metricSample, error) {
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.host.Dial(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return metricSample{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return metricSample{}, err
	}
	defer resp.Body.Close()
	m := metricSample{At: time.Now()}
	want := map[string]*float64{"go_goroutines": &m.Goroutines, "process_open_fds": &m.FDs, "process_resident_memory_bytes": &m.RSS}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := 0
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if p, hit := want[name]; hit && ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return m, fmt.Errorf("%s: %q: %w", name, val, err)
			}
			*p = v
			seen++
		}
	}
	if seen != len(want) {
		return m, fmt.Errorf("only %d of go_goroutines, process_open_fds, process_resident_memory_bytes", seen)
	}
	return m, sc.Err()
}

// growth is one daemon process's resource growth over its life.
type growth struct {
	Daemon     string  `json:"daemon"`
	Samples    int     `json:"samples"`
	Span       string  `json:"span"`
	Goroutines float64 `json:"goroutines"`
	FDs        float64 `json:"fds"`
	RSSMiB     float64 `json:"rss_mib"`
	First      string  `json:"first"`
	Last       string  `json:"last"`
}

// checkGrowth judges every daemon process with enough samples.
func (s *soak) checkGrowth() []growth {
	s.mu.Lock()
	keys := make([]string, 0, len(s.metrics))
	for k := range s.metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	all := map[string][]metricSample{}
	for _, k := range keys {
		all[k] = slices.Clone(s.metrics[k])
	}
	s.mu.Unlock()
	var out []growth
	for _, k := range keys {
		ms := all[k]
		if len(ms) < growMinSamples {
			continue
		}
		first, last := ms[:3], ms[len(ms)-3:]
		hi := func(xs []metricSample, f func(metricSample) float64) float64 {
			v := f(xs[0])
			for _, x := range xs[1:] {
				v = max(v, f(x))
			}
			return v
		}
		lo := func(xs []metricSample, f func(metricSample) float64) float64 {
			v := f(xs[0])
			for _, x := range xs[1:] {
				v = min(v, f(x))
			}
			return v
		}
		g := growth{
			Daemon: k, Samples: len(ms), Span: ms[len(ms)-1].At.Sub(ms[0].At).Round(time.Second).String(),
			Goroutines: lo(last, func(m metricSample) float64 { return m.Goroutines }) - hi(first, func(m metricSample) float64 { return m.Goroutines }),
			FDs:        lo(last, func(m metricSample) float64 { return m.FDs }) - hi(first, func(m metricSample) float64 { return m.FDs }),
			RSSMiB:     (lo(last, func(m metricSample) float64 { return m.RSS }) - hi(first, func(m metricSample) float64 { return m.RSS })) / (1 << 20),
			First:      fmt.Sprintf("%.0f goroutines, %.0f fds, %.1f MiB", ms[0].Goroutines, ms[0].FDs, ms[0].RSS/(1<<20)),
			Last:       fmt.Sprintf("%.0f goroutines, %.0f fds, %.1f MiB", ms[len(ms)-1].Goroutines, ms[len(ms)-1].FDs, ms[len(ms)-1].RSS/(1<<20)),
		}
		out = append(out, g)
		s.checked(invNoGrowth)
		if g.Goroutines > growGoroutines || g.FDs > growFDs || g.RSSMiB*(1<<20) > growRSS {
			s.violate(invNoGrowth, 0, fmt.Sprintf("%s grew over %s: %+.0f goroutines, %+.0f fds, %+.1f MiB (first %s, last %s)", k, g.Span, g.Goroutines, g.FDs, g.RSSMiB, g.First, g.Last))
		}
	}
	return out
}
