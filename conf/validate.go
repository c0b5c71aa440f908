package conf

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Allowed values of the enumerated keys: the spellings of enums.go's types.
var (
	logLevels     = logLevelNames()
	logFormats    = logFormatNames.allowed()
	authTypes     = authTypeNames.allowed()
	families      = familyNames.allowed()
	protocols     = protocolNames.allowed()
	schedulers    = schedulerNames.allowed()
	forwardings   = forwardingNames.allowed()
	tunnelTypes   = tunnelTypeNames.allowed()
	tunnelCsums   = tunnelCsumNames.allowed()
	checkTypes    = append(checkKindNames.allowed(), checkTypeNone)
	initialStates = []string{"up", "down"}
	// checkKeyTypes lists the check types each type-specific key applies to.
	checkKeyTypes = map[string][]string{
		"path": {"http", "https"}, "host": {"http", "https"}, "expect_status": {"http", "https"},
		"expect_body": {"http", "https"}, "digest": {"http", "https"},
		"tls_verify": {"https"}, "ca_file": {"https"}, "server_name": {"https"},
		"urls":    {"http", "https"},
		"command": {"exec"}, "dynamic_weight": {"exec"},
		"query_name": {"dns"}, "query_type": {"dns"}, "expect_answer": {"dns"},
		"payload": {"udp"}, "expect_payload": {"udp"}, "require_reply": {"udp"},
	}
)

type validator struct {
	*document
}

func validate(c *Config, d *document) {
	v := validator{d}
	v.global(&c.Global)
	v.ipvs(&c.IPVS)
	v.vrrp(c.VRRP, c.VirtualServers)
	v.syncGroups(c.VRRPSyncGroups, c.VRRP)
	v.virtualServers(c.VirtualServers)
	if c.Sync != nil {
		v.connSync(c.Sync, c.VRRP, c.BGP != nil)
	}
	if c.BGP != nil {
		v.bgp(c.BGP, c.VirtualServers, c.VRRP)
	}
	if c.Cluster != nil {
		v.cluster(c.Cluster)
	}
}

func (v validator) intRange(p string, x, lo, hi int) bool {
	if x < lo || x > hi {
		v.add(p, "must be %d..%d, got %d", lo, hi, x)
		return false
	}
	return true
}

func (v validator) oneOf(p, x string, allowed []string) bool {
	if !slices.Contains(allowed, x) {
		v.add(p, "must be one of %s; got %q", strings.Join(allowed, ", "), x)
		return false
	}
	return true
}

func (v validator) required(p string, ok bool) bool {
	if !ok {
		v.add(p, "required")
	}
	return ok
}

func (v validator) nonNegative(p string, d Duration) {
	if d < 0 {
		v.add(p, "must not be negative, got %s", d)
	}
}

func (v validator) positive(p string, d Duration) {
	if d <= 0 {
		v.add(p, "must be greater than 0, got %s", d)
	}
}

func (v validator) wholeSeconds(p string, d Duration) {
	if d < 0 {
		v.add(p, "must not be negative, got %s", d)
	} else if d.D()%time.Second != 0 {
		v.add(p, "must be whole seconds (IPVS counts in seconds), got %s", d)
	}
}

// argv checks a command given as an argument vector (no shell).
func (v validator) argv(p string, argv []string) {
	if !v.isSet(p) {
		return
	}
	if len(argv) == 0 {
		v.add(p, "must not be empty (omit the key to run nothing)")
		return
	}
	if !filepath.IsAbs(argv[0]) {
		v.add(p+"[0]", "must be an absolute path (commands run without a shell or PATH lookup), got %q", argv[0])
	}
}

