package healthcheck

import (
	"context"
	"net"
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
	abort(conn)
	return up("connected")
}

// abort closes a check's connection with RST (linger 0), as HAProxy does
// after its checks: a probe has nothing left to flush, and at thousands of
// checks per second the TIME_WAIT sockets of an orderly close would eat the
// ephemeral ports and kernel memory.
func abort(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
