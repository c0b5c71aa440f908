package daemon

import (
	"context"
	"log/slog"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
)

// startComponents runs cfg's components and the daemon's loop with VRRP
// in host h of l and, when k is set, the in-memory IPVS kernel; they stop
// at the test's end.
func startComponents(t *testing.T, l *lab.Lab, h string, cfg *conf.Config, k *ipvstest.Kernel) (*Daemon, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	opts := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), VRRPDo: l.Host(h).Do, Notify: func(string) {}}
	if k != nil {
		opts.NewKernel = func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }
	}
	return startLoop(t, cfg, opts), &logs
}

// startLoop starts cfg's components and runs the loop (without signals,
// control socket or metrics) until the test's end. A cfg with the default
// state_dir gets one of the test's own: tests never share the host's.
func startLoop(t *testing.T, cfg *conf.Config, opts Options) *Daemon {
	t.Helper()
	if cfg.Global.StateDir == conf.DefaultStateDir {
		cfg.Global.StateDir = t.TempDir()
	}
	d := New(cfg, opts)
	if err := d.start(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go d.loop(ctx, nil)
	t.Cleanup(func() { cancel(); <-d.done })
	return d
}

// reloadOnLoop applies a reload from old to next on the loop, as SIGHUP
// does after reading the file.
func (d *Daemon) reloadOnLoop(old, next *conf.Config) (err error) {
	d.call(func() { err = d.reload(old, next) })
	return err
}

// notRunningOnLoop is notRunningNow, read on the loop.
func (d *Daemon) notRunningOnLoop() (nr map[string]string) {
	d.call(func() { nr = d.notRunningNow() })
	return nr
}

// syncFollower is the running conn-sync follower, read on the loop.
func (d *Daemon) syncFollower() (f *connsync.Follower) {
	d.call(func() { f = d.follower })
	return f
}
