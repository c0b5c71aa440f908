package main

import (
	"testing"

	"github.com/haldir-lb/haldir/lab"
)

// TestStatusFloor: the binary's pages are RssFile where the binary is on
// a disk and RssShmem where the root file system is in memory (the VM
// guest's initramfs), so the floor adds both.
func TestStatusFloor(t *testing.T) {
	for _, tc := range []struct {
		name, status           string
		peak, anon, binaryPage float64
	}{
		{"on disk", "VmHWM:\t   20480 kB\nRssAnon:\t    3072 kB\nRssFile:\t   16384 kB\nRssShmem:\t       0 kB\n", 20, 3, 16},
		{"in memory", "VmHWM:\t   20480 kB\nRssAnon:\t    3072 kB\nRssFile:\t    1024 kB\nRssShmem:\t   15360 kB\n", 20, 3, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := statusFloor(tc.name, []byte(tc.status))
			if f.peak != tc.peak || f.anon != tc.anon || f.file != tc.binaryPage {
				t.Errorf("peak %.1f anon %.1f binary %.1f MiB, want %.1f %.1f %.1f", f.peak, f.anon, f.file, tc.peak, tc.anon, tc.binaryPage)
			}
		})
	}
}

// TestProbeFloorIsTheProbesOwn: a floor probe's peak RSS is what the probe
// itself held. The kernel's maxrss of a child (wait4) also counts the
// pages of the parent it shared until it ran the probe (Go starts children
// with vfork), which made a program that links nothing read as large as
// the bench in the VM (18.6 MiB); the probe's own status does not. This
// test process holds about four times the empty probe's 2-3 MiB, so half
// of it tells the two readings apart.
func TestProbeFloorIsTheProbesOwn(t *testing.T) {
	bin := lab.BuildCmd(t, floorProbes[0].pkg)
	parent := procStatusMiB("self", "VmRSS")
	f := probeFloor("empty", bin)
	if f.err != nil {
		t.Fatal(f.err)
	}
	if f.peak <= 0 || f.anon <= 0 || f.file <= 0 {
		t.Fatalf("peak %.1f anon %.1f binary %.1f MiB: a figure was not read", f.peak, f.anon, f.file)
	}
	if f.peak >= parent/2 {
		t.Errorf("the empty probe's peak RSS %.1f MiB is not below half of this test's %.1f MiB: the parent's pages are counted", f.peak, parent)
	}
}
