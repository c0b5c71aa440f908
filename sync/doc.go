// Package sync keeps connection state between directors: it runs the
// kernel's IPVS connection sync daemon in the role the VRRP state asks for
// (Follower: master on the VRRP master, backup elsewhere), so that
// established connections survive a failover.
//
// The memberlist cluster that shows every director's view is not
// implemented yet; it lands with the cluster issue.
package sync
