package healthcheck_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/healthcheck"
)

// The director's side: subscribe every (virtual server, real server) pair,
// apply the states Update returns, then follow Transitions.
func ExampleScheduler() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	rs := netip.MustParseAddrPort(ln.Addr().String())

	check := conf.CheckSpec{Kind: conf.CheckTCP, Connect: rs, Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1}
	s := healthcheck.New(healthcheck.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	// Two virtual servers share the real server: one probe, one key.
	states, err := s.Update([]healthcheck.Target{{Addr: rs, Check: &check}, {Addr: rs, Check: &check}})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(states), "probe;", "up:", states[0].Up, "-", states[0].Reason)

	tr := <-s.Transitions()
	fmt.Println("up:", tr.Up, "-", tr.Reason)
	ln.Close()
	tr = <-s.Transitions()
	fmt.Println("up:", tr.Up, "-", tr.Reason)
	// Output:
	// 1 probe; up: false - initial state down
	// up: true - connected
	// up: false - connect: connection refused
}
