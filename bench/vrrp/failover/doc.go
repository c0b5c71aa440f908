// Package failover holds the VRRP failover benchmarks (in its tests: they
// drive the lab, which takes a testing.TB): BenchmarkFailover times
// haldir's takeover against keepalived's in one namespace lab and prints
// the table `make bench` shows; BenchmarkTakeoverBreakdown splits haldir's
// takeover into its parts. TestFailoverBenchSmoke runs one round of each
// under `make test`, so the benchmark cannot rot between runs.
package failover
