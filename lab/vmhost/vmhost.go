// Package vmhost is the host side of a lab command (`make demo`, `make
// soak`) that needs IPVS: it installs qemu when missing, fetches the lab
// VM kernel, builds haldir and the command itself statically and runs the
// command inside the lab VM, or tells the caller to run natively when the
// host kernel has IPVS.
package vmhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/lab/vm"
)

// GuestHaldir is where the VM finds the haldir binary.
const GuestHaldir = "/haldir-vm/bin/haldir"

// HaldirPkg is haldir's main package.
const HaldirPkg = "github.com/haldir-lb/haldir/cmd/haldir"

// Spec says which command to run in the VM and how.
type Spec struct {
	// Name prefixes the progress lines ("demo", "soak").
	Name string
	// Pkg is the command's own package, built and run in the guest.
	Pkg string
	// Args follow the command in the guest; the command is given
	// "-haldir GuestHaldir" before them.
	Args []string
	// Timeout bounds the VM run.
	Timeout time.Duration
	// Modules to load in the guest; nil means vm.IPVSModules.
	Modules []string
	// Files are copied into the guest besides haldir and the command
	// (FRRouting for the BGP demo: vm.FRRFiles).
	Files []vm.File
	// MemoryMB sizes the guest; zero means the lab VM's default.
	MemoryMB int
	// Output receives the guest's console; nil means stdout.
	Output io.Writer
	// SilentDump: see vm.Options.
	SilentDump time.Duration
}

// Run builds and runs spec in the lab VM, printing progress to stdout.
func Run(ctx context.Context, spec Spec) error {
	dir, err := os.MkdirTemp("", "haldir-"+spec.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A fresh machine (or container image) may have empty apt lists: update
	// them once, only when something has to come from apt.
	updated := false
	aptUpdate := func() error {
		if updated {
			return nil
		}
		updated = true
		return apt(ctx, "update", "-q")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		fmt.Printf("%s: installing qemu-system-x86 with apt-get\n", spec.Name)
		if err := aptUpdate(); err != nil {
			return err
		}
		if err := apt(ctx, "install", "-y", "-q", "--no-install-recommends", "qemu-system-x86"); err != nil {
			return err
		}
	}
	k, err := vm.FetchKernel(ctx, os.Stdout)
	if err != nil && !updated {
		fmt.Printf("%s: fetching the lab VM kernel failed (%v); updating the apt lists and retrying\n", spec.Name, err)
		if uerr := aptUpdate(); uerr != nil {
			return uerr
		}
		k, err = vm.FetchKernel(ctx, os.Stdout)
	}
	if err != nil {
		return fmt.Errorf("setup: fetching the lab VM kernel: %w", err)
	}
	haldir, err := BuildStatic(ctx, spec.Name, dir, HaldirPkg, "haldir")
	if err != nil {
		return err
	}
	self, err := BuildStatic(ctx, spec.Name, dir, spec.Pkg, spec.Name)
	if err != nil {
		return err
	}
	out := spec.Output
	if out == nil {
		out = os.Stdout
	}
	code, err := vm.Run(ctx, vm.Options{
		Args:     append([]string{self, "-guest", "-haldir", GuestHaldir}, spec.Args...),
		Files:    append([]vm.File{{Host: haldir, Guest: GuestHaldir}}, spec.Files...),
		Kernel:   k,
		Timeout:  spec.Timeout,
		Modules:  spec.Modules,
		MemoryMB: spec.MemoryMB,
		Output:   out,
		Log:      os.Stdout,
		// The command's own watchdog may hang with what it watches.
		SilentDump: spec.SilentDump,
	})
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("the %s failed inside the VM (exit status %d); see above", spec.Name, code)
	}
	return nil
}

// apt runs apt-get non-interactively with its output shown.
func apt(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("setup: apt-get %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// BuildStatic builds pkg without cgo into dir/name, so the binary runs in
// the VM's bare initramfs; who prefixes the progress line.
func BuildStatic(ctx context.Context, who, dir, pkg, name string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// sudo often resets PATH; Go's official tarball lives here.
		goBin = "/usr/local/go/bin/go"
		if _, serr := os.Stat(goBin); serr != nil {
			return "", errors.New("setup: the go command is not in PATH (install Go 1.26 or add /usr/local/go/bin to PATH)")
		}
	}
	out := filepath.Join(dir, name)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var msg limitedBuffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("setup: go build %s: %w\n%s", pkg, err, msg.String())
	}
	fmt.Printf("%s: built %s in %s\n", who, name, time.Since(start).Round(100*time.Millisecond))
	return out, nil
}

// limitedBuffer keeps the first 64 KiB of a command's output.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

var _ io.Writer = (*limitedBuffer)(nil)
