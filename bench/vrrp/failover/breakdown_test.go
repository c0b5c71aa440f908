package failover

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/benchenv"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// BenchmarkTakeoverBreakdown splits haldir's takeover time into its parts,
// to explain BenchmarkFailover's numbers at short intervals. It runs two
// vrrp.Instances in this process (same code as `haldir run`), each in its
// lab host, and combines the wire (the tap's kernel timestamps) with the
// new master's StateChange.At, which the driver takes when it starts
// handling the event that makes it master:
//
//   - wake: StateChange.At minus when the timer was due (the old master's
//     last advert, or its priority-0 advert, as the tap saw it, plus
//     Master_Down_Interval or Skew_Time). This is the receive path of that
//     advert plus the Go timer's lateness;
//   - to advert: StateChange.At to the new master's first advert on the
//     wire (adding the VIPs by netlink, then marshalling and sending);
//   - advert → GARP: the announcer goroutine's first gratuitous ARP.
//
// It also times the netlink calls of adding a VIP alone, in the same lab.
// The timer alone, in an idle process, is go run ./bench/vrrp/timer.
//
// Run (root): go test -run '^$' -bench TakeoverBreakdown -benchtime 1x ./bench/vrrp/failover/
// (HALDIR_BENCH_INTERVALS, default 10ms; HALDIR_BENCH_ROUNDS, default 20).
func BenchmarkTakeoverBreakdown(b *testing.B) {
	lab.SkipIfNotRoot(b)
	p, err := parseFailoverParams(func(k string) string {
		v := os.Getenv(k)
		if v == "" && k == envBenchIntervals {
			return "10ms"
		}
		if v == "" && k == envBenchRounds {
			return "20"
		}
		return v
	})
	if err != nil {
		b.Fatal(err)
	}
	var out strings.Builder
	for b.Loop() {
		out.Reset()
		for _, iv := range p.intervals {
			out.WriteString(takeoverBreakdown(b, iv, p.rounds))
		}
	}
	fmt.Fprint(os.Stdout, out.String())
}

type inProcRouter struct {
	h      *lab.Host
	in     *vrrp.Instance
	addr   netip.Addr
	cancel context.CancelFunc
	done   chan error
	states chan vrrp.StateChange
}

func startInProc(tb testing.TB, h *lab.Host, addr netip.Addr, interval time.Duration) *inProcRouter {
	tb.Helper()
	cfg := conf.VRRPInstance{
		Name: "vi", Interface: lanIf, VRID: vrid, Priority: benchPriority, Version: 3,
		AdvertInterval: conf.Duration(interval), Preempt: true,
		VirtualAddresses: []netip.Prefix{vip4},
		GARP:             conf.GARP{Repeat: garpRepeat},
	}
	r := &inProcRouter{h: h, addr: addr, done: make(chan error, 1), states: make(chan vrrp.StateChange, 64)}
	in, err := vrrp.NewInstance(cfg, vrrp.Options{
		Do:     h.Do,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnStateChange: func(sc vrrp.StateChange) {
			select {
			case r.states <- sc:
			default:
			}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	r.in = in
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- in.Run(ctx) }()
	return r
}

func (r *inProcRouter) stop(tb testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			tb.Errorf("%s: %v", r.h.Name(), err)
		}
	case <-time.After(settle):
		tb.Fatalf("%s: instance did not stop", r.h.Name())
	}
}

// becameMaster returns the At of the next transition to Master.
func (r *inProcRouter) becameMaster(ctx context.Context) (time.Time, error) {
	for {
		select {
		case sc := <-r.states:
			if sc.To == vrrp.StateMaster {
				return sc.At, nil
			}
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s did not become master: %w", r.h.Name(), ctx.Err())
		}
	}
}

