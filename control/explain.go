package control

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// The answers to the questions asked at 3 a.m.: why is this director (not)
// master, do the backups receive the connections, and what is wrong since
// when. `haldir status` prints them and `status --json` carries them, so
// both say the same thing.

// WhyVRRP says in one sentence why the instance is in its state: its
// effective priority with the causes, the master it hears and that one's
// priority, preemption, or what holds it in fault.
func WhyVRRP(in vrrp.Status) string {
	prio := PriorityCauses(in)
	peer := ""
	if in.PeerAddr.IsValid() {
		peer = fmt.Sprintf("%s advertises priority %d", in.PeerAddr, in.PeerPriority)
	}
	switch in.State {
	case vrrp.StateFault:
		var faults []string
		for _, f := range in.Failing {
			if strings.HasSuffix(f, "(fault)") {
				faults = append(faults, strings.TrimSuffix(f, " (fault)"))
			}
		}
		if len(faults) == 0 && in.LastReason != "" {
			faults = []string{in.LastReason}
		}
		return "fault: " + orNone(strings.Join(faults, "; "), "cause unknown")
	case vrrp.StateMaster:
		s := "master with " + prio
		// A peer heard since this one became master: a lower one is a
		// backup's stray advert or a failover's overlap; it is shown so
		// that a split brain's other side has a name.
		if peer != "" && !in.PeerSeen.Before(in.LastChange) {
			s += "; last advert from another router: " + peer
		}
		return s
	case vrrp.StateBackup:
		if !in.MasterAddr.IsValid() || !in.PeerAddr.IsValid() {
			return "backup with " + prio + "; no master heard: takes over when the master-down timer expires"
		}
		ours := int(in.Priority)
		theirs := int(in.PeerPriority)
		switch {
		case theirs > ours:
			return fmt.Sprintf("backup: master %s, above our %s", peer, prio)
		case in.Yielded:
			return fmt.Sprintf("backup: handed over in a planned handoff (haldir handoff); master %s; holding back preemption with our %s until mastership moves again (haldir maintenance off, a handoff back, a failover)", peer, prio)
		case theirs == ours:
			return fmt.Sprintf("backup: master %s, equal to our %s; the higher address wins", peer, prio)
		case !in.Preempt:
			return fmt.Sprintf("backup: master %s, below our %s, and preempt is off", peer, prio)
		default:
			return fmt.Sprintf("backup: master %s, below our %s: taking over (preempt, after preempt_delay)", peer, prio)
		}
	}
	return in.State.String() + ": not running (" + orNone(in.LastReason, "not started") + ")"
}

