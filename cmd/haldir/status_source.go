package main

import (
	"github.com/haldir-lb/haldir/control"
)

// daemon implements control.Daemon for the control socket.
var _ control.Daemon = (*daemon)(nil)

// Status gathers a snapshot from every running component.
func (d *daemon) Status() control.Status {
	d.mu.Lock()
	st := control.Status{
		Version:      version,
		RouterID:     d.cfg.Global.RouterID,
		ConfigPath:   d.path,
		Started:      d.started,
		ConfigLoaded: d.loadedAt,
		// status takes the forwarding method and persistence from here.
		VirtualServers: d.cfg.VirtualServers,
	}
	d.mu.Unlock()
	c := d.comp
	st.NotRunning = c.notRunningSnapshot()
	for _, in := range c.vrrpInstances() {
		st.VRRP = append(st.VRRP, in.Status())
	}
	if c.cluster != nil {
		v := c.cluster.View()
		st.Cluster = &v
	}
	if f := c.syncFollower(); f != nil {
		s := f.Status()
		st.Sync = &s
	}
	if c.dir != nil {
		st.Services = c.dir.Snapshot()
		st.Foreign = c.dir.Foreign()
		cnt := c.dir.Counters()
		st.Director = &cnt
	}
	if c.hc != nil {
		st.Probes = c.hc.Status()
		n := c.hc.NotifyCounts()
		st.Notify = &n
	}
	return st
}

// Reload re-reads the configuration file (`haldir reload`).
func (d *daemon) Reload() ([]string, error) { return d.rereadConfig() }
