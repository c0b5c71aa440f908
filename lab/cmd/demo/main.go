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
// in Fault, members swapping states), fixed in package vrrp. Root is needed
// either way.
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
		err = runGuestMain(ctx, *haldir, Options{Staggered: *staggered})
	} else {
		err = runHost(ctx, Options{Staggered: *staggered})
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
	return vmhost.Run(ctx, vmhost.Spec{
		Name:    "demo",
		Pkg:     "github.com/haldir-lb/haldir/lab/cmd/demo",
		Args:    guestFlags(opts),
		Timeout: 4 * time.Minute,
	})
}

// guestFlags passes the options on to the demo in the VM.
func guestFlags(opts Options) []string {
	// Always explicit: the flag's default is not Options' zero value.
	return []string{fmt.Sprintf("-staggered=%t", opts.Staggered)}
}
