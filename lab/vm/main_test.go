package vm_test

import (
	"os"
	"testing"

	"github.com/haldir-lb/haldir/lab/vm"
)

func TestMain(m *testing.M) {
	// One boot serves both IPVS tests when they run in the VM.
	vm.Batch("TestIPVSNAT", "TestIPVSSchedulers")
	os.Exit(m.Run())
}