// ifname applies the kernel's rules for interface names (dev_valid_name).
func (v validator) ifname(p, name string) {
	switch {
	case name == "":
		v.add(p, "required")
	case len(name) > 15:
		v.add(p, "interface name %q is longer than 15 bytes", name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		v.add(p, "invalid interface name %q", name)
	}
}

func (v validator) uniqueName(p, name string, seen map[string]string, what string) {
	if !v.required(p, name != "") {
		return
	}
	if first, ok := seen[name]; ok {
		v.add(p, "duplicate %s name %q (first used by %s)", what, name, first)
		return
	}
	seen[name] = parentPath(p)
}

func (v validator) hostPort(p, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(p, "must be host:port, got %q", s)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		v.add(p, "port must be 1..65535, got %q", port)
	}
	if host == "" {
		v.add(p, "host must not be empty, got %q", s)
	}
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

func (v validator) global(g *Global) {
	v.oneOf("global.log_level", g.LogLevel, logLevels)
	v.oneOf("global.log_format", g.LogFormat, logFormats)
	v.positive("global.notify_timeout", g.NotifyTimeout)
	if g.RouterID == "" {
		v.add("global.router_id", "must not be empty")
	}
	if g.ControlSocket != "" && !filepath.IsAbs(g.ControlSocket) {
		v.add("global.control_socket", "must be an absolute path or \"\" to disable, got %q", g.ControlSocket)
	}
	if !filepath.IsAbs(g.StateDir) {
		v.add("global.state_dir", "must be an absolute path, got %q", g.StateDir)
	}
	if g.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(g.MetricsListen); err != nil {
			v.add("global.metrics_listen", "must be host:port or \"\" to disable, got %q", g.MetricsListen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			v.add("global.metrics_listen", "port must be 0..65535, got %q", port)
		}
	}
}

func (v validator) ipvs(x *IPVS) {
	v.wholeSeconds("ipvs.timeout_tcp", x.TimeoutTCP)
	v.wholeSeconds("ipvs.timeout_tcp_fin", x.TimeoutTCPFin)
	v.wholeSeconds("ipvs.timeout_udp", x.TimeoutUDP)
}

func (v validator) vrrp(ins []VRRPInstance, vss []VirtualServer) {
	names := map[string]string{}
	routers := map[string]string{} // interface/vrid/family -> first instance
	vips := map[netip.Addr]string{}
	vmacs := map[string]string{} // vmac interface -> first instance
	bases := map[string]bool{}   // every instance's interface
	for _, in := range ins {
		bases[in.Interface] = true
	}
	vsNames := map[string]bool{}
	for _, vs := range vss {
		vsNames[vs.Name] = true
	}
	for i := range ins {
		in := &ins[i]
		p := fmt.Sprintf("vrrp[%d]", i)
		v.uniqueName(p+".name", in.Name, names, "vrrp instance")
		v.ifname(p+".interface", in.Interface)
		okVRID := v.intRange(p+".vrid", in.VRID, 1, 255)
		v.intRange(p+".priority", in.Priority, 1, 255)
		okVer := v.oneOfInt(p+".version", in.Version, 2, 3)
		if okVer {
			v.advertInterval(p+".advert_interval", in.Version, in.AdvertInterval)
		}
		v.nonNegative(p+".preempt_delay", in.PreemptDelay)
		if !in.AcceptMode {
			v.add(p+".accept_mode", "false is not supported: an LVS director must receive the traffic for its virtual addresses "+
				"(IPVS takes it in the kernel's LOCAL_IN hook), so haldir adds them as ordinary local addresses; "+
				"dropping that traffic on a master that does not own them would need firewall rules haldir does not manage. "+
				"Remove the key or set it to true")
		}
		v.vmac(p, in, vmacs, bases)
		if in.Auth != nil {
			if in.Version == 3 {
				v.add(p+".auth", "only with version = 2 (VRRPv3 has no authentication, RFC 5798)")
			} else if v.oneOf(p+".auth.type", in.Auth.Type, authTypes) {
				switch {
				case in.Auth.Type == "pass" && (len(in.Auth.Password) < 1 || len(in.Auth.Password) > 8):
					v.add(p+".auth.password", "must be 1..8 bytes with type = \"pass\", got %d", len(in.Auth.Password))
				case in.Auth.Type == "none" && in.Auth.Password != "":
					v.add(p+".auth.password", "must not be set with type = \"none\"")
				}
			}
		}

		// Family: the first valid virtual address decides it.
		var fam netip.Addr
		if len(in.VirtualAddresses) == 0 {
			v.add(p+".virtual_addresses", "must list at least one address")
		}
		seen := map[netip.Addr]bool{}
		for j, pfx := range in.VirtualAddresses {
			ap := fmt.Sprintf("%s.virtual_addresses[%d]", p, j)
			a := pfx.Addr()
			switch {
			case !pfx.IsValid():
				v.add(ap, "invalid prefix")
				continue
			case a.Is4In6():
				v.add(ap, "IPv4-mapped IPv6 address %s: write the IPv4 form", a)
				continue
			case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
				v.add(ap, "must be a unicast address, got %s", a)
				continue
			case a.Zone() != "":
				v.add(ap, "must not have a zone, got %s", pfx)
				continue
			}
			if !fam.IsValid() {
				fam = a
			}
			switch {
			case in.Version == 2 && !a.Is4():
				v.add(ap, "VRRP version 2 is IPv4 only, got %s (use version = 3)", pfx)
			case a.Is4() != fam.Is4():
				v.add(ap, "%s is %s but the instance's first address %s is %s: one instance carries one address family (use a second instance)", a, familyName(a), fam, familyName(fam))
			case seen[a]:
				v.add(ap, "duplicate address %s", a)
			case vips[a] != "":
				v.add(ap, "address %s is already in %s", a, vips[a])
			}
			seen[a] = true
			if vips[a] == "" {
				vips[a] = p
			}
		}
		// Excluded addresses: either family, never in the adverts, so
		// only the address rules and uniqueness apply.
		for j, pfx := range in.ExcludedAddresses {
			ap := fmt.Sprintf("%s.excluded_addresses[%d]", p, j)
			a := pfx.Addr()
			switch {
			case !pfx.IsValid():
				v.add(ap, "invalid prefix")
			case a.Is4In6():
				v.add(ap, "IPv4-mapped IPv6 address %s: write the IPv4 form", a)
			case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
				v.add(ap, "must be a unicast address, got %s", a)
			case a.Zone() != "":
				v.add(ap, "must not have a zone, got %s", pfx)
			case seen[a]:
				v.add(ap, "duplicate address %s", a)
			case vips[a] != "":
				v.add(ap, "address %s is already in %s", a, vips[a])
			default:
				seen[a] = true
				vips[a] = p
			}
		}
		options := map[netip.Addr]bool{}
		for j, o := range in.AddressOptions {
			op := fmt.Sprintf("%s.address_options[%d]", p, j)
			a := o.Address.Unmap()
			switch {
			case !o.Address.IsValid():
				v.add(op+".address", "required: one of virtual_addresses or excluded_addresses (no prefix length)")
			case !seen[a]:
				v.add(op+".address", "%s is not in virtual_addresses or excluded_addresses", o.Address)
			case options[a]:
				v.add(op+".address", "%s has options already", o.Address)
			}
			options[a] = true
			dev := in.Interface
			if in.UseVMAC {
				dev = in.VMACInterface
			}
			if o.Interface != "" {
				v.ifname(op+".interface", o.Interface)
				dev = o.Interface
			}
			switch {
			case o.Label == "" || !a.IsValid():
			case !a.Is4():
				v.add(op+".label", "IPv4 addresses only (IPv6 addresses have no labels)")
			case len(o.Label) > 15:
				v.add(op+".label", "%q is longer than 15 bytes", o.Label)
			case o.Label != dev && !strings.HasPrefix(o.Label, dev+":"):
				v.add(op+".label", "%q must be the interface's name %q or start with %q", o.Label, dev, dev+":")
			}
		}
		if okVRID && in.Interface != "" && fam.IsValid() {
			key := fmt.Sprintf("%s/%d/%s", in.Interface, in.VRID, familyName(fam))
			if first, ok := routers[key]; ok {
				v.add(p+".vrid", "vrid %d on %s (%s) is already used by %s", in.VRID, in.Interface, familyName(fam), first)
			} else {
				routers[key] = p
			}
		}

		if in.UnicastSource.IsValid() {
			if len(in.UnicastPeers) == 0 {
				v.add(p+".unicast_source", "needs unicast_peers")
			}
			if fam.IsValid() && in.UnicastSource.Is4() != fam.Is4() {
				v.add(p+".unicast_source", "%s is %s but the virtual addresses are %s", in.UnicastSource, familyName(in.UnicastSource), familyName(fam))
			}
		} else if v.isSet(p + ".unicast_source") {
			v.add(p+".unicast_source", "must be an IP address")
		}
		peers := map[netip.Addr]bool{}
		for j, a := range in.UnicastPeers {
			ap := fmt.Sprintf("%s.unicast_peers[%d]", p, j)
			switch {
			case !a.IsValid():
				v.add(ap, "must be an IP address")
			case fam.IsValid() && a.Is4() != fam.Is4():
				v.add(ap, "%s is %s but the virtual addresses are %s", a, familyName(a), familyName(fam))
			case peers[a]:
				v.add(ap, "duplicate peer %s", a)
			case a == in.UnicastSource:
				v.add(ap, "%s is this router's own unicast_source", a)
			}
			peers[a] = true
		}

		v.argv(p+".notify_master", in.NotifyMaster)
		v.argv(p+".notify_backup", in.NotifyBackup)
		v.argv(p+".notify_fault", in.NotifyFault)
		v.argv(p+".notify_stop", in.NotifyStop)

		v.nonNegative(p+".garp.delay", in.GARP.Delay)
		v.intRange(p+".garp.repeat", in.GARP.Repeat, 1, 100)
		v.nonNegative(p+".garp.refresh", in.GARP.Refresh)

		tnames := map[string]string{}
		for j, ti := range in.TrackInterfaces {
			tp := fmt.Sprintf("%s.track_interface[%d]", p, j)
			v.ifname(tp+".name", ti.Name)
			if first, ok := tnames[ti.Name]; ok && ti.Name != "" {
				v.add(tp+".name", "interface %q is already tracked by %s", ti.Name, first)
			}
			tnames[ti.Name] = tp
			v.intRange(tp+".weight", ti.Weight, -254, 254)
		}
		vnames := map[string]string{}
		for j, tv := range in.TrackVirtualSrvs {
			tp := fmt.Sprintf("%s.track_virtual_server[%d]", p, j)
			switch {
			case tv.Name == "":
				v.add(tp+".name", "required")
			case !vsNames[tv.Name]:
				v.add(tp+".name", "no virtual_server named %q", tv.Name)
			case vnames[tv.Name] != "":
				v.add(tp+".name", "virtual server %q is already tracked by %s", tv.Name, vnames[tv.Name])
			default:
				vnames[tv.Name] = tp
			}
			v.intRange(tp+".weight", tv.Weight, -254, 254)
		}
		snames := map[string]string{}
		for j := range in.TrackScripts {
			ts := &in.TrackScripts[j]
			tp := fmt.Sprintf("%s.track_script[%d]", p, j)
			v.uniqueName(tp+".name", ts.Name, snames, "track_script")
			if v.required(tp+".command", len(ts.Command) > 0) {
				v.argv(tp+".command", ts.Command)
			}
			v.positive(tp+".interval", ts.Interval)
			v.positive(tp+".timeout", ts.Timeout)
			if ts.Interval > 0 && ts.Timeout > ts.Interval {
				v.add(tp+".timeout", "must not exceed interval (%s), got %s", ts.Interval, ts.Timeout)
			}
			v.intRange(tp+".rise", ts.Rise, 1, 1000)
			v.intRange(tp+".fall", ts.Fall, 1, 1000)
			v.intRange(tp+".weight", ts.Weight, -254, 254)
		}
	}
}

// vmac checks the virtual MAC keys of one instance. vmacs collects the
// macvlan names in use; bases holds every instance's own interface.
func (v validator) vmac(p string, in *VRRPInstance, vmacs map[string]string, bases map[string]bool) {
	if !in.UseVMAC {
		if v.isSet(p + ".vmac_interface") {
			v.add(p+".vmac_interface", "only with use_vmac = true")
		}
		return
	}
	name := in.VMACInterface
	v.ifname(p+".vmac_interface", name)
	switch {
	case name == "":
	case bases[name]:
		v.add(p+".vmac_interface", "%q is the interface of a vrrp instance; the virtual MAC needs an interface of its own", name)
	case vmacs[name] != "":
		hint := ""
		if !v.isSet(p + ".vmac_interface") {
			hint = " (the default is vrrp.<vrid>: set vmac_interface to tell them apart)"
		}
		v.add(p+".vmac_interface", "%q is already the virtual MAC interface of %s%s", name, vmacs[name], hint)
	default:
		vmacs[name] = p
	}
}

func (v validator) oneOfInt(p string, x int, allowed ...int) bool {
	if slices.Contains(allowed, x) {
		return true
	}
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = strconv.Itoa(a)
	}
	v.add(p, "must be %s, got %d", strings.Join(s, " or "), x)
	return false
}

