// Package report is the floor probes' one body: a probe takes haldir run's
// memory settings (memtune), prints its own /proc/self/status and exits,
// so that what the VM comparison reads is the probe's own memory.
package report

import (
	"os"

	"github.com/haldir-lb/haldir/internal/memtune"
)

// Main is a probe's main.
func Main() {
	_ = memtune.ExecWithoutHugePages() // as haldir run: no huge pages from the first page
	_, _ = memtune.Apply()
	b, _ := os.ReadFile("/proc/self/status")
	os.Stdout.Write(b)
}
