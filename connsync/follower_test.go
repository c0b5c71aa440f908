package connsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/vrrp"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ops(k *ipvstest.Kernel) string {
	var out []string
	for _, o := range k.Writes() {
		out = append(out, o.String())
	}
	k.ResetWrites()
	return strings.Join(out, "; ")
}

func TestRole(t *testing.T) {
	for s, want := range map[vrrp.State]ipvs.SyncState{
		vrrp.StateMaster: ipvs.SyncMaster, vrrp.StateBackup: ipvs.SyncBackup,
		vrrp.StateFault: ipvs.SyncBackup, vrrp.StateInit: ipvs.SyncBackup,
	} {
		if got := Role(s); got != want {
			t.Errorf("Role(%v) = %v, want %v", s, got, want)
		}
	}
}

func TestFollowerReconcile(t *testing.T) {
	cfg := conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}
	for _, tc := range []struct {
		name    string
		pre     bool              // a first Reconcile before steps
		running []ipvs.SyncDaemon // started before the follower
		steps   func(f *Follower)
		want    string // the kernel writes of the last Reconcile
		final   []ipvs.SyncDaemon
	}{
		{"starts as backup", false, nil, func(*Follower) {},
			"start_sync_daemon backup on eth1 syncid 42",
			[]ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 42}}},
		{"master: backup stops, master starts", true, nil, func(f *Follower) { f.SetRole(ipvs.SyncMaster) },
			"stop_sync_daemon backup; start_sync_daemon master on eth1 syncid 42",
			[]ipvs.SyncDaemon{{State: ipvs.SyncMaster, Interface: "eth1", SyncID: 42}}},
		{"unchanged: nothing written", false, []ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 42, Port: 8848, TTL: 1, Group: netip.MustParseAddr("224.0.0.81")}},
			func(*Follower) {}, "",
			[]ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 42, Port: 8848, TTL: 1, Group: netip.MustParseAddr("224.0.0.81")}}},
		{"a new sync_id restarts it", true, nil, func(f *Follower) {
			c := cfg
			c.SyncID = 43
			f.SetConfig(c)
		}, "stop_sync_daemon backup; start_sync_daemon backup on eth1 syncid 43",
			[]ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 43}}},
		{"a foreign master is replaced", false, []ipvs.SyncDaemon{{State: ipvs.SyncMaster, Interface: "eth0", SyncID: 1}}, func(*Follower) {},
			"stop_sync_daemon master; start_sync_daemon backup on eth1 syncid 42",
			[]ipvs.SyncDaemon{{State: ipvs.SyncBackup, Interface: "eth1", SyncID: 42}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := ipvstest.New()
			for _, d := range tc.running {
				if err := k.StartSyncDaemon(d); err != nil {
					t.Fatal(err)
				}
			}
			f := NewFollower(k, cfg, quiet)
			if tc.pre {
				if err := f.Reconcile(); err != nil {
					t.Fatal(err)
				}
			}
			k.ResetWrites()
			tc.steps(f)
			if err := f.Reconcile(); err != nil {
				t.Fatal(err)
			}
			if got := ops(k); got != tc.want {
				t.Fatalf("kernel writes %q, want %q", got, tc.want)
			}
			got, _ := k.SyncDaemons()
			if len(got) != len(tc.final) || (len(got) > 0 && got[0] != tc.final[0]) {
				t.Fatalf("kernel runs %v, want %v", got, tc.final)
			}
			if err := f.Reconcile(); err != nil || ops(k) != "" {
				t.Fatal("a second reconcile wrote to the kernel")
			}
		})
	}
}

