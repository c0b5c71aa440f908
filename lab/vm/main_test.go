package vm_test

import (
	"os"
	"testing"

	"github.com/haldir-lb/haldir/lab/vm"
)

func TestMain(m *testing.M) {
	// One boot serves all VM tests when they run in the VM.
	vm.Batch("TestIPVSNAT", "TestIPVSSchedulers", "TestVMSeesTestdata")
	os.Exit(m.Run())
}
