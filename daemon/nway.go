package daemon

import (
	"maps"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
)

// bgpMode applies what [bgp] asks of the host and of the configuration, at
// start and at every reload (before the conn-sync follower takes [sync]):
// the IPVS settings of a director behind ECMP (connsync.BGPSettings, each
// change logged with its old value), and a warning, logged and shown as a
// problem, for every announced virtual server whose scheduler does not
// hash the flow.
func (d *Daemon) bgpMode(spec *conf.Spec) {
	warnings := director.AnnounceWarnings(spec)
	for _, w := range warnings {
		d.log.Warn("announced virtual server: " + w)
	}
	d.configWarnings = warnings
	if spec.BGP == nil || d.kernel == nil || d.opts.Sysctls == nil {
		return // without a kernel, IPVS (and its settings) may not be loaded
	}
	if _, err := connsync.Apply(d.opts.Sysctls, connsync.BGPSettings(), d.log.With("component", "sync")); err != nil {
		d.log.Error("setting the IPVS settings of BGP mode", "error", err)
	}
}

// clusterHashes are the configuration hashes this director gossips: conf's
// sections and, per announced virtual server, what decides where its flows
// go (director.AnnouncedHashes), so that drift names the one that differs.
func clusterHashes(spec *conf.Spec) map[string]string {
	h := spec.Hashes()
	maps.Copy(h, director.AnnouncedHashes(spec))
	return h
}
