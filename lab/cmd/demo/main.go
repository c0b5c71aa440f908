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
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

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
		if haldir, err = vmhost.BuildStatic(ctx, "demo", dir, vmhost.HaldirPkg, "haldir"); err != nil {
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

// runHost runs the demo natively or in the VM.
func runHost(ctx context.Context, opts Options) error {
	if vm.HostHasIPVS() {
		fmt.Println("demo: the host kernel has IPVS: running natively")
		return runGuestMain(ctx, "", opts)
	}
	fmt.Println("demo: the host kernel has no IPVS: running the demo in the lab VM (qemu, TCG)")
	var files []vm.File
	if opts.BGP {
		frr, err := vm.FRRFiles()
		if err != nil {
			return fmt.Errorf("setup: %w (lab/install-deps.sh installs it)", err)
		}
		files = frr
	}
	return vmhost.Run(ctx, vmhost.Spec{
		Name:    "demo",
		Pkg:     "github.com/haldir-lb/haldir/lab/cmd/demo",
		Args:    guestFlags(opts),
		Files:   files,
		Timeout: 4 * time.Minute,
	})
}

// guestFlags passes the options on to the demo in the VM.
func guestFlags(opts Options) []string {
	// Always explicit: the flag's default is not Options' zero value.
	return []string{fmt.Sprintf("-staggered=%t", opts.Staggered), fmt.Sprintf("-bgp=%t", opts.BGP)}
}
