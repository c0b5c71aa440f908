package bgpha

import (
	"os"
	"testing"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
)

// haldirEnv passes the haldir binary's path into the VM guest.
const haldirEnv = "HALDIR_BGPHA_HALDIR"

// guestHaldir is where the guest finds the haldir binary.
const guestHaldir = "/haldir-vm/bin/haldir"

// RunInVM is vm.RunInVMWith for tests of this package: it builds haldir
// and boots the lab VM with it and FRRouting, running the calling test
// there, and returns true on the host side, when the caller returns. In
// the guest (or on a host kernel with IPVS) it returns false with the
// haldir binary's path. It skips without root, FRRouting or the VM (fails
// with HALDIR_LAB=vm).
func RunInVM(t *testing.T, opts vm.Options) (haldir string, ranInVM bool) {
	t.Helper()
	lab.SkipIfNotRoot(t)
	if vm.InVM() {
		return os.Getenv(haldirEnv), false
	}
	files, err := vm.FRRFiles()
	if err != nil {
		if os.Getenv(vm.ModeEnv) == "vm" {
			t.Fatalf("%s=vm: %v", vm.ModeEnv, err)
		}
		t.Skip(err)
	}
	haldir = lab.BuildHaldir(t)
	opts.Files = append(append(opts.Files, files...), vm.File{Host: haldir, Guest: guestHaldir})
	opts.Env = append(opts.Env, haldirEnv+"="+guestHaldir)
	if vm.RunInVMWith(t, opts) {
		return "", true
	}
	return haldir, false
}
