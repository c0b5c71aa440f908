package vrrp_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// netlinkSockets reads the netlink sockets of h's network namespace
// (/proc/net/netlink as seen from inside it): inode -> protocol.
func netlinkSockets(t testing.TB, h *lab.Host) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := h.Do(func() error {
		// thread-self: the namespace of this (locked) thread, not of the
		// process's main thread that /proc/self/net would show.
		f, err := os.Open("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // header: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 {
				return fmt.Errorf("short line %q", sc.Text())
			}
			proto, err := strconv.Atoi(fs[1])
			if err != nil {
				return fmt.Errorf("line %q: %w", sc.Text(), err)
			}
			out[fs[9]] = proto
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestE2ENetlinkRouteOnly checks that a running instance opens netlink
// sockets of the NETLINK_ROUTE family (protocol 0) only. A handle with every
// family (netlink.NewHandle()) also opens NETLINK_XFRM and
// NETLINK_NETFILTER, which fails with "protocol not supported" on hosts
// that cannot load xfrm_user or nfnetlink (kernel.modules_disabled=1,
// minimal kernels).
func TestE2ENetlinkRouteOnly(t *testing.T) {
	lab.SkipIfNotRoot(t)
	for _, f := range []family{v4, v6} {
		t.Run(f.name, func(t *testing.T) {
			l := buildLAN(t, 1)
			h := l.Host("r1")
			before := netlinkSockets(t, h)
			c := instanceConfig("vi", 100, f)
			c.UseVMAC, c.VMACInterface = true, vmacIf // the macvlan too goes through the handle
			r := startRouter(t, h, c)
			waitFor(t, "r1 master", settle, func() bool { return r.state() == vrrp.StateMaster })
			opened := 0
			for inode, proto := range netlinkSockets(t, h) {
				if _, ok := before[inode]; ok {
					continue
				}
				opened++
				if proto != 0 {
					t.Errorf("the instance holds a netlink socket of protocol %d (inode %s); want NETLINK_ROUTE (0) only", proto, inode)
				}
			}
			if opened == 0 {
				t.Fatal("no netlink socket of the instance found: the test does not see what it checks")
			}
		})
	}
}
