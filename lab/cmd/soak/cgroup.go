package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where cgroup v2 is (or is mounted by the soak: the lab
// VM's init mounts none).
const cgroupRoot = "/sys/fs/cgroup"

// bandwidthPin is an empty cgroup with a quota: see newCgroups.
const bandwidthPin = "bandwidth-on"

// cgroups are the directors' daemons' cgroups (cgroup v2), for CPU
// starvation (cpu.max) and memory pressure (memory.high).
type cgroups struct{ root string }

// newCgroups makes a cgroup per director, or says why it cannot.
func newCgroups(directors ...string) (*cgroups, string) {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
		if err := unix.Mount("cgroup2", cgroupRoot, "cgroup2", 0, ""); err != nil {
			return nil, fmt.Sprintf("mounting cgroup2 on %s: %v", cgroupRoot, err)
		}
	}
	ctrl, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil {
		return nil, err.Error()
	}
	for _, c := range []string{"cpu", "memory"} {
		if !strings.Contains(" "+strings.TrimSpace(string(ctrl))+" ", " "+c+" ") {
			return nil, fmt.Sprintf("cgroup v2 has no %s controller (%q)", c, strings.TrimSpace(string(ctrl)))
		}
	}
	if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+cpu +memory"), 0o644); err != nil {
		return nil, fmt.Sprintf("enabling the cpu and memory controllers: %v", err)
	}
	cg := &cgroups{root: filepath.Join(cgroupRoot, "haldir-soak")}
	if err := os.MkdirAll(cg.root, 0o755); err != nil {
		return nil, err.Error()
	}
	if err := os.WriteFile(filepath.Join(cg.root, "cgroup.subtree_control"), []byte("+cpu +memory"), 0o644); err != nil {
		return nil, fmt.Sprintf("enabling the controllers under %s: %v", cg.root, err)
	}
	for _, d := range append(directors, "lab", bandwidthPin) {
		if err := os.MkdirAll(filepath.Join(cg.root, d), 0o755); err != nil {
			return nil, err.Error()
		}
	}
	// The kernel switches CFS bandwidth control on (a static key, by
	// patching its own code on every CPU with int3) when the first
	// cgroup gets a quota, and off when the last loses it: each
	// cpu-starve did both. Under TCG that patching twice left both
	// virtual CPUs looping in the int3 handler at the patched site in
	// dequeue_entity, interrupts off, for good (the guest silent, found
	// through the qemu monitor's registers). An empty cgroup holding a
	// quota that never binds keeps the key on for the whole run.
	if err := cg.write(bandwidthPin, "cpu.max", "10000000 100000"); err != nil {
		return nil, err.Error()
	}
	// The soak itself (its client load, real servers and monitors) goes
	// into a sibling of the directors' cgroups. Left in the root, its
	// threads each weighed as much as the directors' whole group, and
	// under TCG both daemons starved for CPU together: their adverts came
	// late and the backup took over again and again with no fault on.
	if err := cg.place("lab", os.Getpid()); err != nil {
		return nil, err.Error()
	}
	return cg, ""
}

func (c *cgroups) write(director, file, value string) error {
	if err := os.WriteFile(filepath.Join(c.root, director, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %s = %q: %w", director, file, value, err)
	}
	return nil
}

// place moves a director's daemon into its cgroup.
func (c *cgroups) place(director string, pid int) error {
	return c.write(director, "cgroup.procs", strconv.Itoa(pid))
}

// starveCPU gives the daemon 1% of a CPU.
func (c *cgroups) starveCPU(director string) error {
	return c.write(director, "cpu.max", "1000 100000")
}

// squeezeMemory sets memory.high to half the daemon's usage: the kernel
// reclaims and throttles it hard.
func (c *cgroups) squeezeMemory(director string) error {
	b, err := os.ReadFile(filepath.Join(c.root, director, "memory.current"))
	if err != nil {
		return err
	}
	cur, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return err
	}
	return c.write(director, "memory.high", strconv.FormatInt(max(cur/2, 4<<20), 10))
}

// reset lifts both limits.
func (c *cgroups) reset(director string) error {
	return errors.Join(c.write(director, "cpu.max", "max 100000"), c.write(director, "memory.high", "max"))
}
