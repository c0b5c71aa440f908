// Command empty is a static Go program that links nothing of its own: it
// takes haldir run's memory settings (memtune), prints its own
// /proc/self/status and exits, and the peak RSS the VM comparison reads
// there is the Go runtime's floor.
package main

import (
	"os"

	"github.com/haldir-lb/haldir/internal/memtune"
)

func main() {
	_ = memtune.ExecWithoutHugePages() // as haldir run: no huge pages from the first page
	_, _ = memtune.Apply()
	b, _ := os.ReadFile("/proc/self/status")
	os.Stdout.Write(b)
}
