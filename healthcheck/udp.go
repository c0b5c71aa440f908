package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

type udpChecker struct {
	source  netip.Addr // source_address; invalid: the kernel picks
	addr    string
	payload []byte
	expect  []byte
	timeout time.Duration
	// silenceUp: only an ICMP error is down (require_reply = false).
	silenceUp bool
}

func newUDP(c *conf.CheckSpec) (Checker, error) {
	return &udpChecker{
		source:  c.Source,
		addr:    c.Connect.String(),
		payload: c.UDP.Payload,
		expect:  c.UDP.ExpectPayload,
		timeout: c.Timeout,

		silenceUp: !c.UDP.RequireReply,
	}, nil
}

// Run sends the payload on a connected socket: the kernel then reports an
// ICMP port unreachable for it as ECONNREFUSED on the next read, which
// distinguishes "nothing listens" from "listener is silent".
func (c *udpChecker) Run(parent context.Context, deadline time.Time) Result {
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()
	conn, err := dialer(c.source, "udp").DialContext(ctx, "udp", c.addr)
	if err != nil {
		return failure("connect", err, deadlineOf(ctx), c.timeout)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(c.payload); err != nil {
		return c.fail("sending", err, ctx)
	}
	buf := make([]byte, 65536)
	mismatch := false
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if mismatch && isTimeout(err) {
				return down(fmt.Sprintf("reply does not contain %q", c.expect))
			}
			// keepalived's UDP_CHECK without require_reply: the kernel
			// reports an ICMP error as ECONNREFUSED before the deadline,
			// so silence until then means something listens. A cancelled
			// check is not silence.
			if c.silenceUp && isTimeout(err) && parent.Err() == nil {
				return up(fmt.Sprintf("no reply and no icmp error in %s", c.timeout))
			}
			return c.fail("waiting for reply", err, ctx)
		}
		if len(c.expect) == 0 || bytes.Contains(buf[:n], c.expect) {
			return up(fmt.Sprintf("reply of %d bytes", n))
		}
		// A non-matching datagram may be a late reply to an earlier check;
		// keep waiting for a matching one until the deadline.
		mismatch = true
	}
}

func (c *udpChecker) fail(phase string, err error, ctx context.Context) Result {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return down("icmp port unreachable")
	}
	return failure(phase, err, deadlineOf(ctx), c.timeout)
}