// TestFollowerReloadRestarts: a reload that changes one of the daemon's
// settings (group, port, TTL, maximum length) restarts it with the new
// value in either role, since the kernel cannot change a running daemon;
// one that only writes down what the kernel already runs (its defaults for
// unset settings) leaves it alone.
func TestFollowerReloadRestarts(t *testing.T) {
	set := conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, McastGroup: netip.MustParseAddr("239.0.0.1"),
		McastPort: 8850, McastTTL: 2, MaxLen: 1400}
	// What the kernel reports for a daemon started with none of them set.
	defaults := ipvs.SyncDaemon{Interface: "eth1", SyncID: 42, Group: netip.MustParseAddr("224.0.0.81"),
		Port: 8848, TTL: 1, MaxLen: 1472}
	with := func(c conf.ConnSyncSpec, f func(*conf.ConnSyncSpec)) conf.ConnSyncSpec { f(&c); return c }
	for _, tc := range []struct {
		name    string
		from    conf.ConnSyncSpec
		running *ipvs.SyncDaemon // what the kernel reports at first; nil: what from starts
		to      conf.ConnSyncSpec
		want    string // the new daemon's settings; "": nothing written
	}{
		{"group", set, nil, with(set, func(c *conf.ConnSyncSpec) { c.McastGroup = netip.MustParseAddr("239.0.0.2") }),
			"syncid 42 group 239.0.0.2 port 8850 ttl 2 maxlen 1400"},
		{"port", set, nil, with(set, func(c *conf.ConnSyncSpec) { c.McastPort = 8851 }),
			"syncid 42 group 239.0.0.1 port 8851 ttl 2 maxlen 1400"},
		{"ttl", set, nil, with(set, func(c *conf.ConnSyncSpec) { c.McastTTL = 3 }),
			"syncid 42 group 239.0.0.1 port 8850 ttl 3 maxlen 1400"},
		{"maxlen", set, nil, with(set, func(c *conf.ConnSyncSpec) { c.MaxLen = 1200 }),
			"syncid 42 group 239.0.0.1 port 8850 ttl 2 maxlen 1200"},
		{"unchanged", set, nil, set, ""},
		{"group set over the kernel's default", conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}, &defaults,
			conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, McastGroup: netip.MustParseAddr("239.0.0.2")}, "syncid 42 group 239.0.0.2"},
		{"port set over the kernel's default", conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}, &defaults,
			conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, McastPort: 8851}, "syncid 42 port 8851"},
		{"ttl set over the kernel's default", conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}, &defaults,
			conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, McastTTL: 3}, "syncid 42 ttl 3"},
		{"maxlen set over the kernel's default", conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}, &defaults,
			conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, MaxLen: 1200}, "syncid 42 maxlen 1200"},
		{"the kernel's defaults written down", conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}, &defaults,
			conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 42, McastGroup: defaults.Group, McastPort: 8848, McastTTL: 1, MaxLen: 1472}, ""},
	} {
		for _, role := range []ipvs.SyncState{ipvs.SyncBackup, ipvs.SyncMaster} {
			t.Run(tc.name+"/"+role.String(), func(t *testing.T) {
				k := ipvstest.New()
				if tc.running != nil {
					d := *tc.running
					d.State = role
					if err := k.StartSyncDaemon(d); err != nil {
						t.Fatal(err)
					}
				}
				f := NewFollower(k, tc.from, quiet)
				f.SetRole(role)
				if err := f.Reconcile(); err != nil {
					t.Fatal(err)
				}
				before, _ := k.SyncDaemons()
				k.ResetWrites()
				f.SetConfig(tc.to)
				if err := f.Reconcile(); err != nil {
					t.Fatal(err)
				}
				want := ""
				if tc.want != "" {
					want = fmt.Sprintf("stop_sync_daemon %s; start_sync_daemon %s on eth1 %s", role, role, tc.want)
				}
				if got := ops(k); got != want {
					t.Fatalf("kernel writes %q, want %q", got, want)
				}
				wantRun := before
				if tc.want != "" {
					d := DaemonConfig(tc.to)
					d.State = role
					wantRun = []ipvs.SyncDaemon{d}
				}
				if after, _ := k.SyncDaemons(); !slices.Equal(after, wantRun) {
					t.Fatalf("kernel runs %v, want %v", after, wantRun)
				}
				if err := f.Reconcile(); err != nil || ops(k) != "" {
					t.Fatal("a second reconcile wrote to the kernel")
				}
			})
		}
	}
}

