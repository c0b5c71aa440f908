// Package sync keeps connection state between directors: it switches the
// kernel IPVS sync daemon between master and backup with the VRRP state and
// runs the encrypted memberlist cluster that shows every director's view.
//
// Nothing is implemented yet; it lands with the conn-sync and cluster issue.
package sync
