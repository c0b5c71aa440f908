package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// A check started late gives back at most 5 ms of its lateness, and never
// more than a tenth of its timeout: overload must not cut healthy servers'
// time short, while ordinary jitter must not delay detection.
func TestLagCredit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name    string
		lag     time.Duration
		timeout time.Duration
		want    time.Duration
	}{
		{"on time", 0, 500 * time.Millisecond, 0},
		{"jitter given back", 2 * time.Millisecond, 500 * time.Millisecond, 2 * time.Millisecond},
		{"overload capped at 5ms", 300 * time.Millisecond, 500 * time.Millisecond, 5 * time.Millisecond},
		{"short timeout capped at a tenth", 4 * time.Millisecond, 20 * time.Millisecond, 2 * time.Millisecond},
		{"early start gives nothing", -3 * time.Millisecond, 500 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lagCredit(t0, t0.Add(tc.lag), tc.timeout); got != tc.want {
				t.Fatalf("lagCredit(lag %v, timeout %v) = %v, want %v", tc.lag, tc.timeout, got, tc.want)
			}
		})
	}
}

// A checker runs until the deadline it is given: one that started on time
// gets its whole timeout.
func TestCheckGetsWholeTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, typ := range []conf.CheckKind{conf.CheckTCP, conf.CheckHTTP} {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			ck, err := NewChecker(tgt(blackholeAddr(t), conf.CheckSpec{Kind: typ, Timeout: timeout}))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r := ck.Run(context.Background(), CheckDeadline(start, start, timeout))
			if took := time.Since(start); r.Up || took < timeout-20*time.Millisecond {
				t.Fatalf("got %+v after %v, want a timeout after the whole %v", r, took, timeout)
			}
		})
	}
}

// Cancelling a check (probe removed, scheduler stopped) unblocks a connect
// that would otherwise wait out its timeout.
func TestCancelUnblocksConnect(t *testing.T) {
	ck, err := NewChecker(tgt(blackholeAddr(t), conf.CheckSpec{Kind: conf.CheckHTTP, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if r := ck.Run(ctx, start.Add(30*time.Second)); r.Up {
		t.Fatalf("got %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("cancelled check returned after %v (timeout 30s)", took)
	}
}

// TestSockConnIO: the raw reads and sends of a check's connection wait in
// the poller and honour its deadline; a large request goes out whole; the
// peer's close is io.EOF after its data; and a send to a peer that reset
// the connection is an error, not a signal.
func TestSockConnIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const big = 4 << 20 // past the socket buffers: the send must wait
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		n, err := io.CopyN(io.Discard, c, big)
		if err == nil {
			_, err = c.Write([]byte("answer"))
		}
		if err == nil && n != big {
			err = fmt.Errorf("read %d bytes", n)
		}
		served <- err
	}()
	d, err := newTCPDialer(ln.Addr().(*net.TCPAddr).AddrPort(), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.dial(context.Background(), newCheckClock(time.Now().Add(10*time.Second), 10*time.Second, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.Write(make([]byte, big)); err != nil || n != big {
		t.Fatalf("write: %d, %v; want %d", n, err, big)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "answer" {
		t.Fatalf("read %q, %v; want the answer, then EOF", got, err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}

	// A peer that never answers: the read ends at the deadline.
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			<-hold
			c.Close()
		}
	}()
	c2, err := d.dial(context.Background(), newCheckClock(time.Now().Add(100*time.Millisecond), 100*time.Millisecond, nil), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent peer: %v, want the deadline", err)
	}

	// A peer that resets once connected: sends fail with an error.
	reset := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err == nil {
			<-reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	c3, err := d.dial(context.Background(), newCheckClock(time.Now().Add(5*time.Second), 5*time.Second, nil), true)
	close(reset)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c3.Write([]byte("x")); err != nil {
			if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("send after a reset: %v, want EPIPE or ECONNRESET", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sends to a reset connection kept succeeding")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newCheckClock is a started clock for a connection dialled outside a
// checker.
func newCheckClock(deadline time.Time, timeout time.Duration, pause func(string)) *checkClock {
	k := &checkClock{}
	k.start(deadline, timeout, pause)
	return k
}