// TestFollowerErrorsAndRetry: a failed reconcile is counted and shown;
// the first failure in a row is a warning (the retry usually works), a
// second one an error, and the recovery says so.
func TestFollowerErrorsAndRetry(t *testing.T) {
	k := ipvstest.New()
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpStartSync {
			return syscall.ENODEV
		}
		return nil
	})
	var logs bytes.Buffer
	f := NewFollower(k, conf.ConnSyncSpec{Interface: "eth9", VRRPInstance: "vi", SyncID: 1}, slog.New(slog.NewTextHandler(&logs, nil)))
	levels := func() string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if i := strings.Index(l, "level="); i >= 0 && !strings.Contains(l, "sync daemon started") {
				out = append(out, strings.Fields(l[i:])[0])
			}
		}
		logs.Reset()
		return strings.Join(out, " ")
	}
	err := f.Reconcile()
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "starting the backup on eth9 syncid 1") {
		t.Fatalf("reconcile error %v", err)
	}
	if st := f.Status(); st.Failures != 1 || st.LastErr == "" || len(st.Running) != 0 {
		t.Fatalf("status after a failure %+v", st)
	}
	if got := levels(); got != "level=WARN" {
		t.Errorf("first failure logged %q, want one warning", got)
	}
	if err := f.Reconcile(); err == nil {
		t.Fatal("the second attempt worked with the fault still on")
	}
	if got := levels(); got != "level=ERROR" {
		t.Errorf("second failure in a row logged %q, want one error", got)
	}
	k.SetFault(nil)
	if err := f.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); st.LastErr != "" || len(st.Running) != 1 || st.Changes != 1 || st.Failures != 2 {
		t.Fatalf("status after the retry %+v", st)
	}
	if got := levels(); got != "level=INFO" {
		t.Errorf("recovery logged %q, want the info line that it is as wanted again", got)
	}
}

