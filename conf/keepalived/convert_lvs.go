package keepalived

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The LVS half of keepalived's configuration: virtual servers, their real
// servers and the checkers of those.

func (c *converter) virtualServer(v *Node) {
	t := &table{header: "[[virtual_server]]", comment: "virtual_server " + strings.Join(v.Args, " ") + " at " + v.where()}
	switch {
	case len(v.Args) == 2 && v.Args[0] == "fwmark":
		m, err := strconv.Atoi(v.Args[1])
		if err != nil {
			c.warn(v, "virtual_server fwmark %q is not a number", v.Args[1])
			return
		}
		t.str("name", fmt.Sprintf("fwmark-%d", m))
		t.num("fwmark", m)
	case len(v.Args) == 2 && v.Args[0] == "group":
		c.warn(v, "virtual_server group %s: virtual_server_group is not supported; list each address as its own virtual_server", v.Args[1])
		return
	case len(v.Args) == 2:
		a, err := netip.ParseAddr(v.Args[0])
		p, err2 := strconv.Atoi(v.Args[1])
		if err != nil || err2 != nil {
			c.warn(v, "virtual_server %s %s: want an address and a port", v.Args[0], v.Args[1])
			return
		}
		// keepalived's virtual servers have no names; haldir's do (logs,
		// status, track_virtual_server).
		t.str("name", netip.AddrPortFrom(a, uint16(p)).String())
		t.str("address", a.String())
		t.num("port", p)
	default:
		c.warn(v, "virtual_server: want ADDRESS PORT or fwmark N")
		return
	}
	var interval time.Duration
	var vhost string
	alpha := false
	var reals []*table
	for _, n := range v.Children {
		switch n.Name {
		case "delay_loop":
			interval, _ = c.seconds(n)
		case "lb_algo", "lvs_sched":
			if c.one(n) {
				t.str("scheduler", n.Args[0])
			}
		case "lb_kind", "lvs_method":
			if c.one(n) {
				m := strings.ToLower(n.Args[0])
				if m != "nat" && m != "dr" && m != "tun" {
					c.warn(n, "%s %s: want NAT, DR or TUN", n.Name, n.Args[0])
					continue
				}
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
		case "virtualhost":
			if c.one(n) {
				vhost = n.Args[0]
			}
		case "alpha":
			alpha = true
		case "omega", "ha_suspend":
			c.ignored(n, "no haldir equivalent")
		case "real_server":
			if r := c.realServer(n, t); r != nil {
				reals = append(reals, r)
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	// keepalived's checks live in the real servers; the virtual server's
	// delay_loop, virtualhost and alpha become keys of each.
	if interval <= 0 {
		interval = 60 * time.Second // keepalived's delay_loop default
	}
	for _, r := range reals {
		chk := r.existing("check")
		if chk == nil {
			continue
		}
		if !chk.has("interval") {
			chk.dur("interval", interval)
		}
		if typ, _ := chk.get("type"); vhost != "" && strings.HasPrefix(typ, `"http`) && !chk.has("host") {
			chk.str("host", vhost)
		}
		if alpha {
			chk.str("initial_state", "down")
		}
		// haldir's checks of one real server never overlap: timeout <=
		// interval. keepalived's defaults (connect_timeout 5s, delay_loop
		// 60s) never clash; explicit values may.
		if d, ok := chk.duration("timeout"); ok && d > interval {
			chk.dur("timeout", interval)
			c.warn(r.src, "real_server: connect_timeout %v is longer than delay_loop %v; haldir's timeout may not exceed its interval, so it is %v", d, interval, interval)
		}
	}
	c.vs = append(c.vs, t)
	c.vs = append(c.vs, reals...)
}

func (c *converter) realServer(n *Node, vs *table) *table {
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
	checks := 0
	for _, x := range n.Children {
		switch x.Name {
		case "weight":
			if v, ok := c.intArg(x); ok {
				t.num("weight", v)
			}
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
				c.warn(x, "%s: haldir runs one check per real server; this one is left out", x.Name)
				continue
			}
			c.check(x, t.table("check"))
		case "SMTP_CHECK", "BFD_CHECK", "FILE_CHECK", "PING_CHECK":
			c.ignored(x, "this check type is not supported by haldir")
		default:
			c.ignored(x, "not supported by haldir")
		}
	}
	return t
}

// check converts one checker block into the check table chk.
func (c *converter) check(x *Node, chk *keys) {
	typ := map[string]string{"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "MISC_CHECK": "exec", "DNS_CHECK": "dns", "UDP_CHECK": "udp"}[x.Name]
	chk.str("type", typ)
	add := chk.set
	dynamic := false
	urls := 0
	for _, n := range x.Children {
		switch n.Name {
		case "connect_timeout", "misc_timeout":
			if d, ok := c.seconds(n); ok {
				add("timeout", quote(d.String()))
			}
		case "connect_port":
			if v, ok := c.intArg(n); ok {
				add("connect_port", strconv.Itoa(v))
			}
		case "connect_ip":
			if c.one(n) {
				add("connect_address", quote(n.Args[0]))
			}
		case "bindto":
			if c.one(n) {
				add("source_address", quote(n.Args[0]))
			}
		case "retry", "nb_get_retry":
			// keepalived gives up after the first failure and its retries.
			if v, ok := c.intArg(n); ok {
				add("fall", strconv.Itoa(v+1))
			}
		case "delay_before_retry":
			if d, ok := c.seconds(n); ok {
				add("retry_delay", quote(d.String()))
			}
		case "warmup":
			if d, ok := c.seconds(n); ok {
				add("warmup", quote(d.String()))
			}
		case "virtualhost":
			if c.one(n) {
				add("host", quote(n.Args[0]))
			}
		case "url":
			urls++
			if urls > 1 {
				c.warn(n, "url: haldir checks one path per check; this one is left out")
				continue
			}
			for _, u := range n.Children {
				switch {
				case u.Name == "path" && c.one(u):
					add("path", quote(u.Args[0]))
				case u.Name == "digest" && c.one(u):
					add("digest", quote(u.Args[0]))
				case u.Name == "status_code":
					chk.strs("expect_status", u.Args)
				default:
					c.ignored(u, "not supported by haldir")
				}
			}
		case "misc_path":
			if argv := c.command(n); argv != nil {
				chk.strs("command", argv)
			}
		case "misc_dynamic":
			dynamic = true
		case "type":
			if c.one(n) {
				add("query_type", quote(strings.ToUpper(n.Args[0])))
			}
		case "name":
			if c.one(n) {
				add("query_name", quote(n.Args[0]))
			}
		default:
			c.ignored(n, "not supported by haldir")
		}
	}
	if typ == "exec" && !dynamic {
		c.warn(x, "MISC_CHECK without misc_dynamic: haldir reads exit codes 2-255 as up with weight code-2 (misc_dynamic); keepalived here reads them as down")
	}
	if typ == "https" {
		// keepalived's SSL_GET does not verify the certificate.
		chk.boolean("tls_verify", false)
		c.warn(x, "SSL_GET: keepalived does not verify the certificate; tls_verify = false keeps that (set ca_file and remove it to verify)")
	}
}
