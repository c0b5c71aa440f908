package healthcheck

import (
	"context"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

type tcpChecker struct {
	dial    tcpDialer
	timeout time.Duration
	clk     checkClock // of the running check
}

func newTCP(c *conf.CheckSpec) (Checker, error) {
	d, err := newTCPDialer(c.Connect, c.Source)
	if err != nil {
		return nil, err
	}
	return &tcpChecker{dial: d, timeout: c.Timeout}, nil
}

func (c *tcpChecker) Run(ctx context.Context, deadline time.Time) Result {
	clk := &c.clk
	clk.start(deadline, c.timeout, c.dial.pause)
	conn, err := c.dial.dial(ctx, clk, false)
	if err != nil {
		return failure("connect", err, clk.deadline, c.timeout)
	}
	conn.Close()
	return up("connected")
}
