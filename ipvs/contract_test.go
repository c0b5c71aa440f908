package ipvs_test

import (
	"testing"

	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/lab/vm"
)

// TestContractFake holds the in-memory fake to the contract's errnos and
// read-backs.
func TestContractFake(t *testing.T) {
	ipvstest.RunContract(t, ipvstest.New())
}

// TestVMContract runs the same contract against a real kernel's IPVS, which
// is what proves the fake's answers.
func TestVMContract(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	ipvstest.RunContract(t, vmKernel(t))
}
