// Package bgpha runs haldir's BGP mode end to end on the BGP lab (lab.BGP):
// the real haldir binary on each of the three directors (one process each:
// GoBGP keeps package-level state, so one process never runs two speakers),
// announcing the VIP to the FRR router with BFD, an LVS-DR service on every
// director with health checks, N-way conn sync and the cluster view. It
// drives the events the BGP mode is measured by (a lost quorum, maintenance,
// a SIGKILL, a director joining back) and measures them at the router and
// on long-lived client connections. The VM test, `make bench`'s BGP table
// and `make demo-bgp` share it; it needs IPVS (the lab VM) and FRRouting.
package bgpha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/pair"
)

// Ports of the two virtual servers on the VIP: an echo service (the held
// connections, a TCP check) and HTTP (an HTTP check). The prefix is
// announced while both have quorum.
const (
	EchoPort = 7
	HTTPPort = 80
)

// VIP is the announced prefix.
var VIP = netip.PrefixFrom(lab.BGPVIP4, 32)

// Options choose the variant of the cluster.
type Options struct {
	// Scheduler of both virtual servers: "mh" (the default, with mh-port)
	// or another IPVS scheduler ("rr") for comparison.
	Scheduler string
	// NoSync leaves [sync] out: no conn sync among the directors.
	NoSync bool
	// Log, when set, gets the directors' haldir log lines matching
	// LogFilter (all when nil) as they come, prefixed with the director's
	// name.
	Log       io.Writer
	LogFilter *regexp.Regexp
	// MetricsListen is each director's metrics endpoint (in its own
	// namespace); empty leaves it off.
	MetricsListen string
}

func (o Options) scheduler() string {
	if o.Scheduler == "" {
		return "mh"
	}
	return o.Scheduler
}

// String names the variant for tables: "mh + sync", "rr, no sync".
func (o Options) String() string {
	s := o.scheduler()
	if o.NoSync {
		return s + ", no sync"
	}
	return s + " + N-way sync"
}

// Cluster is the BGP lab with haldir on its three directors.
type Cluster struct {
	*lab.BGP
	opts   Options
	haldir string
	dir    string
	// Proc is each director's haldir process (nil while not running).
	Proc [3]*lab.Proc
	// Weights are the real servers' weights by name (the default when not
	// set) in what Config writes: a soak reloads with one changed.
	Weights map[string]int
}

// Start builds the BGP lab (named name) and starts haldir (the binary at
// haldirPath) on the three directors, and returns once the router holds
// three next hops for VIP, every BGP and BFD session up. Close it.
func Start(ctx context.Context, name, haldirPath string, opts Options) (*Cluster, error) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return nil, errors.New("bgpha: this kernel has no IPVS (run in the lab VM)")
	}
	b, err := lab.NewBGP(name, lab.BGPOptions{HTTPPort: HTTPPort, RealVIPs: []netip.Prefix{VIP}})
	if err != nil {
		return nil, err
	}
	c := &Cluster{BGP: b, opts: opts, haldir: haldirPath}
	if err := c.setUp(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) setUp(ctx context.Context) error {
	for _, r := range c.Reals() {
		if _, err := r.ServeEcho(netip.AddrPortFrom(netip.IPv4Unspecified(), EchoPort).String()); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "haldir-bgpha-")
	if err != nil {
		return err
	}
	c.dir = dir
	if err := pair.WriteKey(dir); err != nil {
		return err
	}
	for i := range c.Director {
		if err := os.WriteFile(c.ConfigFile(i), []byte(c.Config(i)), 0o644); err != nil {
			return err
		}
		if out, err := c.Director[i].Run(ctx, []string{c.haldir, "check", "-c", c.ConfigFile(i)}, nil); err != nil {
			return fmt.Errorf("haldir check on director%d: %w\n%s", i+1, err, out)
		}
	}
	// The router logs every update it receives, with the time: the
	// maintenance drill reads when GRACEFUL_SHUTDOWN and the withdraw came.
	if _, err := c.RouterFRR.Vtysh(ctx, "debug bgp updates in"); err != nil {
		return err
	}
	for i := range c.Director {
		if err := c.StartDirector(ctx, i); err != nil {
			return err
		}
	}
	return c.WaitSettled(ctx)
}

