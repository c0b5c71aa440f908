// Command vminit is the init (PID 1) of the haldir lab VM: it mounts the
// pseudo filesystems, loads the kernel modules listed in the guest config,
// brings lo up, prepares /run/netns for the namespace lab, runs the one
// command it was given with its output on the serial console, prints the
// exit marker the host waits for and powers the VM off.
//
// It is built with CGO_ENABLED=0 by package lab/vm and never run by hand.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/lab/vm/guest"
)

func main() {
	// The initramfs links /sbin/modprobe here, for the kernel's
	// request_module and for libraries that run modprobe themselves.
	if filepath.Base(os.Args[0]) == "modprobe" {
		os.Exit(modprobe(os.Args[1:]))
	}
	code, nonce := run()
	fmt.Printf("\n%s %s %d\n", guest.ExitMarker, nonce, code)
	unix.Sync()
	// Power off rather than exit: PID 1 exiting panics the kernel, which
	// would hide the status behind a panic message.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: power off: %v\n", err)
	}
	select {}
}

// run returns the command's exit status, or 255 with the reason printed when
// the guest could not even start it.
func run() (int, string) {
	start := time.Now()
	if err := mountAll(); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		return 255, ""
	}
	var cfg guest.Config
	b, err := os.ReadFile(guest.ConfigPath)
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vminit: reading %s: %v\n", guest.ConfigPath, err)
		return 255, ""
	}
	if err := loadModules(cfg.Modules); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		return 255, cfg.Nonce
	}
	if err := loUp(); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		return 255, cfg.Nonce
	}
	fmt.Printf("vminit: ready %.2fs after boot (%d modules in %s)\n", uptime(), len(cfg.Modules), time.Since(start).Round(time.Millisecond))
	if len(cfg.Args) == 0 {
		fmt.Fprintln(os.Stderr, "vminit: no command given")
		return 255, cfg.Nonce
	}
	cmd := exec.Command(cfg.Args[0], cfg.Args[1:]...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp", "TMPDIR=/tmp", guest.InVMEnv + "=1"}, cfg.Env...)
	cmd.Dir = cfg.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/tmp"
	}
	if err := os.MkdirAll(cmd.Dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "vminit: %v\n", err)
		return 255, cfg.Nonce
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, cfg.Nonce
	case errors.As(err, &exit):
		if exit.ExitCode() < 0 {
			fmt.Fprintf(os.Stderr, "vminit: %s: %v\n", cfg.Args[0], err)
			return 254, cfg.Nonce
		}
		return exit.ExitCode(), cfg.Nonce
	default:
		fmt.Fprintf(os.Stderr, "vminit: starting %s: %v\n", cfg.Args[0], err)
		return 255, cfg.Nonce
	}
}

func mountAll() error {
	mounts := []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	// Named network namespaces live in /run/netns, reached as /var/run/netns
	// by tools and libraries alike.
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll("/var", 0o755); err != nil {
		return err
	}
	if err := os.Symlink("/run", "/var/run"); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// /dev/fd and friends, for tools that open /dev/stdout.
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, name); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

func loadModules(paths []string) error {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("loading module: %w", err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading module %s: %w", p, err)
		}
	}
	return nil
}

// loUp matters beyond the obvious: IPVS rejects destinations (EINVAL) while
// lo is down. A plain SIOCSIFFLAGS keeps netlink (and net) out of vminit,
// which halves its cold build time.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: SIOCSIFFLAGS: %w", err)
	}
	return nil
}

func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	var up float64
	if _, err := fmt.Sscan(f[0], &up); err != nil {
		return -1
	}
	return up
}

// modprobe loads the named modules from the initramfs when they are not
// loaded yet; flags are ignored. There is no modules.dep in the guest, so a
// module whose dependencies are not loaded fails: the host preloads
// everything it resolved anyway.
func modprobe(args []string) int {
	code := 0
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.ReplaceAll(a, "-", "_")
		if _, err := os.Stat("/sys/module/" + name); err == nil {
			continue
		}
		paths, _ := filepath.Glob(guest.ModulesDir + "/*-" + name + ".ko")
		if len(paths) == 0 {
			fmt.Fprintf(os.Stderr, "modprobe: module %s not in the initramfs\n", a)
			code = 1
			continue
		}
		if err := loadModules(paths[:1]); err != nil {
			fmt.Fprintf(os.Stderr, "modprobe: %v\n", err)
			code = 1
		}
	}
	return code
}
