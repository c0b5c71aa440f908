package healthcheck

import (
	"context"
	"time"
)

type tcpChecker struct {
	t       Target
	addr    string
	timeout time.Duration
}

func newTCP(t Target) (Checker, error) {
	return &tcpChecker{t: t, addr: dialAddr(t).String(), timeout: timeoutOf(t.Check)}, nil
}

func (c *tcpChecker) Run(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := dialer(c.t.Check, "tcp").DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return down(describe("connect", err, ctx, c.timeout))
	}
	conn.Close()
	return up("connected")
}
