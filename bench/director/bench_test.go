package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestVMDirectorBench runs the whole benchmark once at 10 services × 2
// real servers in the VM, so the program keeps compiling and working, and
// holds haldir to its write counts as the kernel counts them: the cold
// apply writes every entry once, the reload exactly once without reading
// the table, the restart nothing.
func TestVMDirectorBench(t *testing.T) {
	files, err := guestFiles()
	if err != nil {
		t.Logf("ipvsadm's side will be skipped: %v", err)
	}
	if vm.RunInVMWith(t, vm.Options{Files: files, Modules: guestModules()}) {
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and IPVS")
	}
	o := options{table: table{services: 10, reals: 2, scheduler: conf.SchedWLC}, rounds: 1, ipvsadm: haveIpvsadm()}
	if vm.InVM() && files != nil && !o.ipvsadm {
		t.Fatal("ipvsadm was carried into the guest but is not found there")
	}
	rep, err := run(context.Background(), o)
	if rep != nil {
		var b strings.Builder
		rep.print(&b)
		t.Log("\n" + b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.problems {
		t.Error(p)
	}
	lines := o.lines()
	type want struct {
		writes   int // the reconciler's, every round
		kernel   int // IPVS writes the tap saw
		maxReads int // IPVS reads the tap saw, at most
	}
	cases := []struct {
		name string
		want
	}{
		{hCold, want{writes: lines, kernel: lines, maxReads: 1}},
		{hReload, want{writes: 1, kernel: 1, maxReads: 0}},
		{hFull, want{writes: 1, kernel: 1, maxReads: 1 + o.services}},
		{hRestart, want{writes: 0, kernel: 0, maxReads: 1 + o.services}},
	}
	if o.ipvsadm {
		cases = append(cases, []struct {
			name string
			want
		}{
			// ipvsadm-restore flushes first: one IPVS_CMD_FLUSH more.
			{iRestore, want{writes: -1, kernel: lines + 1, maxReads: -1}},
			{iR, want{writes: -1, kernel: lines, maxReads: -1}},
			{iEdit, want{writes: -1, kernel: 1, maxReads: -1}},
			{iSave, want{writes: -1, kernel: 0, maxReads: -1}},
		}...)
	}
	for _, tc := range cases {
		name, w := tc.name, tc.want
		t.Run(name, func(t *testing.T) {
			st := rep.steps[name]
			if st == nil || st.msgs == nil {
				t.Fatalf("step not measured: %+v", st)
			}
			if len(st.times) != o.rounds {
				t.Errorf("%d timed rounds, want %d", len(st.times), o.rounds)
			}
			if w.writes >= 0 {
				if len(st.writes) != o.rounds+1 {
					t.Errorf("write counts of %d rounds, want %d", len(st.writes), o.rounds+1)
				}
				for i, n := range st.writes {
					if n != w.writes {
						t.Errorf("round %d: the reconciler issued %d writes, want %d", i, n, w.writes)
					}
				}
			}
			if st.msgs.IPVSWrites != w.kernel {
				t.Errorf("the kernel received %d IPVS writes, want %d (%s)", st.msgs.IPVSWrites, w.kernel, st.msgs)
			}
			if w.maxReads >= 0 && st.msgs.IPVSReads > w.maxReads {
				t.Errorf("the kernel received %d IPVS reads, want at most %d (%s)", st.msgs.IPVSReads, w.maxReads, st.msgs)
			}
		})
	}
}
