package healthcheck

import (
	"context"
	"time"
)

type tcpChecker struct {
	dial    tcpDialer
	timeout time.Duration
}

func newTCP(t Target) (Checker, error) {
	d, err := newTCPDialer(dialAddr(t), t.Check.SourceAddress)
	if err != nil {
		return nil, err
	}
	return &tcpChecker{dial: d, timeout: timeoutOf(t.Check)}, nil
}

func (c *tcpChecker) Run(ctx context.Context, deadline time.Time) Result {
	conn, err := c.dial.dial(ctx, deadline, false)
	if err != nil {
		return down(describe("connect", err, deadline, c.timeout))
	}
	conn.Close()
	return up("connected")
}
