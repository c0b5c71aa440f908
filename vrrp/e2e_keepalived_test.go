package vrrp_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// keepalived runs keepalived's VRRP daemon in h with one instance like
// haldir's test instance.
type keepalived struct {
	t    testing.TB
	h    *lab.Host
	proc *lab.Proc
	vip  func() bool
}

func startKeepalived(t testing.TB, h *lab.Host, version int, interval time.Duration, prio int, f family) *keepalived {
	t.Helper()
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("skipping: keepalived not installed (apt-get install keepalived)")
	}
	dir := t.TempDir()
	auth := ""
	if version == 2 {
		auth = "authentication {\n  auth_type PASS\n  auth_pass s3cret\n }\n"
	}
	cfg := fmt.Sprintf(`global_defs {
 router_id ka-%s
}
vrrp_instance vi {
 version %d
 state BACKUP
 interface %s
 virtual_router_id %d
 priority %d
 advert_int %g
 %s
 virtual_ipaddress {
  %s
 }
}
`, h.Name(), version, lanIf, vrid, prio, interval.Seconds(), auth, f.vip)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{bin, "--vrrp", "-n", "-l", "-D", "-f", path,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid")}
	p, err := h.Start(context.Background(), argv, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &keepalived{t: t, h: h, proc: p}
	k.vip = func() bool {
		addrs, err := h.Addrs(lanIf)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(addrs, f.vip)
	}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("keepalived output:\n%s", p.Output())
		}
	})
	return k
}

// stop sends SIGTERM, as systemd would, and waits for keepalived to exit.
func (k *keepalived) stop() {
	select {
	case <-k.proc.Done():
		return
	default:
	}
	_ = k.proc.Signal(syscall.SIGTERM)
	select {
	case <-k.proc.Done():
	case <-time.After(settle):
		k.t.Errorf("keepalived did not stop on SIGTERM")
		_ = k.proc.Kill()
	}
}

// TestE2EKeepalivedInterop runs haldir and keepalived 2.2.7 as a VRRP pair:
// haldir (priority 100) is master alone; keepalived (200) joins and takes
// over; keepalived stops and haldir takes over again.
func TestE2EKeepalivedInterop(t *testing.T) {
	lab.SkipIfNotRoot(t)
	cases := []struct {
		name     string
		version  int
		interval time.Duration
		f        family
	}{
		{"v2-ipv4", 2, time.Second, v4},
		{"v3-ipv4", 3, fast, v4},
		{"v3-ipv6", 3, fast, v6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			obs := observe(t, l)
			hc := instanceConfig("vi", 100, c.f)
			hc.Version, hc.AdvertInterval = c.version, conf.Duration(c.interval)
			if c.version == 2 {
				hc.Auth = &conf.VRRPAuth{Type: "pass", Password: "s3cret"}
			}
			hal := startRouter(t, l.Host("r2"), hc)
			waitMaster(t, hal, []*router{hal})

			ka := startKeepalived(t, l.Host("r1"), c.version, c.interval, 200, c.f)
			waitFor(t, "keepalived master and haldir backup", settle+5*c.interval, func() bool {
				return ka.vip() && !hal.hasVIP() && hal.state() == vrrp.StateBackup
			})
			if got := hal.in.Status().MasterAddr; got.Is4() != c.f.vip.Addr().Is4() || !got.IsValid() {
				t.Fatalf("haldir sees master %v", got)
			}
			// Steady: keepalived's adverts keep haldir backup, read
			// from the quiet socket (routineFilter) when its
			// Master_Down_Timer comes due.
			before := hal.in.Status()
			end := time.Now().Add(5 * c.interval)
			for time.Now().Before(end) {
				if hal.hasVIP() || !ka.vip() || hal.state() != vrrp.StateBackup {
					t.Fatalf("pair not steady: haldir %v vip=%v, keepalived vip=%v", hal.state(), hal.hasVIP(), ka.vip())
				}
				time.Sleep(10 * time.Millisecond)
			}
			after := hal.in.Status()
			if recv, quiet := after.AdvertsRecv-before.AdvertsRecv, after.AdvertsQuiet-before.AdvertsQuiet; quiet == 0 || quiet > recv {
				t.Errorf("haldir, a plain backup, handled %d of keepalived's adverts, %d of them from the quiet socket: want them read there", recv, quiet)
			}
			for reason, n := range hal.in.Status().Drops {
				if n != 0 {
					t.Errorf("haldir dropped %d of keepalived's adverts: %s", n, reason)
				}
			}

			seq := obs.LastSeq()
			ka.stop()
			waitMaster(t, hal, []*router{hal})
			if ka.vip() {
				t.Fatal("keepalived left the VIP behind")
			}
			waitGARP(t, obs, seq, hal.h, c.f.vip.Addr())
		})
	}
}

// TestE2EKeepalivedInteropHaldirHigher is the other way round: keepalived
// (100) is master alone; haldir (200) joins and preempts it; haldir stops
// with a priority 0 advert and keepalived takes over.
func TestE2EKeepalivedInteropHaldirHigher(t *testing.T) {
	lab.SkipIfNotRoot(t)
	cases := []struct {
		name     string
		version  int
		interval time.Duration
		f        family
	}{
		{"v2-ipv4", 2, time.Second, v4},
		{"v3-ipv4", 3, fast, v4},
		{"v3-ipv6", 3, fast, v6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := buildLAN(t, 2)
			obs := observe(t, l)
			ka := startKeepalived(t, l.Host("r1"), c.version, c.interval, 100, c.f)
			waitFor(t, "keepalived master", settle+5*c.interval, ka.vip)
			seq := obs.LastSeq()
			hc := instanceConfig("vi", 200, c.f)
			hc.Version, hc.AdvertInterval = c.version, conf.Duration(c.interval)
			if c.version == 2 {
				hc.Auth = &conf.VRRPAuth{Type: "pass", Password: "s3cret"}
			}
			hal := startRouter(t, l.Host("r2"), hc)
			waitFor(t, "haldir master and keepalived without VIP", settle+5*c.interval, func() bool {
				return hal.state() == vrrp.StateMaster && hal.hasVIP() && !ka.vip()
			})
			waitGARP(t, obs, seq, hal.h, c.f.vip.Addr())
			end := time.Now().Add(5 * c.interval)
			for time.Now().Before(end) {
				if !hal.hasVIP() || ka.vip() || hal.state() != vrrp.StateMaster {
					t.Fatalf("pair not steady: haldir %v vip=%v, keepalived vip=%v", hal.state(), hal.hasVIP(), ka.vip())
				}
				time.Sleep(10 * time.Millisecond)
			}
			hal.stop()
			waitFor(t, "keepalived takes over", settle, ka.vip)
		})
	}
}
