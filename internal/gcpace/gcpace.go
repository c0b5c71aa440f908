// Package gcpace sets the garbage collector's pace for haldir's
// long-running processes: the daemon, and the health-check benchmark's
// checker that stands in for it.
package gcpace

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC haldir runs with unless the environment sets GOGC.
// The daemon's live heap is small (about 3 MB with 1k health-check
// targets) and it allocates slowly (about 1 MB/s at 1k HTTP checks/s), so
// Go's default of 100, which lets the heap grow to twice the live heap and
// to at least 4 MB, only adds resident memory. Measured with
// bench/healthcheck http-1k on the host: peak RSS 18.0 MiB at 100, 16.3 at
// 50 and 14.6 at 25, with the checker's CPU the same within the noise of
// the run (17 % of a core). The price is more collections: at 1k targets
// about 1.4 a second (gctrace), 2-4 ms of CPU each, 0.4 % of a core. At 10k
// targets (not measured: an estimate) live heap and allocation rate both
// grow about tenfold, so collections stay about as frequent, each costing
// more, on the order of 1 % of a core.
const Percent = 25

// Apply sets Percent unless GOGC is set in the environment (an operator's
// choice wins), and returns the percent in force.
func Apply() int {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(Percent)
	return Percent
}
