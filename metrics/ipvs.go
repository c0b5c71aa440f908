package metrics

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/haldir-lb/haldir/ipvs"
)

// IPVSReader is what the IPVS collector reads: the kernel's services and
// their destinations with their counters (ipvs.Kernel has both).
type IPVSReader = ipvs.TableReader

// The kernel's IPVS numbers with the names and labels of the node
// exporter's ipvs collector (node_ipvs_*, here haldir_ipvs_*), so a site
// can drop that exporter: the totals, and per real server ("backend") its
// active and inactive connections and weight; beyond it, the counters of
// every service and real server. Every service in the kernel is exported,
// also those haldir does not manage, as the node exporter does.
var (
	ipvsServiceLabels = []string{"local_address", "local_port", "proto", "local_mark"}
	ipvsBackendLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}

	dIPVSConns    = newFamily("ipvs_connections_total", "Connections scheduled by IPVS since its module loaded, deleted services included (/proc/net/ip_vs_stats).")
	dIPVSPktsIn   = newFamily("ipvs_incoming_packets_total", "Incoming packets through IPVS since its module loaded (/proc/net/ip_vs_stats).")
	dIPVSPktsOut  = newFamily("ipvs_outgoing_packets_total", "Outgoing packets through IPVS since its module loaded (/proc/net/ip_vs_stats).")
	dIPVSBytesIn  = newFamily("ipvs_incoming_bytes_total", "Incoming bytes through IPVS since its module loaded (/proc/net/ip_vs_stats).")
	dIPVSBytesOut = newFamily("ipvs_outgoing_bytes_total", "Outgoing bytes through IPVS since its module loaded (/proc/net/ip_vs_stats).")

	dIPVSSvcConns    = newFamily("ipvs_service_connections_total", "Connections scheduled by the IPVS service (kernel counter).", ipvsServiceLabels...)
	dIPVSSvcPktsIn   = newFamily("ipvs_service_incoming_packets_total", "Incoming packets of the IPVS service (kernel counter).", ipvsServiceLabels...)
	dIPVSSvcPktsOut  = newFamily("ipvs_service_outgoing_packets_total", "Outgoing packets of the IPVS service (kernel counter).", ipvsServiceLabels...)
	dIPVSSvcBytesIn  = newFamily("ipvs_service_incoming_bytes_total", "Incoming bytes of the IPVS service (kernel counter).", ipvsServiceLabels...)
	dIPVSSvcBytesOut = newFamily("ipvs_service_outgoing_bytes_total", "Outgoing bytes of the IPVS service (kernel counter).", ipvsServiceLabels...)

	dIPVSBackActive   = newFamily("ipvs_backend_connections_active", "Active connections to the real server (kernel).", ipvsBackendLabels...)
	dIPVSBackInactive = newFamily("ipvs_backend_connections_inactive", "Inactive connections to the real server (kernel).", ipvsBackendLabels...)
	dIPVSBackWeight   = newFamily("ipvs_backend_weight", "The real server's weight in the kernel.", ipvsBackendLabels...)
	dIPVSBackConns    = newFamily("ipvs_backend_connections_total", "Connections scheduled to the real server (kernel counter).", ipvsBackendLabels...)
	dIPVSBackPktsIn   = newFamily("ipvs_backend_incoming_packets_total", "Incoming packets to the real server (kernel counter).", ipvsBackendLabels...)
	dIPVSBackPktsOut  = newFamily("ipvs_backend_outgoing_packets_total", "Outgoing packets from the real server (kernel counter).", ipvsBackendLabels...)
	dIPVSBackBytesIn  = newFamily("ipvs_backend_incoming_bytes_total", "Incoming bytes to the real server (kernel counter).", ipvsBackendLabels...)
	dIPVSBackBytesOut = newFamily("ipvs_backend_outgoing_bytes_total", "Outgoing bytes from the real server (kernel counter).", ipvsBackendLabels...)

	dIPVSUp     = newFamily("ipvs_stats_up", "1 when this scrape read the kernel's IPVS table, 0 when the read failed or did not finish in time.")
	dIPVSErrors = newFamily("ipvs_stats_errors_total", "Scrapes whose IPVS read failed or timed out.")
)

var ipvsFamilies = []*family{
	dIPVSConns, dIPVSPktsIn, dIPVSPktsOut, dIPVSBytesIn, dIPVSBytesOut,
	dIPVSSvcConns, dIPVSSvcPktsIn, dIPVSSvcPktsOut, dIPVSSvcBytesIn, dIPVSSvcBytesOut,
	dIPVSBackActive, dIPVSBackInactive, dIPVSBackWeight, dIPVSBackConns, dIPVSBackPktsIn, dIPVSBackPktsOut, dIPVSBackBytesIn, dIPVSBackBytesOut,
	dIPVSUp, dIPVSErrors,
}

// ipvsTable is one read of the kernel's table.
type ipvsTable struct {
	totals   ipvs.Stats
	services []ipvs.ServiceInfo
	dests    [][]ipvs.DestInfo // per service
}

// ipvsCollector reads the kernel at scrape time, on its own goroutine
// with a deadline: a netlink read that hangs costs the scrape its
// timeout, never the scrape forever, and only one read is ever in flight.
type ipvsCollector struct {
	k       IPVSReader
	totals  func() (ipvs.Stats, error)
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	inFlight chan struct{} // closed when the read in flight ends; nil: none
	last     chan ipvsResult
	errors   uint64
	failing  bool // the last scrape failed (logged once per change)
}

