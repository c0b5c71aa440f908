package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

// Memory floors: what a process holds before it has targets to speak of.
// The comparison's peak RSS rows are keepalived's checker against
// haldir's at up to 1.5k targets; these rows say how much of each is
// there with one real server, and how much any Go binary, or any binary
// that embeds GoBGP as haldir's does, holds before it does anything.

// floorProbes are the probe programs' packages, by guest file name.
var floorProbes = []struct{ name, pkg string }{
	{"empty", "github.com/haldir-lb/haldir/bench/healthcheck/floor/empty"},
	{"gobgp", "github.com/haldir-lb/haldir/bench/healthcheck/floor/gobgp"},
}

// guestFloorDir holds the probes in the guest.
const guestFloorDir = "/opt/hcbench"

// floorFiles builds the probes into dir for the guest.
func floorFiles(dir string) ([]vm.File, error) {
	var fs []vm.File
	for _, p := range floorProbes {
		bin, err := vmhost.BuildStatic(context.Background(), "healthcheck bench", dir, p.pkg, "floor-"+p.name)
		if err != nil {
			return nil, err
		}
		fs = append(fs, vm.File{Host: bin, Guest: filepath.Join(guestFloorDir, p.name)})
	}
	return fs, nil
}

// memFloor is one process's memory: its peak RSS, and its anonymous pages
// and its binary's pages when it was read.
type memFloor struct {
	what             string
	peak, anon, file float64 // MiB
	err              error
}

// statusFloor reads a memFloor from a /proc/PID/status text. The binary's
// pages are RssFile, or RssShmem where the root file system is in memory
// (the guest's initramfs).
func statusFloor(what string, status []byte) memFloor {
	return memFloor{what: what, peak: textMiB(status, "VmHWM"), anon: textMiB(status, "RssAnon"),
		file: textMiB(status, "RssFile") + textMiB(status, "RssShmem")}
}

// probeFloor runs a floor probe, which prints its own status as it ends:
// the parent cannot read it after the end, and the kernel's maxrss of a
// child also counts the parent's pages, which the child shared until it
// ran the probe.
func probeFloor(what, bin string) memFloor {
	out, err := exec.Command(bin).Output()
	if err != nil {
		return memFloor{what: what, err: fmt.Errorf("%s: %w", bin, err)}
	}
	return statusFloor(what, out)
}

// idleDaemon runs ds with one real server whose checks fail (nothing
// listens) and reads its measured process settle after that process
// appears: a daemon's memory before it has targets to speak of.
func idleDaemon(ds daemonSpec, settle time.Duration) memFloor {
	f := memFloor{what: fmt.Sprintf("%s, 1 real server, %v after start", ds.name, settle)}
	if ds.name == keepalivedDaemon.name {
		f.what = "keepalived 2.2.7's checker, 1 real server, " + settle.String() + " after start"
	}
	fail := func(err error) memFloor { f.err = err; return f }
	dir, err := os.MkdirTemp("", "hcbench-idle")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	h, err := ipvs.New("")
	if err != nil {
		return fail(fmt.Errorf("ipvs: %w", err))
	}
	defer h.Close()
	defer h.Flush()
	cfg := filepath.Join(dir, ds.config)
	if err := os.WriteFile(cfg, []byte(ds.text("tcp", 1, time.Second, dir)), 0o644); err != nil {
		return fail(err)
	}
	proc, err := startDaemon(ds, dir, cfg)
	if err != nil {
		return fail(err)
	}
	defer stopDaemon(proc)
	pid := measuredPid(ds, dir, proc, time.Now().Add(30*time.Second))
	if pid == 0 {
		return fail(fmt.Errorf("%s: no process to measure after 30 s; log:\n%s", ds.name, daemonLog(dir)))
	}
	time.Sleep(settle)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fail(fmt.Errorf("%s exited: %w; log:\n%s", ds.name, err, daemonLog(dir)))
	}
	return statusFloor(f.what, status)
}

// floorTable measures the floors in the guest and prints them as a table,
// each peak also as a multiple of keepalived's checker's at the reference
// scenario (kaRef at refName, refTargets real servers; 0: not measured),
// and then how much each daemon's peak grew from 1 real server to the
// reference's (hdRef: haldir run's peak there).
func floorTable(haldirBin string, kaRef, hdRef float64, refName string, refTargets int) []string {
	const settle = 5 * time.Second
	kaIdle := idleDaemon(keepalivedDaemon, settle)
	fs := []memFloor{
		probeFloor("Go program that links nothing", filepath.Join(guestFloorDir, "empty")),
		probeFloor("Go program that only links GoBGP's server", filepath.Join(guestFloorDir, "gobgp")),
		kaIdle,
	}
	var hdIdle memFloor
	if haldirBin != "" {
		hdIdle = idleDaemon(haldirDaemon(haldirBin), settle)
		fs = append(fs, hdIdle)
	}
	rows := []string{
		fmt.Sprintf("| process | peak RSS MiB | anon RSS MiB | the binary's pages MiB | peak / keepalived's checker's at %s (%.1f MiB) |", refName, kaRef),
		"|---|---|---|---|---|",
	}
	for _, f := range fs {
		if f.err != nil {
			rows = append(rows, fmt.Sprintf("| %s | error: %v | | | |", f.what, f.err))
			continue
		}
		ratio := "-"
		if kaRef > 0 {
			ratio = fmt.Sprintf("%.2f", f.peak/kaRef)
		}
		rows = append(rows, fmt.Sprintf("| %s | %.1f | %.1f | %.1f | %s |", f.what, f.peak, f.anon, f.file, ratio))
	}
	if refTargets > 1 && kaRef > 0 && hdRef > 0 && kaIdle.err == nil && hdIdle.err == nil && hdIdle.peak > 0 {
		per := func(d float64) float64 { return d * 1024 / float64(refTargets-1) }
		rows = append(rows, "", fmt.Sprintf("From 1 real server to %s's %d, peak RSS grew by %.1f MiB for keepalived's checker (%.2f KiB a server) and %.1f MiB for haldir run (%.2f KiB a server).",
			refName, refTargets, kaRef-kaIdle.peak, per(kaRef-kaIdle.peak), hdRef-hdIdle.peak, per(hdRef-hdIdle.peak)))
	}
	return rows
}
