// Command empty is a static Go program that links nothing of its own
// (report.Main): the peak RSS the VM comparison reads of it is the Go
// runtime's floor.
package main

import "github.com/haldir-lb/haldir/bench/healthcheck/floor/report"

func main() { report.Main() }