// WaitSettled waits until the router has every session (BGP and BFD) up
// and three next hops for VIP.
func (c *Cluster) WaitSettled(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	all := lab.DirectorEdges4()
	if err := c.RouterFRR.WaitBGPEstablished(ctx, all...); err != nil {
		return c.withLogs(err)
	}
	if err := c.RouterFRR.WaitBFDUp(ctx, all...); err != nil {
		return c.withLogs(err)
	}
	if _, err := c.Router.WaitNextHops(ctx, VIP, all...); err != nil {
		return c.withLogs(err)
	}
	return nil
}

// withLogs adds the tails of the router's and the directors' logs to err.
func (c *Cluster) withLogs(err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n--- router FRR:\n%s", err, tail(c.RouterFRR.Logs(), 40))
	for i, p := range c.Proc {
		if p != nil {
			fmt.Fprintf(&b, "\n--- director%d haldir (no health transitions):\n%s", i+1, tail(notMatching(p.Output(), healthLine), 40))
		}
	}
	return errors.New(b.String())
}

var healthLine = regexp.MustCompile(`msg="(health transition|virtual server quorum)"`)

// notMatching drops the lines of s that match re.
func notMatching(s string, re *regexp.Regexp) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !re.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Close stops haldir and tears the lab down.
func (c *Cluster) Close() error {
	for i := range c.Proc {
		c.Kill(i)
	}
	err := c.BGP.Close()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
	return err
}

func (c *Cluster) keyFile() string { return filepath.Join(c.dir, "gossip.key") }

// ConfigFile is where director i's haldir reads its configuration.
func (c *Cluster) ConfigFile(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("director%d.toml", i+1))
}
func (c *Cluster) socket(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("director%d.sock", i+1))
}

// syncAddr is director i's address on the sync net (gossip, conn sync).
func syncAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(11 + i)}) }

// RealAddr is real server j's address on the back net.
func RealAddr(j int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 1, byte(21 + j)}) }

