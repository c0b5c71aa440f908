// Command demo is `make demo`: it builds haldir, brings up the standard lab
// (two directors, three real HTTP servers, one client) with haldir running
// on both directors, and walks through VRRP, load balancing, health checks
// and a failover drill, printing what happens and a drill report.
//
// On a host without IPVS (most CI machines and containers) it installs qemu
// if missing, fetches the lab VM kernel, builds haldir and itself statically
// and runs the demo inside the lab VM; on a host with IPVS it runs the demo
// natively. `-guest` runs the demo itself in the current kernel (the VM uses
// it). The demo runs plainly by default: both directors start at once and
// links are cut and restored in plain order. `-staggered` brings back the
// workarounds it once needed for two haldir sync-group bugs (a member stuck
// in Fault, members swapping states), fixed in package vrrp. `-bgp` (make
// demo-bgp) runs the BGP demo instead: haldir in BGP mode on the BGP lab's
// three directors behind an FRR router (RunBGPDemo, package lab/bgpha),
// FRRouting copied into the VM. Root is needed either way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/lab/vm"
)

// guestHaldir is where the VM finds the haldir binary.
const guestHaldir = "/haldir-vm/bin/haldir"

func main() {
	guest := flag.Bool("guest", false, "run the demo in this kernel (what the VM runs); needs IPVS")
	haldir := flag.String("haldir", "", "haldir binary for -guest (default: build it)")
	bgp := flag.Bool("bgp", false, "the BGP demo (make demo-bgp): three active directors behind an ECMP router running FRR")
	staggered := flag.Bool("staggered", false, "start director2 after director1 is master and cut/restore links in a careful order, as the workarounds for the since-fixed sync-group bugs did")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: must run as root (it creates network namespaces and IPVS services): sudo go run ./lab/cmd/demo")
		os.Exit(1)
	}
	var err error
	if *guest {
		err = runGuestMain(ctx, *haldir, Options{Staggered: *staggered, BGP: *bgp})
	} else {
		err = runHost(ctx, Options{Staggered: *staggered, BGP: *bgp})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

// runGuestMain runs the demo here, building haldir first when no binary
// was given.
func runGuestMain(ctx context.Context, haldir string, opts Options) error {
	if haldir == "" {
		dir, err := os.MkdirTemp("", "haldir-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if haldir, err = buildStatic(ctx, dir, "github.com/haldir-lb/haldir/cmd/haldir", "haldir"); err != nil {
			return err
		}
	}
	if opts.BGP {
		_, err := RunBGPDemo(ctx, os.Stdout, haldir)
		return err
	}
	_, err := RunDemo(ctx, os.Stdout, haldir, opts)
	return err
}

// runHost prepares what the demo needs and runs it natively or in the VM.
func runHost(ctx context.Context, opts Options) error {
	dir, err := os.MkdirTemp("", "haldir-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if vm.HostHasIPVS() {
		fmt.Println("demo: the host kernel has IPVS: running natively")
		return runGuestMain(ctx, "", opts)
	}
	fmt.Println("demo: the host kernel has no IPVS: running the demo in the lab VM (qemu, TCG)")
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
		fmt.Println("demo: installing qemu-system-x86 with apt-get")
		if err := aptUpdate(); err != nil {
			return err
		}
		if err := apt(ctx, "install", "-y", "-q", "--no-install-recommends", "qemu-system-x86"); err != nil {
			return err
		}
	}
	k, err := vm.FetchKernel(ctx, os.Stdout)
	if err != nil && !updated {
		fmt.Printf("demo: fetching the lab VM kernel failed (%v); updating the apt lists and retrying\n", err)
		if uerr := aptUpdate(); uerr != nil {
			return uerr
		}
		k, err = vm.FetchKernel(ctx, os.Stdout)
	}
	if err != nil {
		return fmt.Errorf("setup: fetching the lab VM kernel: %w", err)
	}
	haldir, err := buildStatic(ctx, dir, "github.com/haldir-lb/haldir/cmd/haldir", "haldir")
	if err != nil {
		return err
	}
	self, err := buildStatic(ctx, dir, "github.com/haldir-lb/haldir/lab/cmd/demo", "demo")
	if err != nil {
		return err
	}
	files := []vm.File{{Host: haldir, Guest: guestHaldir}}
	if opts.BGP {
		frr, err := vm.FRRFiles()
		if err != nil {
			return fmt.Errorf("setup: %w (lab/install-deps.sh installs it)", err)
		}
		files = append(files, frr...)
	}
	code, err := vm.Run(ctx, vm.Options{
		Args:    append([]string{self, "-guest", "-haldir", guestHaldir}, guestFlags(opts)...),
		Files:   files,
		Kernel:  k,
		Timeout: 4 * time.Minute,
		Output:  os.Stdout,
		Log:     os.Stdout,
	})
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("the demo failed inside the VM (exit status %d); see above", code)
	}
	return nil
}

// guestFlags passes the options on to the demo in the VM.
func guestFlags(opts Options) []string {
	// Always explicit: the flag's default is not Options' zero value.
	return []string{fmt.Sprintf("-staggered=%t", opts.Staggered), fmt.Sprintf("-bgp=%t", opts.BGP)}
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

// buildStatic builds pkg without cgo into dir/name, so the binary runs in
// the VM's bare initramfs.
func buildStatic(ctx context.Context, dir, pkg, name string) (string, error) {
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
	fmt.Printf("demo: built %s in %s\n", name, time.Since(start).Round(100*time.Millisecond))
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