func takeoverBreakdown(tb testing.TB, interval time.Duration, rounds int) string {
	l := buildBenchLAN(tb, "vrrpbreak-"+interval.String())
	defer l.Close()
	tap := newWireTap(tb, l)
	defer tap.Stop()
	var rs [2]*inProcRouter
	for i, h := range []string{"r1", "r2"} {
		rs[i] = startInProc(tb, l.Host(h), benchAddrs[h].Addr(), interval)
	}
	type part struct{ wake, toAdvert, toGARP []time.Duration }
	parts := map[string]*part{kindHard: {}, kindGraceful: {}}
	holder := func() int {
		var hs []int
		for i, r := range rs {
			if r.in.Status().State == vrrp.StateMaster {
				hs = append(hs, i)
			}
		}
		if len(hs) != 1 {
			return -1
		}
		return hs[0]
	}
	for _, kind := range []string{kindHard, kindGraceful} {
		for range rounds {
			var mi int
			poll.True(tb, settle, "one master, one backup", func() bool {
				mi = holder()
				return mi >= 0 && rs[1-mi].in.Status().State == vrrp.StateBackup
			})
			m, bk := rs[mi], rs[1-mi]
			// Drain old transitions, then let the backup hear two adverts.
			for len(bk.states) > 0 {
				<-bk.states
			}
			ctx, cancel := context.WithTimeout(context.Background(), masterDown(benchPriority, interval)+settle)
			if _, err := tap.WaitN(ctx, tap.LastSeq(), 2, advertFrom(m.addr, vrid, false)); err != nil {
				tb.Fatal(err)
			}
			prev, err := tap.WaitForAfter(ctx, tap.LastSeq(), advertFrom(m.addr, vrid, false))
			if err != nil {
				tb.Fatal(err)
			}
			t0 := time.Now().Round(0)
			link := m.h.Link(lanIf)
			due := prev.Time.Add(masterDown(benchPriority, interval))
			if kind == kindHard {
				err = link.Cut()
			} else {
				m.cancel()
			}
			if err != nil {
				tb.Fatal(err)
			}
			at, err := bk.becameMaster(ctx)
			if err != nil {
				tb.Fatal(err)
			}
			adv, err := tap.WaitForAfter(ctx, slack(prev.Seq), after(t0, advertFrom(bk.addr, vrid, false)))
			if err != nil {
				tb.Fatal(err)
			}
			garp, err := tap.WaitForAfter(ctx, slack(prev.Seq), after(t0, garpFor(vip4.Addr())))
			if err != nil {
				tb.Fatal(err)
			}
			if kind == kindGraceful {
				resign, err := tap.WaitForAfter(ctx, slack(prev.Seq), after(t0, advertFrom(m.addr, vrid, true)))
				if err != nil {
					tb.Fatal(err)
				}
				due = resign.Time.Add(skewTime(benchPriority, interval))
			}
			cancel()
			p := parts[kind]
			p.wake = append(p.wake, at.Round(0).Sub(due))
			p.toAdvert = append(p.toAdvert, adv.Time.Sub(at.Round(0)))
			p.toGARP = append(p.toGARP, garp.Time.Sub(adv.Time))
			if kind == kindHard {
				if err := link.Restore(); err != nil {
					tb.Fatal(err)
				}
			} else {
				if err := <-m.done; err != nil {
					tb.Fatal(err)
				}
				rs[mi] = startInProc(tb, m.h, m.addr, interval)
			}
		}
	}
	for _, r := range rs {
		r.stop(tb)
	}

	// The pieces alone, in the same namespace and process.
	linkGet, addrAdd, addrDel := netlinkVIPCost(tb, l.Host("r1"), 200)

	var b strings.Builder
	fmt.Fprintf(&b, "\n### haldir takeover breakdown at %v (in-process instances, %d rounds per kind; load average %s; median / max, ms)\n\n", interval, rounds, benchenv.LoadAverage())
	b.WriteString("| kind | wake (receive path + timer lateness) | state change → first advert on the wire | first advert → first GARP |\n|---|---|---|---|\n")
	for _, kind := range []string{kindHard, kindGraceful} {
		p := parts[kind]
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", kind, medMax(p.wake), medMax(p.toAdvert), medMax(p.toGARP))
	}
	fmt.Fprintf(&b, "\nThe netlink calls of adding a VIP alone (200 runs, median / max, ms): LinkByIndex %s, AddrReplace %s, AddrDel %s. "+
		"Timer lateness alone, in a process as idle as a daemon: go run ./bench/vrrp/timer.\n",
		medMax(linkGet), medMax(addrAdd), medMax(addrDel))
	return b.String()
}

// netlinkVIPCost times the netlink calls vipManager.add and remove make
// for one IPv4 VIP: LinkByIndex, AddrReplace, AddrDel.
func netlinkVIPCost(tb testing.TB, h *lab.Host, n int) (get, add, del []time.Duration) {
	err := h.Do(func() error {
		nh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer nh.Close()
		ifi, err := net.InterfaceByName(lanIf)
		if err != nil {
			return err
		}
		vip := netip.MustParsePrefix("198.51.100.1/24")
		a := &netlink.Addr{IPNet: &net.IPNet{IP: vip.Addr().AsSlice(), Mask: net.CIDRMask(vip.Bits(), 32)}}
		for range n {
			t := time.Now()
			l, err := nh.LinkByIndex(ifi.Index)
			if err != nil {
				return err
			}
			get = append(get, time.Since(t))
			t = time.Now()
			if err := nh.AddrReplace(l, a); err != nil {
				return err
			}
			add = append(add, time.Since(t))
			t = time.Now()
			if err := nh.AddrDel(l, a); err != nil {
				return err
			}
			del = append(del, time.Since(t))
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return get, add, del
}
