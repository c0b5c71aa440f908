package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/healthcheck"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/vrrp"
)

// controlSocketFlags adds -s and -c to fs; the returned function resolves
// the socket path after parsing. -c reads the file leniently
// (socketFromFile); when it falls back to the default socket, fallback
// says why, for the message if the daemon cannot be reached there.
func controlSocketFlags(fs *flag.FlagSet) func() (path, fallback string, err error) {
	sock := fs.String("s", "", "control socket (default "+conf.DefaultControlSocket+")")
	cfg := fs.String("c", "", "take global.control_socket from this configuration file")
	return func() (string, string, error) {
		switch {
		case *sock != "" && *cfg != "":
			return "", "", errors.New("-s and -c are mutually exclusive")
		case *sock != "":
			return *sock, "", nil
		case *cfg != "":
			return socketFromFile(*cfg)
		}
		return conf.DefaultControlSocket, "", nil
	}
}

// dialControl connects to the daemon's control socket; an unreachable
// default socket that -c fell back to says why it was tried.
func dialControl(path, fallback string) (*control.Client, error) {
	c, err := control.Dial(path)
	if err != nil && fallback != "" {
		err = fmt.Errorf("%w (the default socket: %s)", err, fallback)
	}
	return c, err
}

// statusMode selects the table's columns, like ipvsadm's -L variants.
type statusMode int

const (
	modeState statusMode = iota // ipvsadm -Ln plus health and weights
	modeStats                   // ipvsadm -Ln --stats
	modeRate                    // ipvsadm -Ln --rate
)

// statusOptions are the parsed flags of "haldir status".
type statusOptions struct {
	socket            func() (path, fallback string, err error)
	json, stats, rate *bool
}

// statusFlags defines the flags of "haldir status" (documented in commands).
func statusFlags() (*flag.FlagSet, statusOptions) {
	fs := flag.NewFlagSet("haldir status", flag.ContinueOnError)
	return fs, statusOptions{
		socket: controlSocketFlags(fs),
		json:   fs.Bool("json", false, "print the raw status as JSON"),
		stats:  fs.Bool("stats", false, "show the kernel's counters (connections, packets, bytes)"),
		rate:   fs.Bool("rate", false, "show the kernel's rate estimates (per second)"),
	}
}

// runStatus implements "haldir status".
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs, f := statusFlags()
	socket, asJSON, stats, rate := f.socket, f.json, f.stats, f.rate
	if done, code := parseFlags(fs, "status", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "haldir status: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *stats && *rate {
		fmt.Fprintln(stderr, "haldir status: --stats and --rate are mutually exclusive")
		return exitUsage
	}
	path, fallback, err := socket()
	if err != nil {
		fmt.Fprintf(stderr, "haldir status: %v\n", err)
		return exitUsage
	}
	c, err := dialControl(path, fallback)
	if err != nil {
		fmt.Fprintf(stderr, "haldir status: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "haldir status: %v\n", err)
		if errors.Is(err, control.ErrUnreachable) {
			return exitUsage
		}
		return exitInvalid
	}
	if *asJSON {
		// The stable, versioned document (docs/api.md), not the socket's
		// internal wire format.
		b, err := json.MarshalIndent(st.API(), "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "haldir status: %v\n", err)
			return exitInvalid
		}
		stdout.Write(append(b, '\n'))
		return exitOK
	}
	mode := modeState
	switch {
	case *stats:
		mode = modeStats
	case *rate:
		mode = modeRate
	}
	renderStatus(stdout, st, mode, time.Now())
	return exitOK
}

// renderStatus prints st the way ipvsadm -Ln does, with haldir's view
// (health, weights, quorum, VRRP) added.
func renderStatus(w io.Writer, st control.Status, mode statusMode, now time.Time) {
	renderHeader(w, st, now)
	fmt.Fprintln(w)
	renderServices(w, st, mode, now)
	if d := st.Director; d != nil {
		fmt.Fprintln(w)
		renderDirector(w, d)
	}
}