// advertInterval applies the wire format's limits: VRRPv2 carries whole
// seconds in 8 bits, VRRPv3 centiseconds in 12 bits.
func (v validator) advertInterval(p string, version int, d Duration) {
	t := d.D()
	if version == 2 {
		if t%time.Second != 0 || t < time.Second || t > 255*time.Second {
			v.add(p, "VRRP version 2 needs whole seconds 1s..255s, got %s", d)
		}
		return
	}
	if t%(10*time.Millisecond) != 0 || t < 10*time.Millisecond || t > 40950*time.Millisecond {
		v.add(p, "VRRP version 3 needs 10ms..40.95s in steps of 10ms, got %s", d)
	}
}

func (v validator) syncGroups(gs []VRRPSyncGroup, ins []VRRPInstance) {
	names := map[string]string{}
	member := map[string]string{} // instance -> group path
	exists := map[string]bool{}
	for _, in := range ins {
		exists[in.Name] = true
	}
	for i, g := range gs {
		p := fmt.Sprintf("vrrp_sync_group[%d]", i)
		v.uniqueName(p+".name", g.Name, names, "vrrp_sync_group")
		if len(g.Instances) == 0 {
			v.add(p+".instances", "must list at least one vrrp instance")
		}
		for j, n := range g.Instances {
			ip := fmt.Sprintf("%s.instances[%d]", p, j)
			switch {
			case !exists[n]:
				v.add(ip, "no vrrp instance named %q", n)
			case member[n] == p:
				v.add(ip, "instance %q is listed twice", n)
			case member[n] != "":
				v.add(ip, "instance %q is already in %s (an instance belongs to at most one sync group)", n, member[n])
			default:
				member[n] = p
			}
		}
		v.argv(p+".notify_master", g.NotifyMaster)
		v.argv(p+".notify_backup", g.NotifyBackup)
		v.argv(p+".notify_fault", g.NotifyFault)
	}
}

