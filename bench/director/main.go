// Command bench measures haldir's IPVS director against ipvsadm in the same
// VM and the same run: a cold apply of 1,000 services × 10 real servers
// (haldir's Reconciler and ipvs.Client against ipvsadm-restore of the same
// rules), a one-change reload on that table (against ipvsadm -e, and
// against re-applying everything with ipvsadm-restore), and a restart of
// haldir adopting the full table. It prints times (median and max over the
// rounds), their ratios, and the netlink messages each side sent, counted
// by the kernel through an nlmon tap.
//
// The host kernel here has no IPVS, so the program boots the lab VM
// (lab/vm) and re-runs itself inside as the guest, carrying ipvsadm,
// ipvsadm-restore (a bash script) and what they need. The guest's CPUs are
// emulated (TCG): absolute times are far above a real director's, the
// ratios are what the comparison is about.
//
//	go run ./bench/director                 # 1000×10, 5 rounds, in the VM
//	go run ./bench/director -native         # here, when this kernel has IPVS
//	go run ./bench/director -cpuprofile cpu.pprof
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/benchenv"
	"github.com/haldir-lb/haldir/lab/vm"
)

const (
	markTable = "DIRBENCH "
	markLog   = "DIRBENCH-LOG "
	markProf  = "DIRBENCH-PROF "
)

func main() {
	var (
		services = flag.Int("services", 1000, "virtual services")
		reals    = flag.Int("reals", 10, "real servers per service")
		rounds   = flag.Int("rounds", 5, "timed rounds (one counted round comes first)")
		sched    = flag.String("scheduler", "wlc", "scheduler of every service")
		native   = flag.Bool("native", false, "run here instead of in the VM (needs root and a kernel with IPVS and nlmon)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of haldir's side of the timed rounds here")
		timeout  = flag.Duration("timeout", 20*time.Minute, "bound on the whole VM run")
		guest    = flag.Bool("guest", false, "internal: the in-VM side")
		hostCPU  = flag.Duration("host-cpu", 0, "internal: the host's CPU-side reload time")
	)
	flag.Parse()
	if *services < 1 || *services > 60000 || *reals < 1 || *reals > 1000 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: want 1 <= -services <= 60000, 1 <= -reals <= 1000, -rounds >= 1")
		os.Exit(2)
	}
	scheduler, err := conf.ParseScheduler(*sched)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -scheduler:", err)
		os.Exit(2)
	}
	o := options{table: table{services: *services, reals: *reals, scheduler: scheduler}, rounds: *rounds, hostCPU: *hostCPU}
	switch {
	case *guest:
		os.Exit(guestMain(o, *cpuprof != ""))
	case *native:
		os.Exit(nativeMain(o, *cpuprof))
	default:
		os.Exit(hostMain(o, *cpuprof, *timeout))
	}
}

// guestFiles are the host files the guest needs for ipvsadm's side:
// ipvsadm, the ipvsadm-restore script and the bash and grep it runs, with
// their libraries, at the paths the script's PATH and #! expect.
func guestFiles() ([]vm.File, error) {
	var out []vm.File
	for _, f := range []struct {
		name, guest string
		libs        bool
	}{
		{"ipvsadm", "/usr/sbin/ipvsadm", true},
		{"ipvsadm-restore", "/usr/sbin/ipvsadm-restore", false},
		{"bash", "/bin/bash", true},
		{"grep", "/usr/bin/grep", true},
	} {
		p, err := exec.LookPath(f.name)
		if err != nil {
			return nil, fmt.Errorf("%s not found on this host (apt-get install ipvsadm): %w", f.name, err)
		}
		out = append(out, vm.File{Host: p, Guest: f.guest, WithLibs: f.libs})
	}
	return out, nil
}

// guestModules adds nlmon, the netlink tap, to the lab's IPVS modules.
func guestModules() []string { return append(slices.Clone(vm.IPVSModules), "nlmon") }

// haveIpvsadm reports whether ipvsadm's side can run here.
func haveIpvsadm() bool {
	for _, n := range []string{"ipvsadm", "ipvsadm-restore", "bash", "grep"} {
		if _, err := exec.LookPath(n); err != nil {
			return false
		}
	}
	return true
}

