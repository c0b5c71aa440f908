package director

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/conf"
)

// bgpSpec is a spec with virtual servers "web" (sched, real servers rs1
// and rs2 at weights w1 and w2, listed in that order unless reversed) and
// "dns" (wrr, never announced), and [bgp] announcing "web" when announce.
func bgpSpec(sched string, w1, w2 int, reversed, announce bool) *conf.Spec {
	web := conf.VirtualServer{Name: "web", Address: vip, Port: 80, Protocol: "tcp", Scheduler: sched, Forwarding: "dr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 80, Weight: w1}, {Address: rs2, Port: 80, Weight: w2}}}
	if reversed {
		slices.Reverse(web.RealServers)
	}
	dns := conf.VirtualServer{Name: "dns", Address: vip, Port: 53, Protocol: "udp", Scheduler: "wrr", Forwarding: "dr",
		RealServers: []conf.RealServer{{Address: rs1, Port: 53, Weight: 1}}}
	s := specOf(cfgOf(web, dns))
	if announce {
		s.BGP = &conf.BGPSpec{ASN: 65010, Announce: []conf.BGPAnnounceSpec{
			{Prefix: netip.MustParsePrefix("192.0.2.10/32"), VirtualServers: []string{"web"}},
			{Prefix: netip.MustParsePrefix("2001:db8::10/128"), VirtualServers: []string{"web"}},
		}}
	}
	return s
}

func TestAnnounceWarnings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     *conf.Spec
		want     int
		contains []string
	}{
		{"mh announced: none", bgpSpec("mh", 1, 1, false, true), 0, nil},
		{"sh announced: none", bgpSpec("sh", 1, 1, false, true), 0, nil},
		{"wrr announced: named with its prefixes", bgpSpec("wrr", 1, 1, false, true), 1,
			[]string{`"web"`, "192.0.2.10/32, 2001:db8::10/128", "scheduled by wrr", "use mh"}},
		{"rr not announced: none", bgpSpec("rr", 1, 1, false, false), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AnnounceWarnings(tc.spec)
			if len(got) != tc.want {
				t.Fatalf("warnings %q, want %d", got, tc.want)
			}
			for _, c := range tc.contains {
				if !strings.Contains(got[0], c) {
					t.Errorf("warning %q does not say %q", got[0], c)
				}
			}
		})
	}
}

// TestAnnouncedDrift: the cluster's drift check, fed each director's
// conf hashes and AnnouncedHashes as the daemon gossips them, names an
// announced virtual server whose real servers or weights differ, and not
// one whose real servers are only listed in another order.
func TestAnnouncedDrift(t *testing.T) {
	base := bgpSpec("mh", 1, 2, false, true)
	node := func(name string, s *conf.Spec) cluster.NodeState {
		h := AnnouncedHashes(s)
		for k, v := range s.Hashes() {
			h[k] = v
		}
		return cluster.NodeState{Name: name, Config: h}
	}
	for _, tc := range []struct {
		name  string
		other *conf.Spec
		want  []string // sections that drift
	}{
		{"same", bgpSpec("mh", 1, 2, false, true), nil},
		{"listed in another order: no drift", bgpSpec("mh", 1, 2, true, true), nil},
		{"a weight differs", bgpSpec("mh", 1, 3, false, true), []string{"announced virtual_server web", "virtual_server"}},
		{"another scheduler", bgpSpec("sh", 1, 2, false, true), []string{"announced virtual_server web", "virtual_server"}},
		{"a real server more", func() *conf.Spec {
			s := bgpSpec("mh", 1, 2, false, true)
			s.VirtualServers[0].RealServers = append(s.VirtualServers[0].RealServers, conf.RealServerSpec{Addr: netip.AddrPortFrom(rs3, 80), Weight: 1})
			return s
		}(), []string{"announced virtual_server web", "virtual_server"}},
		{"not announced there", bgpSpec("mh", 1, 2, false, false), []string{"announced virtual_server web", "bgp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drift []string
			for _, p := range cluster.Problems([]cluster.NodeState{node("d1", base), node("d2", tc.other)}) {
				if s, ok := strings.CutPrefix(p, "config drift: "); ok {
					drift = append(drift, s[:strings.Index(s, " differs")])
				}
			}
			if !slices.Equal(drift, tc.want) {
				t.Fatalf("drift in %q, want %q", drift, tc.want)
			}
		})
	}
	if h := AnnouncedHashes(bgpSpec("mh", 1, 2, false, false)); len(h) != 0 {
		t.Fatalf("hashes without [bgp]: %v", h)
	}
}
