package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/internal/statefile"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// runOnce starts cfg's components and loop; stop ends them as SIGTERM
// would, so the test can start the next run (a restart) on the same
// state directory and kernel.
func runOnce(t *testing.T, cfg *conf.Config, opts Options) (d *Daemon, stop func()) {
	t.Helper()
	d = New(cfg, opts)
	if err := d.start(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go d.loop(ctx, nil)
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-d.done
		}
	}
	t.Cleanup(stop)
	return d, stop
}

// fakeKernelOptions runs a daemon on the fake kernel k, logging to logs.
func fakeKernelOptions(k *ipvstest.Kernel, logs *syncBuffer) Options {
	return Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Notify: func(string) {},
		NewKernel: func() (ipvs.Kernel, func(), error) { return k, func() {}, nil }}
}

func drainConfig(t *testing.T, stateDir string, weightA int, withA bool) *conf.Config {
	t.Helper()
	a := ""
	if withA {
		a = fmt.Sprintf("\n[[virtual_server.real_server]]\nname = \"a\"\naddress = \"10.0.0.21\"\nport = 80\nweight = %d\n", weightA)
	}
	src := fmt.Sprintf(`[global]
router_id = "t"
state_dir = %q

[[virtual_server]]
name = "web"
address = "192.0.2.1"
port = 80
scheduler = "wrr"
%s
[[virtual_server.real_server]]
name = "b"
address = "10.0.0.22"
port = 80
weight = 20
`, stateDir, a)
	return mustParse(t, src)
}

var (
	webKey = ipvs.ServiceKey{Protocol: ipvs.TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	realA  = netip.MustParseAddrPort("10.0.0.21:80")
)

// kernelWeight is real's weight in k's web service, or -1 when absent.
func kernelWeight(t *testing.T, k *ipvstest.Kernel, real netip.AddrPort) int {
	t.Helper()
	ds, err := k.GetDestinations(webKey)
	if err != nil {
		return -1
	}
	for _, d := range ds {
		if d.Addr == real {
			return d.Weight
		}
	}
	return -1
}

func waitWeight(t *testing.T, k *ipvstest.Kernel, logs *syncBuffer, want int, what string) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, func() (bool, any) {
		w := kernelWeight(t, k, realA)
		return w == want, fmt.Sprintf("kernel weight of %s: %d", realA, w)
	}, logs.String)
}

// weightWrites lists the kernel's writes of realA's weight.
func weightWrites(k *ipvstest.Kernel) []string {
	var out []string
	for _, op := range k.Writes() {
		if (op.Kind == ipvs.OpNewDest || op.Kind == ipvs.OpUpdDest) && op.Dest.Addr == realA {
			out = append(out, op.String())
		}
	}
	return out
}

