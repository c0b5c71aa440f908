package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestVRRPReload runs two directors' components in a namespace lab, r1 and
// r2, sharing instance vi1, and reloads r1 through every kind of change: a
// lower priority is taken in place (r2 takes over, r1's instance is the
// same object and never went through Init), an added instance starts, a
// changed address moves in place and is announced, a changed interval
// restarts only that instance, a removed one stops and takes its address
// with it. r2 never restarts anything.
func TestVRRPReload(t *testing.T) {
	l := routerLab(t, "haldir-vrrp-reload", 2)
	instance := func(name string, vrid, prio int, vip string) string {
		return fmt.Sprintf(`
[[vrrp]]
name = %q
interface = "eth0"
vrid = %d
priority = %d
advert_interval = "100ms"
virtual_addresses = [%q]
`, name, vrid, prio, vip)
	}
	parse := func(instances ...string) *conf.Config {
		t.Helper()
		cfg, err := conf.Parse([]byte("[global]\nrouter_id = \"t\"\n"+strings.Join(instances, "")), "t.toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	start := func(h string, cfg *conf.Config) (*components, *syncBuffer) { return startComponents(t, l, h, cfg, nil) }
	waitState := func(c *components, logs *syncBuffer, name string, ok func(vrrp.Status) bool, what string) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, any) {
			in := c.vrrpInstance(name)
			if in == nil {
				return false, name + " not running"
			}
			st := in.Status()
			return ok(st), st
		}, logs.String)
	}
	is := func(s vrrp.State, prio uint8) func(vrrp.Status) bool {
		return func(st vrrp.Status) bool { return st.State == s && st.Priority == prio }
	}
	r1 := l.Host("r1")
	waitAddrs := func(what string, want, gone []string) {
		t.Helper()
		poll.Until(t, 10*time.Second, fmt.Sprintf("%s: r1 eth0 with %v and none of %v", what, want, gone), func() (bool, any) {
			have, err := r1.Addrs("eth0")
			if err != nil {
				t.Fatal(err)
			}
			ok := true
			for _, a := range want {
				ok = ok && slices.Contains(have, netip.MustParsePrefix(a))
			}
			for _, a := range gone {
				ok = ok && !slices.Contains(have, netip.MustParsePrefix(a))
			}
			return ok, have
		})
	}

	vi1 := func(prio int) string { return instance("vi1", 42, prio, "192.0.2.1/24") }
	cfg1 := parse(vi1(150))
	c1, logs1 := start("r1", cfg1)
	c2, logs2 := start("r2", parse(vi1(100)))
	waitState(c1, logs1, "vi1", is(vrrp.StateMaster, 150), "r1 master at 150")
	waitState(c2, logs2, "vi1", is(vrrp.StateBackup, 100), "r2 backup")
	first := c1.vrrpInstance("vi1")
	r2vi1 := c2.vrrpInstance("vi1")

	reload := func(cfg *conf.Config) {
		t.Helper()
		if err := c1.reload(cfg1, cfg); err != nil {
			t.Fatal(err)
		}
		cfg1 = cfg
	}

	t.Run("priority in place", func(t *testing.T) {
		reload(parse(vi1(50)))
		waitState(c2, logs2, "vi1", is(vrrp.StateMaster, 100), "r2 takes over from the lowered r1")
		waitState(c1, logs1, "vi1", is(vrrp.StateBackup, 50), "r1 backup at 50")
		if c1.vrrpInstance("vi1") != first {
			t.Fatal("vi1 was replaced, not updated in place")
		}
		waitFor(t, logs1, `msg="vrrp reload: instance updated in place" instance=vi1 why="changed: priority"`, 1)
		waitFor(t, logs1, `msg="vrrp state change" component=vrrp vrrp_instance=vi1 from=master to=backup`, 1)
		// Logged once: by the instance, not again by the daemon.
		if n := strings.Count(logs1.String(), "from=master to=backup"); n != 1 {
			t.Fatalf("the transition is logged %d times, want once:\n%s", n, logs1.String())
		}
		// The lowered priority is logged once too, with its cause.
		waitFor(t, logs1, `msg="priority change" component=vrrp vrrp_instance=vi1 from=150 to=50 base=50 cause="reload: priority 50"`, 1)
		if strings.Contains(logs1.String(), "to=init") {
			t.Fatalf("vi1 went through Init:\n%s", logs1.String())
		}
	})

	vi2 := func(vip string) string { return instance("vi2", 43, 150, vip) }
	t.Run("added instance starts", func(t *testing.T) {
		reload(parse(vi1(50), vi2("192.0.2.2/24")))
		waitState(c1, logs1, "vi2", is(vrrp.StateMaster, 150), "vi2 master on r1")
		waitAddrs("vi2's address", []string{"192.0.2.2/24"}, []string{"192.0.2.1/24"})
		if c1.vrrpInstance("vi1") != first {
			t.Fatal("adding vi2 replaced vi1")
		}
	})

	t.Run("changed address in place, announced", func(t *testing.T) {
		obs, err := l.Switch("lan").Observe()
		if err != nil {
			t.Fatal(err)
		}
		defer obs.Close()
		mac, err := r1.HardwareAddr("eth0")
		if err != nil {
			t.Fatal(err)
		}
		before, seq := c1.vrrpInstance("vi2"), obs.LastSeq()
		reload(parse(vi1(50), vi2("192.0.2.3/24")))
		waitAddrs("vi2's new address", []string{"192.0.2.3/24"}, []string{"192.0.2.2/24"})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := obs.WaitForAfter(ctx, seq, func(r lab.Record) bool {
			return r.ARP != nil && r.ARP.Gratuitous && r.ARP.SenderIP == netip.MustParseAddr("192.0.2.3") && bytes.Equal(r.ARP.SenderMAC, mac)
		}); err != nil {
			t.Fatalf("no gratuitous ARP for the new address: %v", err)
		}
		if c1.vrrpInstance("vi2") != before || c1.vrrpInstance("vi2").Status().State != vrrp.StateMaster {
			t.Fatal("vi2 was replaced or left master for an address change")
		}
		waitFor(t, logs1, `msg="vrrp reload: instance updated in place" instance=vi2 why="changed: virtual_addresses"`, 1)
	})

	t.Run("changed interval restarts that instance only", func(t *testing.T) {
		before := c1.vrrpInstance("vi2")
		next := parse(vi1(50), vi2("192.0.2.3/24"))
		next.VRRP[1].AdvertInterval = conf.Duration(200 * time.Millisecond)
		reload(next)
		waitState(c1, logs1, "vi2", func(st vrrp.Status) bool { return st.State == vrrp.StateMaster && c1.vrrpInstance("vi2") != before }, "a new vi2 master on r1")
		waitAddrs("vi2's address back", []string{"192.0.2.3/24"}, nil)
		waitFor(t, logs1, `msg="vrrp reload: stopping instance" instance=vi2 change=restart why="changed: advert_interval"`, 1)
		if c1.vrrpInstance("vi1") != first {
			t.Fatal("changing vi2 replaced vi1")
		}
	})

	t.Run("removed instance stops", func(t *testing.T) {
		reload(parse(vi1(50)))
		if c1.vrrpInstance("vi2") != nil {
			t.Fatal("vi2 still running after its removal")
		}
		waitAddrs("vi2's address gone", nil, []string{"192.0.2.3/24"})
	})

	t.Run("an instance that failed to start is retried", func(t *testing.T) {
		vi3 := strings.ReplaceAll(instance("vi3", 44, 150, "198.51.100.10/24"), `"eth0"`, `"extra0"`)
		reload(parse(vi1(50), vi3))
		poll.True(t, 10*time.Second, "vi3 on a missing interface reported as not running",
			func() bool { return c1.notRunningSnapshot()["vrrp vi3"] != "" }, logs1.String)
		nl := r1.Netlink()
		// A veth pair inside r1 (this kernel has no dummy links).
		if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "extra0"}, PeerName: "extra0p"}); err != nil {
			t.Fatal(err)
		}
		if p, err := nl.LinkByName("extra0p"); err != nil || nl.LinkSetUp(p) != nil {
			t.Fatalf("extra0p up: %v", err)
		}
		if err := r1.AddAddr("extra0", netip.MustParsePrefix("198.51.100.1/24")); err != nil {
			t.Fatal(err)
		}
		if ln, err := nl.LinkByName("extra0"); err != nil || nl.LinkSetUp(ln) != nil {
			t.Fatalf("extra0 up: %v", err)
		}
		reload(cfg1) // the same configuration again
		waitState(c1, logs1, "vi3", is(vrrp.StateMaster, 150), "vi3 master once its interface exists")
		if msg, ok := c1.notRunningSnapshot()["vrrp vi3"]; ok {
			t.Fatalf("vi3 runs but is still reported as not running: %s", msg)
		}
		waitFor(t, logs1, `msg="vrrp reload: starting instance" instance=vi3 change=restart why="it was not running"`, 1)
		reload(parse(vi1(50)))
	})

	t.Run("priority back in place", func(t *testing.T) {
		reload(parse(vi1(150)))
		waitState(c1, logs1, "vi1", is(vrrp.StateMaster, 150), "r1 preempts at 150")
		waitState(c2, logs2, "vi1", is(vrrp.StateBackup, 100), "r2 backup again")
		if c1.vrrpInstance("vi1") != first || c2.vrrpInstance("vi1") != r2vi1 {
			t.Fatal("an instance was replaced")
		}
	})

	// A reload to a unicast_source of another interface (extra0, from the
	// subtest above) restarts vi1 into Fault, saying why, instead of a
	// master whose adverts r2 never takes for its peer's; the next reload
	// fixes it.
	t.Run("unicast_source of another interface faults", func(t *testing.T) {
		reload(parse(vi1(150) + "unicast_source = \"198.51.100.1\"\nunicast_peers = [\"192.0.2.12\"]\n"))
		why := "unicast_source 198.51.100.1 is not an address of eth0 (it is on extra0) (fault)"
		waitState(c1, logs1, "vi1", func(st vrrp.Status) bool {
			return st.State == vrrp.StateFault && slices.Equal(st.Failing, []string{why})
		}, "r1's vi1 in fault")
		waitFor(t, logs1, `to=fault reason="fault at startup: `+why+`"`, 1)
		waitState(c2, logs2, "vi1", is(vrrp.StateMaster, 100), "r2 master")
		reload(parse(vi1(150)))
		waitState(c1, logs1, "vi1", is(vrrp.StateMaster, 150), "r1 master again")
		waitState(c2, logs2, "vi1", is(vrrp.StateBackup, 100), "r2 backup again")
	})
}

