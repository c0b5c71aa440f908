package control

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// APIVersion is the version of the document `haldir status --json` writes
// (APIStatus, described field by field in docs/api.md). Within a version,
// fields are only ever added; a field that changes meaning, type or unit,
// or goes, makes a new version.
const APIVersion = 1

// The stable JSON document. Its conventions, which Status (the daemon's
// own snapshot, and the control socket's internal wire format) does not
// follow: keys in snake_case; states, roles, kinds and protocols as
// strings; durations as integers whose key names the unit (_ms, _us);
// times as RFC 3339 strings, left out when unknown; addresses as strings.

// APIStatus is `haldir status --json`.
type APIStatus struct {
	APIVersion     int                `json:"api_version"`
	Version        string             `json:"version"`
	RouterID       string             `json:"router_id"`
	ConfigPath     string             `json:"config_path"`
	Started        *time.Time         `json:"started,omitempty"`
	ConfigLoaded   *time.Time         `json:"config_loaded,omitempty"`
	VRRP           []APIVRRP          `json:"vrrp"`
	VirtualServers []APIVirtualServer `json:"virtual_servers"`
	Foreign        []APIServiceKey    `json:"foreign_services"`
	Director       *APIDirector       `json:"director,omitempty"`
	HealthChecks   []APIHealthCheck   `json:"health_checks"`
	Sync           *APISync           `json:"sync,omitempty"`
	Cluster        *APICluster        `json:"cluster,omitempty"`
	NotRunning     map[string]string  `json:"not_running"`
	Maintenance    APIMaintenance     `json:"maintenance"`
	Drains         []APIDrain         `json:"drains"`
	// Problems is everything wrong now, with since when where known
	// (Status.Problems).
	Problems []APIProblem `json:"problems"`
	// CheckLateRetries counts health-check failures retried because the
	// checker was late.
	CheckLateRetries uint64 `json:"check_late_retries"`
	// CheckLagSeconds is how late the health checker has been over the
	// last 10 to 20 seconds (0 when it keeps up).
	CheckLagSeconds float64 `json:"check_lag_seconds"`
	// LastDrill is the newest kept drill report (haldir drill); nil when
	// there is none.
	LastDrill *APILastDrill `json:"last_drill,omitempty"`
	// BGP is the [bgp] speaker; nil without it.
	BGP *APIBGP `json:"bgp,omitempty"`
}

// APIBGP is the BGP speaker.
type APIBGP struct {
	ASN        uint32         `json:"asn"`
	RouterID   string         `json:"router_id"`
	Device     string         `json:"device"`
	Peers      []APIBGPPeer   `json:"peers"`
	PeersError string         `json:"peers_error"`
	Prefixes   []APIBGPPrefix `json:"prefixes"`
}

// APIBGPPeer is one BGP peer's session.
type APIBGPPeer struct {
	Address      string     `json:"address"`
	ASN          uint32     `json:"asn"`
	State        string     `json:"state"`
	Up           bool       `json:"up"`
	Since        *time.Time `json:"since,omitempty"`
	LocalAddress string     `json:"local_address"`
	BFD          string     `json:"bfd"`
}

// APIBGPPrefix is one announced prefix: announced here or why not.
type APIBGPPrefix struct {
	Prefix         string            `json:"prefix"`
	VirtualServers []string          `json:"virtual_servers"`
	Announced      bool              `json:"announced"`
	Reason         string            `json:"reason"`
	Since          *time.Time        `json:"since,omitempty"`
	Withdrawals    map[string]uint64 `json:"withdrawals"`
}

// APILastDrill is the newest kept drill report, in brief (haldir drill
// show ID has it all).
type APILastDrill struct {
	ID      string     `json:"id"`
	Kind    string     `json:"kind"`
	Verdict string     `json:"verdict"`
	Started *time.Time `json:"started,omitempty"`
	// The report's gap and bound are fractional milliseconds; a
	// sub-millisecond gap must not read as none.
	GapUS   int64 `json:"gap_us"`
	BoundUS int64 `json:"bound_us"`
}