func (v validator) virtualServers(vss []VirtualServer) {
	names := map[string]string{}
	services := map[string]string{}
	for i := range vss {
		vs := &vss[i]
		p := fmt.Sprintf("virtual_server[%d]", i)
		v.uniqueName(p+".name", vs.Name, names, "virtual_server")

		hasAddr := v.isSet(p+".address") || v.isSet(p+".port")
		hasMark := v.isSet(p + ".fwmark")
		var fam netip.Addr // a representative address of the family
		switch {
		case hasAddr && hasMark:
			v.add(p+".fwmark", "set either address and port, or fwmark, not both")
		case !hasAddr && !hasMark:
			v.add(p, "needs address and port, or fwmark")
		case hasMark:
			if v.intRange(p+".fwmark", vs.Fwmark, 1, 1<<32-1) {
				if first, ok := services[fmt.Sprintf("fwmark %d %s", vs.Fwmark, vs.Family)]; ok {
					v.add(p+".fwmark", "the same service as %s", first)
				}
				services[fmt.Sprintf("fwmark %d %s", vs.Fwmark, vs.Family)] = p
			}
			if v.oneOf(p+".family", vs.Family, families) {
				fam = netip.IPv4Unspecified()
				if vs.Family == "inet6" {
					fam = netip.IPv6Unspecified()
				}
			}
		default:
			if v.isSet(p + ".family") {
				v.add(p+".family", "only for fwmark services (an address has its own family)")
			}
			okAddr := true
			switch a := vs.Address; {
			case !a.IsValid():
				v.add(p+".address", "required with port")
				okAddr = false
			case a.IsUnspecified() || a.IsMulticast() || a.Is4In6():
				v.add(p+".address", "must be a unicast address, got %s", a)
				okAddr = false
			default:
				fam = a
			}
			okPort := true
			if !v.isSet(p + ".port") {
				v.add(p+".port", "required with address")
				okPort = false
			} else {
				okPort = v.intRange(p+".port", vs.Port, 1, 65535)
			}
			if okAddr && okPort {
				key := fmt.Sprintf("%s %s", vs.Protocol, netip.AddrPortFrom(vs.Address, uint16(vs.Port)))
				if first, ok := services[key]; ok {
					v.add(p, "the same service (%s) as %s", key, first)
				}
				services[key] = p
			}
		}
		v.oneOf(p+".protocol", vs.Protocol, protocols)
		okSched := v.oneOf(p+".scheduler", vs.Scheduler, schedulers)
		flags := map[string]bool{}
		for j, f := range vs.SchedulerFlags {
			fp := fmt.Sprintf("%s.scheduler_flags[%d]", p, j)
			sf, ok := schedulerFlagNames[f]
			need := sf.sched.String()
			switch {
			case !ok:
				v.add(fp, "must be one of sh-port, sh-fallback, mh-port, mh-fallback, ops; got %q", f)
			case flags[f]:
				v.add(fp, "duplicate flag %q", f)
			case sf.sched != 0 && okSched && vs.Scheduler != need:
				v.add(fp, "%q only applies to scheduler %q, not %q", f, need, vs.Scheduler)
			case f == "ops" && vs.Protocol != "udp" && !hasMark:
				v.add(fp, "\"ops\" (one-packet scheduling) only applies to protocol \"udp\"")
			}
			flags[f] = true
		}
		v.oneOf(p+".forwarding", vs.Forwarding, forwardings)

		usesTun := vs.Forwarding == "tun"
		for _, rs := range vs.RealServers {
			usesTun = usesTun || rs.Forwarding == "tun"
		}
		switch {
		case v.isSet(p+".tunnel_type") && !usesTun:
			v.add(p+".tunnel_type", "only with forwarding = \"tun\"")
		case usesTun:
			v.oneOf(p+".tunnel_type", vs.TunnelType, tunnelTypes)
		}
		if usesTun && vs.TunnelType == "gue" {
			if !v.isSet(p + ".tunnel_port") {
				v.add(p+".tunnel_port", "required with tunnel_type = \"gue\"")
			} else {
				v.intRange(p+".tunnel_port", vs.TunnelPort, 1, 65535)
			}
		} else if v.isSet(p + ".tunnel_port") {
			v.add(p+".tunnel_port", "only with tunnel_type = \"gue\"")
		}
		switch {
		case usesTun && vs.TunnelType == "gue":
			v.oneOf(p+".tunnel_checksum", vs.TunnelChecksum, tunnelCsums)
		case usesTun && vs.TunnelType == "gre":
			if v.oneOf(p+".tunnel_checksum", vs.TunnelChecksum, tunnelCsums) && vs.TunnelChecksum == "remcsum" {
				v.add(p+".tunnel_checksum", "\"remcsum\" only with tunnel_type = \"gue\"")
			}
		case v.isSet(p + ".tunnel_checksum"):
			v.add(p+".tunnel_checksum", "only with tunnel_type \"gue\" or \"gre\"")
		}

		v.wholeSeconds(p+".persistence_timeout", vs.PersistenceTimeout)
		if vs.isIPv6() {
			v.intRange(p+".persistence_granularity", vs.PersistenceGranularity, 1, 128)
		} else {
			v.intRange(p+".persistence_granularity", vs.PersistenceGranularity, 1, 32)
		}
		if v.intRange(p+".quorum", vs.Quorum, 1, 1<<31-1) && (vs.Hysteresis < 0 || vs.Hysteresis >= vs.Quorum) {
			v.add(p+".hysteresis", "must be 0..quorum-1 (%d), got %d", vs.Quorum-1, vs.Hysteresis)
		}
		if v.isSet(p + ".sorry_server") {
			switch a := vs.SorryServer.Addr(); {
			case !a.IsValid():
				v.add(p+".sorry_server", "must be address:port")
			case fam.IsValid() && a.Is4() != fam.Is4():
				v.add(p+".sorry_server", "%s is %s but the virtual server is %s", a, familyName(a), familyName(fam))
			}
		}
		v.intRange(p+".sorry_server_weight", vs.SorryServerWeight, 0, 65535)

		if vs.Check != nil {
			v.check(vs.Check, p+".check", func(k string) bool { return v.isSet(p + ".check." + k) }, nil, vs)
		}
		dests := map[netip.AddrPort]string{}
		for j := range vs.RealServers {
			v.realServer(&vs.RealServers[j], fmt.Sprintf("%s.real_server[%d]", p, j), vs, fam, hasMark, dests)
		}
	}
}

