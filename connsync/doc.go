// Package connsync runs the kernel's IPVS connection sync daemon in the role
// the VRRP state asks for (Follower: master on the VRRP master, backup
// elsewhere), so that established connections survive a failover. It
// reconciles against what the kernel runs and restarts the daemon when a
// reload changes its settings.
package connsync
