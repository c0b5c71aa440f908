package bgp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

var (
	pWeb = netip.MustParsePrefix("192.0.2.10/32")
	pDNS = netip.MustParsePrefix("2001:db8::53/128")
	web  = conf.BGPAnnounceSpec{Prefix: pWeb, VirtualServers: []string{"web", "web-tls"}, Communities: []uint32{65010<<16 | 100}, MED: 10}
	dns  = conf.BGPAnnounceSpec{Prefix: pDNS, VirtualServers: []string{"dns"}}
)

func up(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func announce(s conf.BGPAnnounceSpec) Action { return Action{Route: routeOf(s), Announce: true} }
func withdraw(s conf.BGPAnnounceSpec, why string, graceful bool) Action {
	return Action{Route: routeOf(s), Reason: why, Graceful: graceful}
}

// TestAnnouncer drives one announcer through a sequence of inputs per
// case and checks the actions of each step and the prefixes' reasons.
func TestAnnouncer(t *testing.T) {
	down := func(names ...string) map[string]bool {
		m := up("web", "web-tls", "dns")
		for _, n := range names {
			m[n] = false
		}
		return m
	}
	type step struct {
		in      Inputs
		want    []Action
		reasons []string // per prefix, configured order
	}
	cases := []struct {
		name     string
		graceful bool
		steps    []step
	}{
		{"announced once every virtual server has quorum", true, []step{
			{Inputs{}, nil, []string{"no quorum yet: web, web-tls", "no quorum yet: dns"}},
			{Inputs{Quorum: map[string]bool{"web": true}}, nil, []string{"no quorum yet: web-tls", "no quorum yet: dns"}},
			{Inputs{Quorum: up("web", "web-tls", "dns")}, []Action{announce(web), announce(dns)}, []string{"", ""}},
			{Inputs{Quorum: up("web", "web-tls", "dns")}, nil, []string{"", ""}},
		}},
		{"quorum lost withdraws at once, not gracefully; regained announces", true, []step{
			{Inputs{Quorum: down()}, []Action{announce(web), announce(dns)}, []string{"", ""}},
			{Inputs{Quorum: down("web-tls")}, []Action{withdraw(web, "quorum lost: web-tls", false)}, []string{"quorum lost: web-tls", ""}},
			{Inputs{Quorum: down("web-tls", "web")}, nil, []string{"quorum lost: web, web-tls", ""}},
			{Inputs{Quorum: down()}, []Action{announce(web)}, []string{"", ""}},
		}},
		{"maintenance withdraws every prefix gracefully, off announces again", true, []step{
			{Inputs{Quorum: down()}, []Action{announce(web), announce(dns)}, []string{"", ""}},
			{Inputs{Quorum: down(), Maintenance: true}, []Action{withdraw(web, ReasonMaintenance, true), withdraw(dns, ReasonMaintenance, true)}, []string{"maintenance", "maintenance"}},
			{Inputs{Quorum: down("dns"), Maintenance: true}, nil, []string{"maintenance", "maintenance"}},
			{Inputs{Quorum: down("dns")}, []Action{announce(web)}, []string{"", "quorum lost: dns"}},
		}},
		{"graceful_shutdown off: maintenance withdraws at once", false, []step{
			{Inputs{Quorum: down()}, []Action{announce(web), announce(dns)}, []string{"", ""}},
			{Inputs{Quorum: down(), Maintenance: true}, []Action{withdraw(web, ReasonMaintenance, false), withdraw(dns, ReasonMaintenance, false)}, []string{"maintenance", "maintenance"}},
		}},
		{"stopping overrides maintenance and quorum", true, []step{
			{Inputs{Quorum: down("dns")}, []Action{announce(web)}, []string{"", "quorum lost: dns"}},
			{Inputs{Quorum: down("dns"), Maintenance: true, Stopping: true}, []Action{withdraw(web, ReasonStopping, true)}, []string{"stopping", "stopping"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAnnouncer()
			now := time.Unix(1000, 0)
			if got := a.SetConfig(c.graceful, []conf.BGPAnnounceSpec{web, dns}, Inputs{}, now); len(got) != 0 {
				t.Fatalf("SetConfig with no quorum: %v", got)
			}
			for i, s := range c.steps {
				now = now.Add(time.Second)
				got := a.Decide(s.in, now)
				if !reflect.DeepEqual(got, s.want) {
					t.Fatalf("step %d %+v: actions\n got %v\nwant %v", i, s.in, got, s.want)
				}
				var reasons []string
				for _, st := range a.State() {
					reasons = append(reasons, st.Reason)
					if st.Announced != (st.Reason == "") {
						t.Fatalf("step %d: %v announced %v with reason %q", i, st.Prefix, st.Announced, st.Reason)
					}
				}
				if !reflect.DeepEqual(reasons, s.reasons) {
					t.Fatalf("step %d: reasons %q, want %q", i, reasons, s.reasons)
				}
			}
		})
	}
}

// TestAnnouncerCounts: each withdraw of an announced prefix counts once
// under its reason; a reason that changes while withdrawn does not count.
func TestAnnouncerCounts(t *testing.T) {
	a := NewAnnouncer()
	now := time.Unix(1000, 0)
	all := up("web", "web-tls", "dns")
	a.SetConfig(true, []conf.BGPAnnounceSpec{web}, Inputs{Quorum: all}, now)
	a.Decide(Inputs{Quorum: map[string]bool{"web": false, "web-tls": true}}, now)
	a.Decide(Inputs{Quorum: map[string]bool{"web": false, "web-tls": true}, Maintenance: true}, now)
	a.Decide(Inputs{Quorum: all}, now)
	a.Decide(Inputs{Quorum: all, Maintenance: true}, now)
	a.Decide(Inputs{Quorum: all}, now)
	a.Decide(Inputs{Quorum: map[string]bool{"web": false, "web-tls": true}}, now.Add(time.Minute))
	st := a.State()[0]
	want := map[string]uint64{"quorum lost: web": 2, "maintenance": 1}
	if !reflect.DeepEqual(st.Withdrawals, want) {
		t.Fatalf("withdrawals %v, want %v", st.Withdrawals, want)
	}
	if !st.Since.Equal(now.Add(time.Minute)) {
		t.Fatalf("since %v, want the last withdraw", st.Since)
	}
}

// TestAnnouncerSetConfig: a reload withdraws a prefix it removes
// (gracefully), announces an added one that has quorum, and announces a
// prefix again when its communities or MED change.
func TestAnnouncerSetConfig(t *testing.T) {
	all := Inputs{Quorum: up("web", "web-tls", "dns")}
	now := time.Unix(1000, 0)
	web2 := web
	web2.MED = 20
	cases := []struct {
		name string
		next []conf.BGPAnnounceSpec
		want []Action
	}{
		{"unchanged", []conf.BGPAnnounceSpec{web, dns}, nil},
		{"removed", []conf.BGPAnnounceSpec{dns}, []Action{withdraw(web, ReasonRemoved, true)}},
		{"attributes changed", []conf.BGPAnnounceSpec{web2, dns}, []Action{announce(web2)}},
		{"virtual server without quorum added", []conf.BGPAnnounceSpec{{Prefix: pWeb, VirtualServers: []string{"web", "gone"}, Communities: web.Communities, MED: web.MED}, dns},
			[]Action{withdraw(web, "no quorum yet: gone", false)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAnnouncer()
			a.SetConfig(true, []conf.BGPAnnounceSpec{dns}, all, now)
			if got := a.SetConfig(true, []conf.BGPAnnounceSpec{web, dns}, all, now); !reflect.DeepEqual(got, []Action{announce(web)}) {
				t.Fatalf("added prefix: %v", got)
			}
			if got := a.SetConfig(true, c.next, all, now); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
			if len(a.State()) != len(c.next) {
				t.Fatalf("state %v for %d prefixes", a.State(), len(c.next))
			}
		})
	}
}

func TestLowestRouterID(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		in   []netip.Addr
		want string
	}{
		{[]netip.Addr{a("127.0.0.1"), a("10.0.0.12"), a("fe80::1"), a("10.0.0.11"), a("2001:db8::1"), a("192.0.2.1")}, "10.0.0.11"},
		{[]netip.Addr{a("169.254.1.1"), a("127.0.0.1"), a("2001:db8::1")}, ""},
	}
	for _, c := range cases {
		got, err := LowestRouterID(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%v: got %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%v: got %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	v4 := conf.BGPPeerSpec{Address: netip.MustParseAddr("10.0.0.1")}
	v6 := conf.BGPPeerSpec{Address: netip.MustParseAddr("2001:db8::1")}
	cases := []struct {
		peers []conf.BGPPeerSpec
		want  []netip.Prefix
	}{
		{[]conf.BGPPeerSpec{v4}, []netip.Prefix{pDNS}},
		{[]conf.BGPPeerSpec{v6}, []netip.Prefix{pWeb}},
		{[]conf.BGPPeerSpec{v4, v6}, nil},
	}
	for _, c := range cases {
		if got := Unreachable(conf.BGPSpec{Peers: c.peers, Announce: []conf.BGPAnnounceSpec{web, dns}}); !reflect.DeepEqual(got, c.want) {
			t.Errorf("peers %v: %v, want %v", c.peers, got, c.want)
		}
	}
}