func (v validator) realServer(rs *RealServer, p string, vs *VirtualServer, fam netip.Addr, fwmark bool, dests map[netip.AddrPort]string) {
	okAddr := false
	switch a := rs.Address; {
	case !a.IsValid():
		v.add(p+".address", "required")
	case a.IsUnspecified() || a.IsMulticast() || a.Is4In6():
		v.add(p+".address", "must be a unicast address, got %s", a)
	case fam.IsValid() && a.Is4() != fam.Is4():
		v.add(p+".address", "%s is %s but the virtual server is %s", a, familyName(a), familyName(fam))
	default:
		okAddr = true
	}
	okPort := true
	switch {
	case fwmark:
		okPort = v.intRange(p+".port", rs.Port, 0, 65535)
	case v.isSet(p + ".port"):
		okPort = v.intRange(p+".port", rs.Port, 1, 65535)
	}
	if okPort && v.isSet(p+".port") && !fwmark && (rs.Forwarding == "dr" || rs.Forwarding == "tun") && rs.Port != vs.Port {
		v.add(p+".port", "must equal the virtual server's port %d with forwarding = %q: the director does not rewrite the packet", vs.Port, rs.Forwarding)
	}
	if okAddr && okPort && rs.Port <= 65535 {
		ap := netip.AddrPortFrom(rs.Address, uint16(max(rs.Port, 0)))
		if first, ok := dests[ap]; ok {
			v.add(p, "duplicate real server %s (also %s)", ap, first)
		} else {
			dests[ap] = p
		}
	}
	v.intRange(p+".weight", rs.Weight, 0, 65535)
	v.intRange(p+".upper_threshold", rs.UpperThreshold, 0, 1<<31-1)
	if v.intRange(p+".lower_threshold", rs.LowerThreshold, 0, 1<<31-1) && rs.LowerThreshold > 0 {
		if rs.UpperThreshold == 0 {
			v.add(p+".lower_threshold", "needs upper_threshold")
		} else if rs.LowerThreshold > rs.UpperThreshold {
			v.add(p+".lower_threshold", "must not exceed upper_threshold (%d), got %d", rs.UpperThreshold, rs.LowerThreshold)
		}
	}
	v.oneOf(p+".forwarding", rs.Forwarding, forwardings)
	v.argv(p+".notify_up", rs.NotifyUp)
	v.argv(p+".notify_down", rs.NotifyDown)

	cp := p + ".check"
	if rs.Check == nil {
		return
	}
	if rs.Check.Type == "" {
		// With a template check the template reports its missing type.
		if vs.Check == nil {
			v.add(cp+".type", "required: one of %s (the virtual server has no check to inherit from)", strings.Join(checkTypes, ", "))
		}
		return
	}
	v.check(rs.Check, cp, func(k string) bool { return v.isSet(cp + "." + k) }, rs, vs)
}

