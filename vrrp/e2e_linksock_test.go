package vrrp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// runSet runs every instance of a set of n instances (VRIDs 1..n, one VIP
// each) on h until the test ends.
func runSet(t *testing.T, h *lab.Host, f family, n, prio int) *vrrp.Set {
	t.Helper()
	cfg := &conf.Config{}
	for i := 1; i <= n; i++ {
		ic := instanceConfig(fmt.Sprintf("vi%d", i), prio, f)
		ic.VRID = i
		ic.VirtualAddresses = []netip.Prefix{netip.PrefixFrom(f.host(byte(200+i)).Addr(), f.vip.Bits())}
		cfg.VRRP = append(cfg.VRRP, ic)
	}
	log := slog.New(slog.NewTextHandler(&testWriter{t: t, on: true}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("host", h.Name())
	s := vrrp.NewSet(conf.Compile(cfg), vrrp.Options{Do: h.Do, Logger: log, NotifyTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(s.Instances))
	for _, in := range s.Instances {
		go func() { done <- in.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range s.Instances {
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", h.Name(), err)
			}
		}
	})
	return s
}

// rawVRRPSockets counts the raw sockets of protocol 112 in h's namespace.
func rawVRRPSockets(t *testing.T, h *lab.Host, v6 bool) int {
	t.Helper()
	file := "/proc/thread-self/net/raw"
	if v6 {
		file += "6"
	}
	var n int
	if err := h.Do(func() error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			// local_address is ADDR:PROTO in hex.
			if f := strings.Fields(l); len(f) > 1 && strings.HasSuffix(f[1], ":0070") {
				n++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2ELinkSocketShared: the instances of a set share one raw socket
// per link and family (the kernel clones every VRRP packet for each raw
// socket of the link), each instance gets only the adverts of its VRID,
// and adverts of a VRID nobody here runs still reach every instance's
// Decode and are counted there, exactly once each.
func TestE2ELinkSocketShared(t *testing.T) {
	lab.SkipIfNotRoot(t)
	const n = 3
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			backup := runSet(t, l.Host("r1"), f, n, 100)
			master := runSet(t, l.Host("r2"), f, n, 200)
			poll.True(t, settle, "r2 master and r1 backup of every instance", func() bool {
				for i := range n {
					if master.Instances[i].Status().State != vrrp.StateMaster || backup.Instances[i].Status().State != vrrp.StateBackup {
						return false
					}
				}
				return true
			})
			for _, h := range []string{"r1", "r2"} {
				if got := rawVRRPSockets(t, l.Host(h), f.name == "ipv6"); got != 2 {
					t.Errorf("%s: %d raw VRRP sockets for %d instances on one link, want 2 (prompt and quiet)", h, got, n)
				}
			}
			before := make([]vrrp.Status, n)
			for i, in := range backup.Instances {
				before[i] = in.Status()
			}
			att := l.Host("attacker")
			group, src := vrrp.GroupV4, v4.host(99).Addr()
			if f.name == "ipv6" {
				group, src = vrrp.GroupV6, linkLocal(t, att)
			}
			const unknown = 10
			sent, _ := sendForged(t, att, group, 255, unknown, func(int) []byte { return advert(t, f, 3, 100, src, group) })
			// Meanwhile each master sends its adverts; none of them may
			// reach another VRID's instance (it would count them unknown).
			poll.True(t, settle, "20 more adverts received by every backup instance", func() bool {
				for i, in := range backup.Instances {
					if in.Status().AdvertsRecv < before[i].AdvertsRecv+20 {
						return false
					}
				}
				return true
			})
			for i, in := range backup.Instances {
				st := in.Status()
				poll.True(t, settle, fmt.Sprintf("%s counts the %d adverts of an unknown VRID", st.Name, sent), func() bool {
					return in.Status().Drops["unknown_vrid"] >= before[i].Drops["unknown_vrid"]+uint64(sent)
				})
				if got := in.Status().Drops["unknown_vrid"] - before[i].Drops["unknown_vrid"]; got != uint64(sent) {
					t.Errorf("%s counted %d adverts of unknown VRIDs, want the %d sent: it got its siblings' adverts", st.Name, got, sent)
				}
			}
		})
	}
}

// TestE2EQuietBackup: a backup's adverts from its master wait in the
// quiet socket and are handled when the Master_Down_Timer comes due,
// about three at a time (AdvertsQuiet), while it stays backup; the
// master's own receive path stays prompt (none of its adverts is
// quiet). The takeover timings that must not change with it are
// TestE2EGracefulFailover's (priority 0 after the skew) and
// TestE2EHardFailover's.
func TestE2EQuietBackup(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 100, f))
			r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 200, f))
			all := []*router{r1, r2}
			waitMaster(t, r2, all)
			before := r1.in.Status()
			poll.True(t, settle, "r1 receives 30 more adverts", func() bool {
				return r1.in.Status().AdvertsRecv >= before.AdvertsRecv+30
			})
			assertSteady(t, r2, all, 300*time.Millisecond)
			after := r1.in.Status()
			recv, quiet := after.AdvertsRecv-before.AdvertsRecv, after.AdvertsQuiet-before.AdvertsQuiet
			// All but the ones a prompt read or an event took along.
			if quiet*10 < recv*8 {
				t.Errorf("backup: %d of %d adverts waited in the quiet socket, want at least 80%%", quiet, recv)
			}
			if st := r2.in.Status(); st.AdvertsQuiet != 0 {
				t.Errorf("master: %d quiet adverts, want none", st.AdvertsQuiet)
			}
			t.Logf("backup: %d of %d adverts quiet", quiet, recv)
		})
	}
}
