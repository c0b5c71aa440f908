package keepalived

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The LVS half of keepalived's configuration: virtual servers (and their
// groups), their real servers and the checkers of those. keepalived's C
// source is the specification: check_parser.c (keywords), check_data.c
// (defaults and inheritance), check_api.c and check_*.c (checkers).

// keepalived's schedulers (check_parser.c); any other lb_algo is an error
// keepalived ignores, keeping its default.
var schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"}

// keepalived's checker defaults (check_api.c, check_data.c, check_*.c).
const (
	kaDelayLoop      = 60 * time.Second // KEEPALIVED_DEFAULT_DELAY
	kaConnectTimeout = 5 * time.Second
)

// maxGroupMembers bounds a virtual_server_group's expansion: a range such
// as 10.0.0.0/8 is a typo, not thousands of services.
const maxGroupMembers = 1024

var checkTypes = map[string]string{"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "MISC_CHECK": "exec", "DNS_CHECK": "dns", "UDP_CHECK": "udp"}

// service is one IPVS service a virtual_server block stands for.
type service struct {
	name   string
	addr   netip.Addr
	port   int
	fwmark int
}

// services reads a virtual_server's arguments: `IP PORT`, `fwmark N` or
// `group NAME` (each member of the virtual_server_group).
func (c *converter) services(v *Node) []service {
	switch {
	case len(v.Args) == 2 && v.Args[0] == "fwmark":
		m, err := strconv.Atoi(v.Args[1])
		if err != nil {
			c.warn(v, "virtual_server fwmark %q is not a number", v.Args[1])
			return nil
		}
		return []service{{name: fmt.Sprintf("fwmark-%d", m), fwmark: m}}
	case len(v.Args) == 2 && v.Args[0] == "group":
		g := c.vsGroups[v.Args[1]]
		if g == nil {
			c.warn(v, "virtual_server group %s: no virtual_server_group %s", v.Args[1], v.Args[1])
			return nil
		}
		return c.groupMembers(g)
	case len(v.Args) == 2:
		a, err := netip.ParseAddr(v.Args[0])
		p, err2 := strconv.Atoi(v.Args[1])
		if err != nil || err2 != nil || p < 1 || p > 65535 {
			c.warn(v, "virtual_server %s %s: want an address and a port", v.Args[0], v.Args[1])
			return nil
		}
		return []service{{name: netip.AddrPortFrom(a, uint16(p)).String(), addr: a, port: p}}
	}
	c.warn(v, "virtual_server %s: want ADDRESS PORT, fwmark N or group NAME (haldir has no port-less services)", strings.Join(v.Args, " "))
	return nil
}

// groupMembers expands a virtual_server_group: `IP PORT`, `RANGE PORT`
// (10.0.0.1-10, 10.0.0.250-10.0.1.10, 10.0.0.8/29) and `fwmark N`.
// haldir has no group: each member becomes its own virtual server with
// the same settings, which is what keepalived programs into IPVS.
func (c *converter) groupMembers(g *Node) []service {
	var out []service
	for _, m := range g.Children {
		if m.Name == "fwmark" {
			if len(m.Args) >= 1 {
				if x, err := strconv.Atoi(m.Args[0]); err == nil {
					out = append(out, service{name: fmt.Sprintf("fwmark-%d", x), fwmark: x})
					if len(m.Args) > 1 {
						c.warn(m, "fwmark %s %s: the family comes from the real servers in haldir", m.Args[0], m.Args[1])
					}
					continue
				}
			}
			c.warn(m, "virtual_server_group %s: fwmark %v is not a number", g.Args[0], m.Args)
			continue
		}
		if len(m.Args) != 1 {
			c.warn(m, "virtual_server_group %s: %s without a port is not supported (haldir has no port-less services)", firstArg(g), m.Name)
			continue
		}
		p, err := strconv.Atoi(m.Args[0])
		addrs, rerr := addrRange(m.Name)
		if err != nil || p < 1 || p > 65535 || rerr != nil {
			c.warn(m, "virtual_server_group %s: %s %s: want an address or range and a port", firstArg(g), m.Name, m.Args[0])
			continue
		}
		for _, a := range addrs {
			out = append(out, service{name: netip.AddrPortFrom(a, uint16(p)).String(), addr: a, port: p})
		}
		if len(out) > maxGroupMembers {
			c.warn(m, "virtual_server_group %s: more than %d members; the rest are left out", firstArg(g), maxGroupMembers)
			return out[:maxGroupMembers]
		}
	}
	return out
}

// addrRange reads keepalived's address ranges (check_parser.c, and the
// man page): an address, A-N (the last byte, or the last 16-bit group in
// hex for IPv6, running up to N), A-B (two addresses) or a prefix.
func addrRange(s string) ([]netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		p = p.Masked()
		var out []netip.Addr
		for a := p.Addr(); a.IsValid() && p.Contains(a); a = a.Next() {
			if len(out) > maxGroupMembers {
				break
			}
			out = append(out, a)
		}
		return out, nil
	}
	first, rest, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(first)
	if err != nil {
		return nil, err
	}
	if !isRange {
		return []netip.Addr{a}, nil
	}
	last, err := netip.ParseAddr(rest)
	if err != nil {
		// The short form replaces the last byte (IPv4) or group (IPv6).
		b := a.As16()
		if a.Is4() {
			n, err := strconv.ParseUint(rest, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("range end %q", rest)
			}
			b4 := a.As4()
			b4[3] = byte(n)
			last = netip.AddrFrom4(b4)
		} else {
			n, err := strconv.ParseUint(rest, 16, 16)
			if err != nil {
				return nil, fmt.Errorf("range end %q", rest)
			}
			b[14], b[15] = byte(n>>8), byte(n)
			last = netip.AddrFrom16(b)
		}
	}
	if last.Is4() != a.Is4() || last.Less(a) {
		return nil, fmt.Errorf("range %s is empty", s)
	}
	var out []netip.Addr
	for x := a; x.IsValid() && !last.Less(x); x = x.Next() {
		if len(out) > maxGroupMembers {
			break
		}
		out = append(out, x)
	}
	return out, nil
}

