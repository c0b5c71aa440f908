package vm

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/haldir-lb/haldir/lab/vm/guest"
)

// Options describe one VM run.
type Options struct {
	// Args is the command to run in the guest. Args[0] is a host path: the
	// binary is copied into the guest with its shared libraries.
	Args []string
	// Env is added to the guest command's environment.
	Env []string
	// Dir is the guest command's working directory; empty means /tmp.
	Dir string
	// Files are extra host files to copy into the guest (helpers, ipvsadm
	// and its libraries, haldir itself).
	Files []File
	// Modules to load before the command, dependencies added; nil means
	// IPVSModules.
	Modules []string
	// Kernel to boot; zero means FindKernel.
	Kernel Kernel
	// QEMU is the qemu binary; empty means qemu-system-x86_64 from PATH.
	QEMU string
	// MemoryMB and CPUs size the guest; zero means 1024 and 2.
	MemoryMB, CPUs int
	// Timeout bounds the whole run; zero means 3 minutes. qemu is killed
	// when it expires.
	Timeout time.Duration
	// Output receives the serial console (kernel messages and the
	// command's stdout and stderr), line by line with \r removed.
	Output io.Writer
	// Log receives the lab's own timing lines; nil means Output.
	Log io.Writer
	// KernelArgs are added to the kernel command line.
	KernelArgs []string
	// SilentDump, when set, is how long the console may stay silent
	// before the host prints where each virtual CPU is (qemu's monitor)
	// and asks the guest kernel (sysrq) for every CPU's backtrace and its
	// blocked tasks (again after each further silence as long, the
	// dump's own lines ending one): a guest that hangs then says where.
	// For commands that print regularly; a quiet `go test` would only
	// add noise.
	SilentDump time.Duration
}

// kernelArgs: the serial console carries everything; panic=-1 with qemu's
// -no-reboot turns a guest panic into qemu exiting; mitigations=off because
// the guest runs only our own code and TCG pays dearly for them.
// sysrq_always_enabled lets the host ask a hung guest for its stacks
// (Options.SilentDump).
var kernelArgs = []string{"console=ttyS0", "panic=-1", "quiet", "mitigations=off", "sysrq_always_enabled"}

// ErrNoStatus says the guest stopped without printing the exit marker: it
// crashed, was killed or timed out.
var ErrNoStatus = errors.New("vm: guest stopped without reporting an exit status")

// guestBinDir is on a directory vminit does not mount over (it mounts
// tmpfs on /tmp and /run).
const guestBinDir = "/haldir-vm/bin"

