package metrics

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

func TestIPVSCollector(t *testing.T) {
	k := ipvstest.New()
	web := ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.10:80")}
	mark := ipvs.ServiceKey{Fwmark: 5}
	r1 := netip.MustParseAddrPort("10.0.0.1:8080")
	for _, s := range []ipvs.ServiceKey{web, mark} {
		if err := k.NewService(ipvs.Service{Key: s, ServiceSettings: ipvs.ServiceSettings{Scheduler: "wlc"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		svc  ipvs.ServiceKey
		addr netip.AddrPort
		w    int
	}{{web, r1, 100}, {mark, r1, 7}} {
		if err := k.NewDestination(d.svc, ipvs.Destination{Addr: d.addr, DestSettings: ipvs.DestSettings{Weight: d.w, Forwarding: ipvs.ForwardDR}}); err != nil {
			t.Fatal(err)
		}
	}
	k.SetServiceStats(web, ipvs.Stats{Conns: 10, PktsIn: 100, PktsOut: 90, BytesIn: 1000, BytesOut: 9000})
	k.SetServiceStats(mark, ipvs.Stats{Conns: 1, PktsIn: 2, PktsOut: 3, BytesIn: 4, BytesOut: 5})
	k.SetConns(web, r1, 3, 4)
	k.SetDestStats(web, r1, ipvs.Stats{Conns: 10, PktsIn: 100, PktsOut: 90, BytesIn: 1000, BytesOut: 9000})
	// The kernel's IPVS-wide counters, not the sum over today's services
	// (11 connections): they count services deleted since.
	totals := func() (ipvs.Stats, error) { return ipvs.Stats{Conns: 511, BytesIn: 70004}, nil }
	c := NewIPVS(k, totals, time.Second, nil)
	want := `
# HELP haldir_ipvs_connections_total Connections scheduled by IPVS since its module loaded, deleted services included (/proc/net/ip_vs_stats).
# TYPE haldir_ipvs_connections_total counter
haldir_ipvs_connections_total 511
# HELP haldir_ipvs_incoming_bytes_total Incoming bytes through IPVS since its module loaded (/proc/net/ip_vs_stats).
# TYPE haldir_ipvs_incoming_bytes_total counter
haldir_ipvs_incoming_bytes_total 70004
# HELP haldir_ipvs_service_outgoing_packets_total Outgoing packets of the IPVS service (kernel counter).
# TYPE haldir_ipvs_service_outgoing_packets_total counter
haldir_ipvs_service_outgoing_packets_total{local_address="",local_mark="5",local_port="0",proto="FWM"} 3
haldir_ipvs_service_outgoing_packets_total{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP"} 90
# HELP haldir_ipvs_backend_connections_active Active connections to the real server (kernel).
# TYPE haldir_ipvs_backend_connections_active gauge
haldir_ipvs_backend_connections_active{local_address="",local_mark="5",local_port="0",proto="FWM",remote_address="10.0.0.1",remote_port="8080"} 0
haldir_ipvs_backend_connections_active{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 3
# HELP haldir_ipvs_backend_connections_inactive Inactive connections to the real server (kernel).
# TYPE haldir_ipvs_backend_connections_inactive gauge
haldir_ipvs_backend_connections_inactive{local_address="",local_mark="5",local_port="0",proto="FWM",remote_address="10.0.0.1",remote_port="8080"} 0
haldir_ipvs_backend_connections_inactive{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 4
# HELP haldir_ipvs_backend_weight The real server's weight in the kernel.
# TYPE haldir_ipvs_backend_weight gauge
haldir_ipvs_backend_weight{local_address="",local_mark="5",local_port="0",proto="FWM",remote_address="10.0.0.1",remote_port="8080"} 7
haldir_ipvs_backend_weight{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 100
# HELP haldir_ipvs_backend_outgoing_bytes_total Outgoing bytes from the real server (kernel counter).
# TYPE haldir_ipvs_backend_outgoing_bytes_total counter
haldir_ipvs_backend_outgoing_bytes_total{local_address="",local_mark="5",local_port="0",proto="FWM",remote_address="10.0.0.1",remote_port="8080"} 0
haldir_ipvs_backend_outgoing_bytes_total{local_address="192.0.2.10",local_mark="",local_port="80",proto="TCP",remote_address="10.0.0.1",remote_port="8080"} 9000
# HELP haldir_ipvs_stats_up 1 when this scrape read the kernel's IPVS table, 0 when the read failed or did not finish in time.
# TYPE haldir_ipvs_stats_up gauge
haldir_ipvs_stats_up 1
`
	names := []string{"haldir_ipvs_connections_total", "haldir_ipvs_incoming_bytes_total", "haldir_ipvs_service_outgoing_packets_total",
		"haldir_ipvs_backend_connections_active", "haldir_ipvs_backend_connections_inactive", "haldir_ipvs_backend_weight",
		"haldir_ipvs_backend_outgoing_bytes_total", "haldir_ipvs_stats_up"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	// 5 totals, up and errors; 5 counters per service, 8 series per
	// backend; two services with one backend each.
	if n, want := testutil.CollectAndCount(c), 7+5*2+8*2; n != want {
		t.Errorf("%d series, want %d", n, want)
	}
}

// stuckReader blocks every read until released, counting reads.
type stuckReader struct {
	release chan struct{}
	reads   atomic.Int32
	err     error
}

func (r *stuckReader) GetServices() ([]ipvs.ServiceInfo, error) {
	r.reads.Add(1)
	<-r.release
	return nil, r.err
}

func (r *stuckReader) GetDestinations(ipvs.ServiceKey) ([]ipvs.DestInfo, error) { return nil, nil }

// TestIPVSCollectorBounded: a read that hangs costs each scrape its
// timeout (up 0, counted) and is never started twice; once it returns,
// scrapes read again.
func TestIPVSCollectorBounded(t *testing.T) {
	r := &stuckReader{release: make(chan struct{})}
	c := NewIPVS(r, func() (ipvs.Stats, error) { return ipvs.Stats{}, nil }, 50*time.Millisecond, nil)
	scrape := func() (up, errs float64) {
		t.Helper()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "haldir_ipvs_stats_up":
				up = mf.GetMetric()[0].GetGauge().GetValue()
			case "haldir_ipvs_stats_errors_total":
				errs = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return up, errs
	}
	for i := 1; i <= 2; i++ {
		start := time.Now()
		up, errs := scrape()
		if took := time.Since(start); up != 0 || errs != float64(i) || took > 2*time.Second {
			t.Fatalf("scrape %d of a hung read: up %v, errors %v, took %v; want 0, %d, about 50ms", i, up, errs, took, i)
		}
	}
	if n := r.reads.Load(); n != 1 {
		t.Fatalf("%d reads started, want 1 (the hung one)", n)
	}
	close(r.release) // the hung read returns (an empty table)
	// A scrape may still time out while the released read hands over.
	var errs float64
	poll.True(t, 5*time.Second, "scrapes read again after the hung read returned", func() bool {
		var up float64
		up, errs = scrape()
		return up == 1
	})
	r.err = errors.New("netlink: no such file")
	if up, n := scrape(); up != 0 || n != errs+1 {
		t.Fatalf("a failing read: up %v errors %v, want 0 and %v", up, n, errs+1)
	}
}

// TestIPVSCollectorTotalsUnreadable: a totals file that does not read
// fails the scrape like a table that does not (up 0, counted): no
// made-up totals.
func TestIPVSCollectorTotalsUnreadable(t *testing.T) {
	c := NewIPVS(ipvstest.New(), func() (ipvs.Stats, error) {
		return ipvs.ReadTotals("/nonexistent/ip_vs_stats")
	}, time.Second, nil)
	want := `
# HELP haldir_ipvs_stats_up 1 when this scrape read the kernel's IPVS table, 0 when the read failed or did not finish in time.
# TYPE haldir_ipvs_stats_up gauge
haldir_ipvs_stats_up 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "haldir_ipvs_stats_up", "haldir_ipvs_connections_total"); err != nil {
		t.Error(err)
	}
}
