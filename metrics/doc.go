// Package metrics exports haldir's state to Prometheus: a collector that
// turns a control.Status snapshot into metrics at scrape time, and the
// /metrics HTTP endpoint serving it.
package metrics