// TestDrainKeptAcrossReloadAndRestart: haldir drain holds a real server
// at weight 0 (by address or by name); a reload that changes its
// configured weight keeps it there, a restart keeps it there without ever
// writing another weight, status shows it, undrain brings the configured
// weight back, and a reload that removes the server drops the drain from
// the state file.
func TestDrainKeptAcrossReloadAndRestart(t *testing.T) {
	stateDir := t.TempDir()
	k := ipvstest.New()
	var logs syncBuffer
	opts := fakeKernelOptions(k, &logs)
	cfg := drainConfig(t, stateDir, 10, true)
	d, stop := runOnce(t, cfg, opts)
	waitWeight(t, k, &logs, 10, "configured weight 10")

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			req  control.DrainRequest
			want string
		}{
			{control.DrainRequest{Real: "10.0.0.99:80"}, "no real server 10.0.0.99:80 in any virtual server"},
			{control.DrainRequest{Real: "10.0.0.21:80", VirtualServer: "mail"}, `no virtual server named "mail"`},
			{control.DrainRequest{Real: "zz"}, `"zz" is neither ADDRESS:PORT nor the name of a real server of any virtual server`},
			{control.DrainRequest{Real: "a", Weight: 70000}, "weight 70000 out of range 0..65535"},
		} {
			_, err := d.Drain(tc.req)
			var re *control.RequestError
			if !errors.As(err, &re) || err.Error() != tc.want {
				t.Errorf("%+v: %v, want the request error %q", tc.req, err, tc.want)
			}
		}
		if _, err := d.Undrain(control.DrainRequest{Real: "a"}); err == nil || err.Error() != "a is not drained" {
			t.Errorf("undrain of a server not drained: %v", err)
		}
		if _, err := os.Stat(filepath.Join(stateDir, operatorFile)); !os.IsNotExist(err) {
			t.Errorf("refused requests wrote the state file: %v", err)
		}
	})

	reply, err := d.Drain(control.DrainRequest{Real: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Drains) != 1 || reply.Drains[0].Real != realA || reply.Drains[0].VirtualServer != "web" || reply.Drains[0].RealName != "a" {
		t.Fatalf("reply %+v", reply)
	}
	waitWeight(t, k, &logs, 0, "drained to 0")
	// The director publishes its snapshot after the pass that wrote the
	// kernel, so status may trail the fake kernel by that one pass.
	var st control.Status
	poll.Until(t, 10*time.Second, "status shows the drain", func() (bool, any) {
		st = d.Status()
		rs := st.Services[0].Reals[0]
		return len(st.Drains) == 1 && rs.Overridden && rs.OverrideWeight == 0 && rs.KernelWeight == 0, fmt.Sprintf("drains %+v, real %+v", st.Drains, rs)
	}, logs.String)
	if api := st.API(); !api.VirtualServers[0].RealServers[0].DrainedByOp || len(api.Drains) != 1 {
		t.Errorf("status --json: %+v, drains %+v", api.VirtualServers[0].RealServers[0], api.Drains)
	}

	// A reload changing its weight: the drain stays, the new weight is
	// what status calls configured.
	next := drainConfig(t, stateDir, 50, true)
	if err := d.reloadOnLoop(cfg, next); err != nil {
		t.Fatal(err)
	}
	d.call(func() { d.cfg = next })
	cfg = next
	poll.Until(t, 10*time.Second, "configured weight 50 in status", func() (bool, any) {
		rs := d.Status().Services[0].Reals[0]
		return rs.ConfiguredWeight == 50, rs
	}, logs.String)
	if w := kernelWeight(t, k, realA); w != 0 {
		t.Fatalf("after the reload the kernel has weight %d, want 0", w)
	}

	// A restart: the first pass keeps it at 0; no other weight is written.
	stop()
	k.ResetWrites()
	d, stop = runOnce(t, cfg, opts)
	waitFor(t, &logs, `msg="operator state loaded"`, 1)
	poll.Until(t, 10*time.Second, "a pass after the restart", func() (bool, any) {
		c := d.dir.Counters()
		return c.Passes > 0, c
	}, logs.String)
	if w := weightWrites(k); kernelWeight(t, k, realA) != 0 || len(w) != 0 {
		t.Fatalf("after the restart: kernel weight %d, writes of its weight %q", kernelWeight(t, k, realA), w)
	}

	// Undrain by address: the configured weight is back.
	if _, err := d.Undrain(control.DrainRequest{Real: "10.0.0.21:80", VirtualServer: "web"}); err != nil {
		t.Fatal(err)
	}
	waitWeight(t, k, &logs, 50, "configured weight 50 after undrain")
	poll.Until(t, 10*time.Second, "status after undrain", func() (bool, any) {
		st := d.Status()
		rs := st.Services[0].Reals[0]
		return len(st.Drains) == 0 && !rs.Overridden, fmt.Sprintf("drains %+v, real %+v", st.Drains, rs)
	}, logs.String)

	// Drained again, then a reload removes the server: the drain goes,
	// from the state file too.
	if _, err := d.Drain(control.DrainRequest{Real: "10.0.0.21:80", Weight: 5}); err != nil {
		t.Fatal(err)
	}
	waitWeight(t, k, &logs, 5, "weight 5 set by the operator")
	without := drainConfig(t, stateDir, 50, false)
	if err := d.reloadOnLoop(cfg, without); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, `msg="drain dropped: the configuration no longer has this real server" virtual_server=web real=10.0.0.21:80`, 1)
	stop()
	b, err := os.ReadFile(filepath.Join(stateDir, operatorFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "10.0.0.21") {
		t.Errorf("the state file still holds the dropped drain:\n%s", b)
	}
}

// TestCorruptOperatorState: a state file that cannot be read is logged as
// an error naming it, the daemon starts without it, and the next operator
// change replaces it.
func TestCorruptOperatorState(t *testing.T) {
	stateDir := t.TempDir()
	path := filepath.Join(stateDir, operatorFile)
	for _, tc := range []struct{ name, content, want string }{
		{"corrupt", `{"version": 1, "data": {"drains": [`, "corrupt"},
		{"newer", `{"version": 9, "data": {}}`, "unknown version 9 (this haldir reads version 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			k := ipvstest.New()
			var logs syncBuffer
			opts := fakeKernelOptions(k, &logs)
			d, _ := runOnce(t, drainConfig(t, stateDir, 10, true), opts)
			waitFor(t, &logs, `level=ERROR msg="operator state NOT LOADED`, 1)
			if !strings.Contains(logs.String(), "file="+path) || !strings.Contains(logs.String(), tc.want) {
				t.Errorf("the error does not name %s and %q:\n%s", path, tc.want, logs.String())
			}
			waitWeight(t, k, &logs, 10, "configured weight: no drain")
			if _, err := d.SetMaintenance(control.MaintenanceRequest{On: true, Reason: "x"}); err != nil {
				t.Fatal(err)
			}
			var st operatorState
			if err := loadFile(path, &st); err != nil || st.Maintenance == nil || st.Maintenance.Reason != "x" {
				t.Errorf("after maintenance on: %+v, %v", st, err)
			}
		})
	}
}