// check validates one check. owns tells which keys were written at this
// level: a real server's effective check repeats its virtual server's keys,
// and problems with those are reported once, at the virtual server.
func (v validator) check(c *Check, p string, owns func(string) bool, rs *RealServer, vs *VirtualServer) {
	top := rs == nil
	if c.Type == "" {
		v.add(p+".type", "required: one of %s", strings.Join(checkTypes, ", "))
		return
	}
	if owns("type") && !v.oneOf(p+".type", c.Type, checkTypes) {
		return
	}
	if !slices.Contains(checkTypes, c.Type) || c.Type == "none" {
		return
	}
	for _, key := range slices.Sorted(maps.Keys(checkKeyTypes)) {
		types := checkKeyTypes[key]
		if owns(key) && !slices.Contains(types, c.Type) {
			v.add(p+"."+key, "only for type %s, not %q", strings.Join(types, " or "), c.Type)
		}
	}
	if owns("interval") {
		v.positive(p+".interval", c.Interval)
	}
	if owns("timeout") {
		v.positive(p+".timeout", c.Timeout)
	}
	if (owns("interval") || owns("timeout")) && c.Interval > 0 && c.Timeout > c.Interval {
		key := "timeout"
		if !owns("timeout") {
			key = "interval"
		}
		v.add(p+"."+key, "timeout %s exceeds interval %s: checks of one server never overlap, so the timeout must fit in the interval", c.Timeout, c.Interval)
	}
	if owns("rise") {
		v.intRange(p+".rise", c.Rise, 1, 1000)
	}
	if owns("fall") {
		v.intRange(p+".fall", c.Fall, 1, 1000)
	}
	if owns("retry_delay") {
		v.nonNegative(p+".retry_delay", c.RetryDelay)
	}
	if owns("warmup") {
		v.nonNegative(p+".warmup", c.Warmup)
	}
	if owns("initial_state") {
		v.oneOf(p+".initial_state", c.InitialState, initialStates)
	}
	if owns("connect_port") {
		v.intRange(p+".connect_port", c.ConnectPort, 0, 65535)
	}
	if owns("connect_address") && !c.ConnectAddress.IsValid() {
		v.add(p+".connect_address", "must be an IP address")
	}
	if owns("source_address") && !c.SourceAddress.IsValid() {
		v.add(p+".source_address", "must be an IP address")
	}
	if !top && c.Type != "exec" && c.ConnectPort == 0 && rs.Port == 0 {
		v.add(p+".connect_port", "required: the real server has no port (fwmark service)")
	}
	if !top && c.SourceAddress.IsValid() {
		target := rs.Address
		if c.ConnectAddress.IsValid() {
			target = c.ConnectAddress
		}
		if target.IsValid() && target.Is4() != c.SourceAddress.Is4() {
			v.add(p+".source_address", "%s is %s but the check connects to %s", c.SourceAddress, familyName(c.SourceAddress), target)
		}
	}

	reportMissing := top || owns("type")
	switch c.Type {
	case "http", "https":
		if owns("path") && !strings.HasPrefix(c.Path, "/") {
			v.add(p+".path", "must start with \"/\", got %q", c.Path)
		}
		if owns("expect_status") {
			v.statusCodes(p+".expect_status", c.ExpectStatus)
		}
		if owns("ca_file") && !filepath.IsAbs(c.CAFile) {
			v.add(p+".ca_file", "must be an absolute path, got %q", c.CAFile)
		}
		if owns("expect_body") {
			if _, err := regexp.Compile(c.ExpectBody); err != nil {
				v.add(p+".expect_body", "invalid regular expression: %v", err)
			}
		}
		if owns("digest") {
			v.digest(p+".digest", c.Digest)
		}
		if len(c.URLs) > 0 || owns("urls") {
			v.urls(p, c.URLs, owns)
		}
	case "exec":
		if len(c.Command) == 0 {
			if reportMissing || owns("command") {
				v.add(p+".command", "required with type = \"exec\"")
			}
		} else if owns("command") {
			v.argv(p+".command", c.Command)
		}
	case "dns":
		if c.QueryName == "" && (reportMissing || owns("query_name")) {
			v.add(p+".query_name", "required with type = \"dns\"")
		} else if _, ok := dns.IsDomainName(c.QueryName); !ok && c.QueryName != "" && owns("query_name") {
			v.add(p+".query_name", "%q is not a domain name", c.QueryName)
		}
		if owns("query_type") {
			if _, ok := dns.StringToType[strings.ToUpper(c.QueryType)]; !ok || c.QueryType == "" {
				v.add(p+".query_type", "unknown DNS record type %q", c.QueryType)
			}
		}
	}
}