func (c *converter) virtualServer(v *Node) {
	svcs := c.services(v)
	if len(svcs) == 0 {
		return
	}
	// The settings are read once (warnings once), then stamped on each
	// service of a group.
	t := &table{header: "[[virtual_server]]", comment: "virtual_server " + strings.Join(v.Args, " ") + " at " + v.where()}
	var reals []*table
	var flags []string
	fwd := "nat"
	for _, n := range v.Children {
		switch n.Name {
		case "delay_loop", "connect_timeout", "retry", "delay_before_retry", "warmup", "alpha", "virtualhost", "weight":
			// Inherited by the real servers' checkers, below.
		case "lb_algo", "lvs_sched":
			if c.one(n) {
				if slices.Contains(schedulers, n.Args[0]) {
					t.str("scheduler", n.Args[0])
				} else {
					c.warn(n, "%s %s: keepalived ignores an unknown scheduler and uses wlc; so does the result", n.Name, n.Args[0])
					t.str("scheduler", "wlc")
				}
			}
		case "lb_kind", "lvs_method":
			if len(n.Args) >= 1 {
				m := strings.ToLower(n.Args[0])
				if m != "nat" && m != "dr" && m != "tun" {
					c.warn(n, "%s %s: want NAT, DR or TUN", n.Name, n.Args[0])
					continue
				}
				if len(n.Args) > 1 {
					c.warn(n, "%s %s: tunnel options %v are left out (haldir: tunnel_type, tunnel_port, tunnel_checksum)", n.Name, n.Args[0], n.Args[1:])
				}
				fwd = m
				t.str("forwarding", m)
			}
		case "protocol":
			if c.one(n) {
				t.str("protocol", strings.ToLower(n.Args[0]))
			}
		case "persistence_timeout":
			if d, ok := c.seconds(n); ok {
				t.dur("persistence_timeout", d.Round(time.Second))
			}
		case "persistence_granularity":
			if c.one(n) {
				if m, err := netip.ParseAddr(n.Args[0]); err == nil && m.Is4() {
					b := m.As4()
					bits := 0
					for _, x := range b {
						for x&0x80 != 0 {
							bits++
							x <<= 1
						}
					}
					t.num("persistence_granularity", bits)
				} else if x, err := strconv.Atoi(n.Args[0]); err == nil {
					t.num("persistence_granularity", x)
				} else {
					c.warn(n, "persistence_granularity %q: want a netmask", n.Args[0])
				}
			}
		case "quorum", "hysteresis":
			if x, ok := c.intArg(n); ok {
				t.num(n.Name, x)
			}
		case "inhibit_on_failure":
			t.boolean("inhibit_on_failure", true)
		case "ops", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			flags = append(flags, n.Name)
		case "flag-1", "flag-2":
			// ipvsadm's -b flag-1/flag-2 are sh-fallback/sh-port (or mh-).
			sched, _ := t.get("scheduler")
			s := strings.Trim(sched, `"`)
			if s != "sh" && s != "mh" {
				c.warn(n, "%s: only meaningful with the sh or mh scheduler; left out", n.Name)
				continue
			}
			flags = append(flags, s+map[string]string{"flag-1": "-fallback", "flag-2": "-port"}[n.Name])
		case "sorry_server":
			if len(n.Args) == 2 {
				if a, err := netip.ParseAddr(n.Args[0]); err == nil {
					if p, err := strconv.Atoi(n.Args[1]); err == nil {
						t.str("sorry_server", netip.AddrPortFrom(a, uint16(p)).String())
						continue
					}
				}
			}
			c.warn(n, "sorry_server: want an address and a port")
		case "omega", "ha_suspend", "quorum_up", "quorum_down", "smtp_alert", "snmp_name", "hashed", "persistence_engine",
			"sorry_server_inhibit", "sorry_server_lvs_method", "ip_family", "flag-3":
			c.ignored(n, "no haldir equivalent")
		case "real_server":
			if r := c.realServer(n, v, t); r != nil {
				reals = append(reals, r)
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	if len(flags) > 0 {
		t.strs("scheduler_flags", flags)
	}
	base, baseReals := t.clone(), make([]*table, len(reals))
	for i, r := range reals {
		baseReals[i] = r.clone()
	}
	warned := false // the members share the warnings of the first
	for i, s := range svcs {
		vt, rs := t, reals
		if i > 0 {
			vt, rs = base.clone(), nil
			for _, r := range baseReals {
				rs = append(rs, r.clone())
			}
		}
		head := &keys{}
		head.str("name", s.name)
		if s.fwmark != 0 {
			head.num("fwmark", s.fwmark)
		} else {
			head.str("address", s.addr.String())
			head.num("port", s.port)
		}
		vt.keys = append(*head, vt.keys...)
		if len(svcs) > 1 {
			vt.comment = fmt.Sprintf("virtual_server %s at %s (member %s of the group)", strings.Join(v.Args, " "), v.where(), s.name)
		}
		rs = c.directPorts(vt, rs, s, fwd, !warned)
		warned = warned || s.fwmark == 0
		c.vs = append(c.vs, vt)
		c.vs = append(c.vs, rs...)
	}
}

// directPorts applies keepalived's handling of a DR or TUN real server
// whose port differs from the service's: the director does not rewrite
// the port, so the kernel uses the service's (haldir refuses the
// mismatch). The real server keeps being checked on its own port. Two
// real servers that become one are one destination, as in the kernel.
func (c *converter) directPorts(vt *table, reals []*table, s service, vsFwd string, warn bool) []*table {
	if s.fwmark != 0 {
		return reals
	}
	var out []*table
	seen := map[string]bool{}
	for _, r := range reals {
		fwd := vsFwd
		if f, ok := r.get("forwarding"); ok {
			fwd = strings.Trim(f, `"`)
		}
		p, hasPort := r.get("port")
		if (fwd == "dr" || fwd == "tun") && hasPort && p != strconv.Itoa(s.port) {
			r.num("port", s.port)
			if chk := r.existing("check"); chk != nil && !chk.has("connect_port") {
				if typ, _ := chk.get("type"); typ != `"exec"` {
					chk.set("connect_port", p)
				}
			}
			if warn {
				c.warn(r.src, "real_server port %s: with %s the director does not rewrite the port, so keepalived's real server gets port %d; the check still connects to %s", p, strings.ToUpper(fwd), s.port, p)
			}
		}
		a, _ := r.get("address")
		key := a + ":" + strconv.Itoa(s.port)
		if p, ok := r.get("port"); ok {
			key = a + ":" + p
		}
		if seen[key] {
			if warn {
				c.warn(r.src, "real_server %s: the same destination as an earlier real server of this service; left out", strings.Trim(a, `"`))
			}
			continue
		}
		seen[key] = true
		out = append(out, r)
	}
	return out
}

func (c *converter) realServer(n *Node, v *Node, vs *table) *table {
	if len(n.Args) < 1 || len(n.Args) > 2 {
		c.warn(n, "real_server: want ADDRESS [PORT]")
		return nil
	}
	a, err := netip.ParseAddr(n.Args[0])
	if err != nil {
		c.warn(n, "real_server %q is not an address", n.Args[0])
		return nil
	}
	t := &table{header: "[[virtual_server.real_server]]", comment: "real_server " + strings.Join(n.Args, " ") + " at " + n.where(), src: n}
	t.str("address", a.String())
	if len(n.Args) == 2 {
		p, err := strconv.Atoi(n.Args[1])
		if err != nil {
			c.warn(n, "real_server port %q is not a number", n.Args[1])
			return nil
		}
		t.num("port", p)
	}
	// keepalived's real server weight defaults to the virtual server's
	// `weight`, else 1 (haldir's default).
	if w := child(v, "weight"); w != nil {
		if x, ok := c.intArg(w); ok {
			t.num("weight", x)
		}
	}
	checks := 0
	for _, x := range n.Children {
		switch x.Name {
		case "weight":
			if v, ok := c.intArg(x); ok {
				t.num("weight", v)
			}
		case "delay_loop", "connect_timeout", "retry", "delay_before_retry", "warmup", "alpha", "virtualhost":
			// Inherited by the checkers, below.
		case "inhibit_on_failure":
			if !vs.has("inhibit_on_failure") {
				c.warn(x, "inhibit_on_failure: haldir sets it per virtual server; set for this virtual server")
			}
			vs.boolean("inhibit_on_failure", true)
		case "uthreshold", "lthreshold":
			if v, ok := c.intArg(x); ok {
				t.num(map[string]string{"uthreshold": "upper_threshold", "lthreshold": "lower_threshold"}[x.Name], v)
			}
		case "notify_up", "notify_down":
			if argv := c.command(x); argv != nil {
				t.strs(x.Name, argv)
			}
		case "lvs_method", "lb_kind":
			if c.one(x) {
				t.str("forwarding", strings.ToLower(x.Args[0]))
			}
		case "TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "DNS_CHECK", "UDP_CHECK":
			checks++
			if checks > 1 {
				c.warn(x, "%s: haldir runs one check per real server (keepalived: all must pass); this one is left out", x.Name)
				continue
			}
			c.check(x, n, v, t.table("check"))
		case "SMTP_CHECK", "BFD_CHECK", "FILE_CHECK", "PING_CHECK":
			c.ignored(x, "this check type is not supported by haldir")
		case "smtp_alert", "snmp_name":
			c.ignored(x, "no haldir equivalent")
		default:
			c.ignored(x, "not supported by haldir")
		}
	}
	return t
}

// child is the last directive called name in n (keepalived: the last
// one wins), or nil.
func child(n *Node, name string) *Node {
	if n == nil {
		return nil
	}
	var last *Node
	for _, x := range n.Children {
		if x.Name == name {
			last = x
		}
	}
	return last
}

// check converts one checker block x of real server rs of virtual server
// v into the check table chk. Every timing key is written out, with
// keepalived's value: keepalived's defaults are not haldir's, and
// keepalived inherits delay_loop, connect_timeout, retry,
// delay_before_retry, warmup, alpha and virtualhost from the real server,
// then the virtual server (check_data.c).
func (c *converter) check(x, rs, v *Node, chk *keys) {
	typ := checkTypes[x.Name]
	chk.str("type", typ)
	inherit := func(names ...string) *Node {
		for _, b := range []*Node{x, rs, v} {
			for _, name := range names {
				if n := child(b, name); n != nil {
					return n
				}
			}
		}
		return nil
	}
	dynamic, requireReply := false, false
	var urls []*keys
	for _, n := range x.Children {
		if !checkerKnows(typ, n.Name) {
			c.warn(n, "%s: keepalived does not know it in %s and ignores it; so does the result", n.Name, x.Name)
			continue
		}
		switch n.Name {
		case "connect_timeout", "misc_timeout", "delay_loop", "retry", "nb_get_retry", "delay_before_retry", "warmup", "alpha", "virtualhost":
			// Resolved with inheritance below.
		case "connect_port":
			if v, ok := c.intArg(n); ok {
				chk.num("connect_port", v)
			}
		case "connect_ip":
			if c.one(n) {
				chk.str("connect_address", n.Args[0])
			}
		case "bindto":
			if c.one(n) {
				chk.str("source_address", n.Args[0])
			}
		case "url":
			if u := c.url(n); u != nil {
				urls = append(urls, u)
			}
		case "misc_path":
			if argv := c.command(n); argv != nil {
				chk.strs("command", argv)
			}
		case "misc_dynamic":
			dynamic = true
		case "require_reply":
			requireReply = true
			if len(n.Args) > 0 {
				c.warn(n, "require_reply %s: haldir does not compare the reply with keepalived's masked data; any reply passes (expect_payload takes a substring)", strings.Join(n.Args, " "))
			}
		case "payload":
			b, err := hex.DecodeString(strings.Join(n.Args, ""))
			if err != nil || !utf8.Valid(b) {
				c.warn(n, "payload: %q is not hex of UTF-8 text, which is what haldir's payload holds; left out", strings.Join(n.Args, " "))
				continue
			}
			chk.str("payload", string(b))
		case "type":
			if c.one(n) {
				chk.str("query_type", strings.ToUpper(n.Args[0]))
			}
		case "name":
			if c.one(n) {
				chk.str("query_name", n.Args[0])
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}

	interval := kaDelayLoop
	if n := inherit("delay_loop"); n != nil {
		if d, ok := c.seconds(n); ok && d > 0 {
			interval = d
		}
	}
	chk.dur("interval", interval)
	timeout, tn := kaConnectTimeout, inherit("connect_timeout")
	if typ == "exec" {
		// misc_timeout, else delay_loop (check_misc.c).
		timeout, tn = interval, child(x, "misc_timeout")
		if tn != nil && len(tn.Args) == 1 && tn.Args[0] == "0" {
			tn = nil
		}
	}
	if tn != nil {
		if d, ok := c.seconds(tn); ok && d > 0 {
			timeout = d
		}
	}
	// keepalived requests several urls one after the other, each with
	// connect_timeout; haldir's urls share one timeout: the sum.
	if len(urls) > 1 {
		timeout *= time.Duration(len(urls))
	}
	if timeout > interval {
		// haldir's checks of one real server never overlap.
		where := tn
		if where == nil {
			where = x
		}
		each := ""
		if len(urls) > 1 {
			each = fmt.Sprintf(" (%v for each of %d urls)", timeout/time.Duration(len(urls)), len(urls))
		}
		c.warn(where, "%s: timeout %v%s is longer than delay_loop %v; haldir's timeout may not exceed its interval, so it is %v", x.Name, timeout, each, interval, interval)
		timeout = interval
	}
	chk.dur("timeout", timeout)

	// keepalived: up after one success; down after the failure of the
	// scheduled check and `retry` retries, delay_before_retry apart.
	retry := 1
	switch typ {
	case "exec":
		retry = 0
	case "dns":
		retry = 3
	}
	rn := child(x, "retry")
	if typ == "http" || typ == "https" {
		if n := child(x, "nb_get_retry"); n != nil && (rn == nil || n.Line > rn.Line) {
			rn = n // the later of the two wins
		}
	}
	if rn == nil {
		rn = inherit("retry")
	}
	if n := rn; n != nil {
		if v, ok := c.intArg(n); ok && v >= 0 {
			retry = v
		}
	}
	chk.num("rise", 1)
	chk.num("fall", retry+1)
	if retry > 0 {
		delay := time.Second
		switch typ {
		case "http", "https":
			delay = 3 * time.Second
		case "dns":
			delay = interval
		}
		if n := inherit("delay_before_retry"); n != nil {
			if d, ok := c.seconds(n); ok {
				delay = d
			}
		}
		if delay == 0 {
			delay = time.Millisecond // haldir's 0 means interval; keepalived retries at once
		}
		chk.dur("retry_delay", delay)
	}
	// keepalived starts each checker at a random time within warmup,
	// which defaults to delay_loop.
	warmup := interval
	if n := inherit("warmup"); n != nil {
		if d, ok := c.seconds(n); ok {
			warmup = d
		}
	}
	chk.dur("warmup", warmup)
	if inherit("alpha") != nil {
		chk.str("initial_state", "down")
	}

	switch typ {
	case "http", "https":
		if n := inherit("virtualhost"); n != nil && c.one(n) {
			chk.str("host", n.Args[0])
		}
		switch len(urls) {
		case 0:
			c.warn(x, "%s: no url with a path; haldir requests /", x.Name)
		case 1:
			for _, k := range *urls[0] {
				chk.set(k.key, k.text())
			}
		default:
			parts := make([]string, len(urls))
			for i, u := range urls {
				parts[i] = u.inline()
			}
			chk.set("urls", "["+strings.Join(parts, ", ")+"]")
		}
		if typ == "https" {
			// keepalived's SSL_GET does not verify the certificate.
			chk.boolean("tls_verify", false)
			c.warn(x, "SSL_GET: keepalived does not verify the certificate; tls_verify = false keeps that (set ca_file and remove it to verify)")
		}
	case "exec":
		chk.boolean("dynamic_weight", dynamic)
	case "udp":
		chk.boolean("require_reply", requireReply)
	case "dns":
		if !chk.has("query_type") {
			chk.str("query_type", "SOA") // keepalived's default; haldir's is A
		}
		if !chk.has("query_name") {
			chk.str("query_name", ".")
		}
	}
}

// checkerKnows says whether keepalived accepts keyword k in a checker of
// haldir type typ (check_api.c's common and connection keywords, and each
// checker's own).
func checkerKnows(typ, k string) bool {
	switch k {
	case "retry", "delay_before_retry", "warmup", "delay_loop", "alpha", "log_all_failures":
		return true
	case "connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark":
		return typ != "exec"
	case "url", "nb_get_retry", "virtualhost", "http_protocol", "enable_sni", "sni_name", "tls_compliant", "fast_recovery":
		return typ == "http" || typ == "https"
	case "misc_path", "misc_timeout", "misc_dynamic", "user":
		return typ == "exec"
	case "payload", "require_reply", "min_reply_length", "max_reply_length":
		return typ == "udp"
	case "type", "name":
		return typ == "dns"
	}
	return true // reported as not supported by haldir
}

// url converts one url block of HTTP_GET/SSL_GET: its path, status codes
// (keepalived's default 200-299 is haldir's) and digest. keepalived
// ignores a url without a path.
func (c *converter) url(n *Node) *keys {
	u := &keys{}
	for _, x := range n.Children {
		switch {
		case x.Name == "path" && c.one(x):
			u.str("path", x.Args[0])
		case x.Name == "digest" && c.one(x):
			u.str("digest", x.Args[0])
		case x.Name == "status_code":
			var codes []string
			for _, s := range x.Args {
				lo, hi, isRange := strings.Cut(s, "-")
				l, err1 := strconv.Atoi(lo)
				h, err2 := strconv.Atoi(hi)
				if !isRange {
					h, err2 = l, nil
				}
				if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
					c.warn(x, "status_code %s: keepalived ignores it (want 100-599 or a range of those)", s)
					continue
				}
				codes = append(codes, s)
			}
			if len(codes) > 0 {
				u.strs("expect_status", codes)
			}
		case x.Name == "regex" && len(x.Args) > 0:
			u.str("expect_body", strings.Join(x.Args, " "))
			c.warn(x, "regex: haldir matches Go (RE2) regular expressions, not PCRE; check that the pattern means the same")
		default:
			c.ignored(x, "not supported by haldir")
		}
	}
	if !u.has("path") {
		c.warn(n, "url: no path; keepalived ignores this url, and so does haldir")
		return nil
	}
	return u
}

// clone is a deep copy of a table: a virtual_server_group's members share
// the settings, not the values a later edit changes.
func (t *table) clone() *table {
	n := *t
	n.keys = *t.keys.clone()
	return &n
}

func (ks *keys) clone() *keys {
	out := make(keys, len(*ks))
	for i, k := range *ks {
		out[i] = k
		if k.sub != nil {
			out[i].sub = k.sub.clone()
		}
	}
	return &out
}
