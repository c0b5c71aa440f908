package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/connsync"
)

// checkFlags defines the flags of "haldir check" (documented in commands).
func checkFlags() (fs *flag.FlagSet, path *string, host *bool) {
	fs = flag.NewFlagSet("haldir check", flag.ContinueOnError)
	path = fs.String("c", conf.DefaultPath, "configuration file")
	host = fs.Bool("host", false, "also check the file against this host (interfaces, addresses, commands, IPVS modules)")
	return fs, path, host
}

// runCheck implements "haldir check": validate the file and summarise it.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs, path, host := checkFlags()
	if done, code := parseFlags(fs, "check", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "haldir check: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	c, err := conf.Load(*path)
	if err != nil {
		var es conf.Errors
		if errors.As(err, &es) {
			fmt.Fprintln(stderr, es.Error())
			fmt.Fprintf(stderr, "%s: %s\n", *path, plural(len(es), "error"))
			return exitInvalid
		}
		fmt.Fprintf(stderr, "haldir check: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n\n", *path)
	summarize(stdout, c)
	if !*host {
		return exitOK
	}
	ifs, err := readHostIfaces()
	if err != nil {
		fmt.Fprintf(stderr, "haldir check: reading this host's interfaces: %v\n", err)
		return exitInvalid
	}
	problems := checkHost(c, ifs, defaultHostEnv())
	for _, n := range bgpNotes(c, connsync.ProcSysctls{}) {
		fmt.Fprintln(stdout, "note: "+n)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		fmt.Fprintf(stderr, "%s: %s on this host\n", *path, plural(len(problems), "problem"))
		return exitInvalid
	}
	fmt.Fprintf(stdout, "\nthis host: interfaces, addresses, commands and IPVS modules are in place\n")
	return exitOK
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// summarize prints the effective configuration (defaults applied, checks
// inherited) in one screen for the usual director.
func summarize(w io.Writer, c *conf.Config) {
	g := c.Global
	fmt.Fprintf(w, "router_id %s, log %s/%s, metrics %s, control socket %s, state %s\n",
		g.RouterID, g.LogLevel, g.LogFormat, orOff(g.MetricsListen), orOff(g.ControlSocket), g.StateDir)

	fmt.Fprintf(w, "\nVRRP instances: %d\n", len(c.VRRP))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, in := range c.VRRP {
		vips := make([]string, len(in.VirtualAddresses))
		for i, p := range in.VirtualAddresses {
			vips[i] = p.String()
		}
		fmt.Fprintf(tw, "  %s\t%s vrid %d\tv%d prio %d every %s\t%s\n",
			in.Name, in.Interface, in.VRID, in.Version, in.Priority, in.AdvertInterval, strings.Join(vips, " "))
	}
	tw.Flush()
	for _, in := range c.VRRP {
		var details []string
		switch {
		case !in.Preempt:
			details = append(details, "nopreempt")
		case in.PreemptDelay > 0:
			details = append(details, "preempt after "+in.PreemptDelay.String())
		}
		if len(in.UnicastPeers) > 0 {
			src := ""
			if in.UnicastSource.IsValid() {
				src = in.UnicastSource.String() + " "
			}
			details = append(details, "unicast "+src+"-> "+joinAddrs(in.UnicastPeers))
		}
		for _, t := range in.TrackInterfaces {
			details = append(details, fmt.Sprintf("track %s (%s)", t.Name, trackEffect(t.Weight)))
		}
		for _, t := range in.TrackScripts {
			details = append(details, fmt.Sprintf("script %s (%s)", t.Name, trackEffect(t.Weight)))
		}
		for _, t := range in.TrackVirtualSrvs {
			details = append(details, fmt.Sprintf("virtual server %s (%s)", t.Name, trackEffect(t.Weight)))
		}
		if in.UseVMAC {
			details = append(details, "virtual MAC on "+in.VMACInterface)
		}
		if len(details) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", in.Name, strings.Join(details, ", "))
		}
	}

	if len(c.VRRPSyncGroups) > 0 {
		fmt.Fprintf(w, "\nSync groups: %d\n", len(c.VRRPSyncGroups))
		for _, sg := range c.VRRPSyncGroups {
			fmt.Fprintf(w, "  %s: %s\n", sg.Name, strings.Join(sg.Instances, ", "))
		}
	}

	fmt.Fprintf(w, "\nVirtual servers: %d\n", len(c.VirtualServers))
	for _, vs := range c.VirtualServers {
		svc := vs.Protocol + " " + netip.AddrPortFrom(vs.Address, uint16(vs.Port)).String()
		if vs.Fwmark != 0 {
			svc = fmt.Sprintf("fwmark %d (%s)", vs.Fwmark, vs.Family)
		}
		extra := []string{vs.Scheduler}
		if len(vs.SchedulerFlags) > 0 {
			extra[0] += "(" + strings.Join(vs.SchedulerFlags, ",") + ")"
		}
		extra = append(extra, vs.Forwarding)
		if vs.TunnelType != "" {
			extra[len(extra)-1] += "/" + vs.TunnelType
		}
		if vs.PersistenceTimeout > 0 {
			extra = append(extra, "persistent "+vs.PersistenceTimeout.String())
		}
		if vs.Quorum > 1 {
			extra = append(extra, fmt.Sprintf("quorum %d", vs.Quorum))
		}
		if vs.SorryServer.IsValid() {
			extra = append(extra, "sorry "+vs.SorryServer.String())
		}
		fmt.Fprintf(w, "  %s  %s  %s\n", vs.Name, svc, strings.Join(extra, ", "))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, rs := range vs.RealServers {
			dest := rs.Address.String()
			if rs.Port != 0 {
				dest = netip.AddrPortFrom(rs.Address, uint16(rs.Port)).String()
			}
			fwd := ""
			if rs.Forwarding != vs.Forwarding {
				fwd = " " + rs.Forwarding
			}
			fmt.Fprintf(tw, "    -> %s\tweight %d%s\t%s\n", dest, rs.Weight, fwd, describeCheck(rs.Check))
		}
		tw.Flush()
	}

	if s := c.Sync; s != nil {
		role := "follows " + s.VRRPInstance
		if s.VRRPInstance == "" {
			role = "N-way (master and backup on every director)"
		}
		fmt.Fprintf(w, "\nConnection sync: on %s, %s, sync_id %d\n", s.Interface, role, s.SyncID)
	}
	if cl := c.Cluster; cl != nil {
		fmt.Fprintf(w, "\nCluster %s: bind %s, %s\n", cl.Name, cl.Bind, plural(len(cl.Peers), "peer"))
	}
	if b := c.BGP; b != nil {
		summarizeBGP(w, b)
	}
}

// summarizeBGP is [bgp] in brief: the speaker, each peer, each prefix and
// what it follows.
func summarizeBGP(w io.Writer, b *conf.BGP) {
	id := "chosen at start"
	if b.RouterID.IsValid() {
		id = b.RouterID.String()
	}
	listen := "connect out only"
	if b.ListenPort != 0 {
		listen = fmt.Sprintf("listen on %d", b.ListenPort)
	}
	gs := "off"
	if b.GracefulShutdown {
		gs = "on"
	}
	fmt.Fprintf(w, "\nBGP: asn %d, router id %s, %s, graceful shutdown %s, addresses on %s\n", b.ASN, id, listen, gs, b.Device)
	for _, p := range b.Peers {
		details := []string{fmt.Sprintf("asn %d", p.ASN), fmt.Sprintf("port %d", p.Port), "hold " + p.HoldTime.String()}
		if p.LocalAddress.IsValid() {
			details = append(details, "from "+p.LocalAddress.String())
		}
		if p.Multihop > 0 {
			details = append(details, fmt.Sprintf("multihop %d", p.Multihop))
		}
		if p.PasswordFile != "" {
			details = append(details, "md5")
		}
		if f := p.BFD; f != nil {
			details = append(details, fmt.Sprintf("bfd %s/%s x%d", f.MinTx, f.MinRx, f.Multiplier))
		}
		fmt.Fprintf(w, "  peer %s: %s\n", p.Address, strings.Join(details, ", "))
	}
	for _, a := range b.Announce {
		extra := ""
		if len(a.Communities) > 0 {
			extra += ", communities " + strings.Join(a.Communities, " ")
		}
		if a.MED != 0 {
			extra += fmt.Sprintf(", med %d", a.MED)
		}
		fmt.Fprintf(w, "  %s for %s%s\n", a.Prefix, strings.Join(a.VirtualServers, " and "), extra)
	}
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func trackEffect(weight int) string {
	if weight == 0 {
		return "fault when down"
	}
	return fmt.Sprintf("priority %+d", weight)
}

// describeCheck renders an effective check in one line.
func describeCheck(c *conf.Check) string {
	if c == nil {
		return "no check (always up)"
	}
	var what string
	switch c.Type {
	case "tcp":
		what = "tcp connect"
	case "http", "https":
		urls := c.URLs
		if len(urls) == 0 {
			urls = []conf.CheckURL{{Path: c.Path, ExpectStatus: c.ExpectStatus, ExpectBody: c.ExpectBody, Digest: c.Digest}}
		}
		parts := make([]string, len(urls))
		for i, u := range urls {
			parts[i] = u.Path + " expect " + u.ExpectStatus.String()
			if u.ExpectBody != "" {
				parts[i] += fmt.Sprintf(" body ~ %q", u.ExpectBody)
			}
			if u.Digest != "" {
				parts[i] += " digest"
			}
		}
		what = c.Type + " GET " + strings.Join(parts, ", GET ")
		if c.Type == "https" && !c.TLSVerify {
			what += " (no TLS verify)"
		}
	case "exec":
		what = "exec " + strings.Join(c.Command, " ")
		if !c.DynamicWeight {
			what += " (any non-zero exit is down)"
		}
	case "dns":
		what = "dns " + c.QueryType + " " + c.QueryName
	case "udp":
		what = "udp"
		if c.Payload != "" {
			what += " request/response"
		}
		if !c.RequireReply {
			what += " (silence is up)"
		}
	default:
		what = c.Type
	}
	if c.ConnectAddress.IsValid() || c.ConnectPort != 0 {
		target := "port " + strconv.Itoa(c.ConnectPort)
		if c.ConnectAddress.IsValid() {
			target = netip.AddrPortFrom(c.ConnectAddress, uint16(c.ConnectPort)).String()
		}
		what += " to " + target
	}
	what += fmt.Sprintf(", every %s timeout %s rise %d fall %d", c.Interval, c.Timeout, c.Rise, c.Fall)
	if c.InitialState == "down" {
		what += ", starts down"
	}
	return what
}

// bgpNotes are the kernel settings of BGP mode this host differs in
// (connsync.BGPSettings): not problems, since haldir sets them at start,
// but what it will change.
func bgpNotes(c *conf.Config, s connsync.Sysctls) []string {
	if c.BGP == nil {
		return nil
	}
	return connsync.Check(s, connsync.BGPSettings())
}
