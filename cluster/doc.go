// Package cluster runs the encrypted memberlist cluster in which every
// director shares its state (VRRP states and configuration hashes), so that
// each one can show all of them and name a split brain or configuration
// drift.
package cluster
