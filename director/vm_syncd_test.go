package director

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/haldir-lb/haldir/lab/vm"
)

// TestVMSyncDaemons starts, lists and stops the kernel's connection sync
// daemons through the IPVS generic netlink family of a real kernel, with
// the errors package connsync relies on (EEXIST, ESRCH).
func TestVMSyncDaemons(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	k := vmKernel(t)
	master := SyncDaemon{State: SyncMaster, Interface: "lo", SyncID: 9, Group: netip.MustParseAddr("239.9.9.9"), Port: 8850, TTL: 2, MaxLen: 1400}
	backup := SyncDaemon{State: SyncBackup, Interface: "lo", SyncID: 9, Group: netip.MustParseAddr("239.9.9.9"), Port: 8850}
	for _, d := range []SyncDaemon{master, backup} {
		if err := k.StartSyncDaemon(d); err != nil {
			t.Fatalf("starting %s: %v", d, err)
		}
	}
	t.Cleanup(func() {
		for _, s := range []SyncState{SyncMaster, SyncBackup} {
			_ = k.StopSyncDaemon(s)
		}
	})
	ds, err := k.SyncDaemons()
	if err != nil {
		t.Fatal(err)
	}
	byState := map[SyncState]SyncDaemon{}
	for _, d := range ds {
		byState[d.State] = d
	}
	t.Logf("the kernel reports %v", ds)
	// The kernel reports the TTL it uses (1 when unset) and the maxlen it
	// settled on: compare what was asked for.
	if got := byState[SyncMaster]; got.Interface != "lo" || got.SyncID != 9 || got.Group != master.Group || got.Port != 8850 || got.TTL != 2 {
		t.Fatalf("master reported as %+v, want %+v", got, master)
	}
	if got := byState[SyncBackup]; got.Interface != "lo" || got.SyncID != 9 || got.Group != backup.Group || got.Port != 8850 {
		t.Fatalf("backup reported as %+v, want %+v", got, backup)
	}
	if err := k.StartSyncDaemon(master); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("a second master: %v, want EEXIST", err)
	}
	if err := k.StopSyncDaemon(SyncBackup); err != nil {
		t.Fatal(err)
	}
	if err := k.StopSyncDaemon(SyncBackup); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("stopping the stopped backup: %v, want ESRCH", err)
	}
	ds, err = k.SyncDaemons()
	if err != nil || len(ds) != 1 || ds[0].State != SyncMaster {
		t.Fatalf("after stopping the backup: %+v, %v", ds, err)
	}
	if err := k.StopSyncDaemon(SyncMaster); err != nil {
		t.Fatal(err)
	}
	if ds, err := k.SyncDaemons(); err != nil || len(ds) != 0 {
		t.Fatalf("after stopping both: %+v, %v", ds, err)
	}
}