// TestMaintenanceHandsOverAndSurvivesRestart runs two directors' VRRP in
// a namespace pair: r1 (150) masters the instance, r2 (100) backs it up.
// haldir maintenance on makes r1 hand over at once (priority 0) and stay
// backup at priority 1 with the cause shown; restarted, r1 comes back in
// maintenance and never takes mastership; off, r1 preempts again.
func TestMaintenanceHandsOverAndSurvivesRestart(t *testing.T) {
	l := lab.RoutersT(t, "haldir-maint", 2)
	stateDir := t.TempDir()
	parse := func(prio int, stateDir string) *conf.Config {
		return mustParse(t, fmt.Sprintf(`[global]
router_id = "t"
state_dir = %q

[[vrrp]]
name = "vi"
interface = "eth0"
vrid = 42
priority = %d
advert_interval = "100ms"
virtual_addresses = ["192.0.2.1/24"]
`, stateDir, prio))
	}
	var logs1 syncBuffer
	opts1 := Options{Logger: slog.New(slog.NewTextHandler(&logs1, nil)), VRRPDo: l.Host("r1").Do, Notify: func(string) {}}
	c1, stop1 := runOnce(t, parse(150, stateDir), opts1)
	// Each director of a lab keeps its own state.
	c2, logs2 := startComponents(t, l, "r2", parse(100, t.TempDir()), nil)
	state := func(c *Daemon, logs *syncBuffer, what string, ok func(vrrp.Status) bool) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, any) {
			in := c.vrrp.Instance("vi")
			if in == nil {
				return false, "not running"
			}
			st := in.Status()
			return ok(st), st
		}, logs.String)
	}
	is := func(s vrrp.State, prio uint8) func(vrrp.Status) bool {
		return func(st vrrp.Status) bool { return st.State == s && st.Priority == prio }
	}
	state(c1, &logs1, "r1 master at 150", is(vrrp.StateMaster, 150))
	state(c2, logs2, "r2 backup", is(vrrp.StateBackup, 100))

	reply, err := c1.SetMaintenance(control.MaintenanceRequest{On: true, Reason: "kernel upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(reply.HandedOver, ",") != "vi" || reply.Maintenance == nil || reply.Maintenance.Reason != "kernel upgrade" {
		t.Fatalf("reply %+v", reply)
	}
	state(c2, logs2, "r2 takes over", is(vrrp.StateMaster, 100))
	state(c1, &logs1, "r1 backup at priority 1, cause shown", func(st vrrp.Status) bool {
		return st.State == vrrp.StateBackup && st.Priority == 1 && len(st.Failing) == 1 &&
			st.Failing[0] == "maintenance on: kernel upgrade (priority 1)" && st.PriorityChanges["maintenance"] == 1
	})
	waitFor(t, &logs1, `msg="vrrp state change" component=vrrp vrrp_instance=vi from=master to=backup reason="maintenance: handing over" priority=1`, 1)
	if st := c1.Status(); st.Maintenance == nil || !strings.Contains(c1.statusLineOnLoop(), "MAINTENANCE (kernel upgrade)") {
		t.Errorf("status: %+v, line %q", st.Maintenance, c1.statusLineOnLoop())
	}

	// Restarted in maintenance: backup at priority 1 from the start, and
	// still backup after 20 of r2's adverts (at 150 and preempting it
	// would have taken over after the first).
	stop1()
	var logs1b syncBuffer
	opts1.Logger = slog.New(slog.NewTextHandler(&logs1b, nil))
	c1, _ = runOnce(t, parse(150, stateDir), opts1)
	state(c1, &logs1b, "r1 hears 20 of r2's adverts, backup at priority 1", func(st vrrp.Status) bool {
		return st.State == vrrp.StateBackup && st.Priority == 1 && st.AdvertsRecv >= 20
	})
	if strings.Contains(logs1b.String(), "to=master") {
		t.Fatalf("r1 in maintenance took mastership after the restart:\n%s", logs1b.String())
	}
	state(c2, logs2, "r2 still master", is(vrrp.StateMaster, 100))

	if reply, err := c1.SetMaintenance(control.MaintenanceRequest{}); err != nil || reply.Maintenance != nil {
		t.Fatalf("maintenance off: %+v, %v", reply, err)
	}
	state(c1, &logs1b, "r1 preempts at 150", is(vrrp.StateMaster, 150))
	state(c2, logs2, "r2 backup again", is(vrrp.StateBackup, 100))
}

