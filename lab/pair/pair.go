// Package pair is the standard lab's director pair as `make demo` and
// `make soak` run haldir on it: each director's configuration (VRRP v3 at
// 100 ms for the front VIP and the back gateway in one sync group, a NAT
// round-robin service with HTTP checks, conn sync and the cluster on eth2),
// the cluster key, and reading a director's VIPs and IPVS table.
package pair

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/lab"
)

// The addresses haldir moves between the directors.
var (
	VIP = netip.PrefixFrom(lab.VIP4, 24)    // front, on eth0
	GW  = netip.PrefixFrom(lab.BackGW4, 24) // back gateway, on eth1
)

// Reals are the real servers' names and addresses, in lab order.
var Reals = []struct {
	Name string
	Addr netip.Addr
}{
	{"real1", netip.MustParseAddr("10.0.1.21")},
	{"real2", netip.MustParseAddr("10.0.1.22")},
	{"real3", netip.MustParseAddr("10.0.1.23")},
}

// Config is one director's haldir configuration.
type Config struct {
	Name     string // director1 or director2
	Priority int
	// Dir holds the control socket, state and the cluster key (KeyFile).
	Dir string
	// AdvertInterval, CheckInterval and CheckTimeout are durations as
	// TOML strings ("100ms").
	AdvertInterval, CheckInterval, CheckTimeout string
	// MetricsListen is the metrics endpoint; empty turns it off.
	MetricsListen string
	// Weights sets real servers' weights by name; absent means the default.
	Weights map[string]int
}

// Socket is the director's control socket.
func (c Config) Socket() string { return filepath.Join(c.Dir, c.Name+".sock") }

// Path is where WriteFiles puts the configuration.
func (c Config) Path() string { return filepath.Join(c.Dir, c.Name+".toml") }

// KeyFile is the cluster's shared key in dir.
func KeyFile(dir string) string { return filepath.Join(dir, "gossip.key") }

// WriteKey writes a fresh cluster key into dir: 32 random bytes, base64,
// owner-only.
func WriteKey(dir string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return os.WriteFile(KeyFile(dir), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// TOML is the configuration file's text.
func (c Config) TOML() string {
	self, peer := "10.0.0.11", "10.0.0.12"
	if c.Name == "director2" {
		self, peer = peer, self
	}
	var reals strings.Builder
	for i, r := range Reals {
		if i > 0 {
			reals.WriteString("\n")
		}
		fmt.Fprintf(&reals, "[[virtual_server.real_server]]\nname = %q\naddress = %q\n", r.Name, r.Addr)
		if w, ok := c.Weights[r.Name]; ok {
			fmt.Fprintf(&reals, "weight = %d\n", w)
		}
	}
	return fmt.Sprintf(`[global]
router_id = %[1]q
control_socket = %[3]q
state_dir = %[10]q
metrics_listen = %[11]q

# Both directors gossip over their own link (eth2): each shows the other in
# haldir status and names a split brain or configuration drift.
[cluster]
bind = "%[7]s:7946"
peers = ["%[8]s:7946"]
secret_file = %[9]q

# The client-facing address and the real servers' gateway move together.
[[vrrp]]
name = "front"
interface = "eth0"
vrid = 51
priority = %[2]d
advert_interval = %[4]q
virtual_addresses = ["192.0.2.1/24"]
# Failback waits for a table that can serve: without quorum for "web" a
# director ranks below its peer (150-60 < 100), and preempt_delay gives
# the checks that were in flight while its links were down time to report.
track_virtual_server = [{ name = "web", weight = -60 }]
preempt_delay = "1s"

[[vrrp]]
name = "back"
interface = "eth1"
vrid = 52
priority = %[2]d
advert_interval = %[4]q
virtual_addresses = ["10.0.1.1/24"]
track_virtual_server = [{ name = "web", weight = -60 }]
preempt_delay = "1s"

[[vrrp_sync_group]]
name = "lvs"
instances = ["front", "back"]

# The kernel's connection sync: master on the VRRP master, backup on the
# other, over the directors' own link, so established connections survive
# a failover.
[sync]
interface = "eth2"
vrrp_instance = "front"

[[virtual_server]]
name = "web"
address = "192.0.2.1"
port = 80
protocol = "tcp"
scheduler = "rr"
forwarding = "nat"

[virtual_server.check]
type = "http"
path = "/"
interval = %[5]q
timeout = %[6]q
rise = 1
fall = 2

%[12]s`, c.Name, c.Priority, c.Socket(), c.AdvertInterval, c.CheckInterval, c.CheckTimeout, self, peer, KeyFile(c.Dir), filepath.Join(c.Dir, c.Name+".state"), c.MetricsListen, reals.String())
}

// Holds reports whether h has p on iface.
func Holds(h *lab.Host, iface string, p netip.Prefix) (bool, error) {
	as, err := h.Addrs(iface)
	if err != nil {
		return false, err
	}
	return slices.Contains(as, p), nil
}

// Service is one IPVS service and its destinations.
type Service struct {
	Svc   *ipvs.Service
	Dests []*ipvs.Destination
}

// IPVSTable reads a director's IPVS table through netlink in its
// namespace, each service's destinations sorted by address.
func IPVSTable(h *lab.Host) ([]Service, error) {
	var hdl *ipvs.Handle
	err := h.Do(func() (err error) {
		hdl, err = ipvs.New("")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: opening IPVS netlink: %w", h.Name(), err)
	}
	defer hdl.Close()
	svcs, err := hdl.GetServices()
	if err != nil {
		return nil, fmt.Errorf("%s: listing IPVS services: %w", h.Name(), err)
	}
	var out []Service
	for _, s := range svcs {
		ds, err := hdl.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("%s: listing IPVS destinations: %w", h.Name(), err)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].Address.String() < ds[j].Address.String() })
		out = append(out, Service{s, ds})
	}
	return out, nil
}

// Conns is a director's IPVS connection table as the kernel prints it
// (/proc/net/ip_vs_conn: addresses and ports in hex, "TCP C0000264 D340 ...").
type Conns string

// ReadConns reads h's IPVS connection table.
func ReadConns(h *lab.Host) (Conns, error) {
	var table []byte
	err := h.Do(func() error {
		var err error
		table, err = os.ReadFile("/proc/thread-self/net/ip_vs_conn")
		return err
	})
	return Conns(table), err
}

// Holds says whether the table has an entry from client (IPv4).
func (c Conns) Holds(client netip.AddrPort) bool { return c.Entry(client) != "" }

// Entry is the table's line for client's connection (IPv4), "" when
// there is none: protocol, client, VIP, real server (hex), state and the
// seconds to its expiry.
func (c Conns) Entry(client netip.AddrPort) string {
	a := client.Addr().Unmap().As4()
	key := fmt.Sprintf(" %02X%02X%02X%02X %04X ", a[0], a[1], a[2], a[3], client.Port())
	for _, l := range strings.Split(string(c), "\n") {
		if strings.Contains(l, key) {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return ""
}