// APIProblem is one thing wrong now (Status.Problems).
type APIProblem struct {
	Problem string     `json:"problem"`
	Since   *time.Time `json:"since,omitempty"`
}

// APIMaintenance is haldir maintenance.
type APIMaintenance struct {
	On     bool       `json:"on"`
	Reason string     `json:"reason"`
	Since  *time.Time `json:"since,omitempty"`
}

// APIDrain is one operator weight override (haldir drain).
type APIDrain struct {
	VirtualServer string     `json:"virtual_server"`
	Address       string     `json:"address"`
	RealName      string     `json:"real_name"`
	Weight        int        `json:"weight"`
	Since         *time.Time `json:"since,omitempty"`
}

// APIVRRP is one VRRP instance.
type APIVRRP struct {
	Name             string            `json:"name"`
	State            string            `json:"state"`
	Priority         int               `json:"priority"`
	BasePriority     int               `json:"base_priority"`
	Source           string            `json:"source,omitempty"`
	Master           string            `json:"master,omitempty"`
	MasterIntervalMS int64             `json:"master_interval_ms"`
	AdvertsSent      uint64            `json:"adverts_sent"`
	AdvertsReceived  uint64            `json:"adverts_received"`
	AdvertsQuiet     uint64            `json:"adverts_quiet"`
	SendErrors       uint64            `json:"send_errors"`
	SendErrorReasons map[string]uint64 `json:"send_error_reasons"`
	PriorityChanges  map[string]uint64 `json:"priority_changes"`
	Transitions      uint64            `json:"transitions"`
	Drops            map[string]uint64 `json:"drops"`
	Ignored          map[string]uint64 `json:"ignored"`
	LastChange       *time.Time        `json:"last_change,omitempty"`
	Failing          []string          `json:"failing"`
	VMACInterface    string            `json:"vmac_interface,omitempty"`
	// Why this director is (not) master (WhyVRRP), and what it rests on.
	LastChangeReason string     `json:"last_change_reason"`
	Preempt          bool       `json:"preempt"`
	PeerAddress      string     `json:"peer_address,omitempty"`
	PeerPriority     int        `json:"peer_priority"`
	PeerSeen         *time.Time `json:"peer_seen,omitempty"`
	// Yielded: handed over in a planned handoff, holding back preemption.
	Yielded bool   `json:"yielded"`
	Why     string `json:"why"`
}

// APIServiceKey identifies an IPVS service: protocol, address and port, or
// a firewall mark and family.
type APIServiceKey struct {
	Service  string `json:"service"`
	Protocol string `json:"protocol,omitempty"`
	Address  string `json:"address,omitempty"`
	Fwmark   uint32 `json:"fwmark,omitempty"`
	Family   string `json:"family"`
}

// APIVirtualServer is one configured virtual server: the director's view
// and the configuration in force.
type APIVirtualServer struct {
	Name string `json:"name"`
	APIServiceKey
	Scheduler              string          `json:"scheduler"`
	SchedulerFlags         []string        `json:"scheduler_flags"`
	Forwarding             string          `json:"forwarding"`
	PersistenceTimeoutMS   int64           `json:"persistence_timeout_ms"`
	PersistenceGranularity int             `json:"persistence_granularity"`
	InKernel               bool            `json:"in_kernel"`
	QuorumUp               bool            `json:"quorum_up"`
	AliveWeight            int             `json:"alive_weight"`
	Quorum                 int             `json:"quorum"`
	Hysteresis             int             `json:"hysteresis"`
	SorryActive            bool            `json:"sorry_active"`
	Stats                  APIStats        `json:"stats"`
	RealServers            []APIRealServer `json:"real_servers"`
}

