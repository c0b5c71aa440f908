package healthcheck

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/miekg/dns"
)

// serveDNS runs a miekg/dns server on one loopback port over UDP and TCP:
// ok.test answers A 192.0.2.1, nx.test is NXDOMAIN, fail.test SERVFAIL,
// and big.test is truncated over UDP and answers A 192.0.2.7 over TCP.
func serveDNS(t *testing.T) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch q.Name {
		case "ok.test.":
			rr, _ := dns.NewRR("ok.test. 60 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		case "nx.test.":
			m.Rcode = dns.RcodeNameError
		case "fail.test.":
			m.Rcode = dns.RcodeServerFailure
		case "big.test.":
			if w.RemoteAddr().Network() == "udp" {
				m.Truncated = true
			} else {
				rr, _ := dns.NewRR("big.test. 60 IN A 192.0.2.7")
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if i == 10 {
			t.Fatal(err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	udp.NotifyStartedFunc = func() { started <- struct{}{} }
	tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// serveUDP answers each datagram with reply(datagram), or not at all when
// reply returns nil.
func serveUDP(t *testing.T, reply func([]byte) []byte) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func refusedUDP(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return ap
}

func TestDNSCheck(t *testing.T) {
	q := func(name string, typ uint16, expect string) conf.CheckSpec {
		return conf.CheckSpec{Kind: conf.CheckDNS, DNS: conf.DNSCheckSpec{QueryName: name, QueryType: typ, ExpectAnswer: expect}}
	}
	srv := func(t *testing.T) netip.AddrPort { return serveDNS(t) }
	silentUDP := func(t *testing.T) netip.AddrPort { return serveUDP(t, func([]byte) []byte { return nil }) }
	runCases(t, []checkCase{
		{name: "NOERROR", addr: srv, check: q("ok.test", dns.TypeA, ""), wantUp: true, wantReason: "rcode NOERROR, 1 answers"},
		{name: "expected answer", addr: srv, check: q("ok.test", dns.TypeA, "192.0.2.1"), wantUp: true, wantReason: "answer 192.0.2.1"},
		{name: "unexpected answer", addr: srv, check: q("ok.test", dns.TypeA, "192.0.2.9"), wantReason: `no answer contains "192.0.2.9"`},
		{name: "NXDOMAIN", addr: srv, check: q("nx.test", dns.TypeA, ""), wantReason: "rcode NXDOMAIN"},
		{name: "SERVFAIL", addr: srv, check: q("fail.test", dns.TypeA, ""), wantReason: "rcode SERVFAIL"},
		{name: "truncated falls back to TCP", addr: srv, check: q("big.test", dns.TypeA, "192.0.2.7"), wantUp: true},
		{name: "root SOA", addr: srv, check: q(".", dns.TypeSOA, ""), wantUp: true, wantReason: "rcode NOERROR, 0 answers"},
		{name: "no server", addr: refusedUDP, check: q("ok.test", dns.TypeA, ""), wantReason: "icmp port unreachable"},
		{name: "server never answers", addr: silentUDP, check: q("ok.test", dns.TypeA, ""), wantReason: "timeout after 400ms query ok.test. A"},
	})
}

func TestUDPCheck(t *testing.T) {
	echo := func(t *testing.T) netip.AddrPort {
		return serveUDP(t, func(b []byte) []byte { return append([]byte("echo:"), b...) })
	}
	pingPong := func(t *testing.T) netip.AddrPort {
		return serveUDP(t, func(b []byte) []byte {
			if bytes.Equal(b, []byte("ping")) {
				return []byte("pong")
			}
			return []byte("what?")
		})
	}
	silent := func(t *testing.T) netip.AddrPort { return serveUDP(t, func([]byte) []byte { return nil }) }
	// RequireReply is conf's default (true); keepalived's UDP_CHECK
	// without require_reply is false.
	udp := func(c conf.UDPCheckSpec, timeout time.Duration) conf.CheckSpec {
		c.RequireReply = true
		return conf.CheckSpec{Kind: conf.CheckUDP, UDP: c, Timeout: timeout}
	}
	noReply := func(c conf.UDPCheckSpec, timeout time.Duration) conf.CheckSpec {
		return conf.CheckSpec{Kind: conf.CheckUDP, UDP: c, Timeout: timeout}
	}
	runCases(t, []checkCase{
		{name: "reply", addr: echo, check: udp(conf.UDPCheckSpec{Payload: []byte("hi")}, 0), wantUp: true, wantReason: "reply of 7 bytes"},
		{name: "expected payload", addr: pingPong, check: udp(conf.UDPCheckSpec{Payload: []byte("ping"), ExpectPayload: []byte("pong")}, 0), wantUp: true},
		{name: "unexpected payload", addr: pingPong, check: udp(conf.UDPCheckSpec{Payload: []byte("hello"), ExpectPayload: []byte("pong")}, testTimeout),
			wantReason: `reply does not contain "pong"`},
		{name: "no reply", addr: silent, check: udp(conf.UDPCheckSpec{Payload: []byte("hi")}, 0), wantReason: "timeout after 400ms waiting for reply"},
		{name: "icmp port unreachable", addr: refusedUDP, check: udp(conf.UDPCheckSpec{Payload: []byte("hi")}, 0), wantReason: "icmp port unreachable"},

		{name: "require_reply=false: silence is up", addr: silent, check: noReply(conf.UDPCheckSpec{Payload: []byte("hi")}, testTimeout),
			wantUp: true, wantReason: "no reply and no icmp error in 400ms"},
		{name: "require_reply=false: icmp port unreachable is down", addr: refusedUDP, check: noReply(conf.UDPCheckSpec{Payload: []byte("hi")}, 0), wantReason: "icmp port unreachable"},
		{name: "require_reply=false: a reply is up", addr: echo, check: noReply(conf.UDPCheckSpec{Payload: []byte("hi")}, 0), wantUp: true, wantReason: "reply of 7 bytes"},
		{name: "require_reply=false: a reply must still match", addr: pingPong, check: noReply(conf.UDPCheckSpec{Payload: []byte("hello"), ExpectPayload: []byte("pong")}, testTimeout),
			wantReason: `reply does not contain "pong"`},
	})
}
