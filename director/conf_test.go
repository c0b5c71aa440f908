package director

import (
	"net/netip"
	"testing"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// loadedConfig goes through the real loader, so the reconciler is tested on
// what conf's defaults and validation produce, not on hand-built structs.
const loadedConfig = `
[[vrrp]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = 100
virtual_addresses = ["192.0.2.10/24"]

[[virtual_server]]
name = "web"
address = "192.0.2.10"
port = 80
scheduler = "mh"
scheduler_flags = ["mh-port"]
persistence_timeout = "60s"
persistence_granularity = 24
quorum = 2
sorry_server = "10.0.0.30:0"
check = { type = "tcp", initial_state = "down" }

[[virtual_server.real_server]]
address = "10.0.0.21"

[[virtual_server.real_server]]
address = "10.0.0.22"
weight = 3
check = { type = "none" }

[[virtual_server]]
name = "tunnel6"
fwmark = 9
family = "inet6"
forwarding = "tun"
tunnel_type = "gue"
tunnel_port = 6080
tunnel_checksum = "csum"

[[virtual_server.real_server]]
address = "2001:db8::21"
`

func TestLoadedConfig(t *testing.T) {
	c, err := conf.Parse([]byte(loadedConfig), "director-test.toml")
	if err != nil {
		t.Fatalf("config does not load: %v", err)
	}
	k := ipvstest.New()
	r := newRec(t, k, c)
	reconcile(t, r)
	// 10.0.0.21 starts down (initial_state) and 10.0.0.22 has no check:
	// alive weight 3 >= quorum 2, so the pool is used, not the sorry server.
	wantOps(t, k.Writes(),
		"new_service fwmark 9 inet6 sched=wlc flags=0x0 timeout=0 mask=128",
		"new_destination fwmark 9 inet6 [2001:db8::21]:0 w=1 fwd=tun tun=gue port=6080 flags=1",
		"new_service tcp 192.0.2.10:80 sched=mh flags=0x11 timeout=60 mask=24",
		"new_destination tcp 192.0.2.10:80 10.0.0.22:80 w=3 fwd=nat",
	)
	s := r.Snapshot()
	if len(s) != 2 || s[0].Name != "web" || !s[0].QuorumUp || s[0].Reals[2].Addr != netip.MustParseAddrPort("10.0.0.30:80") {
		t.Fatalf("snapshot %+v", s)
	}
}