// APIStats are the kernel's counters and rate estimates.
type APIStats struct {
	Connections       uint64 `json:"connections"`
	PacketsIn         uint64 `json:"packets_in"`
	PacketsOut        uint64 `json:"packets_out"`
	BytesIn           uint64 `json:"bytes_in"`
	BytesOut          uint64 `json:"bytes_out"`
	ConnectionsPerSec uint64 `json:"connections_per_second"`
	PacketsInPerSec   uint64 `json:"packets_in_per_second"`
	PacketsOutPerSec  uint64 `json:"packets_out_per_second"`
	BytesInPerSec     uint64 `json:"bytes_in_per_second"`
	BytesOutPerSec    uint64 `json:"bytes_out_per_second"`
}

// APIRealServer is one real server (or the sorry server) of a virtual
// server.
type APIRealServer struct {
	Name             string   `json:"name"`
	Address          string   `json:"address"`
	Forwarding       string   `json:"forwarding"`
	Sorry            bool     `json:"sorry"`
	Checked          bool     `json:"checked"`
	Healthy          bool     `json:"healthy"`
	HealthKnown      bool     `json:"health_known"`
	ConfiguredWeight int      `json:"configured_weight"`
	OperatorWeight   *int     `json:"operator_weight,omitempty"`
	DrainedByOp      bool     `json:"drained_by_operator"`
	EffectiveWeight  int      `json:"effective_weight"`
	InKernel         bool     `json:"in_kernel"`
	KernelWeight     int      `json:"kernel_weight"`
	ActiveConns      uint32   `json:"active_connections"`
	InactiveConns    uint32   `json:"inactive_connections"`
	Stats            APIStats `json:"stats"`
}

// APIDirector holds the IPVS reconciler's counters.
type APIDirector struct {
	Passes       uint64            `json:"passes"`
	FailedPasses uint64            `json:"failed_passes"`
	Writes       map[string]uint64 `json:"writes"`
	Errors       []APIOpError      `json:"errors"`
}

// APIOpError counts the failures of one IPVS operation for one reason.
type APIOpError struct {
	Op     string `json:"op"`
	Reason string `json:"reason"`
	Count  uint64 `json:"count"`
}

// APIHealthCheck is one probe: a check definition run against an address
// (several real servers with the same definition share it).
type APIHealthCheck struct {
	Key         string           `json:"key"`
	Address     string           `json:"address"`
	Type        string           `json:"type"`
	IntervalMS  int64            `json:"interval_ms"`
	TimeoutMS   int64            `json:"timeout_ms"`
	Rise        int              `json:"rise"`
	Fall        int              `json:"fall"`
	Up          bool             `json:"up"`
	Weight      int              `json:"weight"`
	Reason      string           `json:"reason"`
	Since       *time.Time       `json:"since,omitempty"`
	Checks      uint64           `json:"checks"`
	Subscribers int              `json:"subscribers"`
	Next        *time.Time       `json:"next,omitempty"`
	History     []APICheckResult `json:"history"`
}

// APICheckResult is one check's outcome.
type APICheckResult struct {
	Up     bool       `json:"up"`
	Weight int        `json:"weight"`
	Reason string     `json:"reason"`
	Start  *time.Time `json:"start,omitempty"`
	TookUS int64      `json:"took_us"`
}

// APISync is the kernel conn-sync daemon's follower.
type APISync struct {
	Running []APISyncDaemon `json:"running"`
	Wanted  APISyncDaemon   `json:"wanted"`
	// Mode is "follow" (master or backup after vrrp_instance) or "n-way"
	// (master and backup together, [bgp]); WantedRoles the roles the
	// kernel should run.
	Mode        string   `json:"mode"`
	WantedRoles []string `json:"wanted_roles"`
	LastError   string   `json:"last_error"`
	Changes     uint64   `json:"changes"`
	Failures    uint64   `json:"failures"`
	// The conn-sync picture (Status.ConnSync): this director's role and
	// connections, the other directors' as gossiped, and whether this
	// backup receives (yes, no, idle, unknown; master on the master).
	Role        string        `json:"role"`
	Connections uint64        `json:"connections"`
	Receiving   string        `json:"receiving"`
	Summary     string        `json:"summary"`
	Peers       []APISyncPeer `json:"peers"`
}

