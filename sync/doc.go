// Package sync keeps the directors together: it runs the kernel's IPVS
// connection sync daemon in the role the VRRP state asks for (Follower:
// master on the VRRP master, backup elsewhere), so that established
// connections survive a failover, and it runs the encrypted memberlist
// cluster (Cluster) in which every director shares its state, so that each
// one can show all of them and name a split brain or configuration drift.
package sync
