package vm

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModeEnv selects where IPVS tests run: "native" on the host kernel, "vm"
// in a qemu VM, "auto" (the default) natively when the host kernel has IPVS
// and in a VM otherwise.
const ModeEnv = "HALDIR_LAB"

// guestPkgDir is the in-VM test binary's working directory.
const guestPkgDir = "/haldir-vm/pkg"

// InVM reports whether this process runs inside the lab VM.
func InVM() bool { return os.Getenv(InVMEnv) != "" }

var (
	hostIPVSOnce sync.Once
	hostIPVS     bool
)

// HostHasIPVS reports whether the host kernel offers IPVS, loading ip_vs
// with modprobe when it is a module not loaded yet.
func HostHasIPVS() bool {
	hostIPVSOnce.Do(func() {
		if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
			hostIPVS = true
			return
		}
		if os.Geteuid() != 0 {
			return
		}
		if err := exec.Command("modprobe", "-q", "ip_vs").Run(); err != nil {
			return
		}
		_, err := os.Stat("/proc/net/ip_vs")
		hostIPVS = err == nil
	})
	return hostIPVS
}

// RunInVM makes the calling test run where a real IPVS is. Call it first
// in a top-level test:
//
//	if vm.RunInVM(t) {
//		return
//	}
//
// It returns false, letting the test body run, inside the VM and when the
// host kernel has IPVS (HALDIR_LAB=native, or auto). Otherwise it boots the
// VM with this same test binary restricted to this test, streams the guest's
// output into t.Log, fails t when the test failed in the guest, and returns
// true so the caller returns. Without qemu or a cached kernel it skips the
// test, or fails it when HALDIR_LAB=vm asked for the VM explicitly.
func RunInVM(t testing.TB) (ranInVM bool) {
	t.Helper()
	return RunInVMWith(t, Options{})
}

// RunInVMWith is RunInVM with more for the guest: extra Files (ipvsadm and
// its libraries, haldir, helpers), Env, Modules, MemoryMB, CPUs and a
// Timeout. Args, Kernel and Output are RunInVM's own. For batched tests the
// options of the first test to boot the shared VM apply.
//
// The guest command runs in a copy of the package directory's testdata (as
// a test's working directory would be on the host), so tests reading
// testdata/ work unchanged.
func RunInVMWith(t testing.TB, extra Options) (ranInVM bool) {
	t.Helper()
	if InVM() {
		return false
	}
	mode := os.Getenv(ModeEnv)
	switch mode {
	case "", "auto":
		if HostHasIPVS() {
			return false
		}
	case "native":
		if !HostHasIPVS() {
			t.Fatalf("vm: %s=native but the host kernel has no IPVS (no /proc/net/ip_vs, modprobe ip_vs failed); use %s=vm or auto", ModeEnv, ModeEnv)
		}
		return false
	case "vm":
	default:
		t.Fatalf("vm: %s=%q: want native, vm or auto", ModeEnv, mode)
	}
	unavailable := func(err error) bool {
		t.Helper()
		if mode == "vm" {
			t.Fatalf("vm: %s=vm but the VM cannot run: %v", ModeEnv, err)
		}
		t.Skipf("vm: the host kernel has no IPVS and the VM cannot run: %v", err)
		return true
	}
	if _, err := findQEMU(""); err != nil {
		return unavailable(err)
	}
	k, err := FindKernel()
	if err != nil {
		return unavailable(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("vm: locating the test binary: %v", err)
	}
	timeout := extra.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	if dl, ok := deadline(t); ok {
		if left := time.Until(dl) - 5*time.Second; left < timeout {
			timeout = left
		}
	}
	// The in-VM binary times out first, so a hung test dumps its
	// goroutines instead of vanishing with a killed qemu.
	inner := timeout - 15*time.Second
	if inner < 10*time.Second {
		inner = timeout
	}
	args := []string{exe, "-test.timeout", inner.String()}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	opts := extra
	opts.Args = args
	opts.Env = append(passEnv(), extra.Env...)
	opts.Kernel = k
	opts.Timeout = timeout
	opts.Output, opts.Log = nil, nil
	// Tests run in their package directory; bring testdata along.
	if st, err := os.Stat("testdata"); err == nil && st.IsDir() {
		opts.Files = append(opts.Files, File{Host: "testdata", Guest: guestPkgDir + "/testdata"})
	}
	opts.Dir = guestPkgDir
	if b := batchFor(t.Name()); b != nil {
		b.run(opts)
		<-b.done
		b.report(t, t.Name())
		return true
	}
	opts.Args = append(opts.Args, "-test.run", testPattern(t.Name()), "-test.v", "-test.count=1")
	// Run writes the console into a pipe read here, on the test's
	// goroutine, so t.Log attributes each line to the caller's RunInVM line.
	pr, pw := io.Pipe()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		opts.Output = pw
		code, err := Run(context.Background(), opts)
		pw.Close()
		done <- result{code, err}
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var lines []string
	for sc.Scan() {
		t.Log(sc.Text())
		lines = append(lines, sc.Text())
	}
	_, _ = io.Copy(io.Discard, pr)
	res := <-done
	switch {
	case res.err != nil:
		t.Fatalf("vm: %v", res.err)
	case res.code != 0:
		t.Errorf("vm: %s failed inside the VM (exit status %d); its output is above, its failures:\n%s", t.Name(), res.code, strings.Join(failureDigest(lines), "\n"))
	}
	return true
}

// testPattern matches exactly the test named name, level by level, the way
// -test.run splits subtest names on slashes.
func testPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func deadline(t testing.TB) (time.Time, bool) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		return d.Deadline()
	}
	return time.Time{}, false
}

// passEnv forwards the lab and haldir settings a test reads.
func passEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HALDIR_") && !strings.HasPrefix(kv, ModeEnv+"=") {
			env = append(env, kv)
		}
	}
	return env
}