// APISyncPeer is another director's side of conn sync, as gossiped.
type APISyncPeer struct {
	Director    string     `json:"director"`
	Role        string     `json:"role"`
	Connections uint64     `json:"connections"`
	ReadAt      *time.Time `json:"read_at,omitempty"`
	// Services is the count of each virtual server holding any, by its
	// IPVS key.
	Services map[string]uint64 `json:"services"`
}

// APISyncDaemon is one kernel sync daemon (0 and "" mean the kernel's
// defaults).
type APISyncDaemon struct {
	Role      string `json:"role"`
	Interface string `json:"interface"`
	SyncID    int    `json:"sync_id"`
	MaxLen    int    `json:"max_len"`
	Group     string `json:"group"`
	Port      int    `json:"port"`
	TTL       int    `json:"ttl"`
}

// APICluster is the gossip cluster as this director sees it.
type APICluster struct {
	Members         []APIMember  `json:"members"`
	Problems        []string     `json:"problems"`
	MalformedStates uint64       `json:"malformed_states"`
	ProblemsSince   []APIProblem `json:"problems_since"`
}

// APIMember is one director of the cluster.
type APIMember struct {
	Name    string              `json:"name"`
	Address string              `json:"address"`
	Status  string              `json:"status"`
	Self    bool                `json:"self"`
	Version string              `json:"version"`
	Config  map[string]string   `json:"config"`
	VRRP    []APIMemberInstance `json:"vrrp"`
	// Maintenance: in haldir maintenance, for MaintenanceReason.
	Maintenance       bool   `json:"maintenance"`
	MaintenanceReason string `json:"maintenance_reason"`
	// Sync is the director's side of conn sync, as it gossips it.
	Sync *APISyncPeer `json:"sync,omitempty"`
	// Clock is the member's clock offset from this director's.
	Clock *APIClock `json:"clock,omitempty"`
	// BGPAnnounced are the prefixes it announces over BGP.
	BGPAnnounced []string `json:"bgp_announced"`
}

// APIClock is a clock offset estimate from the cluster's probes.
type APIClock struct {
	OffsetUS int64 `json:"offset_us"`
	RTTUS    int64 `json:"rtt_us"`
}

// APIMemberInstance is a VRRP instance as its director gossips it.
type APIMemberInstance struct {
	Name     string `json:"name"`
	VRID     int    `json:"vrid"`
	Family   string `json:"family"`
	State    string `json:"state"`
	Priority int    `json:"priority"`
}

// ms and us are a duration in whole milliseconds and microseconds.
func ms(d time.Duration) int64 { return d.Milliseconds() }
func us(d time.Duration) int64 { return d.Microseconds() }

// ts is t, or nil (left out) when it is unknown.
func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func family(v6 bool) string {
	if v6 {
		return "inet6"
	}
	return "inet"
}

// nonNil makes an absent list or map an empty one: [] and {} in the
// document, never null.
func nonNil[S ~[]E, E any](s S) S {
	if s == nil {
		return S{}
	}
	return s
}

func nonNilMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return M{}
	}
	return m
}

// VirtualServerKey is the IPVS service a configured virtual server is.
func VirtualServerKey(vs *conf.VirtualServer) (ipvs.ServiceKey, bool) {
	if vs.Fwmark != 0 {
		return ipvs.ServiceKey{Fwmark: uint32(vs.Fwmark), V6: vs.Family == "inet6"}, true
	}
	p, err := conf.ParseProtocol(vs.Protocol)
	if err != nil {
		return ipvs.ServiceKey{}, false
	}
	// conf.Protocol values are the IP protocol numbers IPVS keys by.
	return ipvs.ServiceKey{Protocol: ipvs.Protocol(p), Addr: netip.AddrPortFrom(vs.Address, uint16(vs.Port))}, true
}