func renderHeader(w io.Writer, st control.Status, now time.Time) {
	fmt.Fprintf(w, "haldir %s, router_id %s", orDash(st.Version), orDash(st.RouterID))
	if !st.Started.IsZero() {
		fmt.Fprintf(w, ", up %s", age(now.Sub(st.Started)))
	}
	fmt.Fprintln(w)
	if st.ConfigPath != "" || !st.ConfigLoaded.IsZero() {
		fmt.Fprintf(w, "config %s", orDash(st.ConfigPath))
		if !st.ConfigLoaded.IsZero() {
			fmt.Fprintf(w, ", loaded %s ago", age(now.Sub(st.ConfigLoaded)))
		}
		fmt.Fprintln(w)
	}
	if m := st.Maintenance; m != nil {
		fmt.Fprintf(w, "MAINTENANCE since %s ago", age(now.Sub(m.Since)))
		if m.Reason != "" {
			fmt.Fprintf(w, ": %s", m.Reason)
		}
		fmt.Fprintln(w, " (every VRRP instance at priority 1; haldir maintenance off ends it)")
	}
	if l := st.LastDrill; l != nil {
		// The ID says when; haldir drill show ID has the rest.
		fmt.Fprintf(w, "last drill: %s %s %s gap %.1f ms\n", l.ID, l.Kind, strings.ToUpper(l.Verdict), l.GapMillis)
	}
	if len(st.VRRP) > 0 {
		fmt.Fprintln(w, "\nVRRP")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  Instance\tState\tPriority\tMaster\tSince")
		for _, in := range st.VRRP {
			// Why the priority is what it is: the configured one and
			// the failing trackers with their weights (or fault).
			prio := strings.TrimPrefix(control.PriorityCauses(in), "priority ")
			master := "-"
			switch {
			case in.State == vrrp.StateMaster:
				master = "this node"
				if in.Source.IsValid() {
					master += " (" + in.Source.String() + ")"
				}
			case in.MasterAddr.IsValid():
				master = in.MasterAddr.String()
			}
			since := "-"
			if !in.LastChange.IsZero() {
				since = age(now.Sub(in.LastChange)) + " ago"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", in.Name, strings.ToUpper(in.State.String()), prio, master, since)
		}
		tw.Flush()
		// Why each instance is (not) master, and what changed it last.
		for _, in := range st.VRRP {
			why := control.WhyVRRP(in)
			if !in.PeerSeen.IsZero() {
				why += fmt.Sprintf(" (last advert from %s %s ago)", in.PeerAddr, age(now.Sub(in.PeerSeen)))
			}
			fmt.Fprintf(w, "  %s: %s\n", in.Name, why)
			if !in.LastChange.IsZero() {
				fmt.Fprintf(w, "  %s: became %s %s ago: %s\n", in.Name, in.State, age(now.Sub(in.LastChange)), orDash(in.LastReason))
			}
		}
	}
	if v := st.Cluster; v != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Cluster:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		bgpCol := st.BGP != nil || slices.ContainsFunc(v.Members, func(m cluster.Member) bool { return len(m.BGPAnnounced) > 0 })
		head := "  DIRECTOR\tADDRESS\tSTATUS\tVERSION\tVRRP"
		if bgpCol {
			head += "\tBGP ANNOUNCES"
		}
		fmt.Fprintln(tw, head)
		for _, m := range v.Members {
			var vr []string
			for _, in := range m.VRRP {
				vr = append(vr, fmt.Sprintf("%s=%s", in.Name, strings.ToUpper(in.State)))
			}
			name := m.Name
			if m.Self {
				name += " (this)"
			}
			status := m.Status
			if m.Maintenance {
				status += ", maintenance"
			}
			line := fmt.Sprintf("  %s\t%s\t%s\t%s\t%s", name, m.Addr, status, m.Version, strings.Join(vr, " "))
			if bgpCol {
				var ps []string
				for _, p := range m.BGPAnnounced {
					ps = append(ps, p.String())
				}
				line += "\t" + orDash(strings.Join(ps, " "))
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if b := st.BGP; b != nil {
		writeBGP(w, b, now)
	}
	if s := st.Sync; s != nil {
		fmt.Fprintln(w)
		running := "none"
		if len(s.Running) > 0 {
			var rs []string
			for _, d := range s.Running {
				rs = append(rs, d.String())
			}
			running = strings.Join(rs, ", ")
		}
		wanted := s.Want.State.String()
		if s.NWay {
			wanted = "master+backup (N-way: every director sends and receives)"
		}
		fmt.Fprintf(w, "conn sync: kernel runs %s; wanted %s", running, wanted)
		if s.LastErr != "" {
			fmt.Fprintf(w, "; last error: %s", s.LastErr)
		}
		fmt.Fprintln(w)
		r := st.ConnSync()
		fmt.Fprintf(w, "conn sync: %s (receiving: %s)\n", r.Summary, r.Receiving)
	}
	if lag := st.CheckLag; lag >= healthcheck.OverloadLag {
		fmt.Fprintf(w, "health checks: running up to %s late (last 10-20 s): the checker is overloaded and checks less often\n", lag.Round(time.Millisecond))
	}
	if n := st.CheckLateRetries; n > 0 {
		fmt.Fprintf(w, "health checks: %d failures retried before counting: the checker was late (overloaded)\n", n)
	}
	// Everything wrong, cluster problems, faults, conn sync, quorum and
	// components not running, each with since when where known.
	if probs := st.Problems(); len(probs) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range probs {
			since := ""
			if !p.Since.IsZero() {
				since = fmt.Sprintf(" (since %s, %s ago)", p.Since.UTC().Format(time.RFC3339), age(now.Sub(p.Since)))
			}
			fmt.Fprintf(w, "  %s%s\n", p.What, since)
		}
	}
}

// confIndex finds the configuration of services and real servers.
type confIndex map[ipvs.ServiceKey]*conf.VirtualServer

func indexConf(vss []conf.VirtualServer) confIndex {
	idx := confIndex{}
	for i := range vss {
		if k, ok := control.VirtualServerKey(&vss[i]); ok {
			idx[k] = &vss[i]
		}
	}
	return idx
}

// findProbe picks the probe reporting on a real server: the one whose key
// is the real server's configured check, else the only one (or the first)
// probing that address.
func findProbe(probes []healthcheck.ProbeStatus, addr netip.AddrPort, rs *conf.RealServer) *healthcheck.ProbeStatus {
	if rs != nil && rs.Check != nil {
		if c := conf.CompileCheck(rs.Check, addr); c != nil {
			key := healthcheck.Target{Addr: addr, Check: c}.Key()
			for i := range probes {
				if probes[i].Key == key {
					return &probes[i]
				}
			}
		}
	}
	var first *healthcheck.ProbeStatus
	for i := range probes {
		p := &probes[i]
		if p.Target.Addr != addr {
			continue
		}
		if rs != nil && rs.Check != nil && probeKind(p) == rs.Check.Type {
			return p
		}
		if first == nil {
			first = p
		}
	}
	return first
}

// ipvsadm's names for the protocols and forwarding methods.
func protName(k ipvs.ServiceKey) string {
	if k.Fwmark != 0 {
		return "FWM"
	}
	return strings.ToUpper(k.Protocol.String())
}

func svcAddr(k ipvs.ServiceKey) string {
	if k.Fwmark != 0 {
		fam := "IPv4"
		if k.V6 {
			fam = "IPv6"
		}
		return fmt.Sprintf("%d %s", k.Fwmark, fam)
	}
	return k.Addr.String()
}

func forwardName(s string) string {
	switch s {
	case "nat":
		return "Masq"
	case "dr":
		return "Route"
	case "tun":
		return "Tunnel"
	case "":
		return "?"
	}
	return s
}

// serviceLine is ipvsadm's service line: protocol, address, scheduler and
// flags.
func serviceLine(s director.ServiceStatus, vs *conf.VirtualServer) string {
	line := fmt.Sprintf("%-4s %s %s", protName(s.Key), svcAddr(s.Key), orDash(s.Scheduler))
	if vs == nil {
		return line
	}
	if len(vs.SchedulerFlags) > 0 {
		line += " (" + strings.Join(vs.SchedulerFlags, ",") + ")"
	}
	if vs.PersistenceTimeout > 0 {
		line += fmt.Sprintf(" persistent %d", int(vs.PersistenceTimeout.D()/time.Second))
		full := 32
		if s.Key.IsV6() {
			full = 128
		}
		if vs.PersistenceGranularity != 0 && vs.PersistenceGranularity != full {
			line += fmt.Sprintf(" mask /%d", vs.PersistenceGranularity)
		}
	}
	return line
}

// serviceState is haldir's view of a service: name, quorum, sorry server.
func serviceState(s director.ServiceStatus) string {
	var parts []string
	if s.Name != "" {
		parts = append(parts, s.Name)
	}
	q := max(s.Quorum, 1)
	if s.QuorumUp {
		parts = append(parts, fmt.Sprintf("quorum up (alive weight %d, quorum %d)", s.AliveWeight, q))
	} else {
		parts = append(parts, fmt.Sprintf("QUORUM DOWN (alive weight %d, quorum %d)", s.AliveWeight, q))
	}
	if s.SorryActive {
		parts = append(parts, "SORRY SERVER ACTIVE")
	}
	if !s.InKernel {
		parts = append(parts, "NOT IN KERNEL")
	}
	return strings.Join(parts, ", ")
}

// renderServices prints the IPVS table. Real server rows of all services
// go through one tabwriter so their columns line up across services; the
// service lines, which ipvsadm does not align, are spliced in afterwards.
func renderServices(w io.Writer, st control.Status, mode statusMode, now time.Time) {
	if len(st.Services) == 0 && len(st.Foreign) == 0 {
		fmt.Fprintln(w, "no virtual servers configured")
		return
	}
	idx := indexConf(st.VirtualServers)
	var rows [][]string
	splice := map[int][]string{} // row index -> raw lines printed before it
	raw := func(s string) { splice[len(rows)] = append(splice[len(rows)], s) }
	cells := func(c ...string) { rows = append(rows, c) }

	switch mode {
	case modeState:
		raw("Prot LocalAddress:Port Scheduler Flags")
		cells("  -> RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn", "Health", "CfgWeight", "EffWeight", "LastCheck")
	case modeStats:
		cells("Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
		cells("  -> RemoteAddress:Port")
	case modeRate:
		cells("Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
		cells("  -> RemoteAddress:Port")
	}
	counters := func(s ipvs.Stats) []string {
		if mode == modeStats {
			return u64s(s.Conns, s.PktsIn, s.PktsOut, s.BytesIn, s.BytesOut)
		}
		return u64s(s.CPS, s.PPSIn, s.PPSOut, s.BPSIn, s.BPSOut)
	}

	for _, s := range st.Services {
		vs := idx[s.Key]
		if mode == modeState {
			raw(serviceLine(s, vs) + "  [" + serviceState(s) + "]")
		} else {
			cells(append([]string{fmt.Sprintf("%-4s %s", protName(s.Key), svcAddr(s.Key))}, counters(s.Stats)...)...)
		}
		for _, r := range s.Reals {
			addr := "  -> " + r.Addr.String()
			if mode != modeState {
				cells(append([]string{addr}, counters(r.Stats)...)...)
				continue
			}
			rc := control.RealServerConf(vs, r.Addr)
			fwd := "?"
			switch {
			case rc != nil:
				fwd = forwardName(rc.Forwarding)
			case vs != nil:
				fwd = forwardName(vs.Forwarding)
			}
			kw, ac, ic := "-", "-", "-"
			if r.InKernel {
				kw, ac, ic = strconv.Itoa(r.KernelWeight), strconv.FormatUint(uint64(r.ActiveConns), 10), strconv.FormatUint(uint64(r.InactiveConns), 10)
			}
			health, last := realHealth(r, s), "-"
			if r.Checked {
				last = lastCheck(findProbe(st.Probes, r.Addr, rc), now)
			}
			cells(addr, fwd, kw, ac, ic, health, strconv.Itoa(r.ConfiguredWeight), effWeight(r), last)
		}
	}
	for _, k := range st.Foreign {
		raw(fmt.Sprintf("%-4s %s  [not managed by haldir]", protName(k), svcAddr(k)))
	}

	// Counters read best right-aligned, like ipvsadm's; the address column
	// is padded by hand so that it stays left-aligned.
	var flags uint
	if mode != modeState {
		flags = tabwriter.AlignRight
		width, ncells := 0, 0
		for _, r := range rows {
			width, ncells = max(width, len(r[0])), max(ncells, len(r))
		}
		for i, r := range rows {
			r[0] += strings.Repeat(" ", width-len(r[0]))
			// A row with fewer cells would end tabwriter's column block.
			for len(r) < ncells {
				r = append(r, "")
			}
			rows[i] = r
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 1, ' ', flags)
	for _, r := range rows {
		// A trailing tab makes the last cell a column too, so AlignRight
		// aligns it with the others.
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	lines := strings.Split(buf.String(), "\n")
	for i := 0; i <= len(rows); i++ {
		for _, s := range splice[i] {
			fmt.Fprintln(w, s)
		}
		if i < len(rows) {
			l := strings.TrimRight(lines[i], " ")
			if flags&tabwriter.AlignRight != 0 {
				l = strings.TrimPrefix(l, " ") // the padding AlignRight puts before the first column
			}
			fmt.Fprintln(w, l)
		}
	}
}

// effWeight is the EffWeight cell: the weight, and who set it when the
// operator did (haldir drain).
func effWeight(r director.RealStatus) string {
	w := strconv.Itoa(r.EffectiveWeight)
	switch {
	case !r.Overridden:
		return w
	case r.OverrideWeight == 0:
		return w + " (drained by operator)"
	}
	return fmt.Sprintf("%s (operator: %d)", w, r.OverrideWeight)
}

func realHealth(r director.RealStatus, s director.ServiceStatus) string {
	switch {
	case r.Sorry && s.SorryActive:
		return "sorry (active)"
	case r.Sorry:
		return "sorry (standby)"
	case !r.Checked:
		return "no check"
	}
	h := "down"
	if r.Healthy {
		h = "up"
	}
	if !r.HealthKnown {
		h += " (initial)"
	}
	return h
}

// probeKind is the type of p's check; "" when the daemon's answer has no
// check (a newer or broken daemon).
func probeKind(p *healthcheck.ProbeStatus) string {
	if p.Target.Check == nil {
		return ""
	}
	return p.Target.Check.Kind.String()
}

// lastCheck summarises the probe's most recent result.
func lastCheck(p *healthcheck.ProbeStatus, now time.Time) string {
	if p == nil {
		return "no probe"
	}
	typ := probeKind(p)
	if len(p.History) == 0 {
		if p.Reason != "" {
			return typ + ": " + p.Reason
		}
		return typ + ": pending"
	}
	last := p.History[len(p.History)-1]
	verdict := "failed"
	if last.Up {
		verdict = "ok"
	}
	out := fmt.Sprintf("%s %s", typ, verdict)
	if last.Reason != "" {
		out += ": " + last.Reason
	}
	if !last.Start.IsZero() {
		out += fmt.Sprintf(" (%s ago)", age(now.Sub(last.Start)))
	}
	return out
}

func renderDirector(w io.Writer, d *director.Counters) {
	var writes uint64
	for _, n := range d.Writes {
		writes += n
	}
	fmt.Fprintf(w, "director: %d passes (%d failed), %d kernel writes", d.Passes, d.FailedPasses, writes)
	if len(d.Errors) > 0 {
		keys := make([]director.ErrorKey, 0, len(d.Errors))
		for k := range d.Errors {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b director.ErrorKey) int {
			return strings.Compare(string(a.Op)+"/"+a.Reason, string(b.Op)+"/"+b.Reason)
		})
		errs := make([]string, len(keys))
		for i, k := range keys {
			errs[i] = fmt.Sprintf("%s %s %d", k.Op, k.Reason, d.Errors[k])
		}
		fmt.Fprintf(w, "; errors: %s", strings.Join(errs, ", "))
	}
	fmt.Fprintln(w)
}

func u64s(vs ...uint64) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.FormatUint(v, 10)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age renders a duration the way people read uptimes: two units at most.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	h := (d % (24 * time.Hour)) / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// writeBGP is the BGP speaker's part of haldir status: each peer's
// session and each prefix, announced or why not.
func writeBGP(w io.Writer, b *control.BGPStatus, now time.Time) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "BGP: asn %d, router id %s, addresses on %s\n", b.ASN, b.RouterID, b.Device)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tASN\tSTATE\tUP\tLOCAL\tBFD")
	for _, p := range b.Peers {
		up := "-"
		if !p.Up.IsZero() {
			up = age(now.Sub(p.Up))
		}
		local := "-"
		if p.LocalAddress.IsValid() {
			local = p.LocalAddress.String()
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\n", p.Address, p.ASN, p.State, up, local, orDash(p.BFD))
	}
	tw.Flush()
	if b.PeersError != "" {
		fmt.Fprintf(w, "  peers unknown: %s\n", b.PeersError)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PREFIX\tVIRTUAL SERVERS\tANNOUNCED\tSINCE\tWITHDRAWALS")
	for _, p := range b.Prefixes {
		state := "yes"
		if !p.Announced {
			state = "no: " + p.Reason
		}
		var ws []string
		for _, r := range slices.Sorted(maps.Keys(p.Withdrawals)) {
			ws = append(ws, fmt.Sprintf("%s %d", r, p.Withdrawals[r]))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s ago\t%s\n", p.Prefix, strings.Join(p.VirtualServers, ","), state, age(now.Sub(p.Since)), orDash(strings.Join(ws, "; ")))
	}
	tw.Flush()
}
