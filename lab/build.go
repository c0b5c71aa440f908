package lab

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// BuildHaldir builds cmd/haldir from this source tree into a temporary
// directory of tb and returns the binary's path. It is static
// (CGO_ENABLED=0) because the VM lab's initramfs has no libc, and a lab
// host runs it as a process of its own, as production does.
func BuildHaldir(tb testing.TB) string {
	tb.Helper()
	return BuildCmd(tb, "github.com/haldir-lb/haldir/cmd/haldir")
}

// BuildCmd builds the command pkg (an import path of this module) as
// BuildHaldir builds haldir, and returns the binary's path.
func BuildCmd(tb testing.TB, pkg string) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		// go test sets GOROOT for its children even when PATH lacks
		// the toolchain's bin (sudo, a service manager).
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out := filepath.Join(tb.TempDir(), path.Base(pkg))
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", path.Base(pkg), err, b)
	}
	return out
}