func hostMain(o options, cpuprof string, timeout time.Duration) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	files, err := guestFiles()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	// The host's own CPU time for the same reload, before the VM competes.
	cpu, err := cpuReload(o.table, max(o.rounds, 5))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	args := []string{self, "-guest", "-host-cpu", median(cpu).String(), "-services", strconv.Itoa(o.services), "-reals", strconv.Itoa(o.reals),
		"-rounds", strconv.Itoa(o.rounds), "-scheduler", o.scheduler.String()}
	if cpuprof != "" {
		args = append(args, "-cpuprofile", "console")
	}
	load0 := benchenv.LoadAverage()
	var console, prof bytes.Buffer
	var table []string
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.Contains(l, markLog):
				fmt.Fprintln(os.Stderr, "guest:", l[strings.Index(l, markLog)+len(markLog):])
			case strings.Contains(l, markProf):
				prof.WriteString(l[strings.Index(l, markProf)+len(markProf):])
			case strings.Contains(l, markTable):
				table = append(table, l[strings.Index(l, markTable)+len(markTable):])
			default:
				console.WriteString(l + "\n")
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "bench: booting the lab VM (%d×%d, %d rounds)...\n", o.services, o.reals, o.rounds)
	code, err := vm.Run(context.Background(), vm.Options{
		Args: args, Files: files, Modules: guestModules(),
		CPUs: 2, MemoryMB: 2048, Timeout: timeout, Output: pw,
	})
	pw.Close()
	<-done
	for _, l := range table {
		fmt.Println(l)
	}
	fmt.Printf("\nhost load average (1/5/15 min) before: %s, after: %s on %d CPUs; the guest has 2 emulated (TCG) vCPUs\n", load0, benchenv.LoadAverage(), runtime.NumCPU())
	if cpuprof != "" && prof.Len() > 0 {
		b, derr := base64.StdEncoding.DecodeString(prof.String())
		if derr == nil {
			derr = os.WriteFile(cpuprof, b, 0o644)
		}
		if derr != nil {
			fmt.Fprintln(os.Stderr, "bench: CPU profile:", derr)
		} else {
			fmt.Fprintf(os.Stderr, "bench: CPU profile written to %s (go tool pprof %s %s)\n", cpuprof, self, cpuprof)
		}
	}
	if err != nil || code != 0 {
		fmt.Fprintf(os.Stderr, "bench: guest exit status %d, %v; console:\n%s", code, err, console.String())
		return 1
	}
	return 0
}

// guestMain runs the benchmark inside the VM, printing with markers the
// host picks out of the console.
func guestMain(o options, profile bool) int {
	o.ipvsadm = haveIpvsadm()
	o.progress = &markWriter{mark: markLog}
	var prof bytes.Buffer
	if profile {
		o.profile = &prof
	}
	rep, err := run(context.Background(), o)
	if profile {
		enc := base64.StdEncoding.EncodeToString(prof.Bytes())
		for len(enc) > 0 {
			n := min(len(enc), 4096)
			fmt.Println(markProf + enc[:n])
			enc = enc[n:]
		}
	}
	out := &markWriter{mark: markTable}
	if rep != nil {
		rep.print(out)
		fmt.Fprintf(out, "\nguest load average: %s\n", benchenv.LoadAverage())
	}
	if err != nil {
		fmt.Fprintf(out, "benchmark failed: %v\n", err)
		return 2
	}
	if len(rep.problems) > 0 {
		return 1
	}
	return 0
}

func nativeMain(o options, cpuprof string) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: -native needs root")
		return 1
	}
	o.ipvsadm = haveIpvsadm()
	o.progress = os.Stderr
	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		o.profile = f
	}
	load0 := benchenv.LoadAverage()
	rep, err := run(context.Background(), o)
	if rep != nil {
		rep.print(os.Stdout)
	}
	fmt.Printf("\nload average (1/5/15 min) before: %s, after: %s on %d CPUs\n", load0, benchenv.LoadAverage(), runtime.NumCPU())
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if len(rep.problems) > 0 {
		return 1
	}
	return 0
}

// markWriter prefixes every line with mark.
type markWriter struct {
	mark string
	buf  []byte
}

func (m *markWriter) Write(b []byte) (int, error) {
	m.buf = append(m.buf, b...)
	for {
		i := bytes.IndexByte(m.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Print(m.mark + string(m.buf[:i+1]))
		m.buf = m.buf[i+1:]
	}
}
