package connsync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestVMNWaySync runs N-way sync on a real kernel: three directors (lab
// namespaces on one switch), each with the same mh service and a Follower
// running the master and backup daemons of one syncid. Flows each
// director schedules reach the other two, with the real server the first
// one chose; so a flow the routers move to any director keeps its real
// server.
func TestVMNWaySync(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	lab.SkipIfNotRoot(t)
	l := lab.NewT(t, "nway")
	if _, err := l.AddSwitch("sync"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddrPort("10.0.0.1:53")
	svc := ipvs.Service{Key: ipvs.ServiceKey{Protocol: ipvs.UDP, Addr: vip},
		ServiceSettings: ipvs.ServiceSettings{Scheduler: "mh", Flags: ipvs.FlagSched2, NetmaskBits: 32}} // mh-port
	cfg := conf.ConnSyncSpec{Interface: "eth0", SyncID: 7} // no VRRP instance: N-way
	type director struct {
		h *lab.Host
		k *ipvs.Client
	}
	ds := make([]director, 3)
	for i := range ds {
		h, err := l.AddHost(fmt.Sprintf("d%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Connect(h, lab.LinkSpec{Iface: "eth0", Switch: "sync",
			Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(1 + i)}), 24)}}); err != nil {
			t.Fatal(err)
		}
		if err := h.AddAddr("lo", netip.PrefixFrom(vip.Addr(), 32)); err != nil {
			t.Fatal(err)
		}
		k := ipvstest.Open(t, h.NetNSPath())
		// The settings of BGP mode exist on the lab's kernel and are per
		// namespace: set in each director's own.
		err = h.Do(func() error {
			changes, err := Apply(ProcSysctls{}, BGPSettings(), quiet)
			if err == nil && len(changes) != 2 { // sloppy_tcp and sloppy_sctp; backup_only is 0
				err = fmt.Errorf("changes %+v, want the two sloppy settings", changes)
			}
			if left := Check(ProcSysctls{}, BGPSettings()); err == nil && len(left) != 0 {
				err = fmt.Errorf("after Apply the host check still lists %q", left)
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", h.Name(), err)
		}
		if err := k.NewService(svc); err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			d := ipvs.Destination{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(1 + j)}), 53),
				DestSettings: ipvs.DestSettings{Weight: 1, Forwarding: ipvs.ForwardDR}}
			if err := k.NewDestination(svc.Key, d); err != nil {
				t.Fatal(err)
			}
		}
		f := NewFollower(k, cfg, quiet)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: stopping the sync daemons: %v", h.Name(), err)
			}
		})
		poll.Until(t, 10*time.Second, h.Name()+" runs master and backup", func() (bool, any) {
			run, _ := k.SyncDaemons()
			return len(run) == 2, run
		})
		ds[i] = director{h, k}
	}
	// Each director schedules 50 flows of its own, three datagrams each:
	// the kernel sends a connection when its third packet passes.
	const flows = 50
	sent := make([]map[uint16]netip.AddrPort, len(ds))
	for i, d := range ds {
		err := d.h.Do(func() error {
			for p := range uint16(flows) {
				port := 10000*uint16(i+1) + p
				c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(vip.Addr(), port)), net.UDPAddrFromAddrPort(vip))
				if err != nil {
					return err
				}
				for range 3 {
					if _, err := c.Write([]byte("flow")); err != nil {
						c.Close()
						return err
					}
				}
				c.Close()
			}
			conns, err := ipvstest.ReadConns()
			sent[i] = map[uint16]netip.AddrPort{}
			for _, c := range conns {
				if p := c.Client.Port(); p >= 10000*uint16(i+1) && p < 10000*uint16(i+1)+flows {
					sent[i][p] = c.Dest // its own, not those synced already
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(sent[i]) != flows {
			t.Fatalf("%s holds %d connections of its own, want %d", d.h.Name(), len(sent[i]), flows)
		}
	}
	// Every director ends up with every director's flows, on the real
	// server their scheduler chose (a partly filled sync message leaves
	// after 2 s).
	start := time.Now()
	for _, d := range ds {
		poll.Until(t, 15*time.Second, d.h.Name()+" holds every director's flows", func() (bool, any) {
			var conns []ipvstest.Conn
			err := d.h.Do(func() (err error) {
				conns, err = ipvstest.ReadConns()
				return err
			})
			if err != nil {
				return false, err
			}
			have := map[uint16]netip.AddrPort{}
			for _, c := range conns {
				have[c.Client.Port()] = c.Dest
			}
			missing, moved := 0, 0
			for j := range ds {
				for port, dest := range sent[j] {
					switch got, ok := have[port]; {
					case !ok:
						missing++
					case got != dest:
						moved++
					}
				}
			}
			if moved > 0 {
				t.Fatalf("%s: %d synced flows on another real server than their scheduler's", d.h.Name(), moved)
			}
			return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(ds)*flows)
		})
		t.Logf("%s holds all %d flows %s after the last was sent", d.h.Name(), len(ds)*flows, time.Since(start).Round(time.Millisecond))
	}
}
