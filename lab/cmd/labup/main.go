// Command labup builds the standard lab (two directors, three real servers,
// one client; see lab.Standard), or with -bgp the BGP lab (an FRRouting
// router, three directors; see lab.BGP), and keeps it up until interrupted,
// so a person can explore it with `ip netns exec <namespace> ...`. With
// -sweep it only removes leftovers of dead runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "labup:", err)
		os.Exit(1)
	}
}

func run() error {
	httpPort := flag.Int("http-port", 80, "port of the real servers' web servers (0: none)")
	realVIPs := flag.String("real-vip", "", "comma-separated prefixes to put on the real servers' loopback (LVS-DR), e.g. 192.0.2.1/32")
	hold := flag.Duration("for", 0, "tear down after this long (0: wait for SIGINT/SIGTERM)")
	sweep := flag.Bool("sweep", false, "only remove leftovers of dead runs, then exit")
	watch := flag.Bool("watch", false, "print VRRP adverts, ARP and neighbour advertisements seen on every switch")
	bgp := flag.Bool("bgp", false, "build the BGP lab (FRRouting router, three directors) instead of the standard lab")
	standIns := flag.Bool("stand-ins", false, "with -bgp: run FRR in every director announcing "+lab.BGPVIP4.String()+"/32, in place of haldir")
	flag.Parse()

	if *sweep {
		removed, err := lab.Sweep()
		for _, n := range removed {
			fmt.Println("removed", n)
		}
		return err
	}
	var vips []netip.Prefix
	for _, s := range strings.Split(*realVIPs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("-real-vip: %w", err)
		}
		vips = append(vips, p)
	}
	var (
		l        *lab.Lab
		switches []*lab.Switch
		hint     string
	)
	if *bgp {
		b, err := lab.NewBGP("labup", lab.BGPOptions{HTTPPort: *httpPort, RealVIPs: vips})
		if err != nil {
			return err
		}
		defer b.Close()
		if *standIns {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := b.StartStandIns(ctx, netip.PrefixFrom(lab.BGPVIP4, 32))
			cancel()
			if err != nil {
				return err
			}
		}
		l, switches = b.Lab, []*lab.Switch{b.Clients, b.Edge, b.Back, b.Sync}
		hint = fmt.Sprintf("ip netns exec %s ip route; vtysh --vty_socket %s -c 'show bgp summary'", b.Router.NetNSName(), b.RouterFRR.Dir())
	} else {
		s, err := lab.NewStandard("labup", lab.StandardOptions{HTTPPort: *httpPort, RealVIPs: vips})
		if err != nil {
			return err
		}
		defer s.Close()
		l, switches = s.Lab, []*lab.Switch{s.Front, s.Back, s.Sync}
		hint = fmt.Sprintf("ip netns exec %s curl -s http://10.0.1.21/", s.Director1.NetNSName())
	}
	s := l

	w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "HOST\tNAMESPACE\tINTERFACE\tADDRESSES")
	for _, h := range s.Hosts() {
		for _, k := range s.Links() {
			if k.Host() != h {
				continue
			}
			addrs, _ := h.Addrs(k.Iface())
			var as []string
			for _, a := range addrs {
				if !a.Addr().IsLinkLocalUnicast() {
					as = append(as, a.String())
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s@%s\t%s\n", h.Name(), h.NetNSName(), k.Iface(), k.Switch().Name(), strings.Join(as, " "))
		}
	}
	w.Flush()
	fmt.Printf("lab %s is up; try: %s\n", s.ID(), hint)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *hold > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *hold)
		defer cancel()
	}
	if *watch {
		for _, sw := range switches {
			obs, err := sw.ObserveWith(lab.ObserverConfig{Keep: lab.KeepControl})
			if err != nil {
				return err
			}
			go func() {
				var last uint64
				for {
					r, err := obs.WaitForAfter(ctx, last, func(lab.Record) bool { return true })
					if err != nil {
						return
					}
					last = r.Seq
					fmt.Printf("%-5s %s\n", sw.Name(), r)
				}
			}()
		}
	}
	<-ctx.Done()
	start := time.Now()
	if err := s.Close(); err != nil {
		return err
	}
	fmt.Printf("lab %s torn down in %v\n", s.ID(), time.Since(start).Round(time.Millisecond))
	return nil
}
