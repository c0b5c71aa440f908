// Command vmkernel keeps the lab VM's kernel cache and runs commands in the
// VM:
//
//	vmkernel fetch   download Debian's current kernel into the cache if
//	                 missing (idempotent) and print the kernel image path
//	vmkernel path    print the cached kernel image path, fail if none
//	vmkernel run [-file HOST[:GUEST]]... [-env K=V]... [-timeout D] -- CMD ARGS...
//	                 boot the VM with the IPVS modules, run CMD (a host
//	                 path, copied in with its shared libraries) and exit
//	                 with its status
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/lab/vm"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

const usage = `usage:
  vmkernel fetch   download the lab VM kernel into the cache if missing, print its path
  vmkernel path    print the cached kernel path, fail if none
  vmkernel run [-file HOST[:GUEST]]... [-env K=V]... [-timeout D] [-mem MB] [-cpus N] -- CMD ARGS...
                   run CMD in the lab VM and exit with its status`

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch args[0] {
	case "fetch", "path":
		var (
			k   vm.Kernel
			err error
		)
		if args[0] == "fetch" {
			k, err = vm.FetchKernel(ctx, os.Stderr)
		} else {
			k, err = vm.FindKernel()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmkernel:", err)
			return 1
		}
		boot := "compressed image (no vmlinux)"
		if k.Vmlinux != "" {
			boot = k.Vmlinux
		}
		fmt.Fprintf(os.Stderr, "vmkernel: %s (%s), boots %s, modules in %s\n", k.Package, k.Release, boot, k.ModulesDir)
		fmt.Println(k.Image)
		return 0
	case "run":
		opts, err := parseRun(args[1:])
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmkernel run: %v\n%s\n", err, usage)
			return 2
		}
		opts.Output = os.Stdout
		opts.Log = os.Stderr
		code, err := vm.Run(ctx, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmkernel:", err)
			return 1
		}
		return code
	}
	fmt.Fprintln(os.Stderr, usage)
	return 2
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseRun(args []string) (vm.Options, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	var files, env listFlag
	fs.Var(&files, "file", "host file or directory to copy in, as HOST or HOST:GUEST (ELF files bring their libraries)")
	fs.Var(&env, "env", "K=V for the command's environment")
	timeout := fs.Duration("timeout", 3*time.Minute, "kill the VM after this long")
	mem := fs.Int("mem", 1024, "guest memory in MB")
	cpus := fs.Int("cpus", 2, "guest CPUs")
	if err := fs.Parse(args); err != nil {
		return vm.Options{}, err
	}
	if fs.NArg() == 0 {
		return vm.Options{}, errors.New("no command given after the flags")
	}
	opts := vm.Options{Args: fs.Args(), Timeout: *timeout, MemoryMB: *mem, CPUs: *cpus}
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			return vm.Options{}, fmt.Errorf("-env %q is not K=V", kv)
		}
		opts.Env = append(opts.Env, kv)
	}
	for _, f := range files {
		host, guest, ok := strings.Cut(f, ":")
		if !ok {
			guest = host
		}
		if !strings.HasPrefix(guest, "/") {
			return vm.Options{}, fmt.Errorf("-file %q: the guest path must be absolute", f)
		}
		if _, err := os.Stat(host); err != nil {
			return vm.Options{}, fmt.Errorf("-file %q: %w", f, err)
		}
		opts.Files = append(opts.Files, vm.File{Host: host, Guest: guest, WithLibs: isELF(host)})
	}
	return opts, nil
}

// isELF tells executables and libraries, which bring their shared
// libraries along, from data files.
func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "\x7fELF"
}
