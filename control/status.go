package control

import (
	"net/netip"
	"time"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// Status is everything `haldir status` shows, as the daemon sees it now.
type Status struct {
	Version      string
	RouterID     string
	ConfigPath   string
	Started      time.Time
	ConfigLoaded time.Time

	// VRRP holds one entry per VRRP instance.
	VRRP []vrrp.Status
	// Services is the director's view of every configured virtual server;
	// nil when no virtual servers are configured.
	Services []director.ServiceStatus
	// Foreign lists IPVS services in the kernel that haldir does not manage.
	Foreign []ipvs.ServiceKey
	// Director holds the reconciler's pass and error counters.
	Director *director.Counters
	// Probes is the health checker's state per distinct probe, with the
	// last results, so status can show each real server's last check.
	Probes []healthcheck.ProbeStatus
	// Notify counts real servers' notify_up/notify_down commands; nil
	// without health checks.
	Notify *healthcheck.NotifyCounts `json:",omitempty"`
	// CheckLateRetries counts health-check failures retried, not counted,
	// because the checker itself was late (overloaded) since the start.
	CheckLateRetries uint64 `json:",omitempty"`
	// CheckLag is how late the health checker has been recently
	// (healthcheck.Scheduler.Lag).
	CheckLag time.Duration `json:",omitempty"`
	// VirtualServers is the configuration of the virtual servers in force
	// (defaults applied, checks inherited): status takes forwarding,
	// persistence and each real server's check definition from it, which
	// the director's snapshot does not carry.
	VirtualServers []conf.VirtualServer `json:",omitempty"`
	// Sync is the connection sync daemon's follower; nil without [sync].
	Sync *connsync.Status `json:",omitempty"`
	// ConfigWarnings are what the configuration in force risks without
	// being wrong (an announced virtual server whose scheduler does not
	// hash the flow), found at start and reload.
	ConfigWarnings []string `json:",omitempty"`
	// Cluster is every director as this one sees it; nil without [cluster].
	Cluster *cluster.View `json:",omitempty"`
	// Components not running in this build or configuration, with why.
	NotRunning map[string]string
	// Maintenance is haldir maintenance on; nil while off.
	Maintenance *Maintenance `json:",omitempty"`
	// Drains are the operator's weight overrides in force (haldir drain).
	Drains []Drain `json:",omitempty"`
	// LastDrill is the newest drill report kept in state_dir/drills; nil
	// when there is none.
	LastDrill *DrillSummary `json:"last_drill,omitempty"`
	// BGP is the [bgp] speaker; nil without it (or when it did not start).
	BGP *BGPStatus `json:",omitempty"`
}

// BGPStatus is the BGP speaker: its peers' sessions and what it announces.
type BGPStatus struct {
	ASN      uint32
	RouterID netip.Addr
	Device   string
	Peers    []bgp.PeerStatus
	// PeersError is why the peers could not be read (GoBGP did not
	// answer in time); "" when they were.
	PeersError string `json:",omitempty"`
	// Prefixes are the configured prefixes, announced or why not.
	Prefixes []bgp.PrefixState
}

// Daemon is what the control server needs from the running daemon.
type Daemon interface {
	// Status returns a snapshot; it must be cheap and safe to call
	// concurrently.
	Status() Status
	// Reload re-reads and validates the configuration file. On a
	// validation failure it returns the errors one per element and keeps
	// the running configuration.
	Reload() (errs []string, err error)
}