// Run boots a VM, runs opts.Args in it and returns the command's exit
// status. err is non-nil when the VM itself failed: no kernel, qemu
// missing, a boot failure or the timeout.
func Run(ctx context.Context, opts Options) (exitCode int, err error) {
	if len(opts.Args) == 0 {
		return -1, errors.New("vm: Options.Args is empty: nothing to run")
	}
	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	logw := opts.Log
	if logw == nil {
		logw = out
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	// One guest at a time on this host (GuestLockPath); the timeout bounds
	// this guest's own run, not the wait for another's.
	release, waited, err := lockGuest(ctx)
	if err != nil {
		return -1, err
	}
	defer release()
	if waited > time.Second {
		fmt.Fprintf(logw, "vm: waited %s for another guest on this host to finish\n", waited.Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	qemu, err := findQEMU(opts.QEMU)
	if err != nil {
		return -1, err
	}
	k := opts.Kernel
	if k.Image == "" {
		if k, err = FindKernel(); err != nil {
			return -1, err
		}
	}
	prep := time.Now()
	initrd, nonce, err := buildInitrd(ctx, k, opts)
	if err != nil {
		return -1, err
	}
	defer os.Remove(initrd)
	st, _ := os.Stat(initrd)
	fmt.Fprintf(logw, "vm: initramfs %.1f MB prepared in %s (kernel %s)\n", float64(st.Size())/1e6, time.Since(prep).Round(time.Millisecond), k.Release)

	memory, cpus := opts.MemoryMB, opts.CPUs
	if memory == 0 {
		memory = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	// The monitor is always there: a guest still running shortly before
	// its timeout gets its CPUs dumped (watchGuest), whether or not
	// SilentDump is set.
	monitor := initrd + ".monitor"
	monitorArg := "unix:" + monitor + ",server=on,wait=off"
	defer os.Remove(monitor)
	// KVM is not used: on the machines this runs on /dev/kvm exists but
	// hangs, and TCG boots this kernel in seconds.
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(memory), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-monitor", monitorArg, "-no-reboot",
		"-kernel", k.bootImage(), "-initrd", initrd,
		"-append", strings.Join(slices.Concat(kernelArgs, opts.KernelArgs), " "),
	)
	cmd.Stdin = nil
	cmd.Stderr = &prefixWriter{w: out, prefix: "qemu: "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return -1, fmt.Errorf("vm: %w", err)
	}
	cmd.WaitDelay = 5 * time.Second
	boot := time.Now()
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("vm: starting %s: %w", qemu, err)
	}
	var lines atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	deadline, _ := ctx.Deadline()
	go func() {
		defer close(done)
		watchGuest(monitor, opts.SilentDump, deadline.Add(-finalDumpLead(timeout)), &lines, logw, stop)
	}()
	code, found := scanConsole(stdout, out, nonce, &lines)
	// The dumper writes to logw: it ends before Run writes there or
	// returns (the caller reads logw then).
	close(stop)
	<-done
	werr := cmd.Wait()
	elapsed := time.Since(boot).Round(time.Millisecond)
	if found {
		fmt.Fprintf(logw, "vm: boot-to-result %s, exit status %d\n", elapsed, code)
		return code, nil
	}
	if ctx.Err() != nil {
		return -1, fmt.Errorf("%w: timed out after %s (%v)", ErrNoStatus, elapsed, context.Cause(ctx))
	}
	return -1, fmt.Errorf("%w (qemu: %v, after %s)", ErrNoStatus, werr, elapsed)
}

// scanConsole copies the console to out and returns the status from the
// exit marker line carrying nonce, counting the lines in lines.
func scanConsole(r io.Reader, out io.Writer, nonce string, lines *atomic.Int64) (code int, found bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		lines.Add(1)
		if c, ok := parseExitMarker(line, nonce); ok {
			code, found = c, true
			continue
		}
		fmt.Fprintln(out, line)
	}
	// Drain whatever is left so qemu never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
	return code, found
}

// parseExitMarker recognises "HALDIR-VM-EXIT <nonce> <status>".
func parseExitMarker(line, nonce string) (int, bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != guest.ExitMarker || f[1] != nonce {
		return 0, false
	}
	c, err := strconv.Atoi(f[2])
	if err != nil || c < 0 || c > 255 {
		return 0, false
	}
	return c, true
}

func findQEMU(name string) (string, error) {
	if name == "" {
		name = "qemu-system-x86_64"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("vm: %s not found (apt-get install qemu-system-x86): %w", name, err)
	}
	return p, nil
}

// buildInitrd writes the initramfs for opts to a temporary file.
func buildInitrd(ctx context.Context, k Kernel, opts Options) (path, nonce string, err error) {
	names := opts.Modules
	if names == nil {
		names = IPVSModules
	}
	mods, err := ResolveModules(k.ModulesDir, names)
	if err != nil {
		return "", "", err
	}
	initBin, err := BuildInit(ctx)
	if err != nil {
		return "", "", err
	}
	var nb [8]byte
	_, _ = rand.Read(nb[:])
	nonce = hex.EncodeToString(nb[:])

	ir := newInitramfs()
	defer ir.close()
	if err := ir.addHost(initBin, guest.InitPath); err != nil {
		return "", "", err
	}
	guestCmd := guestBinDir + "/" + filepath.Base(opts.Args[0])
	if err := ir.addFile(File{Host: opts.Args[0], Guest: guestCmd, WithLibs: true}); err != nil {
		return "", "", err
	}
	for _, f := range opts.Files {
		if err := ir.addFile(f); err != nil {
			return "", "", err
		}
	}
	guestMods, err := ir.addModules(mods)
	if err != nil {
		return "", "", err
	}
	cfg := guest.Config{
		Args:    append([]string{guestCmd}, opts.Args[1:]...),
		Env:     opts.Env,
		Dir:     opts.Dir,
		Modules: guestMods,
		Nonce:   nonce,
	}
	if err := ir.addConfig(cfg); err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp("", "haldir-vm-*.cpio")
	if err != nil {
		return "", "", fmt.Errorf("vm: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = ir.writeTo(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", err
	}
	return f.Name(), nonce, nil
}

// prefixWriter marks qemu's own messages in the console stream.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" {
			fmt.Fprint(p.w, p.prefix+l)
		}
	}
	return len(b), nil
}