// Run follows role changes and stops its daemon when it ends.
func TestFollowerRun(t *testing.T) {
	k := ipvstest.New()
	f := NewFollower(k, conf.ConnSyncSpec{Interface: "eth1", VRRPInstance: "vi", SyncID: 5}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	wait := func(what string, st ipvs.SyncState) {
		t.Helper()
		poll.Until(t, 5*time.Second, what, func() (bool, any) {
			ds, _ := k.SyncDaemons()
			return len(ds) == 1 && ds[0].State == st, ds
		})
	}
	wait("backup at start", ipvs.SyncBackup)
	f.SetRole(Role(vrrp.StateMaster))
	wait("master after the VRRP master", ipvs.SyncMaster)
	f.SetRole(Role(vrrp.StateFault))
	wait("backup after a fault", ipvs.SyncBackup)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ds, _ := k.SyncDaemons(); len(ds) != 0 {
		t.Fatalf("daemons left after Run ended: %v", ds)
	}
}

// TestFollowerNWay: without a VRRP instance the master and the backup run
// together whatever role SetRole asks, are reconciled against what the
// kernel runs, restarted by a reload that changes them, switched by a
// reload to or from following an instance, and stopped when Run ends.
func TestFollowerNWay(t *testing.T) {
	nway := conf.ConnSyncSpec{Interface: "eth1", SyncID: 7}
	both := func(c conf.ConnSyncSpec) []ipvs.SyncDaemon {
		m, b := DaemonConfig(c), DaemonConfig(c)
		m.State, b.State = ipvs.SyncMaster, ipvs.SyncBackup
		return []ipvs.SyncDaemon{m, b}
	}
	with := func(c conf.ConnSyncSpec, f func(*conf.ConnSyncSpec)) conf.ConnSyncSpec { f(&c); return c }
	for _, tc := range []struct {
		name    string
		from    conf.ConnSyncSpec
		running []ipvs.SyncDaemon // in the kernel before the follower
		steps   func(f *Follower)
		want    string // the writes of the last Reconcile
		final   []ipvs.SyncDaemon
	}{
		{"starts both", nway, nil, func(*Follower) {},
			"start_sync_daemon master on eth1 syncid 7; start_sync_daemon backup on eth1 syncid 7", both(nway)},
		{"a VRRP role changes nothing", nway, both(nway), func(f *Follower) { f.SetRole(ipvs.SyncMaster); f.SetRole(ipvs.SyncBackup) },
			"", both(nway)},
		{"the missing backup is started", nway, both(nway)[:1], func(*Follower) {},
			"start_sync_daemon backup on eth1 syncid 7", both(nway)},
		{"a foreign syncid is replaced", nway, both(with(nway, func(c *conf.ConnSyncSpec) { c.SyncID = 9 })), func(*Follower) {},
			"stop_sync_daemon master; stop_sync_daemon backup; start_sync_daemon master on eth1 syncid 7; start_sync_daemon backup on eth1 syncid 7",
			both(nway)},
		{"a reload of the port restarts both", nway, nil, func(f *Follower) {
			f.Reconcile()
			f.SetConfig(with(nway, func(c *conf.ConnSyncSpec) { c.McastPort = 8850 }))
		}, "stop_sync_daemon master; stop_sync_daemon backup; start_sync_daemon master on eth1 syncid 7 port 8850; start_sync_daemon backup on eth1 syncid 7 port 8850",
			both(with(nway, func(c *conf.ConnSyncSpec) { c.McastPort = 8850 }))},
		{"a reload to following a backup instance stops the master", nway, nil, func(f *Follower) {
			f.Reconcile()
			f.SetConfig(with(nway, func(c *conf.ConnSyncSpec) { c.VRRPInstance = "vi" }))
		}, "stop_sync_daemon master", both(nway)[1:]},
		{"a reload from following a master to N-way starts the backup",
			with(nway, func(c *conf.ConnSyncSpec) { c.VRRPInstance = "vi" }), nil, func(f *Follower) {
				f.SetRole(ipvs.SyncMaster)
				f.Reconcile()
				f.SetConfig(nway)
			}, "start_sync_daemon backup on eth1 syncid 7", both(nway)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := ipvstest.New()
			for _, d := range tc.running {
				if err := k.StartSyncDaemon(d); err != nil {
					t.Fatal(err)
				}
			}
			f := NewFollower(k, tc.from, quiet)
			tc.steps(f)
			k.ResetWrites()
			if err := f.Reconcile(); err != nil {
				t.Fatal(err)
			}
			if got := ops(k); got != tc.want {
				t.Fatalf("kernel writes %q, want %q", got, tc.want)
			}
			if got, _ := k.SyncDaemons(); !slices.Equal(got, tc.final) {
				t.Fatalf("kernel runs %v, want %v", got, tc.final)
			}
			st := f.Status()
			if wantRoles := len(tc.final); len(st.Wanted()) != wantRoles || len(st.Running) != wantRoles || st.NWay != (wantRoles == 2) {
				t.Fatalf("status %+v (wanted %v)", st, st.Wanted())
			}
			if err := f.Reconcile(); err != nil || ops(k) != "" {
				t.Fatal("a second reconcile wrote to the kernel")
			}
		})
	}
	t.Run("Run stops both", func(t *testing.T) {
		k := ipvstest.New()
		f := NewFollower(k, nway, quiet)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		poll.Until(t, 5*time.Second, "master and backup", func() (bool, any) {
			ds, _ := k.SyncDaemons()
			return slices.Equal(ds, both(nway)), ds
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if ds, _ := k.SyncDaemons(); len(ds) != 0 {
			t.Fatalf("daemons left after Run ended: %v", ds)
		}
	})
}
