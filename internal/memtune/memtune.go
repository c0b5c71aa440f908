// Package memtune sets the Go runtime's memory behaviour for haldir's
// long-running processes, the daemon and the health-check benchmark's
// checker that stands in for it: the garbage collector's pace, no heap
// profile sampling, and no transparent huge pages. Both keep a small
// heap's resident memory close to the heap itself.
package memtune

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// GCPercent is the GOGC haldir runs with unless the environment sets GOGC.
// The daemon's live heap is small (about 3 MB with 1k health-check
// targets when this was set, about 2 MB in the bench's checker now) and it
// allocates slowly (about 1 MB/s at 1k HTTP checks/s then), so
// Go's default of 100, which lets the heap grow to twice the live heap and
// to at least 4 MB, only adds resident memory. Measured with
// bench/healthcheck http-1k on the host: peak RSS 18.0 MiB at 100, 16.3 at
// 50 and 14.6 at 25, with the checker's CPU the same within the noise of
// the run (17 % of a core). The price was more collections: at 1k targets
// about 1.4 a second (gctrace), 2-4 ms of CPU each, 0.4 % of a core. Since
// tcp and plain http checks stopped allocating, the steady state hardly
// collects at all: over 11.5 s of bench/healthcheck (-memstats), 4
// collections at tcp-1k and 5 at http-1k, nearly all while the targets
// were set up, and 17 at http-10k.
const GCPercent = 25

// Apply sets the GC's pace to GCPercent unless GOGC is set in the
// environment (an operator's choice wins) and returns the percent in force.
// It also turns transparent huge pages off for this process; the error says
// why that failed, with the GC's pace set all the same.
//
// It turns heap profiling's sampling off (runtime.MemProfileRate 0):
// neither process writes a heap profile unless asked (the bench's
// -memprofile sets its own rate after Apply), but linking runtime/pprof for
// -cpuprofile keeps the runtime sampling one allocation in 512 KiB, each
// sample unwinding its stack into a bucket of a 1.4 MB hash table that
// stays resident page by page. bench/healthcheck tcp-1k on the host, three
// 8 s runs each: peak RSS 11.36-11.43 MiB with sampling, 11.17-11.27
// without; anonymous 4.32-4.45 against 4.26-4.36.
//
// Why no huge pages: Debian's and RHEL's kernels back anonymous memory with
// them by default (THP "always"), and Go's heap is one large anonymous
// mapping, so each 2 MiB region the heap touches became 2 MiB resident. In
// the VM bench (Debian's 6.1) a 1k-target checker held 7.1 MiB of
// anonymous memory, 4 MiB of it in huge pages, for about 2 MB of heap. The
// runtime's own switch (GODEBUG=disablethp=1) is read from the environment
// only, and is marked for removal; the prctl is the kernel's per-process
// switch. It is inherited by the processes the daemon starts (exec checks,
// notify commands), which are short-lived and small. Call Apply first
// thing: memory the heap touched before it keeps the pages it got.
func Apply() (int, error) {
	p := GCPercent
	if os.Getenv("GOGC") != "" {
		p = debug.SetGCPercent(100)
	}
	debug.SetGCPercent(p)
	runtime.MemProfileRate = 0
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		return p, fmt.Errorf("transparent huge pages stay on for the heap: prctl(PR_SET_THP_DISABLE): %w", err)
	}
	return p, nil
}

// HugePagesOff reports whether transparent huge pages are off for this
// process (PR_GET_THP_DISABLE).
func HugePagesOff() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_THP_DISABLE, 0, 0, 0, 0)
	return v == 1, err
}

// reexecMark is set in the environment of the re-executed process, and
// cleared at once: if a kernel dropped the flag across execve, the process
// would otherwise re-execute itself forever.
const reexecMark = "HALDIR_MEMTUNE_REEXEC"

// ExecWithoutHugePages makes this process run without transparent huge
// pages from its first page. The Go runtime maps and touches memory before
// main runs (the heap's first pages, its own metadata), and in the VM bench
// those got two huge pages, 4 MiB of a 1k-target checker's 6.6 MiB of
// anonymous memory, which a prctl from main cannot take back. So when the
// flag is off, it is set and the binary re-executes itself in place:
// execve keeps the PID, the arguments, the environment and the open file
// descriptors, and the flag, which the new image then has from its first
// page. Call it first thing in main, before any goroutine or file; it
// returns when the flag was already set (the re-executed process), or with
// the error that kept it from re-executing, and then the process goes on as
// it is.
func ExecWithoutHugePages() error {
	if os.Getenv(reexecMark) != "" {
		return os.Unsetenv(reexecMark)
	}
	if off, err := HugePagesOff(); err != nil || off {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_THP_DISABLE): %w", err)
	}
	if off, err := HugePagesOff(); err != nil || !off {
		return fmt.Errorf("the kernel did not keep PR_SET_THP_DISABLE (%v)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.Setenv(reexecMark, "1"); err != nil {
		return err
	}
	err = unix.Exec(self, os.Args, os.Environ())
	os.Unsetenv(reexecMark)
	return fmt.Errorf("re-executing %s without huge pages: %w", self, err)
}

// ReleaseAfterLoad returns the garbage of loading a configuration to the
// operating system: a forced collection and then every free page given
// back (debug.FreeOSMemory), on a goroutine of its own, so that the caller
// (the daemon's loop after a start or a reload) does not wait for the
// collection. Building 1k probes leaves about a megabyte of garbage behind
// that the paced collector, with checks that allocate nothing, would not
// collect for a long time: in bench/healthcheck at tcp-1k, anonymous
// memory at the end of the window was 4.71-4.78 MiB without this and
// 4.28-4.37 with it (three runs each), and peak RSS 11.2-11.3 against
// 10.8-11.1. done, when not nil, is closed once the pages are back.
func ReleaseAfterLoad(done chan<- struct{}) {
	go func() {
		debug.FreeOSMemory()
		if done != nil {
			close(done)
		}
	}()
}
