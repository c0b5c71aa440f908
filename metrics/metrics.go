package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

const ns = "haldir"

// Label names. A VRRP instance is vrrp_instance, not instance: Prometheus
// sets instance on every series to the scrape target, and an exporter's
// own instance label would be renamed exported_instance or override it.
// A virtual server is named by its configured name (virtual_server) and
// identified by its IPVS service (address: "tcp 192.0.2.10:80",
// "fwmark 5 inet"), which a renumbering changes but a name does not.

var (
	dBuildInfo      = newFamily("build_info", "Always 1; the version label is the running build.", "version")
	dVRRPState      = newFamily("vrrp_state", "1 for the VRRP instance's current state, 0 for the others.", "vrrp_instance", "state")
	dVRRPPriority   = newFamily("vrrp_priority", "Effective VRRP priority (configured priority adjusted by tracking).", "vrrp_instance")
	dVRRPBasePrio   = newFamily("vrrp_base_priority", "Configured VRRP priority.", "vrrp_instance")
	dVRRPSent       = newFamily("vrrp_adverts_sent_total", "VRRP advertisements sent.", "vrrp_instance")
	dVRRPRecv       = newFamily("vrrp_adverts_received_total", "VRRP advertisements received and accepted.", "vrrp_instance")
	dVRRPQuiet      = newFamily("vrrp_adverts_quiet_total", "Accepted VRRP advertisements a backup handled when its master down timer came due, not when they came (they only pushed it back).", "vrrp_instance")
	dVRRPSendErr    = newFamily("vrrp_send_errors_total", "VRRP advertisements that could not be sent.", "vrrp_instance")
	dVRRPDrops      = newFamily("vrrp_drops_total", "Received VRRP packets discarded, per reason.", "vrrp_instance", "reason")
	dVRRPIgnored    = newFamily("vrrp_ignored_total", "VRRP events that changed nothing, per reason.", "vrrp_instance", "reason")
	dVRRPTrans      = newFamily("vrrp_transitions_total", "VRRP state changes.", "vrrp_instance")
	dDirPasses      = newFamily("director_passes_total", "IPVS reconciliation passes.")
	dDirFailed      = newFamily("director_failed_passes_total", "IPVS reconciliation passes with at least one failed operation.")
	dDirWrites      = newFamily("director_writes_total", "IPVS netlink write calls, per operation.", "op")
	dDirErrors      = newFamily("director_errors_total", "Failed IPVS operations, per operation and reason.", "op", "reason")
	dSvcQuorum      = newFamily("service_quorum_up", "1 while the virtual server's quorum is met.", "virtual_server", "address")
	dSvcSorry       = newFamily("service_sorry_active", "1 while the sorry server replaces the virtual server's pool.", "virtual_server", "address")
	dSvcInKernel    = newFamily("service_in_kernel", "1 when the virtual server is present in the kernel's IPVS table.", "virtual_server", "address")
	dSvcConns       = newFamily("service_connections_total", "Connections scheduled by the virtual server (kernel counter).", "virtual_server", "address")
	dSvcBytes       = newFamily("service_bytes_total", "Bytes through the virtual server (kernel counter).", "virtual_server", "address", "direction")
	dSvcPackets     = newFamily("service_packets_total", "Packets through the virtual server (kernel counter).", "virtual_server", "address", "direction")
	dRealUp         = newFamily("real_server_up", "1 while the real server is healthy (always 1 without a check).", "virtual_server", "address", "real")
	dRealWeight     = newFamily("real_server_weight", "Real server weight: configured, or effective (the weight wanted in the kernel, 0 while down).", "virtual_server", "address", "real", "kind")
	dRealActive     = newFamily("real_server_active_conns", "Active connections to the real server (kernel).", "virtual_server", "address", "real")
	dRealInactive   = newFamily("real_server_inactive_conns", "Inactive connections to the real server (kernel).", "virtual_server", "address", "real")
	dRealConns      = newFamily("real_server_connections_total", "Connections scheduled to the real server (kernel counter).", "virtual_server", "address", "real")
	dCheckTotal     = newFamily("healthcheck_checks_total", "Health checks run, per target (real server address and check type).", "target", "type")
	dCheckUp        = newFamily("healthcheck_up", "1 while the health check's verdict for the target is up.", "target", "type")
	dNotify         = newFamily("real_server_notify_total", "notify_up/notify_down commands of real servers, per outcome: ok, failed (non-zero exit, killed at the timeout, not started), dropped (a full backlog).", "outcome")
	dNotRunning     = newFamily("component_not_running", "1 for each configured component that is not running (one that is not configured is not listed).", "component")
	dConfigLoaded   = newFamily("config_last_reload_timestamp_seconds", "When the configuration in force was loaded.")
	dStartTimestamp = newFamily("start_timestamp_seconds", "When the daemon started.")
	dSyncRunning    = newFamily("sync_daemon_running", "1 for each kernel conn-sync daemon role running.", "role")
	dSyncWanted     = newFamily("sync_daemon_wanted", "1 for the conn-sync daemon role the VRRP state asks for.", "role")
	dSyncChanges    = newFamily("sync_daemon_changes_total", "Kernel conn-sync daemons started or stopped.")
	dSyncFailures   = newFamily("sync_daemon_failures_total", "Failed attempts to bring the kernel conn-sync daemons to the wanted role.")
	dClusterMembers = newFamily("cluster_members", "Directors in the cluster view, per status (this one included, as alive).", "status")
	dClusterProblem = newFamily("cluster_problems", "Problems the cluster view reports now (split brain, config drift), per kind.", "kind")
	dClusterBad     = newFamily("cluster_malformed_states_total", "Gossiped director states dropped because they did not decode.")
	dVRRPPrioChange = newFamily("vrrp_priority_changes_total", "Changes of the effective VRRP priority, per cause (track_script:NAME, track_interface:NAME, track_virtual_server:NAME, maintenance, reload).", "vrrp_instance", "cause")
	dVRRPSendErrWhy = newFamily("vrrp_send_error_reasons_total", "VRRP advertisements that could not be sent, per reason (the errno's name, e.g. ehostunreach).", "vrrp_instance", "reason")
	dVRRPChangedAt  = newFamily("vrrp_last_transition_timestamp_seconds", "When the VRRP instance last changed state.", "vrrp_instance")
	dMaintenance    = newFamily("maintenance", "1 while this director is in maintenance (haldir maintenance on: every VRRP instance at priority 1).")
	dRealOverride   = newFamily("real_server_operator_override", "1 while an operator's weight override (haldir drain) is in force for the real server; real_server_weight{kind=\"effective\"} shows its weight.", "virtual_server", "address", "real")
	dVRRPPeerPrio   = newFamily("vrrp_peer_priority", "Priority in the last advert accepted from another router (absent until one came).", "vrrp_instance")
	dSyncReceiving  = newFamily("sync_backup_receiving", "On a conn-sync backup whose master gossips its count: 0 while this director holds no connection and the master holds some (not receiving), 1 otherwise.")
	dCheckLate      = newFamily("healthcheck_late_retries_total", "Health-check failures retried before counting towards fall because the checker itself was late (overloaded: the check's time went mostly to the process standing still, or it came back well after its deadline).")
	dDrillAt        = newFamily("drill_last_timestamp_seconds", "When the newest kept drill (haldir drill run) started.", "kind")
	dDrillGap       = newFamily("drill_last_gap_seconds", "How long the newest kept drill's addresses had no holder (0 for a make-before-break handoff).", "kind")
	dDrillPass      = newFamily("drill_last_pass", "1 when the newest kept drill passed, 0 when it failed or pre-flight refused it.", "kind")
	dDrillInfo      = newFamily("drill_last_info", "Always 1; the labels name the newest kept drill (haldir drill show ID) and its verdict: pass, fail or refused.", "id", "kind", "verdict")
	dBGPPeerUp      = newFamily("bgp_peer_up", "1 while the BGP session with the peer is established.", "peer")
	dBGPPeerBFD     = newFamily("bgp_peer_bfd_up", "1 while the peer's BFD session is up (absent for a peer without BFD).", "peer")
	dBGPAnnounced   = newFamily("bgp_prefix_announced", "1 while this director announces the prefix over BGP.", "prefix")
	dBGPWithdrawals = newFamily("bgp_withdrawals_total", "Withdraws of an announced prefix, per reason (quorum lost: NAMES, maintenance, stopping, removed from the configuration).", "prefix", "reason")
	dCheckLag       = newFamily("healthcheck_lag_seconds", "How late the health checker has been over the last 10 to 20 seconds (0 when it keeps up): a check's start past its schedule, its result past its deadline, the process standing still, or the most overdue check now. A dead real server goes down up to this much later than fall x interval + timeout.")
)

