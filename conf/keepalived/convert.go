package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Warning is a directive that did not carry over as it was, and why.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg) }

// Result is a converted configuration.
type Result struct {
	TOML     string
	Warnings []Warning
}

// converter holds the output tables and the warnings.
type converter struct {
	global   *table
	ipvs     *table
	sync     *table
	vrrp     []*table
	groups   []*table
	vs       []*table // each virtual server followed by its real servers
	scripts  map[string]*Node
	defaults map[string]string // global_defs that become per-instance keys
	// grouped maps each sync group member to whether its group honours
	// tracking weights (sync_group_tracking_weight): keepalived ignores
	// them otherwise, and a tracking failure faults the whole group.
	grouped  map[string]bool
	vsGroups map[string]*Node // virtual_server_group by name
	warnings []Warning
}

func (c *converter) warn(n *Node, format string, a ...any) {
	c.warnings = append(c.warnings, Warning{n.File, n.Line, fmt.Sprintf(format, a...)})
}

func (c *converter) ignored(n *Node, why string) {
	c.warn(n, "%s: %s", n.Name, why)
}

// Convert turns parsed keepalived directives into haldir's TOML. What has
// no equivalent is left out with a warning naming the file and line.
func Convert(nodes []*Node, source string) Result {
	c := &converter{global: &table{header: "[global]"}, scripts: map[string]*Node{}, defaults: map[string]string{}, grouped: map[string]bool{}, vsGroups: map[string]*Node{}}
	// vrrp_script blocks and global_defs may come after their users.
	for _, n := range nodes {
		switch n.Name {
		case "vrrp_script":
			if len(n.Args) > 0 {
				c.scripts[n.Args[0]] = n
			}
		case "global_defs":
			c.globalDefs(n)
		case "virtual_server_group":
			if len(n.Args) == 1 {
				c.vsGroups[n.Args[0]] = n
			} else {
				c.warn(n, "virtual_server_group: want one name")
			}
		case "vrrp_sync_group":
			weights := slices.ContainsFunc(n.Children, func(x *Node) bool { return x.Name == "sync_group_tracking_weight" })
			for _, g := range n.Children {
				if g.Name == "group" {
					for _, m := range g.Children {
						for _, name := range append([]string{m.Name}, m.Args...) {
							c.grouped[name] = weights
						}
					}
				}
			}
		}
	}
	for _, n := range nodes {
		switch n.Name {
		case "global_defs", "vrrp_script", "virtual_server_group":
		case "vrrp_instance":
			c.instance(n)
		case "vrrp_sync_group":
			c.syncGroup(n)
		case "virtual_server":
			c.virtualServer(n)
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Converted from %s by haldir import-keepalived.\n", source)
	fmt.Fprintf(&b, "# Check it with: haldir check -c FILE. %d directive(s) did not carry over; see the warnings.\n", len(c.warnings))
	for _, t := range append(append([]*table{c.global, c.ipvs, c.sync}, c.vrrp...), append(c.groups, c.vs...)...) {
		if t != nil && (len(t.keys) > 0 || t.header[0:2] == "[[") {
			t.write(&b)
		}
	}
	return Result{TOML: b.String(), Warnings: c.warnings}
}

func (c *converter) globalDefs(g *Node) {
	for _, n := range g.Children {
		switch n.Name {
		case "router_id":
			if c.one(n) {
				c.global.str("router_id", n.Args[0])
			}
		case "vrrp_version":
			if c.one(n) {
				c.defaults["version"] = n.Args[0]
			}
		case "vrrp_garp_master_delay", "vrrp_garp_master_repeat", "vrrp_garp_master_refresh":
			if c.one(n) {
				c.defaults[strings.TrimPrefix(n.Name, "vrrp_")] = n.Args[0]
			}
		case "lvs_sync_daemon":
			c.syncDaemon(n)
		case "lvs_timeouts":
			c.lvsTimeouts(n)
		case "notification_email", "notification_email_from", "smtp_server", "smtp_connect_timeout", "smtp_helo_name",
			"enable_traps", "enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc", "enable_dbus":
			c.ignored(n, "haldir sends no mail or SNMP traps; use notify commands and the metrics endpoint")
		case "script_user", "enable_script_security":
			c.ignored(n, "haldir runs notify and check commands as its own user, with no shell")
		case "vrrp_skip_check_adv_addr", "vrrp_strict", "vrrp_check_unicast_src", "vrrp_garp_interval", "vrrp_gna_interval",
			"vrrp_iptables", "vrrp_ipsets", "vrrp_no_swap", "checker_no_swap", "vrrp_priority", "checker_priority":
			c.ignored(n, "no haldir equivalent")
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
}

// syncDaemon is `lvs_sync_daemon INTERFACE INSTANCE [id N] [maxlen N]
// [port N] [ttl N] [group IP]`.
func (c *converter) syncDaemon(n *Node) {
	if len(n.Args) < 2 {
		c.warn(n, "lvs_sync_daemon: want an interface and a vrrp instance")
		return
	}
	t := &table{header: "[sync]", comment: "lvs_sync_daemon at " + n.where()}
	t.str("interface", n.Args[0])
	t.str("vrrp_instance", n.Args[1])
	keys := map[string]string{"id": "sync_id", "maxlen": "max_len", "port": "mcast_port", "ttl": "mcast_ttl"}
	for i := 2; i < len(n.Args); i++ {
		k := n.Args[i]
		if i+1 >= len(n.Args) {
			c.warn(n, "lvs_sync_daemon: %s without a value", k)
			break
		}
		v := n.Args[i+1]
		i++
		switch {
		case keys[k] != "":
			if x, err := strconv.Atoi(v); err == nil {
				t.num(keys[k], x)
			} else {
				c.warn(n, "lvs_sync_daemon: %s %q is not a number", k, v)
			}
		case k == "group":
			t.str("mcast_group", v)
		default:
			c.warn(n, "lvs_sync_daemon: option %q not supported", k)
		}
	}
	c.sync = t
}

func (c *converter) lvsTimeouts(n *Node) {
	if c.ipvs == nil {
		c.ipvs = &table{header: "[ipvs]", comment: "lvs_timeouts at " + n.where()}
	}
	keys := map[string]string{"tcp": "timeout_tcp", "tcpfin": "timeout_tcp_fin", "udp": "timeout_udp"}
	for i := 0; i+1 < len(n.Args); i += 2 {
		k, ok := keys[n.Args[i]]
		s, err := strconv.Atoi(n.Args[i+1])
		if !ok || err != nil {
			c.warn(n, "lvs_timeouts: %s %s not supported", n.Args[i], n.Args[i+1])
			continue
		}
		c.ipvs.dur(k, time.Duration(s)*time.Second)
	}
}

// one says whether n has exactly one argument, warning otherwise.
func (c *converter) one(n *Node) bool {
	if len(n.Args) != 1 {
		c.warn(n, "%s: want one value, got %d", n.Name, len(n.Args))
		return false
	}
	return true
}

func (c *converter) intArg(n *Node) (int, bool) {
	if !c.one(n) {
		return 0, false
	}
	v, err := strconv.Atoi(n.Args[0])
	if err != nil {
		c.warn(n, "%s: %q is not a whole number", n.Name, n.Args[0])
		return 0, false
	}
	return v, true
}

// seconds reads keepalived's seconds, which may have a fraction.
func (c *converter) seconds(n *Node) (time.Duration, bool) {
	if !c.one(n) {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.Args[0], 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f > 1e6 {
		c.warn(n, "%s: %q is not a number of seconds", n.Name, n.Args[0])
		return 0, false
	}
	return time.Duration(math.Round(f*1000)) * time.Millisecond, true
}

// named starts the table of a block whose one argument is its name
// (vrrp_instance, vrrp_sync_group), or warns and returns nil.
func (c *converter) named(n *Node, header string) *table {
	if len(n.Args) != 1 {
		c.warn(n, "%s: want one name", n.Name)
		return nil
	}
	t := &table{header: header, comment: n.Name + " " + n.Args[0] + " at " + n.where()}
	t.str("name", n.Args[0])
	return t
}

func (c *converter) instance(in *Node) {
	t := c.named(in, "[[vrrp]]")
	if t == nil {
		return
	}
	// keepalived speaks VRRPv2 unless told otherwise (haldir: v3); the
	// peers a converted director meets still run keepalived.
	ver := 2
	if v, err := strconv.Atoi(c.defaults["version"]); err == nil {
		ver = v
	}
	t.num("version", ver)
	// global_defs' garp settings, which the instance's own override.
	for _, k := range []string{"garp_master_delay", "garp_master_repeat", "garp_master_refresh"} {
		if v, ok := c.defaults[k]; ok {
			c.garp(&Node{Name: k, Args: []string{v}, File: in.File, Line: in.Line}, t)
		}
	}
	var addrs, peers []string
	var ifaces, scripts []string
	iface := ""
	prio := 100
	for _, n := range in.Children {
		switch n.Name {
		case "state":
			c.ignored(n, "haldir has no initial state: the highest priority becomes master (give the master the higher priority)")
		case "interface":
			if c.one(n) {
				iface = n.Args[0]
				t.str("interface", iface)
			}
		case "virtual_router_id", "version":
			if v, ok := c.intArg(n); ok {
				t.num(map[string]string{"virtual_router_id": "vrid", "version": "version"}[n.Name], v)
			}
		case "priority":
			if v, ok := c.intArg(n); ok {
				prio = v
				t.num("priority", v)
			}
		case "advert_int":
			if d, ok := c.seconds(n); ok {
				t.dur("advert_interval", d)
			}
		case "nopreempt":
			t.boolean("preempt", false)
		case "preempt":
		case "preempt_delay":
			if d, ok := c.seconds(n); ok {
				t.dur("preempt_delay", d)
			}
		case "accept":
		case "no_accept":
			c.ignored(n, "haldir always accepts traffic for the virtual addresses (an LVS director must)")
		case "use_vmac":
			t.boolean("use_vmac", true)
			if len(n.Args) > 0 {
				t.str("vmac_interface", n.Args[0])
			}
		case "authentication":
			c.auth(n, t)
		case "virtual_ipaddress":
			addrs = append(addrs, c.addresses(n, iface)...)
		case "virtual_ipaddress_excluded":
			c.ignored(n, "haldir advertises every virtual address; list them in virtual_ipaddress")
		case "unicast_src_ip":
			if c.one(n) {
				t.str("unicast_source", n.Args[0])
			}
		case "unicast_peer":
			for _, p := range n.Children {
				peers = append(peers, p.Name)
				if len(p.Args) > 0 {
					c.warn(p, "unicast_peer %s: options %v not supported", p.Name, p.Args)
				}
			}
		case "notify_master", "notify_backup", "notify_fault", "notify_stop":
			if argv := c.command(n); argv != nil {
				t.strs(n.Name, argv)
			}
		case "garp_master_delay", "garp_master_repeat", "garp_master_refresh":
			c.garp(n, t)
		case "track_interface":
			for _, x := range n.Children {
				w := 0
				if len(x.Args) == 2 && x.Args[0] == "weight" {
					w, _ = strconv.Atoi(x.Args[1])
				}
				ti := &keys{}
				ti.str("name", x.Name)
				ti.num("weight", c.groupWeight(in.Args[0], x, w))
				ifaces = append(ifaces, ti.inline())
			}
		case "track_script":
			for _, x := range n.Children {
				if s, p := c.trackScript(x, in.Args[0]); s != "" {
					scripts = append(scripts, s)
					prio += p
				}
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	if prio != 100 || t.has("priority") {
		t.num("priority", prio)
	}
	if len(addrs) > 0 {
		t.strs("virtual_addresses", addrs)
	}
	if len(peers) > 0 {
		t.strs("unicast_peers", peers)
	}
	if len(ifaces) > 0 {
		t.set("track_interface", "["+strings.Join(ifaces, ", ")+"]")
	}
	if len(scripts) > 0 {
		t.set("track_script", "["+strings.Join(scripts, ", ")+"]")
	}
	c.vrrp = append(c.vrrp, t)
}

func (c *converter) auth(a *Node, t *table) {
	typ, pass := "", ""
	for _, n := range a.Children {
		switch {
		case n.Name == "auth_type" && c.one(n):
			typ = strings.ToUpper(n.Args[0])
		case n.Name == "auth_pass" && c.one(n):
			pass = n.Args[0]
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	switch typ {
	case "PASS":
		at := t.table("auth")
		at.str("type", "pass")
		at.str("password", pass)
		if v, _ := t.get("version"); v != "2" {
			t.num("version", 2)
			c.warn(a, "authentication: VRRP authentication exists in version 2 only; the instance is set to version 2")
		}
	case "AH":
		c.warn(a, "authentication: AH is not supported (RFC 5798 removed authentication); left out")
	default:
		c.warn(a, "authentication: auth_type %q not supported", typ)
	}
}

// addresses reads virtual_ipaddress lines: `IP[/LEN] [dev IF] [brd ..]
// [scope ..] [label ..]`. haldir puts every address on the instance's
// interface with the given prefix (keepalived's default: /32, /128).
func (c *converter) addresses(n *Node, iface string) []string {
	var out []string
	for _, a := range n.Children {
		s := a.Name
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, err2 := netip.ParseAddr(s)
			if err2 != nil {
				c.warn(a, "virtual_ipaddress %q is not an address", s)
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		for i := 0; i+1 < len(a.Args); i += 2 {
			switch a.Args[i] {
			case "dev":
				if a.Args[i+1] != iface {
					c.warn(a, "virtual_ipaddress %s dev %s: haldir puts every address on the instance's interface %q", s, a.Args[i+1], iface)
				}
			case "label", "brd", "broadcast", "scope":
				c.warn(a, "virtual_ipaddress %s: %s %s not supported", s, a.Args[i], a.Args[i+1])
			default:
				c.warn(a, "virtual_ipaddress %s: option %s not supported", s, a.Args[i])
			}
		}
		out = append(out, p.String())
	}
	return out
}

func (c *converter) garp(n *Node, t *table) {
	v, err := strconv.Atoi(firstArg(n))
	if err != nil {
		c.warn(n, "%s: %q is not a whole number", n.Name, firstArg(n))
		return
	}
	g := t.table("garp")
	switch n.Name {
	case "garp_master_delay":
		g.dur("delay", time.Duration(v)*time.Second)
	case "garp_master_repeat":
		g.num("repeat", v)
	case "garp_master_refresh":
		g.dur("refresh", time.Duration(v)*time.Second)
	}
}

func firstArg(n *Node) string {
	if len(n.Args) == 0 {
		return ""
	}
	return n.Args[0]
}

// trackScript inlines the vrrp_script a track_script names. keepalived's
// positive weight (added while the script succeeds) becomes haldir's
// negative one (taken while it fails) on a priority raised by as much; it
// returns that raise.
func (c *converter) trackScript(x *Node, instance string) (string, int) {
	def, ok := c.scripts[x.Name]
	if !ok {
		c.warn(x, "track_script %s: no vrrp_script %s", x.Name, x.Name)
		return "", 0
	}
	ts := &keys{}
	ts.str("name", x.Name)
	weight, raise := 0, 0
	for _, n := range def.Children {
		switch n.Name {
		case "script":
			if argv := c.command(n); argv != nil {
				ts.strs("command", argv)
			}
		case "interval", "timeout":
			if d, ok := c.seconds(n); ok {
				ts.dur(n.Name, d)
			}
		case "rise", "fall":
			if v, ok := c.intArg(n); ok {
				ts.num(n.Name, v)
			}
		case "weight":
			if v, err := strconv.Atoi(firstArg(n)); err == nil {
				weight = v
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	if len(x.Args) == 2 && x.Args[0] == "weight" {
		if v, err := strconv.Atoi(x.Args[1]); err == nil {
			weight = v
		}
	}
	weight = c.groupWeight(instance, x, weight)
	if weight > 0 {
		c.warn(x, "track_script %s: keepalived's weight +%d (added while the script succeeds) becomes priority +%d and weight -%d (taken while it fails)", x.Name, weight, weight, weight)
		raise, weight = weight, -weight
	}
	ts.num("weight", weight)
	return ts.inline(), raise
}

// command turns keepalived's command string into an argv. haldir runs no
// shell: a command with shell syntax is run by /bin/sh -c, said in a
// warning.
func (c *converter) command(n *Node) []string {
	s := strings.TrimSpace(strings.Join(n.Args, " "))
	if s == "" {
		c.warn(n, "%s: no command", n.Name)
		return nil
	}
	if strings.ContainsAny(s, "|&;<>()$`\\'*?[]~") {
		c.warn(n, "%s: %q has shell syntax; it runs as /bin/sh -c", n.Name, s)
		return []string{"/bin/sh", "-c", s}
	}
	return strings.Fields(s)
}

func (c *converter) syncGroup(g *Node) {
	t := c.named(g, "[[vrrp_sync_group]]")
	if t == nil {
		return
	}
	for _, n := range g.Children {
		switch n.Name {
		case "group":
			var names []string
			for _, m := range n.Children {
				names = append(names, m.Name)
				names = append(names, m.Args...)
			}
			t.strs("instances", names)
		case "notify_master", "notify_backup", "notify_fault":
			if argv := c.command(n); argv != nil {
				t.strs(n.Name, argv)
			}
		case "sync_group_tracking_weight":
			// haldir always applies the members' tracking weights.
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	c.groups = append(c.groups, t)
}

// groupWeight is the weight keepalived really applies: none for a member
// of a sync group without sync_group_tracking_weight (the failure faults
// the group instead, which is haldir's weight 0).
func (c *converter) groupWeight(instance string, x *Node, w int) int {
	honoured, member := c.grouped[instance]
	if !member || honoured || w == 0 {
		return w
	}
	c.warn(x, "%s: keepalived ignores tracking weights in a sync group without sync_group_tracking_weight (a failure faults the group); weight 0 keeps that", x.Name)
	return 0
}
