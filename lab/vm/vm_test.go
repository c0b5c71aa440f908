package vm

import (
	"os"
	"testing"
)

func TestSmokeVM(t *testing.T) {
	if RunInVM(t) {
		return
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatalf("no IPVS: %v", err)
	}
	t.Log("ipvs present")
}
