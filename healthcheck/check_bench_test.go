package healthcheck

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// The per-check cost of the tcp and http checkers against a loopback
// server, for allocation counts (-benchmem); the scale benchmark with its
// table is bench/healthcheck.
func BenchmarkCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				if n, _ := c.Read(buf); n > 0 {
					c.Write(resp)
				}
			}()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	for _, typ := range []conf.CheckKind{conf.CheckTCP, conf.CheckHTTP} {
		b.Run(typ.String(), func(b *testing.B) {
			ck, err := NewChecker(tgt(ap, conf.CheckSpec{Kind: typ}))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ReportAllocs()
			for b.Loop() {
				if r := ck.Run(ctx, time.Now().Add(time.Second)); !r.Up {
					b.Fatal(r.Reason)
				}
			}
		})
	}
}
