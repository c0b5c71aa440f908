package vrrp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// TestE2EVMACKeepalivedInterop pairs a use_vmac haldir with a use_vmac
// keepalived (IPv4, v3 at 100ms), as during a migration: keepalived (200)
// joins and takes over from haldir (100), keepalived stops and haldir takes
// over again; the client's neighbour entry for the VIP keeps the virtual
// MAC throughout.
func TestE2EVMACKeepalivedInterop(t *testing.T) {
	lab.SkipIfNotRoot(t)
	bin, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("skipping: keepalived not installed (apt-get install keepalived)")
	}
	l, obs, client, vip, mac := vmacLAN(t, v4)
	hal := startVMACRouter(t, l.Host("r2"), vmacConfig(100, v4))
	waitMaster(t, hal, []*router{hal})
	whoHolds(t, client, vip, "r2")

	// keepalived in r1 with its own vmac of the same name. keepalived
	// 2.2.7 leaves arp_announce alone, and its host then names the VIP
	// with its base MAC when it ARPs for the client from eth0 (seen here:
	// the client's entry flips to r1's eth0 MAC); set what haldir sets.
	if err := l.Host("r1").Sysctl("net/ipv4/conf/"+lanIf+"/arp_announce", "2"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global_defs {
 router_id ka-r1
}
vrrp_instance vi {
 version 3
 state BACKUP
 interface %s
 use_vmac %s
 virtual_router_id %d
 priority 200
 advert_int 0.1
 virtual_ipaddress {
  %s
 }
}
`, lanIf, vmacIf, vrid, vip4)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ka := l.Host("r1")
	p, err := ka.Start(context.Background(), []string{bin, "--vrrp", "-n", "-l", "-D", "-f", path,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &keepalived{t: t, h: ka, proc: p}
	k.vip = func() bool {
		addrs, err := ka.Addrs(vmacIf)
		return err == nil && slices.Contains(addrs, vip4)
	}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("keepalived output:\n%s", p.Output())
		}
	})

	waitFor(t, "keepalived master and haldir backup", settle, func() bool {
		return k.vip() && !hal.hasVIP() && hal.state() == vrrp.StateBackup
	})
	whoHolds(t, client, vip, "r1")
	if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
		t.Fatalf("with keepalived master the client resolves %v to %v, want %v", vip, got, mac)
	}
	if linkUp(t, hal.h) {
		t.Fatalf("haldir's %s is up as backup", vmacIf)
	}

	seq := obs.LastSeq()
	k.stop()
	waitMaster(t, hal, []*router{hal})
	waitVMACAnnounce(t, obs, seq, vip, mac)
	whoHolds(t, client, vip, "r2")
	if got := neighMAC(t, client, vip); !bytes.Equal(got, mac) {
		t.Fatalf("after failover the client resolves %v to %v, want %v", vip, got, mac)
	}
}