// PriorityCauses is the effective priority with what moved it from the
// configured one: "priority 140 (configured 150; track_script chk failing
// -10)".
func PriorityCauses(in vrrp.Status) string {
	s := fmt.Sprintf("priority %d", in.Priority)
	var why []string
	if int(in.Priority) != in.BasePriority || len(in.Failing) > 0 {
		why = append(why, fmt.Sprintf("configured %d", in.BasePriority))
	}
	why = append(why, in.Failing...)
	if len(why) > 0 {
		s += " (" + strings.Join(why, "; ") + ")"
	}
	return s
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// roleName is "master", "backup", "master+backup" (N-way), or "none".
func roleName(roles []ipvs.SyncState) string {
	if len(roles) == 0 {
		return "none"
	}
	var names []string
	for _, r := range roles {
		names = append(names, r.String())
	}
	return strings.Join(names, "+")
}

// ConnSyncPeer is another director's side of conn sync as it gossips it.
type ConnSyncPeer struct {
	Director string
	Role     string // master, backup, none, or master+backup
	Conns    uint64
	Services map[string]uint64 // per virtual server holding any
	At       time.Time
}

// Receiving values of ConnSyncReport.
const (
	ReceivingYes     = "yes"     // this backup holds connections while the master holds some
	ReceivingNo      = "no"      // this backup holds none while the master holds some
	ReceivingIdle    = "idle"    // the master holds no connection: nothing to receive
	ReceivingUnknown = "unknown" // no master's count (no cluster, or no master gossips one)
	ReceivingMaster  = "master"  // this director sends: see the peers for the backups
)

// ConnSyncReport is the conn-sync picture: this director's kernel daemon
// role and connections, the other directors' as they gossip them, and
// whether this backup receives what the master sends.
type ConnSyncReport struct {
	Role  string
	Conns uint64
	// Services is this director's count per virtual server holding any,
	// as it gossips it (nil without a cluster).
	Services  map[string]uint64
	Peers     []ConnSyncPeer
	Receiving string
	Summary   string
}

// ConnSync compares this director's connections with the master's (or,
// on the master, with the backups') through the cluster view. The counts
// are the connections each kernel holds for the virtual servers, active
// and inactive: a backup holds those the master's sync daemon sent. They
// are read at different moments (RefreshInterval apart at most) and the
// kernel sends a partly filled sync message only after 2 s, so they match
// only roughly on a busy director; a backup with none while the master
// has some is not receiving.
func (st Status) ConnSync() ConnSyncReport {
	r := ConnSyncReport{Role: "none", Receiving: ReceivingUnknown}
	if st.Sync == nil {
		return r
	}
	var roles []string
	for _, d := range st.Sync.Running {
		roles = append(roles, d.State.String())
	}
	if len(roles) > 0 {
		r.Role = strings.Join(roles, "+")
	}
	// The count this director gossips (every service in its kernel, at
	// most cluster.ConnSyncRefresh old), so that it compares with the
	// others' counts; without a cluster, the director's last read of its
	// virtual servers.
	self := false
	if v := st.Cluster; v != nil {
		for _, m := range v.Members {
			if m.Self && m.Sync != nil {
				r.Conns, r.Services, self = m.Sync.Conns, m.Sync.Services, true
			}
		}
	}
	if !self {
		for _, s := range st.Services {
			for _, rs := range s.Reals {
				r.Conns += uint64(rs.ActiveConns) + uint64(rs.InactiveConns)
			}
		}
	}
	var masters []ConnSyncPeer
	if v := st.Cluster; v != nil {
		for _, m := range v.Members {
			if m.Self || m.Status != "alive" || m.Sync == nil {
				continue
			}
			p := ConnSyncPeer{Director: m.Name, Role: m.Sync.Role, Conns: m.Sync.Conns, Services: m.Sync.Services, At: m.Sync.At}
			r.Peers = append(r.Peers, p)
			if slices.Contains(strings.Split(p.Role, "+"), ipvs.SyncMaster.String()) {
				masters = append(masters, p)
			}
		}
	}
	if st.Sync.NWay {
		r.nway(st.Cluster != nil, roles)
		return r
	}
	switch {
	case slices.Contains(roles, ipvs.SyncMaster.String()):
		r.Receiving = ReceivingMaster
		var parts []string
		for _, p := range r.Peers {
			parts = append(parts, fmt.Sprintf("%s (%s) holds %d", p.Director, p.Role, p.Conns))
		}
		r.Summary = fmt.Sprintf("master: this director holds %d connections", r.Conns)
		if len(parts) > 0 {
			r.Summary += "; " + strings.Join(parts, ", ")
		} else if st.Cluster == nil {
			r.Summary += "; without [cluster] the backups' counts are unknown"
		}
	case !slices.Contains(roles, ipvs.SyncBackup.String()):
		r.Summary = "no sync daemon running"
	case len(masters) == 0:
		r.Summary = fmt.Sprintf("backup: this director holds %d connections; ", r.Conns)
		if st.Cluster == nil {
			r.Summary += "without [cluster] the master's count is unknown"
		} else {
			r.Summary += "no director in the cluster reports a master sync daemon"
		}
	default:
		m := masters[0]
		switch {
		case m.Conns == 0:
			r.Receiving = ReceivingIdle
		case r.Conns == 0:
			r.Receiving = ReceivingNo
		default:
			r.Receiving = ReceivingYes
		}
		r.Summary = fmt.Sprintf("backup: this director holds %d connections, the master %s %d", r.Conns, m.Director, m.Conns)
		if r.Receiving == ReceivingNo {
			r.Summary += ": NOT RECEIVING (check the sync interface, sync_id and multicast between the directors)"
		}
	}
	return r
}

// MinNWayReceived is how many connections of a virtual server another
// director must hold before an N-way director holding none of them counts
// as not receiving: the youngest connections are not sent yet (the kernel
// sends one after its third packet and a partly filled message after 2 s).
const MinNWayReceived = 10

// nway fills in Receiving and Summary for N-way sync, where every director
// sends and receives: each should hold roughly every director's
// connections. One holding none while another holds some, or none of a
// virtual server another holds MinNWayReceived of, is not receiving. Its
// own connections hide a partial loss: the counts are shown to compare.
func (r *ConnSyncReport) nway(cluster bool, roles []string) {
	r.Summary = fmt.Sprintf("N-way: this director holds %d connections", r.Conns)
	if !slices.Equal(roles, []string{ipvs.SyncMaster.String(), ipvs.SyncBackup.String()}) {
		r.Summary += fmt.Sprintf("; the kernel runs %s, not master+backup", r.Role)
		return
	}
	if len(r.Peers) == 0 {
		if cluster {
			r.Summary += "; no other director in the cluster reports conn sync"
		} else {
			r.Summary += "; without [cluster] the other directors' counts are unknown"
		}
		return
	}
	var parts, missing []string
	var most uint64
	for _, p := range r.Peers {
		parts = append(parts, fmt.Sprintf("%s (%s) holds %d", p.Director, p.Role, p.Conns))
		most = max(most, p.Conns)
		for _, svc := range slices.Sorted(maps.Keys(p.Services)) {
			if p.Services[svc] >= MinNWayReceived && r.Services[svc] == 0 && !slices.Contains(missing, svc) {
				missing = append(missing, svc)
			}
		}
	}
	r.Summary += "; " + strings.Join(parts, ", ")
	switch {
	case most == 0 && r.Conns == 0:
		r.Receiving = ReceivingIdle
	case r.Conns == 0 || len(missing) > 0:
		r.Receiving = ReceivingNo
		r.Summary += ": NOT RECEIVING"
		if len(missing) > 0 {
			r.Summary += " " + strings.Join(missing, ", ")
		}
		r.Summary += " (check the sync interface, sync_id and multicast between the directors)"
	default:
		r.Receiving = ReceivingYes
	}
}

// Problem is something wrong now, and since when (zero when unknown).
type Problem struct {
	What  string
	Since time.Time
}

// Problems lists everything wrong the status shows: cluster problems
// (split brain, drift), VRRP instances in fault, a conn-sync daemon not in
// its wanted role or a backup not receiving, virtual servers without
// quorum, and components not running.
func (st Status) Problems() []Problem {
	var out []Problem
	if v := st.Cluster; v != nil {
		for _, p := range v.Problems {
			out = append(out, Problem{What: "cluster: " + p, Since: v.Since[p]})
		}
		for _, m := range v.Members {
			if m.Status == "gone" {
				out = append(out, Problem{What: "cluster: director " + m.Name + " is gone"})
			}
		}
	}
	for _, in := range st.VRRP {
		if in.State == vrrp.StateFault {
			out = append(out, Problem{What: "vrrp " + in.Name + ": " + WhyVRRP(in), Since: in.LastChange})
		}
	}
	for _, w := range st.ConfigWarnings {
		out = append(out, Problem{What: "config: " + w})
	}
	if s := st.Sync; s != nil {
		var running []ipvs.SyncState
		for _, d := range s.Running {
			running = append(running, d.State)
		}
		if wanted := s.Wanted(); !slices.Equal(running, wanted) {
			what := "conn sync: the kernel does not run the wanted " + roleName(wanted) + " daemon"
			if s.NWay {
				what += "s (N-way)"
			}
			if s.LastErr != "" {
				what += ": " + s.LastErr
			}
			out = append(out, Problem{What: what})
		}
		if r := st.ConnSync(); r.Receiving == ReceivingNo {
			out = append(out, Problem{What: "conn sync: " + r.Summary})
		}
	}
	if b := st.BGP; b != nil {
		for _, p := range b.Peers {
			if p.State != "established" {
				out = append(out, Problem{What: fmt.Sprintf("bgp: peer %s (asn %d) is %s, not established", p.Address, p.ASN, p.State)})
			}
		}
		if b.PeersError != "" {
			out = append(out, Problem{What: "bgp: peers unknown: " + b.PeersError})
		}
	}
	for _, s := range st.Services {
		if !s.QuorumUp {
			name := orNone(s.Name, s.Key.String())
			out = append(out, Problem{What: "virtual server " + name + " (" + s.Key.String() + "): quorum lost"})
		}
	}
	names := make([]string, 0, len(st.NotRunning))
	for n := range st.NotRunning {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, Problem{What: "not running: " + n + " (" + st.NotRunning[n] + ")"})
	}
	return out
}
