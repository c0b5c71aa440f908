package daemon

import (
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/control"
)

// Daemon serves the control socket.
var _ control.Daemon = (*Daemon)(nil)

// Status gathers a snapshot from every running component. The loop gives
// what it owns; the components' own snapshots are read outside it (each is
// safe to read from any goroutine), so a status request holds the loop
// only for a copy.
func (d *Daemon) Status() control.Status {
	var st control.Status
	var follower *connsync.Follower
	var bgpPeers func(*control.BGPStatus)
	if !d.call(func() {
		st = control.Status{
			Version:      d.opts.Version,
			RouterID:     d.cfg.Global.RouterID,
			ConfigPath:   d.opts.Path,
			Started:      d.started,
			ConfigLoaded: d.loadedAt,
			// status takes the forwarding method and persistence from here.
			VirtualServers: d.cfg.VirtualServers,
			NotRunning:     d.notRunningNow(),
			ConfigWarnings: d.configWarnings,
		}
		d.operatorStatus(&st)
		st.LastDrill = d.lastDrillStatus()
		follower = d.follower
		st.BGP, bgpPeers = d.bgpStatus()
	}) {
		return control.Status{Version: d.opts.Version, ConfigPath: d.opts.Path}
	}
	st.VRRP = d.vrrp.Status()
	if bgpPeers != nil {
		bgpPeers(st.BGP)
	}
	if d.cluster != nil {
		v := d.cluster.View()
		st.Cluster = &v
	}
	if follower != nil {
		s := follower.Status()
		st.Sync = &s
	}
	if d.dir != nil {
		st.Services = d.dir.Snapshot()
		st.Foreign = d.dir.Foreign()
		cnt := d.dir.Counters()
		st.Director = &cnt
	}
	if d.hc != nil {
		st.Probes = d.hc.Status()
		n := d.hc.NotifyCounts()
		st.Notify = &n
		st.CheckLateRetries = d.hc.LateRetries()
		st.CheckLag = d.hc.Lag()
	}
	return st
}

// Reload re-reads the configuration file (`haldir reload`), on the loop.
func (d *Daemon) Reload() (errs []string, err error) {
	if !d.call(func() { errs, err = d.rereadConfig() }) {
		return nil, errStopping
	}
	return errs, err
}
