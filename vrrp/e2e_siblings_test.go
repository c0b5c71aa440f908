package vrrp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
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

// TestE2ESiblingAdvertsFiltered: each instance's socket filter has the
// kernel drop its siblings' adverts (same process, same link), so a
// backup of n instances reads n adverts per interval, not n², while
// adverts of VRIDs nobody here runs still reach Decode and are counted.
func TestE2ESiblingAdvertsFiltered(t *testing.T) {
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
			before := make([]vrrp.Status, n)
			for i, in := range backup.Instances {
				before[i] = in.Status()
			}
			// 20 adverts of each sibling reach the link meanwhile.
			poll.True(t, settle, "20 more adverts received by every backup instance", func() bool {
				for i, in := range backup.Instances {
					if in.Status().AdvertsRecv < before[i].AdvertsRecv+20 {
						return false
					}
				}
				return true
			})
			att := l.Host("attacker")
			group, src := vrrp.GroupV4, v4.host(99).Addr()
			if f.name == "ipv6" {
				group, src = vrrp.GroupV6, linkLocal(t, att)
			}
			const unknown = 10
			sent, _ := sendForged(t, att, group, 255, unknown, func(int) []byte { return advert(t, f, 3, 100, src, group) })
			for i, in := range backup.Instances {
				poll.True(t, settle, fmt.Sprintf("%s counts the %d adverts of an unknown VRID", in.Status().Name, sent), func() bool {
					return in.Status().Drops["unknown_vrid"] >= before[i].Drops["unknown_vrid"]+uint64(sent)
				})
				if got := in.Status().SiblingReads - before[i].SiblingReads; got != 0 {
					t.Errorf("%s read %d adverts of its siblings; the kernel should have dropped them", in.Status().Name, got)
				}
			}
		})
	}
}
