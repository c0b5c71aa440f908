// Command gobgp is a static Go program that links GoBGP's server, as
// haldir's binary does for BGP: it takes haldir run's memory settings
// (memtune), prints its own /proc/self/status and exits, and the peak RSS
// the VM comparison reads there is what embedding GoBGP costs a process
// before it does anything.
package main

import (
	"os"

	_ "github.com/osrg/gobgp/v4/pkg/server"

	"github.com/haldir-lb/haldir/internal/memtune"
)

func main() {
	_ = memtune.ExecWithoutHugePages() // as haldir run: no huge pages from the first page
	_, _ = memtune.Apply()
	b, _ := os.ReadFile("/proc/self/status")
	os.Stdout.Write(b)
}