var allFamilies = []*family{
	dBuildInfo, dVRRPState, dVRRPPriority, dVRRPBasePrio, dVRRPSent, dVRRPRecv, dVRRPQuiet, dVRRPSendErr, dVRRPDrops,
	dVRRPIgnored, dVRRPTrans, dVRRPPrioChange, dVRRPSendErrWhy, dDirPasses, dDirFailed, dDirWrites, dDirErrors, dSvcQuorum, dSvcSorry,
	dSvcInKernel, dSvcConns, dSvcBytes, dSvcPackets, dRealUp, dRealWeight, dRealActive, dRealInactive,
	dRealConns, dCheckTotal, dCheckUp, dNotify, dNotRunning, dConfigLoaded, dStartTimestamp,
	dSyncRunning, dSyncWanted, dSyncChanges, dSyncFailures, dClusterMembers, dClusterProblem, dClusterBad,
	dVRRPChangedAt, dCheckLag, dCheckLate, dMaintenance, dRealOverride, dVRRPPeerPrio, dSyncReceiving,
	dDrillAt, dDrillGap, dDrillPass, dDrillInfo, dBGPPeerUp, dBGPPeerBFD, dBGPAnnounced, dBGPWithdrawals,
}

var vrrpStates = []vrrp.State{vrrp.StateInit, vrrp.StateBackup, vrrp.StateMaster, vrrp.StateFault}

