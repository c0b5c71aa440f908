package vrrp

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

func TestSyncGroupPropagation(t *testing.T) {
	a, b := goodInstance(), goodInstance()
	b.Name, b.VRID = "vb", 8
	ia, err := NewInstance(a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := NewInstance(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "log")
	notify := []string{"/bin/sh", "-c", `echo "$HALDIR_INSTANCE $HALDIR_STATE" >> "$0"`, out}
	g, err := NewSyncGroup(conf.VRRPSyncGroup{Name: "g", NotifyMaster: notify, NotifyFault: notify}, []*Instance{ia, ib})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(in *Instance) Event {
		t.Helper()
		select {
		case ev := <-in.groupCh:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no group event", in.Name())
		}
		return nil
	}
	g.memberChanged(ia, StateChange{From: StateBackup, To: StateMaster})
	if ev := recv(ib); ev != (EvGroupState{To: StateMaster}) {
		t.Fatalf("vb got %#v", ev)
	}
	g.memberChanged(ib, StateChange{From: StateBackup, To: StateMaster})
	if ev := recv(ia); ev != (EvGroupState{To: StateMaster}) {
		t.Fatalf("vi got %#v", ev)
	}
	// A fault of one member faults the others, once; recovery clears it.
	g.memberFault(ia, true)
	if ev := recv(ib); ev != (EvGroupFault{Fault: true}) {
		t.Fatalf("vb got %#v", ev)
	}
	g.memberFault(ia, true)
	g.memberFault(ia, false)
	if ev := recv(ib); ev != (EvGroupFault{Fault: false}) {
		t.Fatalf("vb got %#v", ev)
	}
	select {
	case ev := <-ia.groupCh:
		t.Fatalf("the faulty member itself got %#v", ev)
	default:
	}
	g.Close()
	// The group notify ran once, when the whole group was master.
	b2, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != "g MASTER\n" {
		t.Fatalf("group notify log %q", b2)
	}
}
