package keepalived

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// The semantic comparison: what keepalived would do with a configuration,
// worked out from its directives with keepalived's own defaults (read in
// keepalived's check_data.c, check_api.c, check_*.c, vrrp_parser.c), against
// what haldir will do with the converted file as conf.Parse loads it, with
// haldir's defaults. Each value is a fact; a fact that differs must be
// named by a warning at the directive that decided it or at an enclosing
// block, else it is a silent behaviour change.

// fact is one keepalived value and the directives a warning may stand at
// to explain that haldir differs.
type fact struct {
	val    string
	excuse []*Node
}

type facts map[string]fact

// at sets a fact decided by directive, or, when that is absent
// (keepalived's default applies), by the block it would be in: a warning
// excuses a difference only where it stands. extra are further
// directives that change the value.
func (f facts) at(key, val string, directive, block *Node, extra ...*Node) {
	if directive != nil {
		f.set(key, val, append([]*Node{directive}, extra...)...)
		return
	}
	f.set(key, val, append([]*Node{block}, extra...)...)
}

func (f facts) set(key, val string, excuse ...*Node) {
	var ex []*Node
	for _, n := range excuse {
		if n != nil {
			ex = append(ex, n)
		}
	}
	f[key] = fact{val, ex}
}

// compareSemantics lists the differences no warning names.
func compareSemantics(nodes []*Node, cfg *conf.Config, warnings []Warning) []string {
	d, _ := compareSemanticsCount(nodes, cfg, warnings)
	return d
}

// compareSemanticsCount also counts the differences warnings name.
func compareSemanticsCount(nodes []*Node, cfg *conf.Config, warnings []Warning) (unexplained []string, named int) {
	ka := keepalivedFacts(nodes)
	hd := haldirFacts(cfg)
	warned := map[string]bool{}
	for _, w := range warnings {
		warned[fmt.Sprintf("%s:%d", w.File, w.Line)] = true
	}
	keys := map[string]bool{}
	for k := range ka {
		keys[k] = true
	}
	for k := range hd {
		keys[k] = true
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	}) {
		kf, inKA := ka[k]
		hv, inHD := hd[k]
		kv := kf.val
		if !inKA {
			kv = "(absent)"
		}
		if !inHD {
			hv = "(absent)"
		}
		if kv == hv {
			continue
		}
		if slices.ContainsFunc(kf.excuse, func(n *Node) bool { return warned[n.where()] }) ||
			// A key only haldir has comes from a keepalived block the
			// comparison left out (and the converter warned about).
			!inKA && parentWarned(k, ka, warned) {
			named++
			continue
		}
		unexplained = append(unexplained, fmt.Sprintf("%s: keepalived %s, haldir %s", k, kv, hv))
	}
	return unexplained, named
}

// parentWarned says whether a warning names the block that a key of
// haldir's belongs to (its first two words: "vs NAME", "vrrp NAME").
func parentWarned(key string, ka facts, warned map[string]bool) bool {
	f := strings.Fields(key)
	if len(f) < 2 {
		return false
	}
	p, ok := ka[f[0]+" "+f[1]]
	return ok && slices.ContainsFunc(p.excuse, func(n *Node) bool { return warned[n.where()] })
}