// RealServerConf is the configuration of the real server at a in vs, or
// nil.
func RealServerConf(vs *conf.VirtualServer, a netip.AddrPort) *conf.RealServer {
	if vs == nil {
		return nil
	}
	for i := range vs.RealServers {
		rs := &vs.RealServers[i]
		if netip.AddrPortFrom(rs.Address, uint16(rs.Port)) == a {
			return rs
		}
	}
	return nil
}

func apiKey(k ipvs.ServiceKey) APIServiceKey {
	out := APIServiceKey{Service: k.String(), Family: family(k.IsV6())}
	if k.Fwmark != 0 {
		out.Fwmark = k.Fwmark
	} else {
		out.Protocol, out.Address = k.Protocol.String(), k.Addr.String()
	}
	return out
}

func apiStats(s ipvs.Stats) APIStats {
	return APIStats{Connections: s.Conns, PacketsIn: s.PktsIn, PacketsOut: s.PktsOut, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		ConnectionsPerSec: s.CPS, PacketsInPerSec: s.PPSIn, PacketsOutPerSec: s.PPSOut, BytesInPerSec: s.BPSIn, BytesOutPerSec: s.BPSOut}
}

func apiSyncDaemon(d ipvs.SyncDaemon) APISyncDaemon {
	role := "none"
	if d.State != 0 {
		role = d.State.String()
	}
	return APISyncDaemon{Role: role, Interface: d.Interface, SyncID: int(d.SyncID), MaxLen: int(d.MaxLen), Group: addr(d.Group),
		Port: int(d.Port), TTL: int(d.TTL)}
}