type collector struct {
	source func() control.Status
}

// New returns a collector that calls source once per scrape and exports
// the snapshot. source must be cheap and safe for concurrent use (the
// daemon's control.Daemon.Status is).
func New(source func() control.Status) prometheus.Collector {
	return &collector{source: source}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range allFamilies {
		ch <- f.desc
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.source()
	gauge := func(f *family, v float64, l ...string) { ch <- f.sample(v, false, l...) }
	counter := func(f *family, v uint64, l ...string) { ch <- f.sample(float64(v), true, l...) }

	gauge(dBuildInfo, 1, st.Version)
	if !st.Started.IsZero() {
		gauge(dStartTimestamp, float64(st.Started.UnixNano())/1e9)
	}
	if !st.ConfigLoaded.IsZero() {
		gauge(dConfigLoaded, float64(st.ConfigLoaded.UnixNano())/1e9)
	}
	for comp := range st.NotRunning {
		gauge(dNotRunning, 1, comp)
	}
	gauge(dMaintenance, b2f(st.Maintenance != nil))
	if l := st.LastDrill; l != nil {
		gauge(dDrillAt, float64(l.At.Unix())+float64(l.At.Nanosecond())/1e9, l.Kind)
		gauge(dDrillGap, l.GapMillis/1000, l.Kind)
		gauge(dDrillPass, b2f(l.Verdict == "pass"), l.Kind) // drill.VerdictPass
		gauge(dDrillInfo, 1, l.ID, l.Kind, l.Verdict)
	}

	for _, in := range st.VRRP {
		for _, s := range vrrpStates {
			gauge(dVRRPState, b2f(in.State == s), in.Name, s.String())
		}
		gauge(dVRRPPriority, float64(in.Priority), in.Name)
		gauge(dVRRPBasePrio, float64(in.BasePriority), in.Name)
		if !in.LastChange.IsZero() {
			gauge(dVRRPChangedAt, float64(in.LastChange.UnixNano())/1e9, in.Name)
		}
		if !in.PeerSeen.IsZero() {
			gauge(dVRRPPeerPrio, float64(in.PeerPriority), in.Name)
		}
		counter(dVRRPSent, in.AdvertsSent, in.Name)
		counter(dVRRPRecv, in.AdvertsRecv, in.Name)
		counter(dVRRPQuiet, in.AdvertsQuiet, in.Name)
		counter(dVRRPSendErr, in.SendErrors, in.Name)
		counter(dVRRPTrans, in.Transitions, in.Name)
		for r, n := range in.Drops {
			counter(dVRRPDrops, n, in.Name, r)
		}
		for r, n := range in.Ignored {
			counter(dVRRPIgnored, n, in.Name, r)
		}
		for c, n := range in.PriorityChanges {
			counter(dVRRPPrioChange, n, in.Name, c)
		}
		for r, n := range in.SendErrorReasons {
			counter(dVRRPSendErrWhy, n, in.Name, r)
		}
	}

	if d := st.Director; d != nil {
		counter(dDirPasses, d.Passes)
		counter(dDirFailed, d.FailedPasses)
		for op, n := range d.Writes {
			counter(dDirWrites, n, string(op))
		}
		for k, n := range d.Errors {
			counter(dDirErrors, n, string(k.Op), k.Reason)
		}
	}

	kindConfigured, kindEffective := pair("kind", "configured"), pair("kind", "effective")
	for _, s := range st.Services {
		addr := s.Key.String()
		name := s.Name
		if name == "" {
			// Configured virtual servers are always named; keep a series
			// apart from the others even if one is not.
			name = addr
		}
		svc := []string{name, addr}
		with := func(l ...string) []string { return append(slices.Clone(svc), l...) }
		gauge(dSvcQuorum, b2f(s.QuorumUp), svc...)
		gauge(dSvcSorry, b2f(s.SorryActive), svc...)
		gauge(dSvcInKernel, b2f(s.InKernel), svc...)
		counter(dSvcConns, s.Stats.Conns, svc...)
		counter(dSvcBytes, s.Stats.BytesIn, with("in")...)
		counter(dSvcBytes, s.Stats.BytesOut, with("out")...)
		counter(dSvcPackets, s.Stats.PktsIn, with("in")...)
		counter(dSvcPackets, s.Stats.PktsOut, with("out")...)
		vsPair, addrPair := pair("virtual_server", name), pair("address", addr)
		for _, r := range s.Reals {
			if r.Sorry {
				// Shown by service_sorry_active; its address may equal a
				// real server's, which would make duplicate series.
				continue
			}
			realPair := pair("real", r.Addr.String())
			real := series{ch, labels(vsPair, addrPair, realPair)}
			real.gauge(dRealUp, b2f(r.Healthy))
			series{ch, labels(vsPair, addrPair, realPair, kindConfigured)}.gauge(dRealWeight, float64(r.ConfiguredWeight))
			series{ch, labels(vsPair, addrPair, realPair, kindEffective)}.gauge(dRealWeight, float64(r.EffectiveWeight))
			real.gauge(dRealOverride, b2f(r.Overridden))
			real.gauge(dRealActive, float64(r.ActiveConns))
			real.gauge(dRealInactive, float64(r.InactiveConns))
			real.counter(dRealConns, r.Stats.Conns)
		}
	}

	if s := st.Sync; s != nil {
		for _, role := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
			running := false
			for _, d := range s.Running {
				running = running || d.State == role
			}
			gauge(dSyncRunning, b2f(running), role.String())
			gauge(dSyncWanted, b2f(slices.Contains(s.Wanted(), role)), role.String())
		}
		switch st.ConnSync().Receiving {
		case control.ReceivingNo:
			gauge(dSyncReceiving, 0)
		case control.ReceivingYes, control.ReceivingIdle:
			gauge(dSyncReceiving, 1)
		}
		counter(dSyncChanges, s.Changes)
		counter(dSyncFailures, s.Failures)
	}
	if b := st.BGP; b != nil {
		for _, p := range b.Peers {
			gauge(dBGPPeerUp, b2f(p.State == "established"), p.Address.String())
			if p.BFD != "" {
				gauge(dBGPPeerBFD, b2f(p.BFD == "up"), p.Address.String())
			}
		}
		for _, p := range b.Prefixes {
			gauge(dBGPAnnounced, b2f(p.Announced), p.Prefix.String())
			for why, n := range p.Withdrawals {
				counter(dBGPWithdrawals, n, p.Prefix.String(), why)
			}
		}
	}
	if v := st.Cluster; v != nil {
		members := map[string]int{"alive": 0, "gone": 0}
		for _, m := range v.Members {
			members[m.Status]++
		}
		for status, n := range members {
			gauge(dClusterMembers, float64(n), status)
		}
		kinds := map[string]int{"split brain": 0, "config drift": 0}
		for _, p := range v.Problems {
			kind, _, _ := strings.Cut(p, ":")
			kinds[kind]++
		}
		for kind, n := range kinds {
			gauge(dClusterProblem, float64(n), strings.ReplaceAll(kind, " ", "_"))
		}
		counter(dClusterBad, v.Malformed)
	}

	// Probes are keyed by the whole check definition, far too long for a
	// label; several definitions for one address and type are summed.
	if st.Probes != nil {
		gauge(dCheckLag, st.CheckLag.Seconds())
		counter(dCheckLate, st.CheckLateRetries)
	}
	type tk struct{ target, typ string }
	checks := map[tk]uint64{}
	up := map[tk]bool{}
	var order []tk
	for _, p := range st.Probes {
		k := tk{p.Target.Addr.String(), p.Target.Check.Kind.String()}
		if _, ok := checks[k]; !ok {
			order = append(order, k)
			up[k] = true
		}
		checks[k] += p.Checks
		up[k] = up[k] && p.Up
	}
	for _, k := range order {
		probe := series{ch, labels(pair("target", k.target), pair("type", k.typ))}
		probe.counter(dCheckTotal, checks[k])
		probe.gauge(dCheckUp, b2f(up[k]))
	}
	if n := st.Notify; n != nil {
		counter(dNotify, n.Run, "ok")
		counter(dNotify, n.Failed, "failed")
		counter(dNotify, n.Dropped, "dropped")
	}
}

// Serve serves reg's metrics on http://listen/metrics until ctx is done.
// It returns at once with an error when listen cannot be bound, and nil
// after ctx ends.
func Serve(ctx context.Context, listen string, reg *Registry) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("metrics: listen %s: %w", listen, err)
	}
	return serve(ctx, ln, reg)
}

// ServeListener is Serve on a listener the caller bound, so the daemon can
// fail at start when the address is taken and serve in the background.
func ServeListener(ctx context.Context, ln net.Listener, reg *Registry) error {
	return serve(ctx, ln, reg)
}

func serve(ctx context.Context, ln net.Listener, reg *Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "haldir metrics: /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