// urls validates an http check's urls: each is what path, expect_status,
// expect_body and digest are for a check of one URL, which it replaces.
func (v validator) urls(p string, urls []CheckURL, owns func(string) bool) {
	if len(urls) == 0 {
		v.add(p+".urls", "must list at least one url, or be left out")
		return
	}
	for _, k := range []string{"path", "expect_status", "expect_body", "digest"} {
		if owns(k) {
			v.add(p+"."+k, "not with urls: give each url its own %s", k)
		}
	}
	if !owns("urls") {
		return // validated where they are written
	}
	for j, u := range urls {
		up := fmt.Sprintf("%s.urls[%d]", p, j)
		if !strings.HasPrefix(u.Path, "/") {
			v.add(up+".path", "must start with \"/\", got %q", u.Path)
		}
		if v.isSet(up + ".expect_status") {
			v.statusCodes(up+".expect_status", u.ExpectStatus)
		}
		if u.ExpectBody != "" {
			if _, err := regexp.Compile(u.ExpectBody); err != nil {
				v.add(up+".expect_body", "invalid regular expression: %v", err)
			}
		}
		if v.isSet(up + ".digest") {
			v.digest(up+".digest", u.Digest)
		}
	}
}

func (v validator) statusCodes(p string, codes StatusCodes) {
	if len(codes) == 0 {
		v.add(p, "must list at least one status code")
	}
	for j, r := range codes {
		if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
			v.add(fmt.Sprintf("%s[%d]", p, j), "must be a status code or range within 100..599, got %d-%d", r.Lo, r.Hi)
		}
	}
}

func (v validator) digest(p, d string) {
	if _, err := hex.DecodeString(d); err != nil || (len(d) != 32 && len(d) != 64) {
		v.add(p, "must be 32 (MD5) or 64 (SHA-256) hex digits, got %q", d)
	}
}

func (v validator) connSync(s *ConnSync, ins []VRRPInstance, bgp bool) {
	v.ifname("sync.interface", s.Interface)
	switch {
	case s.VRRPInstance != "":
		if !slices.ContainsFunc(ins, func(in VRRPInstance) bool { return in.Name == s.VRRPInstance }) {
			v.add("sync.vrrp_instance", "no vrrp instance named %q", s.VRRPInstance)
		}
	case !bgp:
		v.add("sync.vrrp_instance", "required: the instance whose state the sync daemon follows (only with [bgp] may it be left out, for N-way sync)")
	case !v.isSet("sync.sync_id"):
		v.add("sync.sync_id", "required with N-way sync (no vrrp_instance): the same 0..255 on every director")
	}
	v.intRange("sync.sync_id", s.SyncID, 0, 255)
	v.intRange("sync.max_len", s.MaxLen, 0, 65535)
	if v.isSet("sync.mcast_group") && (!s.McastGroup.IsValid() || !s.McastGroup.IsMulticast()) {
		v.add("sync.mcast_group", "must be a multicast address, got %s", s.McastGroup)
	}
	v.intRange("sync.mcast_port", s.McastPort, 0, 65535)
	v.intRange("sync.mcast_ttl", s.McastTTL, 0, 255)
}

func (v validator) cluster(c *Cluster) {
	if !c.Bind.Addr().IsValid() {
		v.add("cluster.bind", "required: address:port to listen on")
	} else if c.Bind.Port() == 0 {
		v.add("cluster.bind", "port must be 1..65535, got 0")
	}
	if v.isSet("cluster.advertise") && (!c.Advertise.Addr().IsValid() || c.Advertise.Port() == 0) {
		v.add("cluster.advertise", "must be address:port with a port 1..65535")
	}
	if c.SecretFile == "" {
		v.add("cluster.secret_file", "required: a file holding the gossip encryption key")
	} else if !filepath.IsAbs(c.SecretFile) {
		v.add("cluster.secret_file", "must be an absolute path, got %q", c.SecretFile)
	}
	for j, peer := range c.Peers {
		v.hostPort(fmt.Sprintf("cluster.peers[%d]", j), peer)
	}
	if c.Name == "" {
		v.add("cluster.name", "must not be empty")
	}
}