// watchGuest asks the guest kernel for every CPU's backtrace and its
// blocked tasks (sysrq l and w, typed on the guest's keyboard through
// qemu's monitor) whenever the console has printed nothing for silent
// (when set), until stop is closed, and prints where each virtual CPU is
// (its registers, from the monitor): a kernel spinning with interrupts off
// answers no key, and its instruction pointers, looked up in the guest's
// /proc/kallsyms, say where it spins.
//
// A guest still running at final (shortly before its timeout kills it)
// is dumped once the same way, silent or not: a guest kernel that hangs
// (its test binary's own -test.timeout never fires) then says where.
func watchGuest(monitor string, silent time.Duration, final time.Time, lines *atomic.Int64, logw io.Writer, stop <-chan struct{}) {
	var tickC <-chan time.Time
	if silent > 0 {
		tick := time.NewTicker(min(silent/4, 5*time.Second))
		defer tick.Stop()
		tickC = tick.C
	}
	finalT := time.NewTimer(time.Until(final))
	defer finalT.Stop()
	last, since := lines.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case <-finalT.C:
			fmt.Fprintln(logw, "vm: the guest is still running shortly before its timeout: asking the guest kernel for its CPUs' backtraces and blocked tasks (sysrq l, w)")
			dumpGuest(monitor, logw)
			continue
		case <-tickC:
		}
		if n := lines.Load(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) < silent {
			continue
		}
		fmt.Fprintf(logw, "vm: the console has been silent for %s: asking the guest kernel for its CPUs' backtraces and blocked tasks (sysrq l, w)\n", time.Since(since).Round(time.Second))
		since = time.Now()
		dumpGuest(monitor, logw)
	}
}

// finalDumpLead is how long before a guest's timeout a guest still
// running is dumped: after its test binary's own timeout (15 s before,
// RunInVMWith), with time left for the dump (about 6 s of monitor
// commands) to reach the console.
func finalDumpLead(timeout time.Duration) time.Duration {
	return min(10*time.Second, timeout/3)
}

// dumpGuest prints where each virtual CPU is and asks the guest kernel
// for every CPU's backtrace and its blocked tasks.
func dumpGuest(monitor string, logw io.Writer) {
	regs, err := monitorSession(monitor, "info registers -a")
	for _, l := range cpuLines(regs) {
		fmt.Fprintf(logw, "vm: %s\n", l)
	}
	if err == nil {
		_, err = monitorSession(monitor, "sendkey alt-sysrq-l", "sendkey alt-sysrq-w")
	}
	if err != nil {
		fmt.Fprintf(logw, "vm: qemu monitor: %v\n", err)
	}
}

// monitorSession runs commands in qemu's human monitor and returns what
// the last one printed (with the monitor's greeting when there is one
// command).
func monitorSession(monitor string, cmds ...string) (string, error) {
	c, err := net.DialTimeout("unix", monitor, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var last []byte
	buf := make([]byte, 64<<10)
	for _, cmd := range cmds {
		if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
			return "", err
		}
		// The kernel handles one sysrq at a time, and the monitor has
		// no end-of-answer marker but its next prompt: read what comes
		// within 2 s.
		last = last[:0]
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, err := c.Read(buf)
			last = append(last, buf[:n]...)
			if err != nil {
				break
			}
		}
	}
	return string(last), nil
}

// cpuLines picks from "info registers -a" each CPU's instruction
// pointer, privilege level and whether interrupts are on.
func cpuLines(regs string) []string {
	var out []string
	cpu := ""
	for _, l := range strings.Split(regs, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "CPU#") {
			cpu = l
		}
		if rip, ok := strings.CutPrefix(l, "RIP="); ok {
			f := strings.Fields(rip)
			if len(f) < 2 {
				continue
			}
			fl, _ := strconv.ParseUint(strings.TrimPrefix(f[1], "RFL="), 16, 64)
			cpl := ""
			for _, x := range f {
				if strings.HasPrefix(x, "CPL=") {
					cpl = x
				}
			}
			out = append(out, fmt.Sprintf("%s RIP=%s %s interrupts %s", cpu, f[0], cpl, map[bool]string{true: "on", false: "off"}[fl&0x200 != 0]))
		}
	}
	return out
}