// statusLineOnLoop is statusLine, read on the loop.
func (d *Daemon) statusLineOnLoop() (s string) {
	d.call(func() { s = d.statusLine() })
	return s
}

func loadFile(path string, st *operatorState) error {
	_, err := statefile.Load(path, operatorVersion, st)
	return err
}

// TestMaintenanceInCluster: alone in its cluster, a director in
// maintenance hands nothing over (it says so) and stays master at
// priority 1; a backup that joins preempts it; every director's cluster
// view shows it in maintenance with the reason; off, it takes mastership
// back and the view says so.
func TestMaintenanceInCluster(t *testing.T) {
	cl := newClusterLab(t, "haldir-maint-cl")
	c1, logs1 := startComponents(t, cl.l, "r1", cl.config(t, 0, 150), nil)
	if c1.cluster == nil {
		t.Fatalf("cluster not running: %v", c1.notRunningOnLoop())
	}
	state := func(c *Daemon, logs *syncBuffer, what string, s vrrp.State, prio uint8) {
		t.Helper()
		poll.Until(t, 15*time.Second, what, func() (bool, any) {
			st := c.vrrp.Instance("vi").Status()
			return st.State == s && st.Priority == prio, st
		}, logs.String)
	}
	state(c1, logs1, "r1 master alone", vrrp.StateMaster, 150)
	reply, err := c1.SetMaintenance(control.MaintenanceRequest{On: true, Reason: "disk swap"})
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.HandedOver) != 0 || len(reply.Notes) != 1 || reply.Notes[0] != "vi: no other director backs it up in the cluster view: not handed over; it stays master at priority 1 until a backup takes over" {
		t.Fatalf("reply %+v", reply)
	}
	state(c1, logs1, "r1 still master, at priority 1", vrrp.StateMaster, 1)

	c2, logs2 := startComponents(t, cl.l, "r2", cl.config(t, 1, 100), nil)
	state(c2, logs2, "r2 preempts r1 at priority 1", vrrp.StateMaster, 100)
	state(c1, logs1, "r1 backup", vrrp.StateBackup, 1)
	inView := func(want bool) {
		t.Helper()
		for _, c := range []*Daemon{c1, c2} {
			poll.Until(t, 15*time.Second, fmt.Sprintf("r1 in maintenance %v in the view", want), func() (bool, any) {
				api := control.Status{Cluster: ptr(c.cluster.View())}.API()
				for _, m := range api.Cluster.Members {
					if m.Name == "r1" {
						return m.Maintenance == want && (m.MaintenanceReason == "disk swap") == want, m
					}
				}
				return false, api.Cluster.Members
			}, logs1.String, logs2.String)
		}
	}
	inView(true)

	if _, err := c1.SetMaintenance(control.MaintenanceRequest{}); err != nil {
		t.Fatal(err)
	}
	state(c1, logs1, "r1 takes mastership back", vrrp.StateMaster, 150)
	state(c2, logs2, "r2 backup", vrrp.StateBackup, 100)
	inView(false)

	// With r2 backing it up in r1's view, maintenance hands over.
	poll.Until(t, 15*time.Second, "r1's view: r2 backup of vi", func() (bool, any) {
		ic, _ := c1.vrrp.InstanceConfig("vi")
		v := c1.cluster.View()
		return backedUp(v, ic), v.Members
	}, logs1.String)
	reply, err = c1.SetMaintenance(control.MaintenanceRequest{On: true})
	if err != nil || strings.Join(reply.HandedOver, ",") != "vi" || strings.Join(reply.Notes, "; ") != "vi: handing over to r2, make-before-break" {
		t.Fatalf("reply %+v, %v", reply, err)
	}
	state(c2, logs2, "r2 takes over", vrrp.StateMaster, 100)
	state(c1, logs1, "r1 backup at priority 1", vrrp.StateBackup, 1)
	if st := c1.vrrp.Instance("vi").Status(); !st.Yielded || !strings.Contains(st.LastReason, "planned handoff") {
		t.Fatalf("r1 %+v: want released by the planned handoff", st)
	}

	// Off: the hold on preemption ends, and r1 (150) takes mastership back.
	if _, err := c1.SetMaintenance(control.MaintenanceRequest{}); err != nil {
		t.Fatal(err)
	}
	state(c1, logs1, "r1 takes mastership back after the handoff", vrrp.StateMaster, 150)
	state(c2, logs2, "r2 backup again", vrrp.StateBackup, 100)
}

func ptr[T any](v T) *T { return &v }
