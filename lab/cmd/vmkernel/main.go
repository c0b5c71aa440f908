// Command vmkernel keeps the lab VM's kernel cache: `vmkernel fetch`
// downloads Debian's current kernel package once (later runs reuse it) and
// prints the kernel image path; `vmkernel path` only prints it, failing when
// nothing was fetched yet.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/haldir-lb/haldir/lab/vm"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "fetch" && os.Args[1] != "path") {
		fmt.Fprintln(os.Stderr, "usage: vmkernel fetch|path\n  fetch: download the lab VM kernel into the cache if missing, print its path\n  path:  print the cached kernel path, fail if none")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var (
		k   vm.Kernel
		err error
	)
	if os.Args[1] == "fetch" {
		k, err = vm.FetchKernel(ctx, os.Stderr)
	} else {
		k, err = vm.FindKernel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmkernel:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vmkernel: %s (%s), modules in %s\n", k.Package, k.Release, k.ModulesDir)
	fmt.Println(k.Image)
}
