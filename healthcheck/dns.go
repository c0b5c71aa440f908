package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/haldir-lb/haldir/conf"
)

type dnsChecker struct {
	source  netip.Addr // source_address; invalid: the kernel picks
	addr    string
	msg     *dns.Msg
	qdesc   string
	expect  string
	timeout time.Duration
}

func newDNS(c *conf.CheckSpec) (Checker, error) {
	name := dns.Fqdn(c.DNS.QueryName)
	m := new(dns.Msg)
	m.SetQuestion(name, c.DNS.QueryType)
	m.RecursionDesired = true
	return &dnsChecker{
		source: c.Source, addr: c.Connect.String(), msg: m, expect: c.DNS.ExpectAnswer,
		qdesc:   name + " " + dns.Type(c.DNS.QueryType).String(),
		timeout: c.Timeout,
	}, nil
}

func (c *dnsChecker) client(network string) *dns.Client {
	d := dialer(c.source, network)
	return &dns.Client{Net: network, Dialer: d, Timeout: c.timeout}
}

func (c *dnsChecker) Run(ctx context.Context, deadline time.Time) Result {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	m := c.msg.Copy()
	m.Id = dns.Id()
	resp, _, err := c.client("udp").ExchangeContext(ctx, m, c.addr)
	if err == nil && resp.Truncated {
		// The answer did not fit a datagram: ask again over TCP, within the
		// same overall deadline.
		m.Id = dns.Id()
		resp, _, err = c.client("tcp").ExchangeContext(ctx, m, c.addr)
	}
	if err != nil {
		if isRefused(err) {
			return down("query " + c.qdesc + ": icmp port unreachable")
		}
		return failure("query "+c.qdesc, err, deadlineOf(ctx), c.timeout)
	}
	if resp.Rcode != dns.RcodeSuccess {
		return down("rcode " + dns.RcodeToString[resp.Rcode])
	}
	if c.expect == "" {
		return up(fmt.Sprintf("rcode NOERROR, %d answers", len(resp.Answer)))
	}
	for _, rr := range resp.Answer {
		v := strings.TrimPrefix(rr.String(), rr.Header().String())
		if strings.Contains(v, c.expect) {
			return up("answer " + v)
		}
	}
	return down(fmt.Sprintf("no answer contains %q (%d answers)", c.expect, len(resp.Answer)))
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