// TestVRRPReloadSyncGroup reloads a sync group: a change to one member
// restarts both (they share the group), a priority change stays in place,
// dissolving the group restarts both as lone instances, and every group
// the reloads left behind is closed (no notifier outlives its members).
func TestVRRPReloadSyncGroup(t *testing.T) {
	l := oneRouterLab(t, "haldir-vrrp-reload-group")
	src := func(prio int, interval string, group bool) *conf.Config {
		t.Helper()
		s := "[global]\nrouter_id = \"t\"\n"
		for i, name := range []string{"va", "vb"} {
			s += fmt.Sprintf("[[vrrp]]\nname = %q\ninterface = \"eth0\"\nvrid = %d\npriority = %d\nadvert_interval = %q\nvirtual_addresses = [\"192.0.2.%d/24\"]\n",
				name, 50+i, prio, interval, 100+i)
		}
		if group {
			s += "[[vrrp_sync_group]]\nname = \"g\"\ninstances = [\"va\", \"vb\"]\n"
		}
		cfg, err := conf.Parse([]byte(s), "t.toml")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var logs syncBuffer
	c := newComponents(slog.New(slog.NewTextHandler(&logs, nil)))
	c.vrrpDo = l.Host("r1").Do
	cfg := src(150, "100ms", true)
	if err := c.start(cfg); err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	bothMaster := func(what string, prio uint8) {
		t.Helper()
		poll.True(t, 10*time.Second, fmt.Sprintf("%s: both master at %d", what, prio), func() bool {
			ok := true
			for _, n := range []string{"va", "vb"} {
				in := c.vrrpInstance(n)
				ok = ok && in != nil && in.Status().State == vrrp.StateMaster && in.Status().Priority == prio
			}
			return ok
		}, logs.String)
	}
	groups := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.vrrpGroups)
	}
	bothMaster("start", 150)
	va, vb := c.vrrpInstance("va"), c.vrrpInstance("vb")
	g := va.Group()
	if g == nil || vb.Group() != g || groups() != 1 {
		t.Fatalf("members do not share one running group (%d groups)", groups())
	}

	reload := func(next *conf.Config) {
		t.Helper()
		if err := c.reload(cfg, next); err != nil {
			t.Fatal(err)
		}
		cfg = next
	}
	reload(src(140, "100ms", true))
	bothMaster("priority in place", 140)
	if c.vrrpInstance("va") != va || c.vrrpInstance("vb") != vb {
		t.Fatal("a priority change replaced a group member")
	}

	next := src(140, "100ms", true)
	next.VRRP[1].AdvertInterval = conf.Duration(200 * time.Millisecond)
	reload(next)
	bothMaster("one member's interval restarts the group", 140)
	va2, vb2 := c.vrrpInstance("va"), c.vrrpInstance("vb")
	if va2 == va || vb2 == vb || va2.Group() == g || va2.Group() != vb2.Group() || groups() != 1 {
		t.Fatalf("after a member's change: va replaced %v, vb replaced %v, one new shared group %v, %d groups running",
			va2 != va, vb2 != vb, va2.Group() != g && va2.Group() == vb2.Group(), groups())
	}
	waitFor(t, &logs, `msg="vrrp reload: stopping instance" instance=va change=restart why="sync group \"g\" member \"vb\": restart"`, 1)

	reload(src(140, "100ms", false))
	bothMaster("dissolved group", 140)
	if a := c.vrrpInstance("va"); a == va2 || a.Group() != nil || groups() != 0 {
		t.Fatalf("after dissolving the group: va replaced %v, group %v, %d groups running", a != va2, a.Group(), groups())
	}
}