type ipvsResult struct {
	t   ipvsTable
	err error
}

// NewIPVS returns a collector of the kernel's IPVS numbers read through k,
// and of its IPVS-wide counters read by totals (ipvs.ReadTotals: netlink
// has no command for them; a sum over the services would drop when one
// is deleted, a false counter reset), each scrape waiting at most timeout
// for the reads.
func NewIPVS(k IPVSReader, totals func() (ipvs.Stats, error), timeout time.Duration, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	return &ipvsCollector{k: k, totals: totals, timeout: timeout, log: log}
}

func (c *ipvsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range ipvsFamilies {
		ch <- f.desc
	}
}

func readIPVS(k IPVSReader, totals func() (ipvs.Stats, error)) (ipvsTable, error) {
	tot, err := totals()
	if err != nil {
		return ipvsTable{}, err
	}
	svcs, dests, err := ipvs.ReadTable(k)
	if err != nil {
		return ipvsTable{}, err
	}
	return ipvsTable{totals: tot, services: svcs, dests: dests}, nil
}

// read starts a read unless one is in flight, and waits for it up to the
// timeout.
func (c *ipvsCollector) read() (ipvsTable, error) {
	c.mu.Lock()
	if c.inFlight == nil {
		done, res := make(chan struct{}), make(chan ipvsResult, 1)
		c.inFlight, c.last = done, res
		go func() {
			t, err := readIPVS(c.k, c.totals)
			res <- ipvsResult{t, err}
			c.mu.Lock()
			c.inFlight = nil
			c.mu.Unlock()
			close(done)
		}()
	}
	res := c.last
	c.mu.Unlock()
	select {
	case r := <-res:
		return r.t, r.err
	case <-time.After(c.timeout):
		return ipvsTable{}, errIPVSTimeout{c.timeout}
	}
}

type errIPVSTimeout struct{ d time.Duration }

func (e errIPVSTimeout) Error() string {
	return "reading the IPVS table took longer than " + e.d.String() + " (the read goes on; the next scrape waits for it)"
}

func (c *ipvsCollector) Collect(ch chan<- prometheus.Metric) {
	t, err := c.read()
	c.mu.Lock()
	if err != nil {
		c.errors++
	}
	changed := (err != nil) != c.failing
	c.failing = err != nil
	errs := c.errors
	c.mu.Unlock()
	switch {
	case changed && err != nil:
		c.log.Warn("IPVS metrics: the kernel's table could not be read", "error", err)
	case changed:
		c.log.Info("IPVS metrics: the kernel's table is read again")
	}
	ch <- dIPVSErrors.sample(float64(errs), true)
	ch <- dIPVSUp.sample(b2f(err == nil), false)
	if err != nil {
		return
	}
	counter := func(f *family, v uint64) { ch <- f.sample(float64(v), true) }
	for i, s := range t.services {
		local := serviceLabels(s.Key)
		svc := series{ch, labels(local...)}
		st := s.Stats
		svc.counter(dIPVSSvcConns, st.Conns)
		svc.counter(dIPVSSvcPktsIn, st.PktsIn)
		svc.counter(dIPVSSvcPktsOut, st.PktsOut)
		svc.counter(dIPVSSvcBytesIn, st.BytesIn)
		svc.counter(dIPVSSvcBytesOut, st.BytesOut)
		for _, d := range t.dests[i] {
			// Clip: each backend's pairs in their own array.
			back := series{ch, labels(append(slices.Clip(local), pair("remote_address", d.Addr.Addr().String()), pair("remote_port", strconv.Itoa(int(d.Addr.Port()))))...)}
			back.gauge(dIPVSBackActive, float64(d.ActiveConns))
			back.gauge(dIPVSBackInactive, float64(d.InactiveConns))
			back.gauge(dIPVSBackWeight, float64(d.Weight))
			back.counter(dIPVSBackConns, d.Stats.Conns)
			back.counter(dIPVSBackPktsIn, d.Stats.PktsIn)
			back.counter(dIPVSBackPktsOut, d.Stats.PktsOut)
			back.counter(dIPVSBackBytesIn, d.Stats.BytesIn)
			back.counter(dIPVSBackBytesOut, d.Stats.BytesOut)
		}
	}
	counter(dIPVSConns, t.totals.Conns)
	counter(dIPVSPktsIn, t.totals.PktsIn)
	counter(dIPVSPktsOut, t.totals.PktsOut)
	counter(dIPVSBytesIn, t.totals.BytesIn)
	counter(dIPVSBytesOut, t.totals.BytesOut)
}

// serviceLabels are local_address, local_port, proto and local_mark as the
// node exporter writes them: proto in capitals as /proc/net/ip_vs has it
// ("TCP", "UDP", "SCTP"; "FWM" for a fwmark service, which has no address,
// port 0 and its mark, here in decimal); no mark for any other. A
// backend's series add remote_address and remote_port to them.
func serviceLabels(k ipvs.ServiceKey) []*dto.LabelPair {
	addr, port, proto, mark := k.Addr.Addr().String(), strconv.Itoa(int(k.Addr.Port())), strings.ToUpper(k.Protocol.String()), ""
	if k.Fwmark != 0 {
		addr, port, proto, mark = "", "0", "FWM", strconv.FormatUint(uint64(k.Fwmark), 10)
	}
	return []*dto.LabelPair{pair("local_address", addr), pair("local_port", port), pair("proto", proto), pair("local_mark", mark)}
}
