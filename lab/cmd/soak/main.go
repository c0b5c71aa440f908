// Command soak is `make soak`: a chaos soak of the standard lab's director
// pair (haldir on both directors: VRRP v3 at 100 ms, a sync group of the
// front VIP and the back gateway, conn sync and the cluster on eth2, a NAT
// round-robin service with HTTP checks). Steady client load runs
// throughout (new connections at a fixed rate and a pool of long-lived
// ones, every answer checked) while a fault schedule drawn from a seed
// kills, stops, starves and partitions the directors, breaks the real
// servers, reloads, hands off and enters maintenance; named invariants are
// checked all the time. The report (text, and JSON with -json) counts the
// faults by kind and the violations by invariant; any violation makes the
// exit status non-zero.
//
// On a host without IPVS it runs itself in the lab VM (package vmhost);
// -guest runs the soak in the current kernel.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/haldir-lb/haldir/lab/vmhost"
)

func main() {
	mode := flag.String("mode", string(ModePair), "what to soak: pair (the VRRP director pair) or bgp (three BGP directors behind an ECMP router)")
	guest := flag.Bool("guest", false, "run the soak in this kernel (what the VM runs); needs IPVS")
	haldir := flag.String("haldir", "", "haldir binary for -guest (default: build it)")
	duration := flag.Duration("duration", 30*time.Minute, "how long faults are injected (setup and the final checks come on top)")
	seed := flag.Uint64("seed", 0, "the fault schedule's seed; 0 picks one (printed, so a run can be replayed)")
	jsonPath := flag.String("json", "", "also write the report as JSON to this file")
	kinds := flag.String("kinds", "", "only these fault kinds, comma-separated (default: all), to replay one kind's trouble")
	minFaults := flag.Int("min-faults", 0, "inject at least the schedule's first N faults, past -duration if need be (for at most -duration more)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "soak: must run as root (it creates network namespaces and IPVS services)")
		os.Exit(1)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	opts := Options{Duration: *duration, Seed: *seed, MinFaults: *minFaults}
	var err error
	if opts.Mode, err = parseMode(*mode); err != nil {
		fmt.Fprintln(os.Stderr, "soak: -mode:", err)
		os.Exit(2)
	}
	if opts.Kinds, err = parseKinds(*kinds, opts.Mode); err != nil {
		fmt.Fprintln(os.Stderr, "soak: -kinds:", err)
		os.Exit(2)
	}
	if *guest {
		err = runGuest(ctx, *haldir, opts)
	} else {
		err = runHost(ctx, opts, *jsonPath)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak: FAILED:", err)
		os.Exit(1)
	}
}

// jsonMarker starts the guest's one line of JSON report on the console.
const jsonMarker = "SOAK-REPORT-JSON "

// runGuest runs the soak here (building haldir when no binary was given)
// and prints the JSON report on one marked line, which the host side
// picks up from the VM's console.
func runGuest(ctx context.Context, haldir string, opts Options) error {
	rep, err := runHere(ctx, haldir, opts)
	if rep != nil {
		if b, jerr := rep.JSON(); jerr == nil {
			fmt.Printf("%s%s\n", jsonMarker, b)
		}
	}
	return verdict(rep, err)
}

// runHere runs the soak in this kernel.
func runHere(ctx context.Context, haldir string, opts Options) (*Report, error) {
	if haldir == "" {
		dir, err := os.MkdirTemp("", "haldir-soak-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if haldir, err = vmhost.BuildStatic(ctx, "soak", dir, vmhost.HaldirPkg, "haldir"); err != nil {
			return nil, err
		}
	}
	return Run(ctx, os.Stdout, haldir, opts)
}

// verdict fails a run that found violations.
func verdict(rep *Report, err error) error {
	if err != nil {
		return err
	}
	if n := rep.TotalViolations(); n > 0 {
		return fmt.Errorf("%d invariant violations (see the report)", n)
	}
	return nil
}

// runHost runs the soak natively or in the VM and keeps the JSON report.
func runHost(ctx context.Context, opts Options, jsonPath string) error {
	var (
		js  []byte
		err error
	)
	if vm.HostHasIPVS() {
		fmt.Println("soak: the host kernel has IPVS: running natively")
		var rep *Report
		rep, err = runHere(ctx, "", opts)
		if rep != nil {
			js, _ = rep.JSON()
		}
		err = verdict(rep, err)
	} else {
		fmt.Println("soak: the host kernel has no IPVS: running the soak in the lab VM (qemu, TCG)")
		var files []vm.File
		if opts.mode() == ModeBGP {
			if files, err = vm.FRRFiles(); err != nil {
				return fmt.Errorf("the BGP mode's router: %w", err)
			}
		}
		keep := &jsonCatcher{out: os.Stdout}
		err = vmhost.Run(ctx, vmhost.Spec{
			Name: "soak",
			Pkg:  "github.com/haldir-lb/haldir/lab/cmd/soak",
			Args: guestArgs(opts),
			// Boot, lab and haldir start-up, the final checks and a margin.
			Timeout:  guestTimeout(opts),
			Modules:  GuestModules(),
			Files:    files,
			MemoryMB: 1536,
			Output:   keep,
			// The soak prints at every fault (seconds apart); its own
			// watchdog ends a stuck run within 65 s. Silence past that
			// means the watchdog is stuck too: let the guest kernel say
			// where.
			SilentDump: 2 * time.Minute,
		})
		keep.flush()
		js = keep.json
	}
	if jsonPath != "" && js != nil {
		if werr := os.WriteFile(jsonPath, append(js, '\n'), 0o644); werr != nil {
			return werr
		}
		fmt.Printf("soak: JSON report written to %s\n", jsonPath)
	}
	return err
}

// guestTimeout bounds the soak's guest: the window, setup and final checks,
// and the window once more when MinFaults may run past it.
func guestTimeout(opts Options) time.Duration {
	t := opts.Duration + 5*time.Minute
	if opts.MinFaults > 0 {
		t += opts.Duration
	}
	return t
}

// guestArgs passes the options on to the soak in the VM.
func guestArgs(opts Options) []string {
	args := []string{"-mode", string(opts.mode()), "-duration", opts.Duration.String(), "-seed", fmt.Sprint(opts.Seed)}
	if opts.MinFaults > 0 {
		args = append(args, "-min-faults", fmt.Sprint(opts.MinFaults))
	}
	if len(opts.Kinds) > 0 {
		names := make([]string, len(opts.Kinds))
		for i, k := range opts.Kinds {
			names[i] = k.String()
		}
		args = append(args, "-kinds", strings.Join(names, ","))
	}
	return args
}

// GuestModules are the kernel modules the soak's guest loads: IPVS and
// the lab's, and netem for the loss, delay and reordering faults.
func GuestModules() []string {
	return append(append([]string{}, vm.IPVSModules...), "sch_netem")
}

// jsonCatcher passes console output on and keeps the report's JSON line.
type jsonCatcher struct {
	out  io.Writer
	buf  []byte
	json []byte
}

func (j *jsonCatcher) Write(p []byte) (int, error) {
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		j.line(j.buf[:i+1])
		j.buf = j.buf[i+1:]
	}
}

func (j *jsonCatcher) line(l []byte) {
	if k := bytes.Index(l, []byte(jsonMarker)); k >= 0 {
		j.json = bytes.TrimSpace(append([]byte{}, l[k+len(jsonMarker):]...))
		return
	}
	_, _ = j.out.Write(l)
}

func (j *jsonCatcher) flush() {
	if len(j.buf) > 0 {
		j.line(j.buf)
		j.buf = nil
	}
}
