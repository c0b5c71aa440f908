package sync

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
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
	cfg := conf.ConnSync{Interface: "eth1", VRRPInstance: "vi", SyncID: 42}
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

func TestFollowerErrorsAndRetry(t *testing.T) {
	k := ipvstest.New()
	k.SetFault(func(o ipvs.Op) error {
		if o.Kind == ipvs.OpStartSync {
			return syscall.ENODEV
		}
		return nil
	})
	f := NewFollower(k, conf.ConnSync{Interface: "eth9", SyncID: 1}, quiet)
	err := f.Reconcile()
	if !errors.Is(err, syscall.ENODEV) || !strings.Contains(err.Error(), "starting the backup on eth9 syncid 1") {
		t.Fatalf("reconcile error %v", err)
	}
	if st := f.Status(); st.Failures != 1 || st.LastErr == "" || len(st.Running) != 0 {
		t.Fatalf("status after a failure %+v", st)
	}
	k.SetFault(nil)
	if err := f.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); st.LastErr != "" || len(st.Running) != 1 || st.Changes != 1 {
		t.Fatalf("status after the retry %+v", st)
	}
}

// Run follows role changes and stops its daemon when it ends.
func TestFollowerRun(t *testing.T) {
	k := ipvstest.New()
	f := NewFollower(k, conf.ConnSync{Interface: "eth1", SyncID: 5}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	wait := func(what string, st ipvs.SyncState) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			ds, _ := k.SyncDaemons()
			if len(ds) == 1 && ds[0].State == st {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: kernel runs %v", what, ds)
			}
			time.Sleep(time.Millisecond)
		}
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
