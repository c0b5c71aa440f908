package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
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
	// groupOf is each member's vrrp_sync_group, groupTrack the group's
	// own track_interface and track_script blocks, which keepalived
	// applies to every member; bases are the instances' base priorities
	// (a group with an owner has no tracking weights).
	groupOf    map[string]*Node
	groupTrack map[*Node][]*Node
	bases      map[string]int
	instances  map[string]*Node   // the vrrp_instance keepalived keeps for a name
	groupNames map[string]bool    // sync group names seen
	members    map[*Node][]string // each kept sync group's members
	said       map[Warning]bool   // a directive read for several instances warns once
	strict     bool               // global_defs' vrrp_strict
	// masters counts the instances with state MASTER that are not the
	// address owner, said in one warning at masterWarning (-1: none).
	masters       int
	masterWarning int
	// mail collects the notification_email / smtp_* / SNMP family, said
	// in one warning at mailWarning (an index into warnings).
	mail        []*Node
	mailWarning int
	warnings    []Warning
}

func (c *converter) warn(n *Node, format string, a ...any) {
	w := Warning{n.File, n.Line, fmt.Sprintf(format, a...)}
	if c.said[w] {
		return
	}
	c.said[w] = true
	c.warnings = append(c.warnings, w)
}

func (c *converter) ignored(n *Node, why string) {
	c.warn(n, "%s: %s", n.Name, why)
}