// Config is director i's haldir configuration.
func (c *Cluster) Config(i int) string {
	var peers []string
	for j := range c.Director {
		if j != i {
			peers = append(peers, fmt.Sprintf("%q", netip.AddrPortFrom(syncAddr(j), 7946).String()))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[global]
router_id = "director%[1]d"
control_socket = %[2]q
state_dir = %[3]q
metrics_listen = %[7]q

# Every director gossips over the sync net: each shows the others, which
# of them announce the VIP, and names configuration drift.
[cluster]
bind = "%[4]s:7946"
peers = [%[5]s]
secret_file = %[6]q
`, i+1, c.socket(i), filepath.Join(c.dir, fmt.Sprintf("director%d.state", i+1)), syncAddr(i), strings.Join(peers, ", "), c.keyFile(), c.opts.MetricsListen)
	if !c.opts.NoSync {
		b.WriteString(`
# N-way conn sync (no vrrp_instance): every director sends its connections
# to the others and receives theirs.
[sync]
interface = "eth2"
sync_id = 18
`)
	}
	flags := ""
	if c.opts.scheduler() == "mh" {
		flags = "\nscheduler_flags = [\"mh-port\"]"
	}
	fmt.Fprintf(&b, `
# The VIP is announced to the router while both virtual servers have
# quorum here and the director is not in maintenance. BFD: the router
# detects a lost director in 300 ms (its 100 ms x this multiplier 3); this
# director gives up on the router after 900 ms (min_rx 300 ms x the
# router's 3), because the lab's TCG guest stalls for 300 ms now and then
# and a director resetting its session on a stall withdraws the VIP.
[bgp]
asn = %[1]d
router_id = %[2]q

  [[bgp.peer]]
  address = %[3]q
  asn = %[4]d
  bfd = { min_tx = "100ms", min_rx = "300ms", multiplier = 3 }

[[bgp.announce]]
prefix = %[5]q
virtual_servers = ["echo", "web"]
`, lab.DirectorASN, lab.DirectorEdge4(i), lab.RouterEdge4, lab.RouterASN, VIP)
	for _, vs := range []struct {
		name, check string
		port        int
	}{
		{"echo", `type = "tcp"`, EchoPort},
		{"web", `type = "http"
path = "/"`, HTTPPort},
	} {
		fmt.Fprintf(&b, `
[[virtual_server]]
name = %[1]q
address = %[2]q
port = %[3]d
protocol = "tcp"
scheduler = %[4]q%[5]s
forwarding = "dr"

[virtual_server.check]
%[6]s
interval = "500ms"
timeout = "400ms"
rise = 1
fall = 2
`, vs.name, lab.BGPVIP4, vs.port, c.opts.scheduler(), flags, vs.check)
		for j := range c.Real {
			name := fmt.Sprintf("real%d", j+1)
			fmt.Fprintf(&b, `
[[virtual_server.real_server]]
name = %q
address = %q
`, name, RealAddr(j))
			if w, ok := c.Weights[name]; ok {
				fmt.Fprintf(&b, "weight = %d\n", w)
			}
		}
	}
	return b.String()
}

// StartDirector starts haldir on director i and waits until it has
// started (not for its routes).
func (c *Cluster) StartDirector(ctx context.Context, i int) error {
	h := c.Director[i]
	p, err := h.Start(ctx, []string{c.haldir, "run", "-c", c.ConfigFile(i)}, nil)
	if err != nil {
		return err
	}
	c.Proc[i] = p
	if c.opts.Log != nil {
		filter := c.opts.LogFilter
		if filter == nil {
			filter = regexp.MustCompile(``)
		}
		go p.Follow(ctx, filter, func(l lab.Line) { fmt.Fprintf(c.opts.Log, "%s | %s\n", h.Name(), l.Text) })
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := p.WaitForLine(wctx, regexp.MustCompile(`haldir started`)); err != nil {
		return fmt.Errorf("director%d: haldir did not start: %w\n%s", i+1, err, p.Output())
	}
	return nil
}

// Kill sends SIGKILL to director i's haldir (nothing when it does not
// run) and waits for it to end. The kernel keeps what haldir set up:
// the IPVS table, the addresses, the sync daemons.
func (c *Cluster) Kill(i int) {
	p := c.Proc[i]
	if p == nil {
		return
	}
	_ = p.Kill()
	<-p.Done()
	c.Proc[i] = nil
}

// Haldir runs a haldir command against director i's control socket.
func (c *Cluster) Haldir(ctx context.Context, i int, args ...string) (string, error) {
	argv := append([]string{c.haldir}, args...)
	argv = append(argv, "-s", c.socket(i))
	out, err := c.Director[i].Run(ctx, argv, nil)
	if err != nil {
		return out, fmt.Errorf("director%d: haldir %s: %w\n%s", i+1, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Status asks director i's haldir for its status over its control socket.
func (c *Cluster) Status(ctx context.Context, i int) (control.Status, error) {
	cl, err := control.Dial(c.socket(i))
	if err != nil {
		return control.Status{}, fmt.Errorf("director%d: %w", i+1, err)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("director%d: status: %w", i+1, err)
	}
	return st, nil
}

// NextHopsWithout returns the directors' edge addresses but director i's.
func NextHopsWithout(i int) []netip.Addr {
	var out []netip.Addr
	for j, a := range lab.DirectorEdges4() {
		if j != i {
			out = append(out, a)
		}
	}
	return out
}
