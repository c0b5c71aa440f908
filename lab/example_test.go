package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// The standard lab: two directors, three real servers with web servers,
// one client. Needs root, so this example is compiled but not run.
func ExampleNewStandard() {
	s, err := lab.NewStandard("demo", lab.StandardOptions{HTTPPort: 80})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	// Run a VRRP daemon in each director; each sees only its own
	// interfaces. (The configuration files are the caller's.)
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, d := range s.Directors() {
		dir := "/tmp/demo/" + d.Name()
		p, err := d.Start(ctx, []string{"/usr/sbin/keepalived", "-n", "-l", "-P",
			"-f", dir + "/keepalived.conf", "-p", dir + "/k.pid", "-r", dir + "/v.pid"}, nil)
		if err != nil {
			panic(err)
		}
		if _, err := p.WaitForLine(wctx, regexp.MustCompile(`Entering (MASTER|BACKUP) STATE`)); err != nil {
			panic(err)
		}
	}

	// Watch the front switch for VRRP adverts and gratuitous ARPs.
	obs, err := s.Front.Observe()
	if err != nil {
		panic(err)
	}
	s.Director1.Link("eth0").Cut() // director1 drops off the front switch
	r, err := obs.WaitFor(wctx, func(r lab.Record) bool {
		return r.Kind == lab.KindARP && r.ARP.Gratuitous && r.ARP.SenderIP == lab.VIP4
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("director2 took over the VIP at", r.Time)
}

// A lab described declaratively.
func ExampleBuild() {
	l, err := lab.Build("two hosts", lab.Topology{
		Switches: []string{"sw"},
		Hosts: []lab.HostSpec{
			{Name: "a", Links: []lab.LinkSpec{{Iface: "eth0", Switch: "sw",
				Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}}},
			{Name: "b", Links: []lab.LinkSpec{{Iface: "eth0", Switch: "sw",
				Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}}},
				Sysctls: []lab.Sysctl{{Key: "net.ipv4.conf.all.arp_ignore", Value: "1"}}},
		},
	})
	if err != nil {
		panic(err)
	}
	defer l.Close()
	srv, err := l.Host("b").ServeHTTP("192.0.2.2:80", nil) // answers "b\n"
	if err != nil {
		panic(err)
	}
	c, err := l.Host("a").Dial(context.Background(), "tcp", srv.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Close()
}