func kaSeconds(n *Node) (time.Duration, bool) {
	if n == nil || len(n.Args) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.Args[0], 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, false
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

func kaInt(n *Node) (int, bool) {
	if n == nil || len(n.Args) == 0 {
		return 0, false
	}
	v, err := strconv.Atoi(n.Args[0])
	return v, err == nil
}

// keepalived's schedulers (check_parser.c); any other lb_algo is ignored
// with an error and the default, wlc, applies.
var kaSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"}

func keepalivedFacts(nodes []*Node) facts {
	f := facts{}
	version := "2"
	strict := false
	groups := map[string]*Node{} // virtual_server_group
	weights := map[string]bool{} // sync group member -> sync_group_tracking_weight
	scripts := map[string]*Node{}
	for _, n := range nodes {
		switch n.Name {
		case "global_defs":
			if v := child(n, "vrrp_version"); v != nil && len(v.Args) == 1 {
				version = v.Args[0]
			}
			strict = child(n, "vrrp_strict") != nil
		case "virtual_server_group":
			if len(n.Args) == 1 {
				groups[n.Args[0]] = n
			}
		case "vrrp_script":
			if len(n.Args) == 1 {
				scripts[n.Args[0]] = n
			}
		case "vrrp_sync_group":
			tw := child(n, "sync_group_tracking_weight") != nil
			if g := child(n, "group"); g != nil {
				for _, m := range g.Children {
					for _, name := range append([]string{m.Name}, m.Args...) {
						weights[name] = tw
					}
				}
			}
		}
	}
	for _, n := range nodes {
		switch n.Name {
		case "vrrp_instance":
			if len(n.Args) == 1 {
				kaInstance(f, n, version, strict, scripts, weights)
			}
		case "virtual_server":
			kaVirtualServer(f, n, groups)
		}
	}
	return f
}

func kaInstance(f facts, in *Node, version string, strict bool, scripts map[string]*Node, weights map[string]bool) {
	p := "vrrp " + in.Args[0]
	f.set(p, "instance", in)
	if v := child(in, "version"); v != nil && len(v.Args) == 1 {
		version = v.Args[0]
	}
	f.at(p+" version", version, child(in, "version"), in, child(in, "authentication"))
	if v, ok := kaInt(child(in, "virtual_router_id")); ok {
		f.at(p+" vrid", strconv.Itoa(v), child(in, "virtual_router_id"), in)
	}
	adv := time.Second
	if d, ok := kaSeconds(child(in, "advert_int")); ok {
		adv = d
	}
	f.at(p+" advert_interval", adv.String(), child(in, "advert_int"), in)
	f.at(p+" preempt", strconv.FormatBool(child(in, "nopreempt") == nil), child(in, "nopreempt"), in, child(in, "state"))

	// The priority while everything tracked is well: keepalived adds
	// positive weights then (and ignores weights in a sync group without
	// sync_group_tracking_weight).
	prio := 100
	excuse := []*Node{child(in, "priority")}
	if excuse[0] == nil {
		excuse[0] = in
	}
	if v, ok := kaInt(child(in, "priority")); ok {
		prio = v
	} else if st := child(in, "state"); st != nil && len(st.Args) == 1 && st.Args[0] == "MASTER" {
		prio = 255 // vrrp_complete_instance: no priority and state MASTER is the owner
	}
	tw, member := weights[in.Args[0]]
	honour := !member || tw
	for _, blk := range in.Children {
		switch blk.Name {
		case "track_script", "track_interface":
			for _, x := range blk.Children {
				excuse = append(excuse, blk, x)
				w := 0
				if blk.Name == "track_script" {
					if s := scripts[x.Name]; s != nil {
						w, _ = kaInt(child(s, "weight"))
						excuse = append(excuse, child(s, "weight"))
					}
				}
				if len(x.Args) >= 2 && x.Args[0] == "weight" {
					w, _ = strconv.Atoi(x.Args[1])
				}
				if honour && w > 0 {
					prio += w
				}
			}
		}
	}
	f.set(p+" priority", strconv.Itoa(prio), excuse...)

	auth := "none"
	a := child(in, "authentication")
	if a != nil && !strict {
		if t := child(a, "auth_type"); t != nil && len(t.Args) == 1 && strings.EqualFold(t.Args[0], "PASS") {
			pw := ""
			if pn := child(a, "auth_pass"); pn != nil && len(pn.Args) > 0 {
				pw = pn.Args[0]
			}
			if len(pw) > 8 {
				pw = pw[:8] // keepalived keeps 8 bytes
			}
			auth = "pass:" + pw
		}
	}
	f.at(p+" auth", auth, a, in)

	var vips []string
	var vex []*Node
	for _, blk := range in.Children {
		if blk.Name != "virtual_ipaddress" {
			continue
		}
		vex = append(vex, blk)
		for _, x := range blk.Children {
			vex = append(vex, x)
			if pfx, err := netip.ParsePrefix(x.Name); err == nil {
				vips = append(vips, pfx.String())
			} else if a, err := netip.ParseAddr(x.Name); err == nil {
				vips = append(vips, netip.PrefixFrom(a, a.BitLen()).String())
			} else {
				vips = append(vips, x.Name)
			}
		}
	}
	sort.Strings(vips)
	vips = slices.Compact(vips) // keepalived adds an address once
	if len(vex) == 0 {
		vex = []*Node{in}
	}
	f.set(p+" virtual_addresses", strings.Join(vips, ","), vex...)
}

// vsKeys are the services a virtual_server block stands for: one, or each
// member of its virtual_server_group.
func vsKeys(v *Node, groups map[string]*Node) (keys []string, ports []int, excuse []*Node) {
	switch {
	case len(v.Args) == 2 && v.Args[0] == "fwmark":
		return []string{"fwmark-" + v.Args[1]}, []int{0}, nil
	case len(v.Args) == 2 && v.Args[0] == "group":
		g := groups[v.Args[1]]
		if g == nil {
			return nil, nil, nil
		}
		for _, m := range g.Children {
			switch {
			case m.Name == "fwmark" && len(m.Args) == 1:
				keys, ports = append(keys, "fwmark-"+m.Args[0]), append(ports, 0)
			case len(m.Args) == 1:
				p, err := strconv.Atoi(m.Args[0])
				if err != nil {
					continue
				}
				for _, a := range expandRange(m.Name) {
					keys, ports = append(keys, netip.AddrPortFrom(a, uint16(p)).String()), append(ports, p)
				}
			}
			excuse = append(excuse, m)
		}
		return keys, ports, append(excuse, g)
	case len(v.Args) == 2:
		a, err := netip.ParseAddr(v.Args[0])
		p, err2 := strconv.Atoi(v.Args[1])
		if err != nil || err2 != nil {
			return nil, nil, nil
		}
		return []string{netip.AddrPortFrom(a, uint16(p)).String()}, []int{p}, nil
	}
	return nil, nil, nil
}

// expandRange reads keepalived's "10.0.0.1-10" (the last part of the
// address ranges up to 10) or a plain address.
func expandRange(s string) []netip.Addr {
	base, end, ok := strings.Cut(s, "-")
	a, err := netip.ParseAddr(base)
	if err != nil {
		return nil
	}
	if !ok {
		return []netip.Addr{a}
	}
	last, err := strconv.ParseUint(end, 16, 16)
	if a.Is4() {
		last, err = strconv.ParseUint(end, 10, 8)
	}
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for x := a; x.IsValid(); x = x.Next() {
		b := x.AsSlice()
		cur := uint64(b[len(b)-1])
		if a.Is6() {
			cur = uint64(b[len(b)-2])<<8 | uint64(b[len(b)-1])
		}
		if cur > last {
			break
		}
		out = append(out, x)
		if len(out) > 65536 {
			break
		}
	}
	return out
}

var kaCheckTypes = map[string]string{"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https", "MISC_CHECK": "exec", "DNS_CHECK": "dns", "UDP_CHECK": "udp"}

func kaVirtualServer(f facts, v *Node, groups map[string]*Node) {
	keys, ports, gex := vsKeys(v, groups)
	for i, key := range keys {
		p := "vs " + key
		f.set(p, "service", append([]*Node{v}, gex...)...)
		sched := "wlc"
		var sn *Node
		for _, n := range v.Children {
			if (n.Name == "lb_algo" || n.Name == "lvs_sched") && len(n.Args) == 1 && slices.Contains(kaSchedulers, n.Args[0]) {
				sched, sn = n.Args[0], n
			} else if n.Name == "lb_algo" || n.Name == "lvs_sched" {
				sn = n
			}
		}
		f.at(p+" scheduler", sched, sn, v)
		fwd := "nat"
		fn := child(v, "lb_kind")
		if fn == nil {
			fn = child(v, "lvs_method")
		}
		if fn != nil && len(fn.Args) == 1 {
			fwd = strings.ToLower(fn.Args[0])
		}
		f.at(p+" forwarding", fwd, fn, v)
		proto := "tcp"
		if n := child(v, "protocol"); n != nil && len(n.Args) == 1 {
			proto = strings.ToLower(n.Args[0])
		}
		f.at(p+" protocol", proto, child(v, "protocol"), v)
		pers := time.Duration(0)
		if d, ok := kaSeconds(child(v, "persistence_timeout")); ok {
			pers = d
		}
		f.at(p+" persistence", pers.String(), child(v, "persistence_timeout"), v)
		quorum := 1
		if x, ok := kaInt(child(v, "quorum")); ok {
			quorum = x
		}
		f.at(p+" quorum", strconv.Itoa(quorum), child(v, "quorum"), v)
		hyst := 0
		if x, ok := kaInt(child(v, "hysteresis")); ok {
			hyst = x
		}
		f.at(p+" hysteresis", strconv.Itoa(hyst), child(v, "hysteresis"), v)
		sorry := "none"
		if n := child(v, "sorry_server"); n != nil && len(n.Args) == 2 {
			sorry = n.Args[0] + " " + n.Args[1]
		}
		f.at(p+" sorry_server", sorry, child(v, "sorry_server"), v)
		for _, rs := range v.Children {
			if rs.Name == "real_server" {
				kaRealServer(f, p, v, rs, fwd, ports[i])
			}
		}
	}
}

func kaRealServer(f facts, vp string, v, rs *Node, vsFwd string, vsPort int) {
	if len(rs.Args) < 1 {
		return
	}
	a, err := netip.ParseAddr(rs.Args[0])
	if err != nil {
		return
	}
	port := vsPort
	if len(rs.Args) == 2 {
		port, _ = strconv.Atoi(rs.Args[1])
	}
	fwd := vsFwd
	if n := child(rs, "lb_kind"); n != nil && len(n.Args) == 1 {
		fwd = strings.ToLower(n.Args[0])
	} else if n := child(rs, "lvs_method"); n != nil && len(n.Args) == 1 {
		fwd = strings.ToLower(n.Args[0])
	}
	if (fwd == "dr" || fwd == "tun") && vsPort != 0 {
		port = vsPort // the kernel does not rewrite the port
	}
	p := vp + " rs " + netip.AddrPortFrom(a, uint16(port)).String()
	f.set(p, "destination", rs)
	w := 1
	if x, ok := kaInt(child(rs, "weight")); ok {
		w = x
	}
	f.at(p+" weight", strconv.Itoa(w), child(rs, "weight"), rs, child(v, "weight"))
	f.at(p+" forwarding", fwd, nil, rs)
	// inhibit_on_failure: the real server's, else the virtual server's
	// (check_data.c). haldir's is per virtual server, so one real
	// server's setting changes its siblings: the warning at that
	// setting names it for all of them.
	inhibit := child(rs, "inhibit_on_failure") != nil || child(v, "inhibit_on_failure") != nil
	var inhibitEx []*Node
	for _, r := range v.Children {
		if r.Name == "real_server" {
			if n := child(r, "inhibit_on_failure"); n != nil {
				inhibitEx = append(inhibitEx, n)
			}
		}
	}
	f.at(p+" inhibit_on_failure", strconv.FormatBool(inhibit), child(rs, "inhibit_on_failure"), rs, inhibitEx...)

	var chk *Node
	for _, c := range rs.Children {
		if _, ok := kaCheckTypes[c.Name]; ok {
			chk = c
			break
		}
	}
	cp := p + " check"
	if chk == nil {
		f.set(cp, "none", rs)
		return
	}
	typ := kaCheckTypes[chk.Name]
	f.set(cp, typ, chk)
	// keepalived's inheritance: checker, then real server, then virtual
	// server, then the checker type's default (check_data.c).
	inherit := func(names ...string) *Node {
		for _, b := range []*Node{chk, rs, v} {
			for _, name := range names {
				if n := child(b, name); n != nil {
					return n
				}
			}
		}
		return nil
	}
	interval := 60 * time.Second
	in := inherit("delay_loop")
	if d, ok := kaSeconds(in); ok {
		interval = d
	}
	f.at(cp+" interval", interval.String(), in, chk)
	timeout := 5 * time.Second
	tn := inherit("connect_timeout")
	if typ == "exec" {
		timeout, tn = interval, child(chk, "misc_timeout")
		if d, ok := kaSeconds(tn); ok && d > 0 {
			timeout = d
		}
	} else if d, ok := kaSeconds(tn); ok {
		timeout = d
	}
	// Each url of an HTTP_GET/SSL_GET gets the timeout: the check's
	// budget is their sum.
	if typ == "http" || typ == "https" {
		n := 0
		for _, u := range chk.Children {
			if u.Name == "url" && child(u, "path") != nil {
				n++
			}
		}
		timeout *= time.Duration(max(n, 1))
	}
	f.at(cp+" timeout", timeout.String(), tn, chk)
	retry := map[string]int{"exec": 0, "dns": 3}[typ]
	if typ != "exec" && typ != "dns" {
		retry = 1
	}
	// nb_get_retry is HTTP_GET/SSL_GET's own (the later of it and retry
	// wins); real and virtual servers have only retry.
	rn := child(chk, "retry")
	if typ == "http" || typ == "https" {
		if n := child(chk, "nb_get_retry"); n != nil && (rn == nil || n.Line > rn.Line) {
			rn = n
		}
	}
	if rn == nil {
		rn = inherit("retry")
	}
	if x, ok := kaInt(rn); ok {
		retry = x
	}
	f.at(cp+" fall", strconv.Itoa(retry+1), rn, chk)
	f.set(cp+" rise", "1", chk)
	delay := time.Second
	switch typ {
	case "http", "https":
		delay = 3 * time.Second
	case "dns":
		delay = interval
	}
	dn := inherit("delay_before_retry")
	if d, ok := kaSeconds(dn); ok {
		delay = d
	}
	if retry == 0 {
		f.set(cp+" retry_delay", "-", chk)
	} else {
		f.at(cp+" retry_delay", delay.String(), dn, chk)
	}
	warmup := interval
	wn := inherit("warmup")
	if d, ok := kaSeconds(wn); ok {
		warmup = d
	}
	f.at(cp+" warmup", warmup.String(), wn, chk)
	initial := "up"
	if an := inherit("alpha"); an != nil {
		initial = "down"
	}
	f.at(cp+" initial_state", initial, inherit("alpha"), chk)
	cport := port
	if x, ok := kaInt(child(chk, "connect_port")); ok {
		cport = x
	}
	if typ != "exec" {
		f.at(cp+" port", strconv.Itoa(cport), child(chk, "connect_port"), chk)
	}
	switch typ {
	case "http", "https":
		var urls []string
		var ex []*Node
		for _, u := range chk.Children {
			if u.Name != "url" {
				continue
			}
			ex = append(ex, u)
			path, digest := "", ""
			var codes conf.StatusCodes
			for _, x := range u.Children {
				ex = append(ex, x)
				switch x.Name {
				case "path":
					if len(x.Args) == 1 {
						path = x.Args[0]
					}
				case "digest":
					if len(x.Args) == 1 {
						digest = strings.ToLower(x.Args[0])
					}
				case "status_code":
					for _, s := range x.Args {
						lo, hi, _ := strings.Cut(s, "-")
						l, err1 := strconv.Atoi(lo)
						h, err2 := strconv.Atoi(hi)
						if hi == "" {
							h, err2 = l, nil
						}
						if err1 == nil && err2 == nil {
							codes = append(codes, conf.StatusRange{Lo: l, Hi: h})
						}
					}
				}
			}
			if path == "" {
				continue // keepalived ignores a url without a path
			}
			if len(codes) == 0 {
				codes = conf.StatusCodes{{Lo: 200, Hi: 299}}
			}
			urls = append(urls, path+" "+codes.String()+" "+digest)
		}
		if len(ex) == 0 {
			ex = []*Node{chk}
		}
		f.set(cp+" urls", strings.Join(urls, "; "), ex...)
	case "udp":
		f.at(cp+" require_reply", strconv.FormatBool(child(chk, "require_reply") != nil), child(chk, "require_reply"), chk)
	case "exec":
		f.at(cp+" dynamic", strconv.FormatBool(child(chk, "misc_dynamic") != nil), child(chk, "misc_dynamic"), chk)
	case "dns":
		qt, qn := "SOA", "."
		if n := child(chk, "type"); n != nil && len(n.Args) == 1 {
			qt = strings.ToUpper(n.Args[0])
		}
		if n := child(chk, "name"); n != nil && len(n.Args) == 1 {
			qn = n.Args[0]
		}
		f.set(cp+" query", qt+" "+qn, chk, child(chk, "type"), child(chk, "name"))
	}
}

func haldirFacts(cfg *conf.Config) map[string]string {
	f := map[string]string{}
	for _, in := range cfg.VRRP {
		p := "vrrp " + in.Name
		f[p] = "instance"
		f[p+" version"] = strconv.Itoa(in.Version)
		f[p+" vrid"] = strconv.Itoa(in.VRID)
		f[p+" advert_interval"] = in.AdvertInterval.D().String()
		f[p+" preempt"] = strconv.FormatBool(in.Preempt)
		prio := in.Priority
		for _, t := range in.TrackScripts {
			prio += max(t.Weight, 0)
		}
		for _, t := range in.TrackInterfaces {
			prio += max(t.Weight, 0)
		}
		f[p+" priority"] = strconv.Itoa(prio)
		auth := "none"
		if in.Auth != nil && in.Auth.Type == "pass" {
			auth = "pass:" + in.Auth.Password
		}
		f[p+" auth"] = auth
		var vips []string
		for _, a := range in.VirtualAddresses {
			vips = append(vips, a.String())
		}
		sort.Strings(vips)
		f[p+" virtual_addresses"] = strings.Join(vips, ",")
	}
	for _, vs := range cfg.VirtualServers {
		key := netip.AddrPortFrom(vs.Address, uint16(vs.Port)).String()
		if vs.Fwmark != 0 {
			key = "fwmark-" + strconv.Itoa(vs.Fwmark)
		}
		p := "vs " + key
		f[p] = "service"
		f[p+" scheduler"] = vs.Scheduler
		f[p+" forwarding"] = vs.Forwarding
		f[p+" protocol"] = vs.Protocol
		f[p+" persistence"] = vs.PersistenceTimeout.D().String()
		f[p+" quorum"] = strconv.Itoa(vs.Quorum)
		f[p+" hysteresis"] = strconv.Itoa(vs.Hysteresis)
		f[p+" sorry_server"] = "none"
		if vs.SorryServer.IsValid() {
			f[p+" sorry_server"] = vs.SorryServer.Addr().String() + " " + strconv.Itoa(int(vs.SorryServer.Port()))
		}
		for _, rs := range vs.RealServers {
			port := rs.Port
			if port == 0 {
				port = vs.Port
			}
			rp := p + " rs " + netip.AddrPortFrom(rs.Address, uint16(port)).String()
			f[rp] = "destination"
			f[rp+" weight"] = strconv.Itoa(rs.Weight)
			f[rp+" forwarding"] = rs.Forwarding
			f[rp+" inhibit_on_failure"] = strconv.FormatBool(vs.InhibitOnFailure)
			c := rs.Check
			cp := rp + " check"
			if c == nil {
				f[cp] = "none"
				continue
			}
			f[cp] = c.Type
			f[cp+" interval"] = c.Interval.D().String()
			f[cp+" timeout"] = c.Timeout.D().String()
			f[cp+" fall"] = strconv.Itoa(c.Fall)
			f[cp+" rise"] = strconv.Itoa(c.Rise)
			if c.Fall <= 1 {
				f[cp+" retry_delay"] = "-"
			} else {
				f[cp+" retry_delay"] = c.RetryDelay.D().String()
			}
			f[cp+" warmup"] = c.Warmup.D().String()
			f[cp+" initial_state"] = c.InitialState
			if c.Type != "exec" {
				cport := port
				if c.ConnectPort != 0 {
					cport = c.ConnectPort
				}
				f[cp+" port"] = strconv.Itoa(cport)
			}
			switch c.Type {
			case "http", "https":
				var urls []string
				for _, u := range haldirURLs(c) {
					urls = append(urls, u.Path+" "+u.ExpectStatus.String()+" "+strings.ToLower(u.Digest))
				}
				f[cp+" urls"] = strings.Join(urls, "; ")
			case "udp":
				f[cp+" require_reply"] = strconv.FormatBool(haldirRequireReply(c))
			case "exec":
				f[cp+" dynamic"] = strconv.FormatBool(haldirDynamic(c))
			case "dns":
				f[cp+" query"] = strings.ToUpper(c.QueryType) + " " + c.QueryName
			}
		}
	}
	return f
}

// The comparator itself: a difference is reported unless a warning stands
// at the directive that decided it (or, for a default, its block).
func TestCompareSemantics(t *testing.T) {
	src := "virtual_server 192.0.2.9 80 {\n delay_loop 6\n real_server 10.0.0.1 80 {\n  TCP_CHECK {\n   retry 2\n  }\n }\n}\n"
	nodes, err := Parse(src, "k.conf")
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(nodes, "k.conf")
	cfg, err := conf.Parse([]byte(res.TOML), "k.toml")
	if err != nil {
		t.Fatal(err)
	}
	if d := compareSemantics(nodes, cfg, nil); len(d) != 0 {
		t.Fatalf("the converter's own result differs: %v", d)
	}
	chk := cfg.VirtualServers[0].RealServers[0].Check
	chk.Fall = 2                             // keepalived: retry 2 -> down on the 3rd failure
	chk.Timeout = conf.Duration(time.Second) // keepalived's default connect_timeout is 5s
	d := compareSemantics(nodes, cfg, nil)
	want := []string{
		"vs 192.0.2.9:80 rs 10.0.0.1:80 check fall: keepalived 3, haldir 2",
		"vs 192.0.2.9:80 rs 10.0.0.1:80 check timeout: keepalived 5s, haldir 1s",
	}
	if !slices.Equal(d, want) {
		t.Fatalf("differences %q, want %q", d, want)
	}
	// A warning at `retry` (line 5) names the first; one at TCP_CHECK
	// (line 4, where the default timeout applies) the second.
	if d := compareSemantics(nodes, cfg, []Warning{{"k.conf", 5, "x"}}); !slices.Equal(d, want[1:]) {
		t.Errorf("with a warning at retry: %q", d)
	}
	if d := compareSemantics(nodes, cfg, []Warning{{"k.conf", 4, "x"}}); !slices.Equal(d, want[:1]) {
		t.Errorf("with a warning at TCP_CHECK: %q", d)
	}
}
