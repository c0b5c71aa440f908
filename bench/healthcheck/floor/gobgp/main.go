// Command gobgp is a static Go program that links GoBGP's server, as
// haldir's binary does for BGP (report.Main): the peak RSS the VM
// comparison reads of it is what embedding GoBGP costs a process before
// it does anything.
package main

import (
	_ "github.com/osrg/gobgp/v4/pkg/server"

	"github.com/haldir-lb/haldir/bench/healthcheck/floor/report"
)

func main() { report.Main() }
