package ipvstest

import (
	"testing"

	"github.com/haldir-lb/haldir/ipvs"
)

// Open opens the real IPVS of the network namespace at nsPath for a test
// (the VM lab's, where the kernel has IPVS), closed when the test ends.
func Open(t testing.TB, nsPath string) *ipvs.Client {
	t.Helper()
	k, err := ipvs.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}