// bgp checks [bgp] against the virtual servers it announces and the VRRP
// instances (an address is moved by VRRP or announced, never both).
func (v validator) bgp(b *BGP, vss []VirtualServer, ins []VRRPInstance) {
	v.asn("bgp.asn", b.ASN)
	if v.isSet("bgp.router_id") && (!b.RouterID.Is4() || b.RouterID.IsUnspecified()) {
		v.add("bgp.router_id", "must be a non-zero IPv4 address (a BGP identifier is 32 bits), got %s", b.RouterID)
	}
	v.intRange("bgp.listen_port", b.ListenPort, 0, 65535)
	v.ifname("bgp.device", b.Device)
	if len(b.Peers) == 0 {
		v.add("bgp", "needs at least one [[bgp.peer]]")
	}
	peers := map[netip.Addr]string{}
	for i := range b.Peers {
		v.bgpPeer(&b.Peers[i], fmt.Sprintf("bgp.peer[%d]", i), peers)
	}

	byName := map[string]*VirtualServer{}
	for i := range vss {
		byName[vss[i].Name] = &vss[i]
	}
	vrrpAddr := map[netip.Addr]string{}
	for _, in := range ins {
		for _, a := range slices.Concat(in.VirtualAddresses, in.ExcludedAddresses) {
			vrrpAddr[a.Addr().Unmap()] = in.Name
		}
	}
	prefixes := map[netip.Prefix]string{}
	for i := range b.Announce {
		a, p := &b.Announce[i], fmt.Sprintf("bgp.announce[%d]", i)
		pfx := a.Prefix.Masked()
		switch {
		case !v.isSet(p + ".prefix"):
			v.add(p+".prefix", "required: the prefix to announce, e.g. \"192.0.2.10/32\"")
		case a.Prefix.Addr().Is4In6():
			v.add(p+".prefix", "write an IPv4 prefix as IPv4, not IPv4-mapped IPv6: %s", a.Prefix)
		case pfx != a.Prefix:
			v.add(p+".prefix", "has host bits set: %s (the prefix is %s)", a.Prefix, pfx)
		case prefixes[pfx] != "":
			v.add(p+".prefix", "%s is already announced by %s", pfx, prefixes[pfx])
		default:
			prefixes[pfx] = p
		}
		if len(a.VirtualServers) == 0 {
			v.add(p+".virtual_servers", "required: the virtual servers whose quorum the announcement follows")
		}
		for j, name := range a.VirtualServers {
			q := fmt.Sprintf("%s.virtual_servers[%d]", p, j)
			vs := byName[name]
			if vs == nil {
				v.add(q, "no virtual_server named %q", name)
				continue
			}
			if vs.Fwmark != 0 || !a.Prefix.IsValid() {
				continue // a fwmark service has no address to hold to the prefix
			}
			addr := vs.Address.Unmap()
			if !pfx.Contains(addr) {
				v.add(q, "virtual_server %q has address %s, outside %s: the routers would not send its traffic here", name, addr, pfx)
			}
			if in, ok := vrrpAddr[addr]; ok {
				v.add(q, "virtual_server %q has address %s, which vrrp instance %q moves: an address is either announced over BGP or moved by VRRP", name, addr, in)
			}
		}
		for j, c := range a.Communities {
			if _, err := ParseCommunity(c); err != nil {
				v.add(fmt.Sprintf("%s.communities[%d]", p, j), "%v", err)
			}
		}
		v.intRange(p+".med", a.MED, 0, 1<<32-1)
	}
}

func (v validator) bgpPeer(peer *BGPPeer, p string, seen map[netip.Addr]string) {
	switch a := peer.Address.Unmap(); {
	case !v.isSet(p + ".address"):
		v.add(p+".address", "required: the router's address")
	case !a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() && !a.IsPrivate():
		v.add(p+".address", "must be a unicast address, got %s", a)
	case seen[a] != "":
		v.add(p+".address", "%s is already %s", a, seen[a])
	default:
		seen[a] = p
	}
	v.asn(p+".asn", peer.ASN)
	v.intRange(p+".port", peer.Port, 1, 65535)
	if h := peer.HoldTime.D(); h < 3*time.Second || h > 65535*time.Second || h%time.Second != 0 {
		v.add(p+".hold_time", "must be whole seconds 3s..65535s (the keepalive is a third of it), got %s", h)
	}
	if peer.PasswordFile != "" && !filepath.IsAbs(peer.PasswordFile) {
		v.add(p+".password_file", "must be an absolute path, got %q", peer.PasswordFile)
	}
	v.intRange(p+".multihop", peer.Multihop, 0, 255)
	if v.isSet(p+".local_address") && peer.Address.IsValid() && peer.LocalAddress.Unmap().Is4() != peer.Address.Unmap().Is4() {
		v.add(p+".local_address", "must be of the peer's family (%s), got %s", familyName(peer.Address.Unmap()), peer.LocalAddress)
	}
	if bfd := peer.BFD; bfd != nil {
		for _, x := range []struct {
			key string
			d   time.Duration
		}{{"min_tx", bfd.MinTx.D()}, {"min_rx", bfd.MinRx.D()}} {
			if x.d < 10*time.Millisecond || x.d > time.Minute {
				v.add(p+".bfd."+x.key, "must be 10ms..1m, got %s", x.d)
			}
		}
		v.intRange(p+".bfd.multiplier", bfd.Multiplier, 1, 255)
	}
}

// asn checks an AS number: 4 octets, not 0 and not AS_TRANS (23456, which
// stands in for a 4-octet one on old speakers, RFC 6793).
func (v validator) asn(p string, asn int) {
	switch {
	case !v.isSet(p):
		v.add(p, "required: an AS number 1..4294967295")
	case asn == 23456:
		v.add(p, "23456 is AS_TRANS (RFC 6793), not a usable AS number")
	default:
		v.intRange(p, asn, 1, 1<<32-1)
	}
}