// Convert turns parsed keepalived directives into haldir's TOML. What has
// no equivalent is left out with a warning naming the file and line.
func Convert(nodes []*Node, source string) Result {
	c := &converter{global: &table{header: "[global]"}, scripts: map[string]*Node{}, defaults: map[string]string{}, grouped: map[string]bool{}, vsGroups: map[string]*Node{}, masterWarning: -1,
		groupOf: map[string]*Node{}, groupTrack: map[*Node][]*Node{}, bases: map[string]int{}, said: map[Warning]bool{},
		instances: map[string]*Node{}, groupNames: map[string]bool{}, members: map[*Node][]string{}}
	// vrrp_script blocks and global_defs may come after their users.
	for _, n := range nodes {
		switch n.Name {
		case parseWarning:
			c.warnings = append(c.warnings, Warning{n.File, n.Line, n.Args[0]})
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
		case "vrrp_instance":
			// keepalived skips a second instance of the same name.
			if len(n.Args) == 1 && c.instances[n.Args[0]] == nil {
				c.bases[n.Args[0]] = basePriority(n)
				c.instances[n.Args[0]] = n
			}
		}
	}
	for _, n := range nodes {
		if n.Name == "vrrp_sync_group" && len(n.Args) == 1 && !c.groupNames[n.Args[0]] {
			c.groupNames[n.Args[0]] = true
			c.members[n] = c.syncMembers(n)
		}
	}
	for _, n := range nodes {
		switch n.Name {
		case parseWarning, "global_defs", "vrrp_script", "virtual_server_group":
		case "vrrp_instance":
			if len(n.Args) == 1 && c.instances[n.Args[0]] != n {
				c.warn(n, "vrrp_instance %s: defined twice; keepalived skips this one", n.Args[0])
				continue
			}
			c.instance(n)
		case "vrrp_sync_group":
			if _, ok := c.members[n]; !ok && len(n.Args) == 1 {
				c.warn(n, "vrrp_sync_group %s: defined twice; keepalived skips this one", n.Args[0])
				continue
			}
			c.syncGroup(n)
		case "virtual_server":
			c.virtualServer(n)
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	switch {
	case c.masterWarning >= 0 && c.masters == 0:
		c.warnings = slices.Delete(c.warnings, c.masterWarning, c.masterWarning+1)
		if c.mailWarning > c.masterWarning {
			c.mailWarning--
		}
	case c.masters > 0:
		c.warnings[c.masterWarning].Msg = fmt.Sprintf("state MASTER (%d instance(s)): at start keepalived waits one advert interval for a master before taking over such an instance; haldir waits the master-down interval (about three advert intervals), as for any backup. Otherwise both elect by priority", c.masters)
	}
	if len(c.mail) > 0 {
		var names []string
		for _, n := range c.mail {
			if !slices.Contains(names, n.Name) {
				names = append(names, n.Name)
			}
		}
		c.warnings[c.mailWarning].Msg = fmt.Sprintf("%s: haldir sends no mail or SNMP traps (%d directive(s): %s); use notify commands (notify_master, notify_backup, notify_fault, notify_up, notify_down) and the metrics endpoint (global.metrics_listen)",
			c.mail[0].Name, len(c.mail), strings.Join(names, ", "))
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
			"enable_traps", "enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3",
			"enable_snmp_keepalived", "snmp_socket", "enable_dbus":
			c.mailFamily(n)
		case "script_user", "enable_script_security":
			c.ignored(n, "haldir runs notify and check commands as its own user, with no shell")
		case "vrrp_strict":
			c.strict = true
			c.warn(n, "vrrp_strict: haldir has no strict mode; what changes the election is carried over (keepalived drops authentication and preempt_delay in strict mode, so the instances have none); keepalived's firewall rules that drop traffic to the addresses of a backup are not")
		case "vrrp_skip_check_adv_addr", "vrrp_check_unicast_src", "vrrp_garp_interval", "vrrp_gna_interval",
			"vrrp_iptables", "vrrp_ipsets", "vrrp_no_swap", "checker_no_swap", "vrrp_priority", "checker_priority":
			c.ignored(n, "no haldir equivalent")
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
}

// mailFamily collects a mail or SNMP directive into the one warning that
// names them all.
func (c *converter) mailFamily(n *Node) {
	if len(c.mail) == 0 {
		c.mailWarning = len(c.warnings)
		c.warn(n, "%s", n.Name) // the message is written once all are known
	}
	c.mail = append(c.mail, n)
}

// instanceSyncDaemon is the old `lvs_sync_daemon_interface IF` inside a
// vrrp_instance: the sync daemon follows that instance. keepalived ignores
// it once lvs_sync_daemon (or another instance's) has set the interface.
func (c *converter) instanceSyncDaemon(n *Node, instance string) {
	if !c.one(n) {
		return
	}
	if c.sync != nil {
		c.warn(n, "lvs_sync_daemon_interface: the sync daemon is already set (%s); keepalived ignores this one", c.sync.comment)
		return
	}
	c.sync = &table{header: "[sync]", comment: "lvs_sync_daemon_interface at " + n.where()}
	c.sync.str("interface", n.Args[0])
	c.sync.str("vrrp_instance", instance)
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

// tracker is one track_interface or track_script entry of an instance,
// kept until the whole block is read: keepalived computes priorities after
// the block, so the order of priority and track_* must not matter.
type tracker struct {
	group   bool   // from the instance's vrrp_sync_group
	kind    string // track_interface, track_script
	n       *Node
	entry   *keys // name and, for scripts, the command and timers
	weight  int
	reverse bool
}

// vrrpState is what keepalived's instance block says, before keepalived's
// completion rules (vrrp.c) are applied to it.
type vrrpState struct {
	prio        int
	prioSet     bool
	master      *Node // state MASTER
	nopreempt   *Node
	delay       *Node // preempt_delay
	strict      bool
	auth        *Node
	authType    string
	authPass    string
	trackers    []*tracker
	versionSet  bool
	versionNode *Node
	iface       string
	advert      time.Duration
	advertNode  *Node
	places      []addrPlace // addresses with dev, label or no_track
}

func (c *converter) instance(in *Node) {
	t := c.named(in, "[[vrrp]]")
	if t == nil {
		return
	}
	name := in.Args[0]
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
	st := &vrrpState{prio: 100, strict: c.strict}
	var addrs, excluded []netip.Prefix
	var peers []string
	notify := map[string][]string{}
	var generic []string // notify: every state change, with arguments
	iface := ""
	for _, n := range in.Children {
		switch n.Name {
		case "state":
			// keepalived's state picks the default priority and turns
			// off nopreempt and preempt_delay (applied below); what is
			// left is the first seconds after start, said once per file.
			if c.one(n) && n.Args[0] == "MASTER" {
				st.master = n
				if c.masterWarning < 0 {
					c.masterWarning = len(c.warnings)
					c.warn(n, "state MASTER") // the message is written at the end
				}
			}
		case "interface":
			if c.one(n) {
				iface = n.Args[0]
				t.str("interface", iface)
			}
		case "virtual_router_id":
			if v, ok := c.intArg(n); ok {
				t.num("vrid", v)
			}
		case "version":
			if v, ok := c.intArg(n); ok {
				t.num("version", v)
				st.versionSet, st.versionNode = true, n
			}
		case "priority":
			if v, ok := c.intArg(n); ok {
				if v < 1 || v > 255 {
					c.warn(n, "priority %d: keepalived accepts 1..255 and uses its default 100 instead", v)
					v = 100
				}
				st.prio, st.prioSet = v, true
			}
		case "advert_int":
			if d, ok := c.seconds(n); ok && d >= 10*time.Millisecond && d <= 255*time.Second {
				st.advert, st.advertNode = d, n
			} else if ok {
				c.warn(n, "advert_int %v: keepalived takes 0.01..255 seconds and ignores it (1s)", d)
			}
		case "nopreempt":
			st.nopreempt = n
		case "preempt":
			st.nopreempt = nil // keepalived's backward compatible "preempt" undoes nopreempt
		case "preempt_delay":
			st.delay = n
		case "strict_mode":
			st.strict = len(n.Args) == 0 || slices.Contains([]string{"true", "on", "yes"}, n.Args[0])
		case "smtp_alert":
			c.mailFamily(n)
		case "accept":
		case "no_accept":
			c.ignored(n, "haldir always accepts traffic for the virtual addresses (an LVS director must)")
		case "use_vmac":
			t.boolean("use_vmac", true)
			if len(n.Args) > 0 {
				t.str("vmac_interface", n.Args[0])
			}
		case "authentication":
			c.auth(n, st)
		case "virtual_ipaddress":
			addrs = c.addresses(n, addrs, st)
		case "virtual_ipaddress_excluded":
			// Deduplicated against the advertised ones too: one address
			// is one kernel address.
			all := c.addresses(n, slices.Concat(addrs, excluded), st)
			excluded = append(excluded, all[len(addrs)+len(excluded):]...)
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
				notify[n.Name] = argv
			}
		case "notify":
			if argv := c.command(n); argv != nil {
				generic = argv
			}
		case "garp_master_delay", "garp_master_repeat", "garp_master_refresh":
			c.garp(n, t)
		case "lvs_sync_daemon_interface":
			c.instanceSyncDaemon(n, name)
		case "track_interface":
			entries := n.Children
			if !n.Block && len(n.Args) > 0 {
				// `track_interface eth1` without braces: keepalived
				// complains of a block with extra parameters; what was
				// meant is clear.
				c.warn(n, "track_interface %s: written without braces; keepalived wants track_interface { %s }; tracked as written", strings.Join(n.Args, " "), strings.Join(n.Args, " "))
				entries = []*Node{{Name: n.Args[0], Args: n.Args[1:], File: n.File, Line: n.Line}}
			}
			for _, x := range entries {
				if tr := c.ownTracker(c.trackIface(x, name), name); tr != nil {
					st.trackers = append(st.trackers, tr)
				}
			}
		case "track_script":
			for _, x := range n.Children {
				if tr := c.ownTracker(c.trackScript(x, name), name); tr != nil {
					st.trackers = append(st.trackers, tr)
				}
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	st.trackers = append(st.trackers, c.groupTrackers(name)...)
	// keepalived's address family decides the version when none is given:
	// IPv6 instances speak VRRPv3.
	if v, _ := t.get("version"); len(addrs) > 0 && addrs[0].Addr().Is6() && v != "3" {
		switch {
		case !st.versionSet:
		case st.strict:
			t.comment += "; version 3: strict mode makes an IPv6 instance VRRPv3"
		default:
			c.warn(st.versionNode, "version 2 with IPv6 addresses: keepalived speaks VRRPv2 over IPv6 here (no RFC has it); haldir speaks VRRPv3 for IPv6, so version = 3, which a keepalived peer with this configuration does not understand")
		}
		t.num("version", 3)
	}
	c.notifies(t, notify, generic, "INSTANCE", name, []string{"notify_master", "notify_backup", "notify_fault", "notify_stop"})
	if len(addrs) == 0 {
		c.warn(in, "vrrp_instance %s: no virtual_ipaddress; keepalived runs such an instance (for its notify scripts), haldir needs at least one address (RFC 3768/5798 adverts carry one or more): add one", name)
	}
	c.placeAddresses(t, iface, st)
	st.iface = iface
	c.complete(in, t, st)
	if len(addrs) > 0 {
		s := make([]string, len(addrs))
		for i, a := range addrs {
			s[i] = a.String()
		}
		t.strs("virtual_addresses", s)
	}
	if len(excluded) > 0 {
		s := make([]string, len(excluded))
		for i, a := range excluded {
			s[i] = a.String()
		}
		t.strs("excluded_addresses", s)
	}
	if len(peers) > 0 {
		t.strs("unicast_peers", peers)
	}
	c.vrrp = append(c.vrrp, t)
}

// syncMembers are the members keepalived gives a sync group
// (vrrp_sync.c): the names of its group block that are instances and not
// already in an earlier group. It also records each member's group.
func (c *converter) syncMembers(g *Node) []string {
	weights := slices.ContainsFunc(g.Children, func(x *Node) bool {
		return x.Name == "sync_group_tracking_weight" || x.Name == "global_tracking"
	})
	var members []string
	for _, gr := range g.Children {
		switch gr.Name {
		case "group":
			for _, m := range gr.Children {
				for _, name := range append([]string{m.Name}, m.Args...) {
					switch {
					case c.instances[name] == nil:
						c.warn(m, "vrrp_sync_group %s: no vrrp_instance %s; keepalived ignores it", g.Args[0], name)
					case c.groupOf[name] != nil:
						c.warn(m, "vrrp_sync_group %s: %s is in vrrp_sync_group %s already; keepalived ignores it here", g.Args[0], name, c.groupOf[name].Args[0])
					default:
						c.grouped[name] = weights
						c.groupOf[name] = g
						members = append(members, name)
					}
				}
			}
		case "track_interface", "track_script":
			c.groupTrack[g] = append(c.groupTrack[g], gr)
		}
	}
	return members
}

// basePriority is an instance's priority as keepalived settles it:
// priority when valid, else 255 for state MASTER without one, else 100.
func basePriority(in *Node) int {
	prio, master := 0, false
	for _, n := range in.Children {
		switch {
		case n.Name == "priority" && len(n.Args) == 1:
			if v, err := strconv.Atoi(n.Args[0]); err == nil && v >= 1 && v <= 255 {
				prio = v
			} else {
				prio = 100
			}
		case n.Name == "state" && len(n.Args) == 1 && n.Args[0] == "MASTER":
			master = true
		}
	}
	switch {
	case prio > 0:
		return prio
	case master:
		return 255
	}
	return 100
}

// groupTrackers are the trackers of instance's sync group, which keepalived
// adds to every member: with their weights only when no member is the
// address owner ("Cannot have weighted track ... with member having
// priority 255"), and then subject to sync_group_tracking_weight.
func (c *converter) groupTrackers(instance string) []*tracker {
	g := c.groupOf[instance]
	if g == nil {
		return nil
	}
	owner := false
	for _, gr := range g.Children {
		if gr.Name == "group" {
			for _, m := range gr.Children {
				for _, name := range append([]string{m.Name}, m.Args...) {
					owner = owner || c.bases[name] == 255
				}
			}
		}
	}
	var out []*tracker
	for _, blk := range c.groupTrack[g] {
		for _, x := range blk.Children {
			var tr *tracker
			if blk.Name == "track_interface" {
				tr = c.trackIface(x, instance)
			} else {
				tr = c.trackScript(x, instance)
			}
			if tr == nil {
				continue
			}
			tr.group = true
			if owner && tr.weight != 0 {
				tr.weight, tr.reverse = 0, false
				c.warn(x, "%s %s: keepalived clears a sync group's tracking weight when a member is the address owner (priority 255); weight 0", blk.Name, x.Name)
			}
			out = append(out, tr)
		}
	}
	return out
}

// complete applies keepalived's vrrp_complete_instance rules (vrrp.c) and
// its effective-priority arithmetic (vrrp_track.c) to what the block said.
func (c *converter) complete(in *Node, t *table, st *vrrpState) {
	base := st.prio
	if !st.prioSet && st.master != nil {
		base = 255
		t.comment += "; priority 255: keepalived makes state MASTER without a priority the address owner"
	}
	owner := base == 255
	if st.master != nil && st.strict && !owner {
		// keepalived: "State MASTER must match being address owner";
		// the instance starts as backup, and nopreempt and
		// preempt_delay are not cleared for it.
		t.comment += "; state MASTER: strict mode starts a non-owner as backup, as haldir does"
		st.master = nil
	}
	c.advertInterval(t, st)
	if st.master != nil && !owner {
		c.masters++ // an owner starts as master in haldir too
	}

	preempt := true
	switch {
	case st.nopreempt == nil:
	case owner:
		c.warn(st.nopreempt, "nopreempt: keepalived resets it on an address owner (priority 255); preempt stays true")
	case st.master != nil:
		c.warn(st.nopreempt, "nopreempt: keepalived ignores it on an instance with state MASTER (\"nopreempt will not work with initial state MASTER - clearing\"); preempt stays true, as keepalived runs it")
	default:
		preempt = false
		t.boolean("preempt", false)
	}
	if st.delay != nil {
		if d, ok := c.seconds(st.delay); ok && d > 0 {
			switch {
			case st.master != nil:
				c.warn(st.delay, "preempt_delay: keepalived clears it on an instance with state MASTER; left out")
			case st.strict:
				c.warn(st.delay, "preempt_delay: keepalived resets it in strict mode (vrrp_strict); left out")
			case !preempt:
				c.warn(st.delay, "preempt_delay: keepalived resets it with nopreempt; left out")
			default:
				t.dur("preempt_delay", d)
			}
		}
	}

	// Authentication, after keepalived's rules: strict mode and VRRPv3
	// drop it, and so does a missing password.
	if st.auth != nil {
		ver, _ := t.get("version")
		switch {
		case st.authType == "":
		case st.strict:
			c.warn(st.auth, "authentication: keepalived ignores it in strict mode (vrrp_strict): \"Strict mode does not support authentication\"; left out, so the pair keeps agreeing")
		case ver == "3":
			c.warn(st.auth, "authentication: keepalived ignores it with VRRP version 3; left out")
		case st.authType == "AH":
			c.warn(st.auth, "authentication: AH is not supported (RFC 5798 removed authentication); left out")
		case st.authPass == "":
			c.warn(st.auth, "authentication: no auth_pass; keepalived ignores the authentication; left out")
		default:
			at := t.table("auth")
			at.str("type", "pass")
			at.str("password", st.authPass)
		}
	}

	// Trackers. keepalived's effective priority is base + the sum of each
	// tracker's effect, clamped to 1..254 (an owner's 255 never moves):
	// weight w > 0 adds w while the tracker is up, w < 0 adds w while it
	// is down, and "reverse" swaps up and down. haldir adds a weight while
	// the tracker is down only, so the effect while up goes into the
	// priority and the weight is the difference between down and up.
	raise := 0
	var ifaces, scripts []string
	var why []string
	seen := map[string]*tracker{}
	var trackers []*tracker
	for _, tr := range st.trackers {
		switch key := tr.kind + " " + tr.n.Name; {
		case tr.kind == "track_interface" && tr.n.Name == st.iface:
			c.warn(tr.n, "track_interface %s: keepalived ignores tracking the instance's own interface (it faults the instance while it is down, as haldir does)", tr.n.Name)
		case seen[key] != nil && tr.group && !seen[key].group:
			// keepalived: the sync group's weight wins unless the
			// instance's entry is unweighted.
			first := seen[key]
			c.warn(tr.n, "%s: on the instance %s and its sync group; keepalived uses %s", key, in.Args[0],
				map[bool]string{true: "the instance's weight 0", false: fmt.Sprintf("the group's weight %d", tr.weight)}[first.weight == 0])
			if first.weight != 0 {
				first.weight, first.reverse = tr.weight, tr.reverse
			}
		case seen[key] != nil:
			c.warn(tr.n, "%s: tracked twice; keepalived ignores the second", key)
		default:
			seen[key] = tr
			trackers = append(trackers, tr)
		}
	}
	for _, tr := range trackers {
		w := tr.weight
		if w == 254 || w == -254 {
			c.warn(tr.n, "%s: weight %d: keepalived uses %d", tr.n.Name, w, w/254*253)
			w = w / 254 * 253
		}
		up, down := 0, 0
		switch {
		case w == 0 && tr.reverse:
			c.warn(tr.n, "%s: weight 0 reverse faults the instance while the tracker is up; haldir faults only while a tracker is down, so it is left out", tr.n.Name)
			continue
		case w > 0 && !tr.reverse:
			up = w
		case w < 0 && !tr.reverse:
			down = w
		case w > 0 && tr.reverse:
			up = -w
		case w < 0 && tr.reverse:
			down = -w
		}
		raise += up
		hw := down - up
		if up != 0 && !owner {
			why = append(why, fmt.Sprintf("%s %s weight %d%s: %+d while up", strings.TrimPrefix(tr.kind, "track_"), tr.n.Name, tr.weight, map[bool]string{true: " reverse"}[tr.reverse], up))
		}
		tr.entry.num("weight", hw)
		if tr.kind == "track_script" {
			scripts = append(scripts, tr.entry.inline())
		} else {
			ifaces = append(ifaces, tr.entry.inline())
		}
	}
	prio := base
	if !owner {
		prio = base + raise
		switch {
		case prio > 254:
			c.warn(in, "vrrp_instance %s: priority %d + %d from trackers up is %d; keepalived caps the effective priority at 254 (255 is the owner's), and so does haldir: priority 254, and a tracker going down lowers it from 254, not from %d", in.Args[0], base, raise, prio, prio)
			prio = 254
		case prio < 1:
			c.warn(in, "vrrp_instance %s: priority %d %+d from trackers up is %d; keepalived's effective priority is at least 1, and so is haldir's: priority 1, and a tracker going down raises it from 1, not from %d", in.Args[0], base, raise, prio, prio)
			prio = 1
		}
	}
	if prio != 100 || st.prioSet {
		t.num("priority", prio)
	}
	if len(why) > 0 {
		t.comment += fmt.Sprintf("; priority %d = %d + %s (haldir takes a weight while a tracker is down)", prio, base, strings.Join(why, ", "))
	}
	if len(ifaces) > 0 {
		t.set("track_interface", "["+strings.Join(ifaces, ", ")+"]")
	}
	if len(scripts) > 0 {
		t.set("track_script", "["+strings.Join(scripts, ", ")+"]")
	}
}

// advertInterval writes advert_int as keepalived rounds it: VRRPv2 whole
// seconds below 256, VRRPv3 10ms steps below 40.96s.
func (c *converter) advertInterval(t *table, st *vrrpState) {
	d := st.advert
	if d == 0 {
		return
	}
	ver, _ := t.get("version")
	unit, top := 10*time.Millisecond, 4095*10*time.Millisecond
	if ver == "2" {
		unit, top = time.Second, 255*time.Second
	}
	r := max(d.Round(unit), unit)
	if r > top {
		r = top
	}
	if r != d {
		c.warn(st.advertNode, "advert_int %v: keepalived makes it %v with VRRP version %s (%v steps, at most %v), and so does haldir", d, r, ver, unit, top)
	}
	t.dur("advert_interval", r)
}

// auth reads the authentication block; complete decides whether keepalived
// uses it.
func (c *converter) auth(a *Node, st *vrrpState) {
	st.auth = a
	for _, n := range a.Children {
		switch {
		case n.Name == "auth_type" && c.one(n):
			st.authType = strings.ToUpper(n.Args[0])
			if st.authType != "PASS" && st.authType != "AH" {
				c.warn(n, "auth_type %q: keepalived knows PASS and AH only and ignores it", n.Args[0])
				st.authType = ""
			}
		case n.Name == "auth_pass" && c.one(n):
			st.authPass = n.Args[0]
			if len(st.authPass) > 8 {
				// keepalived keeps the first 8 bytes (vrrp_auth_pass_handler).
				c.warn(n, "auth_pass: longer than 8 bytes; keepalived truncates it to %q, and so does haldir", st.authPass[:8])
				st.authPass = st.authPass[:8]
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
}

// addrPlace is what a virtual_ipaddress line says beyond its address,
// resolved once the whole block is read (interface may come later).
type addrPlace struct {
	n       *Node
	addr    netip.Addr
	dev     string
	label   string
	noTrack bool
}

// addresses reads virtual_ipaddress lines: `IP[/LEN] [dev IF] [label L]
// [no_track] [brd ..] [scope ..] ...`, adding them to have and their
// dev/label to st. haldir gives an address without prefix keepalived's
// default (/32, /128). An address listed twice is kept once: keepalived
// adds it once (the kernel has one) and only repeats it in its adverts.
func (c *converter) addresses(n *Node, have []netip.Prefix, st *vrrpState) []netip.Prefix {
	for _, a := range n.Children {
		s := a.Name
		p, err := netip.ParsePrefix(s)
		if err != nil {
			ip, err2 := netip.ParseAddr(s)
			if err2 != nil {
				c.warn(a, "%s %q is not an address", n.Name, s)
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		pl := addrPlace{n: a, addr: p.Addr()}
		for i := 0; i < len(a.Args); i++ {
			opt, val := a.Args[i], ""
			switch opt {
			case "dev", "label", "scope", "brd", "broadcast", "peer", "preferred_lft":
				if i+1 == len(a.Args) {
					c.warn(a, "%s %s: %s without a value; keepalived ignores the address", n.Name, s, opt)
					pl.addr = netip.Addr{}
					continue
				}
				i++
				val = a.Args[i]
			}
			switch opt {
			case "dev":
				pl.dev = val
			case "label":
				pl.label = val
			case "no_track":
				pl.noTrack = true
			case "scope", "brd", "broadcast", "peer", "preferred_lft":
				c.warn(a, "%s %s: %s %s not supported (haldir adds the address with scope global, no broadcast)", n.Name, s, opt, val)
			default:
				c.warn(a, "%s %s: option %s not supported", n.Name, s, opt)
			}
		}
		if !pl.addr.IsValid() {
			continue
		}
		if i := slices.IndexFunc(have, func(h netip.Prefix) bool { return h.Addr() == p.Addr() }); i >= 0 {
			c.warn(a, "%s %s: listed twice (first as %s); kept once", n.Name, s, have[i])
			continue
		}
		have = append(have, p)
		if pl.dev != "" || pl.label != "" || pl.noTrack {
			st.places = append(st.places, pl)
		}
	}
	return have
}

// placeAddresses turns the addresses' dev and label into address_options,
// once the instance's interface is known. keepalived watches the
// interface of an address on another interface (FAULT while it is down)
// unless no_track: a track_interface with weight 0 unless one is there.
func (c *converter) placeAddresses(t *table, iface string, st *vrrpState) {
	var opts []string
	tracked := map[string]bool{}
	for _, tr := range st.trackers {
		if tr.kind == "track_interface" {
			tracked[tr.n.Name] = true
		}
	}
	for _, pl := range st.places {
		o := &keys{}
		dev := iface
		if pl.dev != "" && pl.dev != iface {
			dev = pl.dev
			o.str("interface", dev)
			if !pl.noTrack && !tracked[dev] {
				tracked[dev] = true
				ti := &keys{}
				ti.str("name", dev)
				st.trackers = append(st.trackers, &tracker{kind: "track_interface", n: &Node{Name: dev, File: pl.n.File, Line: pl.n.Line}, entry: ti})
			}
		}
		switch {
		case pl.label == "":
		case !pl.addr.Is4():
			c.warn(pl.n, "label %s: keepalived ignores labels on IPv6 addresses; left out", pl.label)
		case len(pl.label) > 15:
			c.warn(pl.n, "label %s: longer than 15 bytes; keepalived leaves the address out", pl.label)
			continue
		case pl.label != dev && !strings.HasPrefix(pl.label, dev+":"):
			c.warn(pl.n, "label %s: haldir wants a label that is %q or starts with %q (as ip addr does); left out", pl.label, dev, dev+":")
		default:
			o.str("label", pl.label)
		}
		if len(*o) > 0 {
			opts = append(opts, "{ address = "+quote(pl.addr.String())+", "+strings.TrimPrefix(o.inline(), "{ "))
		}
	}
	if len(opts) > 0 {
		t.set("address_options", "["+strings.Join(opts, ", ")+"]")
	}
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

// trackIface reads one track_interface entry: `NAME [weight W [reverse]]`.
func (c *converter) trackIface(x *Node, instance string) *tracker {
	tr := &tracker{kind: "track_interface", n: x, entry: &keys{}}
	tr.entry.str("name", x.Name)
	if !c.weightArgs(x, tr) {
		return nil
	}
	return tr
}

// weightArgs reads `weight W [reverse|noreverse]` after a tracked name. An
// entry keepalived refuses (an unknown option) is left out as keepalived
// leaves it out.
func (c *converter) weightArgs(x *Node, tr *tracker) bool {
	if len(x.Args) == 0 {
		return true
	}
	if x.Args[0] != "weight" || len(x.Args) < 2 {
		c.warn(x, "%s %s: keepalived ignores this entry (want NAME [weight W [reverse]])", tr.kind, strings.Join(append([]string{x.Name}, x.Args...), " "))
		return false
	}
	w, err := strconv.Atoi(x.Args[1])
	if err != nil || w < -254 || w > 254 {
		// keepalived reports it and tracks on: an interface with weight
		// 0, a script with its vrrp_script's weight.
		c.warn(x, "%s %s: weight %q: keepalived wants -253..253 and ignores it", tr.kind, x.Name, x.Args[1])
		return true
	}
	tr.weight = w
	if len(x.Args) > 2 {
		switch x.Args[2] {
		case "reverse":
			tr.reverse = true
		case "noreverse":
			tr.reverse = false
		default:
			c.warn(x, "%s %s: weight option %q: keepalived ignores it", tr.kind, x.Name, x.Args[2])
		}
	}
	return true
}

// trackScript inlines the vrrp_script a track_script names, with
// keepalived's defaults: interval 1s, timeout the interval.
func (c *converter) trackScript(x *Node, instance string) *tracker {
	def, ok := c.scripts[x.Name]
	if !ok {
		c.warn(x, "track_script %s: no vrrp_script %s; keepalived ignores it", x.Name, x.Name)
		return nil
	}
	ts := &keys{}
	ts.str("name", x.Name)
	tr := &tracker{kind: "track_script", n: x, entry: ts}
	interval, timeout := time.Second, time.Duration(0)
	var timeoutNode *Node
	for _, n := range def.Children {
		switch n.Name {
		case "script":
			if argv := c.command(n); argv != nil {
				ts.strs("command", argv)
			}
		case "interval", "timeout":
			d, ok := c.seconds(n)
			if !ok {
				continue
			}
			if d == 0 {
				d = time.Second // keepalived: "must be greater than 0, setting to 1"
			}
			if n.Name == "interval" {
				interval = d
			} else {
				timeout, timeoutNode = d, n
			}
		case "rise", "fall":
			if v, ok := c.intArg(n); ok {
				ts.num(n.Name, v)
			}
		case "weight":
			w := &tracker{kind: "track_script"}
			if c.weightArgs(&Node{Name: x.Name, Args: append([]string{"weight"}, n.Args...), File: n.File, Line: n.Line}, w) {
				tr.weight, tr.reverse = w.weight, w.reverse
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	if !ts.has("command") {
		c.warn(def, "vrrp_script %s: no script; keepalived removes it, and track_script %s tracks nothing", x.Name, x.Name)
		return nil
	}
	if timeout == 0 {
		timeout = interval // keepalived waits one interval for a script with no timeout
	}
	if timeout > interval {
		c.warn(timeoutNode, "timeout %v: longer than the interval %v, which haldir does not allow (keepalived lets the script run on); timeout = %v", timeout, interval, interval)
		timeout = interval
	}
	ts.dur("interval", interval)
	ts.dur("timeout", timeout)
	if !c.weightArgs(x, tr) {
		return nil
	}
	return tr
}

// notifies writes the notify_* commands. keepalived's generic `notify
// CMD` runs on every state change as `CMD TYPE NAME STATE PRIORITY`
// besides the state's own notify_*: haldir runs the state's command with
// HALDIR_PRIORITY (the effective priority) in its environment, so both
// become one shell line, the state's command first. keepalived passes 0
// as a group's priority.
func (c *converter) notifies(t *table, notify map[string][]string, generic []string, typ, name string, keys []string) {
	for _, k := range keys {
		argv := notify[k]
		if generic != nil {
			prio := `"$HALDIR_PRIORITY"`
			if typ == "GROUP" {
				prio = "0"
			}
			line := shellText(generic) + " " + typ + " " + shellQuote(name) + " " + strings.ToUpper(strings.TrimPrefix(k, "notify_")) + " " + prio
			if argv != nil {
				line = shellText(argv) + "; " + line
			}
			argv = []string{"/bin/sh", "-c", line}
		}
		if argv != nil {
			t.strs(k, argv)
		}
	}
}

// shellText is an argv as shell text: the text of a /bin/sh -c the
// importer made (arguments then go to the command, not to sh), else the
// argv quoted.
func shellText(argv []string) string {
	if len(argv) == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
		return argv[2]
	}
	return shellJoin(argv)
}

// shellJoin quotes an argv for /bin/sh -c.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote is a in single quotes, unless it needs none.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@%+,") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// commandPath is where a bare command name is looked for: keepalived
// resolves it on its PATH when it loads the configuration, and the
// importer cannot know the director's PATH, so it uses the usual one.
var commandPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// command turns keepalived's command string into an argv. haldir runs no
// shell: a command with shell syntax is run by /bin/sh -c, said in a
// warning. A bare command name is resolved on commandPath on this host, as
// keepalived resolves it on its PATH; one not found there runs through
// /bin/sh -c, which searches the director's PATH when it runs.
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
	argv := strings.Fields(s)
	if !strings.Contains(argv[0], "/") {
		if p := lookCommand(argv[0]); p != "" {
			argv[0] = p
		} else {
			c.warn(n, "%s: %q is not in %s on this host; keepalived looks it up on its PATH, so it runs as /bin/sh -c, which does the same on the director", n.Name, argv[0], strings.Join(commandPath, ":"))
			return []string{"/bin/sh", "-c", s}
		}
	}
	return argv
}

// lookCommand finds an executable name on commandPath, or returns "".
func lookCommand(name string) string {
	for _, dir := range commandPath {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (c *converter) syncGroup(g *Node) {
	t := c.named(g, "[[vrrp_sync_group]]")
	if t == nil {
		return
	}
	notify := map[string][]string{}
	var generic []string
	defer func() {
		c.notifies(t, notify, generic, "GROUP", g.Args[0], []string{"notify_master", "notify_backup", "notify_fault"})
	}()
	members := c.members[g]
	if len(members) == 0 {
		c.warn(g, "vrrp_sync_group %s: no members (a group block naming vrrp instances); keepalived removes it", g.Args[0])
		return
	}
	t.strs("instances", members)
	for _, n := range g.Children {
		switch n.Name {
		case "group":
		case "notify_master", "notify_backup", "notify_fault":
			if argv := c.command(n); argv != nil {
				notify[n.Name] = argv
			}
		case "notify":
			if argv := c.command(n); argv != nil {
				generic = argv
				c.warn(n, "notify: haldir's sync groups have no notify_stop; keepalived's call with STOP is left out")
			}
		case "sync_group_tracking_weight", "global_tracking":
			// haldir always applies the members' tracking weights.
		case "track_interface", "track_script":
			// Each member tracks these (groupTrackers).
		case "smtp_alert":
			c.mailFamily(n)
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	c.groups = append(c.groups, t)
}

// ownTracker applies keepalived's rule for an instance's own trackers
// (vrrp_complete_instance) in a sync group without
// sync_group_tracking_weight, or on the address owner: a weighted script
// is not tracked at all; a weighted interface is tracked with weight 0
// (FAULT while down) in the sync group and not at all on the owner.
func (c *converter) ownTracker(tr *tracker, instance string) *tracker {
	if tr == nil || tr.weight == 0 {
		return tr
	}
	honoured, member := c.grouped[instance]
	owner := c.bases[instance] == 255
	switch {
	case (!member || honoured) && !owner:
		return tr
	case owner && !(member && !honoured):
		c.warn(tr.n, "%s %s: keepalived ignores a weighted tracker on the address owner (priority 255); left out", tr.kind, tr.n.Name)
		return nil
	case tr.kind == "track_script":
		c.warn(tr.n, "track_script %s: keepalived ignores a weighted script in a sync group without sync_group_tracking_weight (\"ignoring tracked script with weights due to SYNC group\"); left out", tr.n.Name)
		return nil
	}
	c.warn(tr.n, "%s: keepalived ignores tracking weights in a sync group without sync_group_tracking_weight (a failure faults the group); weight 0 keeps that", tr.n.Name)
	tr.weight, tr.reverse = 0, false
	return tr
}