// API is st as the stable document of APIVersion.
func (st Status) API() APIStatus {
	out := APIStatus{APIVersion: APIVersion, Version: st.Version, RouterID: st.RouterID, ConfigPath: st.ConfigPath,
		Started: ts(st.Started), ConfigLoaded: ts(st.ConfigLoaded), NotRunning: nonNilMap(st.NotRunning),
		VRRP: []APIVRRP{}, VirtualServers: []APIVirtualServer{}, Foreign: []APIServiceKey{}, HealthChecks: []APIHealthCheck{}}
	for _, in := range st.VRRP {
		v := APIVRRP{Name: in.Name, State: in.State.String(), Priority: int(in.Priority), BasePriority: in.BasePriority,
			Source: addr(in.Source), MasterIntervalMS: ms(in.MasterInterval), AdvertsSent: in.AdvertsSent,
			AdvertsReceived: in.AdvertsRecv, AdvertsQuiet: in.AdvertsQuiet, SendErrors: in.SendErrors, Transitions: in.Transitions,
			Drops: nonNilMap(in.Drops), Ignored: nonNilMap(in.Ignored),
			SendErrorReasons: nonNilMap(in.SendErrorReasons), PriorityChanges: nonNilMap(in.PriorityChanges), LastChange: ts(in.LastChange),
			Failing: nonNil(in.Failing), VMACInterface: in.VMACInterface,
			LastChangeReason: in.LastReason, Preempt: in.Preempt, PeerAddress: addr(in.PeerAddr), PeerPriority: int(in.PeerPriority),
			PeerSeen: ts(in.PeerSeen), Why: WhyVRRP(in), Yielded: in.Yielded}
		if in.State == vrrp.StateMaster {
			v.Master = addr(in.Source)
		} else {
			v.Master = addr(in.MasterAddr)
		}
		out.VRRP = append(out.VRRP, v)
	}

	confs := map[ipvs.ServiceKey]*conf.VirtualServer{}
	for i := range st.VirtualServers {
		if k, ok := VirtualServerKey(&st.VirtualServers[i]); ok {
			confs[k] = &st.VirtualServers[i]
		}
	}
	for _, s := range st.Services {
		vs := confs[s.Key]
		v := APIVirtualServer{Name: s.Name, APIServiceKey: apiKey(s.Key), Scheduler: s.Scheduler, SchedulerFlags: []string{},
			InKernel: s.InKernel, QuorumUp: s.QuorumUp, AliveWeight: s.AliveWeight, Quorum: s.Quorum, Hysteresis: s.Hysteresis,
			SorryActive: s.SorryActive, Stats: apiStats(s.Stats), RealServers: []APIRealServer{}}
		if vs != nil {
			v.SchedulerFlags = nonNil(slices.Clone(vs.SchedulerFlags))
			v.Forwarding = vs.Forwarding
			v.PersistenceTimeoutMS = ms(vs.PersistenceTimeout.D())
			v.PersistenceGranularity = vs.PersistenceGranularity
		}
		for _, r := range s.Reals {
			rs := APIRealServer{Name: r.Name, Address: r.Addr.String(), Forwarding: v.Forwarding, Sorry: r.Sorry,
				Checked: r.Checked, Healthy: r.Healthy, HealthKnown: r.HealthKnown, ConfiguredWeight: r.ConfiguredWeight,
				EffectiveWeight: r.EffectiveWeight, InKernel: r.InKernel, KernelWeight: r.KernelWeight,
				ActiveConns: r.ActiveConns, InactiveConns: r.InactiveConns, Stats: apiStats(r.Stats)}
			if r.Overridden {
				w := r.OverrideWeight
				rs.OperatorWeight, rs.DrainedByOp = &w, w == 0
			}
			if rc := RealServerConf(vs, r.Addr); rc != nil && rc.Forwarding != "" {
				rs.Forwarding = rc.Forwarding
			}
			v.RealServers = append(v.RealServers, rs)
		}
		out.VirtualServers = append(out.VirtualServers, v)
	}
	for _, k := range st.Foreign {
		out.Foreign = append(out.Foreign, apiKey(k))
	}
	if m := st.Maintenance; m != nil {
		out.Maintenance = APIMaintenance{On: true, Reason: m.Reason, Since: ts(m.Since)}
	}
	if l := st.LastDrill; l != nil {
		out.LastDrill = &APILastDrill{ID: l.ID, Kind: l.Kind, Verdict: l.Verdict, Started: ts(l.At),
			GapUS: int64(math.Round(l.GapMillis * 1000)), BoundUS: int64(math.Round(l.BoundMillis * 1000))}
	}
	out.Drains = []APIDrain{}
	for _, d := range st.Drains {
		out.Drains = append(out.Drains, APIDrain{VirtualServer: d.VirtualServer, Address: d.Real.String(), RealName: d.RealName,
			Weight: d.Weight, Since: ts(d.Since)})
	}

	if d := st.Director; d != nil {
		ad := &APIDirector{Passes: d.Passes, FailedPasses: d.FailedPasses, Writes: map[string]uint64{}, Errors: []APIOpError{}}
		for op, n := range d.Writes {
			ad.Writes[string(op)] = n
		}
		for k, n := range d.Errors {
			ad.Errors = append(ad.Errors, APIOpError{Op: string(k.Op), Reason: k.Reason, Count: n})
		}
		slices.SortFunc(ad.Errors, func(a, b APIOpError) int {
			return strings.Compare(a.Op+"/"+a.Reason, b.Op+"/"+b.Reason)
		})
		out.Director = ad
	}

	for _, p := range st.Probes {
		c := p.Target.Check
		if c == nil {
			c = &conf.CheckSpec{} // the scheduler always has one
		}
		h := APIHealthCheck{Key: p.Key, Address: p.Target.Addr.String(), Type: c.Kind.String(), IntervalMS: ms(c.Interval),
			TimeoutMS: ms(c.Timeout), Rise: c.Rise, Fall: c.Fall, Up: p.Up, Weight: p.Weight, Reason: p.Reason,
			Since: ts(p.Since), Checks: p.Checks, Subscribers: p.Subscribers, Next: ts(p.Next), History: []APICheckResult{}}
		for _, r := range p.History {
			h.History = append(h.History, APICheckResult{Up: r.Up, Weight: r.Weight, Reason: r.Reason, Start: ts(r.Start), TookUS: us(r.Took)})
		}
		out.HealthChecks = append(out.HealthChecks, h)
	}

	if s := st.Sync; s != nil {
		as := &APISync{Running: []APISyncDaemon{}, Wanted: apiSyncDaemon(s.Want), Mode: "follow", WantedRoles: []string{},
			LastError: s.LastErr, Changes: s.Changes, Failures: s.Failures}
		if s.NWay {
			as.Mode = "n-way"
		}
		for _, r := range s.Wanted() {
			as.WantedRoles = append(as.WantedRoles, r.String())
		}
		for _, d := range s.Running {
			as.Running = append(as.Running, apiSyncDaemon(d))
		}
		r := st.ConnSync()
		as.Role, as.Connections, as.Receiving, as.Summary, as.Peers = r.Role, r.Conns, r.Receiving, r.Summary, []APISyncPeer{}
		for _, p := range r.Peers {
			as.Peers = append(as.Peers, APISyncPeer{Director: p.Director, Role: p.Role, Connections: p.Conns, ReadAt: ts(p.At), Services: nonNilMap(p.Services)})
		}
		out.Sync = as
	}

	if v := st.Cluster; v != nil {
		ac := &APICluster{Members: []APIMember{}, Problems: nonNil(v.Problems), MalformedStates: v.Malformed, ProblemsSince: []APIProblem{}}
		for _, p := range v.Problems {
			ac.ProblemsSince = append(ac.ProblemsSince, APIProblem{Problem: p, Since: ts(v.Since[p])})
		}
		for _, m := range v.Members {
			am := APIMember{Name: m.Name, Address: m.Addr, Status: m.Status, Self: m.Self, Version: m.Version,
				Config: nonNilMap(m.Config), VRRP: []APIMemberInstance{}, Maintenance: m.Maintenance, MaintenanceReason: m.MaintenanceReason,
				BGPAnnounced: []string{}}
			for _, p := range m.BGPAnnounced {
				am.BGPAnnounced = append(am.BGPAnnounced, p.String())
			}
			if c := m.Sync; c != nil {
				am.Sync = &APISyncPeer{Director: m.Name, Role: c.Role, Connections: c.Conns, ReadAt: ts(c.At), Services: nonNilMap(c.Services)}
			}
			if c := m.Clock; c != nil {
				am.Clock = &APIClock{OffsetUS: us(c.Offset), RTTUS: us(c.RTT)}
			}
			for _, in := range m.VRRP {
				am.VRRP = append(am.VRRP, APIMemberInstance{Name: in.Name, VRID: in.VRID, Family: family(in.Family == 6),
					State: in.State, Priority: in.Priority})
			}
			ac.Members = append(ac.Members, am)
		}
		out.Cluster = ac
	}
	if b := st.BGP; b != nil {
		out.BGP = apiBGP(b)
	}
	out.CheckLateRetries = st.CheckLateRetries
	out.CheckLagSeconds = st.CheckLag.Seconds()
	out.Problems = []APIProblem{}
	for _, p := range st.Problems() {
		out.Problems = append(out.Problems, APIProblem{Problem: p.What, Since: ts(p.Since)})
	}
	return out
}

func apiBGP(b *BGPStatus) *APIBGP {
	out := &APIBGP{ASN: b.ASN, RouterID: addr(b.RouterID), Device: b.Device, PeersError: b.PeersError,
		Peers: []APIBGPPeer{}, Prefixes: []APIBGPPrefix{}}
	for _, p := range b.Peers {
		out.Peers = append(out.Peers, APIBGPPeer{Address: addr(p.Address), ASN: p.ASN, State: p.State, Up: p.State == "established",
			Since: ts(p.Up), LocalAddress: addr(p.LocalAddress), BFD: p.BFD})
	}
	for _, p := range b.Prefixes {
		out.Prefixes = append(out.Prefixes, APIBGPPrefix{Prefix: p.Prefix.String(), VirtualServers: nonNil(slices.Clone(p.VirtualServers)),
			Announced: p.Announced, Reason: p.Reason, Since: ts(p.Since), Withdrawals: nonNilMap(p.Withdrawals)})
	}
	return out
}
