package director

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/vm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The traffic tests drive a Reconciler in-process against the real IPVS of
// the standard lab's director1 and send real client traffic through it:
//
//	client ─eth0─ [front] ─eth0─ director1 ─eth1─ [back] ─eth0─ real1..3, sorry, drclient
//
// director1 holds VIP4/VIP6 on eth0 and the real servers' gateway
// (BackGW4/BackGW6) on eth1, as an LVS-NAT director does, plus drVIP on
// eth1 for DR and TUN, which the real servers also hold on lo and the
// client drclient reaches on the back segment (their answers go to it
// straight, not through the director). Every real server answers HTTP on
// :80 with "name local-addr remote-addr", so each answer says which server
// took the connection, which address it was sent to (the real server's own
// under NAT, the VIP under DR and TUN) and that the client address
// survived. The subtests share one lab and one VM boot; each uses
// its own service (VIP port) and Reconciler, and removes its services when
// done.

const (
	// reqTimeout bounds one request (dial to last byte) under TCG and -race.
	reqTimeout = 10 * time.Second
	// tableWait bounds how long the Run loop may take to apply a verdict.
	tableWait = 15 * time.Second
)

var (
	drVIP     = netip.MustParseAddr("10.0.1.80") // DR and TUN VIP, on the back switch
	drClient4 = netip.MustParseAddr("10.0.1.99")
	sorry4    = netip.MustParseAddr("10.0.1.50")
)

// realAddrs returns the real servers' addresses in family v6 or v4, in
// lab order (real1, real2, real3).
func realAddrs(v6 bool) []netip.Addr {
	out := make([]netip.Addr, 3)
	for i := range out {
		if v6 {
			out[i] = netip.MustParseAddr(fmt.Sprintf("2001:db8:2::%d", 21+i))
		} else {
			out[i] = netip.AddrFrom4([4]byte{10, 0, 1, byte(21 + i)})
		}
	}
	return out
}

var realNames = []string{"real1", "real2", "real3"}

type trafficLab struct {
	*lab.Standard
	k        *ipvs.Client
	drClient *lab.Host
	sorry    *lab.Host
	lastSeq  []who // the answers of the last getN, for diagnose
}

func newTrafficLab(t *testing.T) *trafficLab {
	t.Helper()
	s := lab.NewStandardT(t, lab.StandardOptions{})
	d := s.Director1
	for _, a := range []struct {
		iface string
		p     netip.Prefix
	}{
		{"eth0", netip.PrefixFrom(lab.VIP4, 24)},
		{"eth0", netip.PrefixFrom(lab.VIP6, 64)},
		{"eth1", netip.PrefixFrom(lab.BackGW4, 24)},
		{"eth1", netip.PrefixFrom(lab.BackGW6, 64)},
		{"eth1", netip.PrefixFrom(drVIP, 32)},
	} {
		if err := d.AddAddr(a.iface, a.p); err != nil {
			t.Fatal(err)
		}
	}
	l := &trafficLab{Standard: s}
	var err error
	// A DR client on the back segment: the real servers answer it straight
	// from the VIP on their loopback, never through the director.
	if l.drClient, err = l.addBackHost("drclient", drClient4); err != nil {
		t.Fatal(err)
	}
	// The sorry server is a host of its own on the back segment, routed
	// through the director like the real servers (NAT).
	if l.sorry, err = l.addBackHost("sorry", sorry4); err != nil {
		t.Fatal(err)
	}
	if err := l.sorry.AddRoute(lab.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: lab.BackGW4}); err != nil {
		t.Fatal(err)
	}
	for _, h := range append(s.Reals(), l.sorry) {
		if _, err := h.ServeHTTP(":80", whoHandler(h.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range s.Reals() {
		// DR: the real servers accept traffic for the VIP on lo and neither
		// answer ARP for it nor use it as an ARP source (the standard lab
		// sets net.ipv4.conf.all; set the interfaces too, as a real
		// deployment would).
		if err := h.AddAddr("lo", netip.PrefixFrom(drVIP, 32)); err != nil {
			t.Fatal(err)
		}
		for _, kv := range []lab.Sysctl{
			{Key: "net.ipv4.conf.all.arp_ignore", Value: "1"},
			{Key: "net.ipv4.conf.all.arp_announce", Value: "2"},
			{Key: "net.ipv4.conf.eth0.arp_ignore", Value: "1"},
			{Key: "net.ipv4.conf.eth0.arp_announce", Value: "2"},
		} {
			if err := h.Sysctl(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
		if err := serveUDPWho(h, ":5353"); err != nil {
			t.Fatal(err)
		}
	}
	// Once in some 25 runs a client's connect failed with "no route to
	// host" after 3 s, the mark of a neighbour entry whose three unicast
	// probes went unanswered (a guest stall under TCG): let the clients
	// fall back to broadcast probes before giving up.
	for _, h := range []*lab.Host{s.Client, l.drClient} {
		if err := h.Sysctl("net.ipv4.neigh.eth0.mcast_resolicit", "3"); err != nil {
			t.Fatal(err)
		}
	}
	if l.k, err = ipvs.Open(d.NetNSPath()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.k.Close)
	return l
}

func (l *trafficLab) addBackHost(name string, a netip.Addr) (*lab.Host, error) {
	h, err := l.AddHost(name)
	if err != nil {
		return nil, err
	}
	if _, err := l.Connect(h, lab.LinkSpec{Iface: "eth0", Switch: "back", Addrs: []netip.Prefix{netip.PrefixFrom(a, 24)}}); err != nil {
		return nil, err
	}
	return h, nil
}

// whoHandler answers "name local-addr remote-addr".
func whoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintf(w, "%s %s %s\n", name, local, r.RemoteAddr)
	})
}

// serveUDPWho answers every datagram on addr with "name local-port
// remote-addr". The socket closes at lab teardown, which ends the loop.
func serveUDPWho(h *lab.Host, addr string) error {
	pc, err := h.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(fmt.Appendf(nil, "%s %s %s\n", h.Name(), pc.LocalAddr(), from), from)
		}
	}()
	return nil
}

// who is one answer of a backend.
type who struct {
	Name          string
	Local, Remote netip.AddrPort
}

func parseWho(b []byte) (who, error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return who{}, fmt.Errorf("answer %q: want \"name local remote\"", b)
	}
	w := who{Name: f[0]}
	var err1, err2 error
	w.Local, err1 = netip.ParseAddrPort(f[1])
	w.Remote, err2 = netip.ParseAddrPort(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return who{}, fmt.Errorf("answer %q: %w", b, err)
	}
	w.Local = netip.AddrPortFrom(w.Local.Addr().Unmap(), w.Local.Port())
	w.Remote = netip.AddrPortFrom(w.Remote.Addr().Unmap(), w.Remote.Port())
	return w, nil
}

// httpConn is a client's TCP connection through a VIP, kept open across
// requests (HTTP/1.1 keep-alive) to test what happens to established
// connections.
type httpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialHTTP(ctx context.Context, from *lab.Host, vip netip.AddrPort) (*httpConn, error) {
	ctx, cancel := context.WithTimeout(ctx, reqTimeout)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", vip.String())
	if err != nil {
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReader(c)}, nil
}

// ask sends one request and reads the answer within timeout.
func (h *httpConn) ask(timeout time.Duration, keepAlive bool) (who, error) {
	if err := h.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return who{}, err
	}
	conn := "close"
	if keepAlive {
		conn = "keep-alive"
	}
	if _, err := fmt.Fprintf(h.c, "GET / HTTP/1.1\r\nHost: vip\r\nConnection: %s\r\n\r\n", conn); err != nil {
		return who{}, err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return who{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return who{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return who{}, fmt.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	return parseWho(body)
}

func (h *httpConn) Close() error { return h.c.Close() }

// get makes one request on a new connection, so IPVS schedules it anew.
func get(ctx context.Context, from *lab.Host, vip netip.AddrPort) (who, error) {
	hc, err := dialHTTP(ctx, from, vip)
	if err != nil {
		return who{}, err
	}
	defer hc.Close()
	return hc.ask(reqTimeout, false)
}

// getN makes n requests, each on a new connection, and returns the
// answers in order. It fails t at the first error.
func (l *trafficLab) getN(t *testing.T, from *lab.Host, vip netip.AddrPort, n int) []who {
	t.Helper()
	out := make([]who, 0, n)
	for i := range n {
		w, err := get(context.Background(), from, vip)
		if err != nil {
			l.lastSeq = out
			t.Fatalf("request %d of %d from %s to %s: %v (answers so far: %v)", i+1, n, from.Name(), vip, err, names(out))
		}
		out = append(out, w)
	}
	l.lastSeq = out
	return out
}

// diagnose logs what a failed request most likely tripped on: the
// neighbour tables of the hosts on the path and the IPVS connections.
func (l *trafficLab) diagnose(t *testing.T) {
	t.Helper()
	var b strings.Builder
	for _, w := range l.lastSeq {
		fmt.Fprintf(&b, " %s<-%s", w.Name, w.Remote)
	}
	t.Logf("diagnose: last sequence:%s", b.String())
	for _, h := range append([]*lab.Host{l.Client, l.drClient, l.Director1}, l.Reals()...) {
		ns, err := h.Netlink().NeighList(0, unix.AF_INET)
		if err != nil {
			t.Logf("diagnose: %s neighbours: %v", h.Name(), err)
			continue
		}
		var b strings.Builder
		for _, n := range ns {
			fmt.Fprintf(&b, " %s=%s/%s", n.IP, n.HardwareAddr, neighState(n.State))
		}
		t.Logf("diagnose: %s neighbours:%s", h.Name(), b.String())
		if lk, err := h.Netlink().LinkByName("eth0"); err == nil {
			t.Logf("diagnose: %s eth0 %s", h.Name(), lk.Attrs().HardwareAddr)
		}
	}
	if lk, err := l.Director1.Netlink().LinkByName("eth1"); err == nil {
		t.Logf("diagnose: director1 eth1 %s", lk.Attrs().HardwareAddr)
	}
	// /proc/net follows the namespace of the process's main thread;
	// thread-self is the one Do switched.
	_ = l.Director1.Do(func() error {
		for _, f := range []string{"ip_vs", "ip_vs_conn"} {
			b, err := os.ReadFile("/proc/thread-self/net/" + f)
			t.Logf("diagnose: director1 %s (%v):\n%s", f, err, b)
		}
		return nil
	})
}

func neighState(s int) string {
	var out []string
	for bit, name := range map[int]string{netlink.NUD_INCOMPLETE: "incomplete", netlink.NUD_REACHABLE: "reachable",
		netlink.NUD_STALE: "stale", netlink.NUD_DELAY: "delay", netlink.NUD_PROBE: "probe", netlink.NUD_FAILED: "failed",
		netlink.NUD_NOARP: "noarp", netlink.NUD_PERMANENT: "permanent"} {
		if s&bit != 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "+")
}

func names(ws []who) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

// assertRoundRobin checks seq is round robin over want: one fixed order of
// all of want, repeated. One slip is tolerated and logged: in about one
// run in ten under TCG a connection shows at the server after the one the
// scheduler picked next (seen in the lab VM with the kernel's own
// per-destination counters exact), which shifts the rest of the sequence
// by one place; over two servers that is one server twice in a row (CI:
// real2 real1 real2 real1 real1 real2 real1 real2, with the connections'
// source ports all distinct and each IPVS entry naming the server that
// answered). The cause is not found yet. Two slips, a server missing or a
// foreign one fail.
func assertRoundRobin(t *testing.T, seq, want []string) {
	t.Helper()
	n := len(want)
	if len(seq) == 0 || len(seq)%n != 0 {
		t.Fatalf("sequence of %d answers is not a whole number of rounds over %d servers: %v", len(seq), n, seq)
	}
	best := -1
	for _, order := range permutations(want) {
		if slips := rotationSlips(seq, order); slips >= 0 && (best < 0 || slips < best) {
			best = slips
		}
	}
	switch {
	case best == 0:
	case best == 1:
		t.Logf("round robin over %v with one slip (see assertRoundRobin): %v", want, seq)
	default:
		t.Fatalf("not round robin over %v: %v", want, seq)
	}
	c := countNames(seq)
	for _, name := range want {
		if d := c[name] - len(seq)/n; d < -best || d > best {
			t.Fatalf("%s answered %d of %d, want %d: %v", name, c[name], len(seq), len(seq)/n, seq)
		}
	}
}

// rotationSlips walks seq along order (starting at seq[0]) and returns how
// many times one element of order had to be skipped, or -1 when seq does
// not follow order even so, or needs more than one skip.
func rotationSlips(seq, order []string) int {
	pos := slices.Index(order, seq[0])
	if pos < 0 {
		return -1
	}
	slips := 0
	for _, s := range seq[1:] {
		next := (pos + 1) % len(order)
		switch {
		case order[next] == s:
			pos = next
		case slips == 0 && len(order) > 1 && order[(next+1)%len(order)] == s:
			// Over two servers a slip is one server twice in a row.
			pos, slips = (next+1)%len(order), 1
		default:
			return -1
		}
	}
	return slips
}

func permutations(xs []string) [][]string {
	if len(xs) <= 1 {
		return [][]string{slices.Clone(xs)}
	}
	var out [][]string
	for i := range xs {
		rest := slices.Concat(xs[:i], xs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{xs[i]}, p...))
		}
	}
	return out
}

func countNames(seq []string) map[string]int {
	m := map[string]int{}
	for _, s := range seq {
		m[s]++
	}
	return m
}

// realsTOML renders one real_server table per address, named real1..3,
// with the given weights (0: left to the default) and extra lines.
func realsTOML(addrs []netip.Addr, port int, weights []int, extra string) string {
	var b strings.Builder
	for i, a := range addrs {
		fmt.Fprintf(&b, "\n[[virtual_server.real_server]]\nname = %q\naddress = %q\n", realNames[i], a)
		if port != 0 {
			fmt.Fprintf(&b, "port = %d\n", port)
		}
		if weights != nil {
			fmt.Fprintf(&b, "weight = %d\n", weights[i])
		}
		b.WriteString(extra)
	}
	return b.String()
}

// director loads a configuration through conf.Parse (defaults and
// validation as in production), applies it with one pass and returns the
// Reconciler and the service key of the first virtual server. At the end
// of the test the configuration is emptied and the services must leave the
// kernel.
func (l *trafficLab) director(t *testing.T, toml string) (*Reconciler, ipvs.ServiceKey, Result) {
	t.Helper()
	c, err := conf.Parse([]byte(toml), strings.ReplaceAll(t.Name(), "/", "_")+".toml")
	if err != nil {
		t.Fatalf("config does not load: %v\n%s", err, toml)
	}
	spec := conf.Compile(c)
	key := Key(&spec.VirtualServers[0])
	r := New(l.k, Options{Logger: quiet()})
	if err := r.SetConfig(spec); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	res, err := r.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("first pass: %v (applied %v)", err, opStrings(res.Applied))
	}
	t.Cleanup(func() {
		if err := r.SetConfig(&conf.Spec{}); err != nil {
			t.Errorf("emptying the configuration: %v", err)
			return
		}
		if res, err := r.Reconcile(context.Background()); err != nil {
			t.Errorf("removing the services: %v (applied %v)", err, opStrings(res.Applied))
		}
		svcs, err := l.k.GetServices()
		if err != nil {
			t.Errorf("GetServices: %v", err)
		}
		for _, s := range svcs {
			for i := range spec.VirtualServers {
				if Key(&spec.VirtualServers[i]) == s.Key {
					t.Errorf("service %s still in the kernel after its configuration was emptied", s.Key)
				}
			}
		}
	})
	// Registered last, so it runs first: the table is still there.
	t.Cleanup(func() {
		if t.Failed() {
			l.diagnose(t)
		}
	})
	return r, key, res
}

// kernelDests reads the service's destinations from the kernel, as
// "addr:weight" sorted, for comparing whole tables in one line.
func (l *trafficLab) kernelDests(t *testing.T, key ipvs.ServiceKey) []string {
	t.Helper()
	ds, err := l.k.GetDestinations(key)
	if err != nil {
		t.Fatalf("GetDestinations %s: %v", key, err)
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s w=%d", d.Addr, d.Weight)
	}
	slices.Sort(out)
	return out
}

func destStrings(ws map[netip.AddrPort]int) []string {
	var out []string
	for a, w := range ws {
		out = append(out, fmt.Sprintf("%s w=%d", a, w))
	}
	slices.Sort(out)
	return out
}

func (l *trafficLab) wantDests(t *testing.T, key ipvs.ServiceKey, want map[netip.AddrPort]int) {
	t.Helper()
	if got, w := l.kernelDests(t, key), destStrings(want); !slices.Equal(got, w) {
		t.Fatalf("kernel destinations of %s:\n got  %v\n want %v", key, got, w)
	}
}

// waitDests polls the kernel until the service's destinations are want,
// for changes the Run loop applies in the background.
func (l *trafficLab) waitDests(t *testing.T, key ipvs.ServiceKey, want map[netip.AddrPort]int) {
	t.Helper()
	w := destStrings(want)
	poll.UntilEvery(t, tableWait, 50*time.Millisecond, fmt.Sprintf("kernel destinations of %s to be %v", key, w), func() (bool, any) {
		got := l.kernelDests(t, key)
		return slices.Equal(got, w), got
	})
}

// serviceStats polls the service's kernel counters until they count conns
// connections: the kernel folds its per-CPU counters in every 2 s.
func (l *trafficLab) serviceStats(t *testing.T, key ipvs.ServiceKey, conns uint64) ipvs.Stats {
	t.Helper()
	var st ipvs.Stats
	poll.UntilEvery(t, tableWait, 100*time.Millisecond, fmt.Sprintf("service %s to count %d connections", key, conns), func() (bool, any) {
		svcs, err := l.k.GetServices()
		if err != nil {
			t.Fatalf("GetServices: %v", err)
		}
		i := slices.IndexFunc(svcs, func(s ipvs.ServiceInfo) bool { return s.Key == key })
		if i < 0 {
			t.Fatalf("service %s not in the kernel", key)
		}
		st = svcs[i].Stats
		return st.Conns >= conns, st.Conns
	})
	if st.Conns != conns {
		t.Fatalf("service %s counted %d connections, want %d", key, st.Conns, conns)
	}
	return st
}

// TestVMDirectorTraffic is issue #6's traffic tier: a Reconciler programs
// the real IPVS of a lab director and real clients connect through it.
func TestVMDirectorTraffic(t *testing.T) {
	if vm.RunInVM(t) {
		return
	}
	start := time.Now()
	l := newTrafficLab(t)
	t.Logf("lab ready in %s", time.Since(start).Round(time.Millisecond))
	reals4, reals6 := realAddrs(false), realAddrs(true)
	ap := func(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }

	t.Run("nat_rr", func(t *testing.T) {
		vip := ap(lab.VIP4, 80)
		r, key, res := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "nat-rr"
address = %q
port = 80
scheduler = "rr"
forwarding = "nat"
%s`, lab.VIP4, realsTOML(reals4, 80, nil, "")))
		// Service first, then its three destinations.
		if res.Writes != 4 || res.Applied[0].Kind != ipvs.OpNewService {
			t.Fatalf("first pass wrote %v", opStrings(res.Applied))
		}
		const n = 30
		ws := l.getN(t, l.Client, vip, n)
		assertRoundRobin(t, names(ws), realNames)
		for _, w := range ws {
			// NAT: the real server saw its own address as destination
			// and the client's as source.
			i := slices.Index(realNames, w.Name)
			if w.Local != ap(reals4[i], 80) || w.Remote.Addr() != netip.MustParseAddr("192.0.2.100") {
				t.Fatalf("%s saw local %s remote %s; want local %s and the client 192.0.2.100", w.Name, w.Local, w.Remote, ap(reals4[i], 80))
			}
		}
		// A steady-state pass writes nothing and reads every connection
		// entry back (closed ones linger as inactive).
		res2, err := r.Reconcile(context.Background())
		if err != nil || res2.Writes != 0 {
			t.Fatalf("steady pass: %d writes %v (%v)", res2.Writes, opStrings(res2.Applied), err)
		}
		s := r.Snapshot()
		if len(s) != 1 || s[0].Key != key || !s[0].InKernel {
			t.Fatalf("snapshot %+v", s)
		}
		for _, rs := range s[0].Reals {
			if !rs.InKernel || rs.KernelWeight != 1 || rs.ActiveConns+rs.InactiveConns != n/3 {
				t.Errorf("%s: in kernel %v weight %d, %d+%d connections; want weight 1 and %d connections",
					rs.Name, rs.InKernel, rs.KernelWeight, rs.ActiveConns, rs.InactiveConns, n/3)
			}
		}
		// Under NAT the replies pass the director, which rewrites them.
		if st := l.serviceStats(t, key, n); st.PktsIn == 0 || st.PktsOut == 0 {
			t.Fatalf("NAT service counted %d packets in and %d out; want both", st.PktsIn, st.PktsOut)
		}
	})

	t.Run("nat_wrr", func(t *testing.T) {
		vip := ap(lab.VIP4, 81)
		weights := []int{1, 2, 3}
		_, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "nat-wrr"
address = %q
port = 81
scheduler = "wrr"
%s`, lab.VIP4, realsTOML(reals4, 80, weights, "")))
		l.wantDests(t, key, map[netip.AddrPort]int{ap(reals4[0], 80): 1, ap(reals4[1], 80): 2, ap(reals4[2], 80): 3})
		// IPVS wrr is deterministic: it walks the destinations with a
		// current weight stepping down by the weights' gcd, so every
		// window of sum(weights) new connections holds each server exactly
		// its weight times. 60 connections are 10 such cycles.
		const cycle, n = 6, 60
		seq := names(l.getN(t, l.Client, vip, n))
		// The kernel's own account of the 60 picks is exact ...
		ds, err := l.k.GetDestinations(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			i := slices.Index(reals4, d.Addr.Addr())
			if want := uint32(weights[i] * n / cycle); d.ActiveConns+d.InactiveConns != want {
				t.Errorf("kernel: %s (weight %d) holds %d+%d connections, want %d", realNames[i], weights[i], d.ActiveConns, d.InactiveConns, want)
			}
		}
		// ... and what the clients saw is too, but for the one slip
		// assertRoundRobin describes.
		got := countNames(seq)
		exact := true
		for i, name := range realNames {
			want := weights[i] * n / cycle
			if d := got[name] - want; d < -1 || d > 1 {
				t.Errorf("%s (weight %d) answered %d of %d, want %d (all: %v)", name, weights[i], got[name], n, want, got)
			}
			exact = exact && got[name] == want
		}
		for i := cycle; i < n && exact; i++ {
			exact = seq[i] == seq[i-cycle]
		}
		if !exact {
			t.Logf("wrr sequence with a slip: %v", seq)
		}
		t.Logf("wrr cycle: %v", seq[:cycle])
	})

	t.Run("dr_rr", func(t *testing.T) {
		vip := ap(drVIP, 80)
		_, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "dr-rr"
address = %q
port = 80
scheduler = "rr"
forwarding = "dr"
%s`, drVIP, realsTOML(reals4, 0, nil, "")))
		ds, err := l.k.GetDestinations(key)
		if err != nil || len(ds) != 3 {
			t.Fatalf("destinations %+v %v", ds, err)
		}
		for _, d := range ds {
			if d.Forwarding != ipvs.ForwardDR || d.Addr.Port() != 80 {
				t.Fatalf("destination %+v: want dr to port 80", d)
			}
		}
		// The real servers must not answer ARP for the VIP on their lo:
		// only the director owns it on the wire.
		for _, h := range l.Reals() {
			for k, want := range map[string]string{"net.ipv4.conf.eth0.arp_ignore": "1", "net.ipv4.conf.eth0.arp_announce": "2"} {
				if v, err := h.ReadSysctl(k); err != nil || v != want {
					t.Fatalf("%s: %s = %q (%v), want %s", h.Name(), k, v, err, want)
				}
			}
		}
		const n = 30
		ws := l.getN(t, l.drClient, vip, n)
		assertRoundRobin(t, names(ws), realNames)
		for _, w := range ws {
			// DR: the frame reached the real server with the VIP still as
			// destination, and the client address untouched.
			if w.Local != vip || w.Remote.Addr() != drClient4 {
				t.Fatalf("%s saw local %s remote %s; want local %s (the VIP, as DR leaves it) and remote %s", w.Name, w.Local, w.Remote, vip, drClient4)
			}
		}
		// The answers went straight from the real servers to the client:
		// IPVS counted the requests' packets and not one reply.
		st := l.serviceStats(t, key, n)
		if st.PktsIn == 0 || st.PktsOut != 0 {
			t.Fatalf("DR service counted %d packets in and %d out; want some in and none out", st.PktsIn, st.PktsOut)
		}
	})

	for _, inhibit := range []bool{true, false} {
		t.Run(fmt.Sprintf("inhibit_on_failure=%v", inhibit), func(t *testing.T) {
			port := 82
			if !inhibit {
				port = 83
			}
			vip := ap(lab.VIP4, port)
			r, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "inhibit"
address = %q
port = %d
scheduler = "rr"
inhibit_on_failure = %v
check = { type = "tcp" }
%s`, lab.VIP4, port, inhibit, realsTOML(reals4, 80, nil, "")))
			// An established connection; keep-alive lets it carry more
			// requests later.
			hc, err := dialHTTP(context.Background(), l.Client, vip)
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Close()
			first, err := hc.ask(reqTimeout, true)
			if err != nil {
				t.Fatalf("first request on the held connection: %v", err)
			}
			x := slices.Index(realNames, first.Name)
			xAddr := ap(reals4[x], 80)
			t.Logf("held connection %s -> %s reached %s", hc.c.LocalAddr(), vip, first.Name)

			r.SetHealth(Verdict{Service: key, Real: xAddr, Up: false})
			res, err := r.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := map[netip.AddrPort]int{}
			for i, a := range reals4 {
				want[ap(a, 80)] = 1
				if i == x {
					want[ap(a, 80)] = 0
				}
			}
			if inhibit {
				wantOps(t, res.Applied, fmt.Sprintf("update_destination %s %s w=0 fwd=nat", key, xAddr))
			} else {
				wantOps(t, res.Applied, fmt.Sprintf("del_destination %s %s", key, xAddr))
				delete(want, xAddr)
			}
			l.wantDests(t, key, want)

			// The established connection: under inhibit it keeps its real
			// server. Removed, the kernel silently drops the connection's
			// packets (ip_vs_in: "the destination server is not
			// available"), so the request gets no answer.
			if inhibit {
				again, err := hc.ask(reqTimeout, true)
				if err != nil {
					t.Fatalf("held connection after %s was inhibited: %v", first.Name, err)
				}
				if again.Name != first.Name || again.Remote != first.Remote {
					t.Fatalf("held connection answered by %s from %s, want %s from %s", again.Name, again.Remote, first.Name, first.Remote)
				}
			} else {
				const silence = 3 * time.Second
				w, err := hc.ask(silence, true)
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("held connection to a removed real server: answer %+v, error %v; want no answer within %s (IPVS drops it)", w, err, silence)
				}
			}

			// New connections never go to x, and rr alternates over the rest.
			rest := slices.Delete(slices.Clone(realNames), x, x+1)
			assertRoundRobin(t, names(l.getN(t, l.Client, vip, 8)), rest)

			// x comes back: weight 1 again (inhibit) or re-added, and new
			// connections include it.
			r.SetHealth(Verdict{Service: key, Real: xAddr, Up: true})
			res, err = r.Reconcile(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if inhibit {
				wantOps(t, res.Applied, fmt.Sprintf("update_destination %s %s w=1 fwd=nat", key, xAddr))
			} else {
				wantOps(t, res.Applied, fmt.Sprintf("new_destination %s %s w=1 fwd=nat", key, xAddr))
			}
			want[xAddr] = 1
			l.wantDests(t, key, want)
			assertRoundRobin(t, names(l.getN(t, l.Client, vip, 9)), realNames)
		})
	}

	t.Run("tun", func(t *testing.T) {
		// The real servers decapsulate with the kernel's fallback tunnel
		// devices (tunl0 for ipip and gue, gre0 for gre; the guest loads
		// ipip, ip_gre and fou), then deliver to the VIP on lo and answer
		// the client directly, as under DR.
		for _, h := range l.Reals() {
			if err := h.AcceptTunnels(6080); err != nil {
				t.Fatal(err)
			}
		}
		vip := ap(drVIP, 80)
		// dev is the real servers' device the decapsulated packets must
		// arrive on.
		for _, tc := range []struct{ name, typ, extra, dev string }{
			{"ipip", "ipip", "", "tunl0"},
			{"gre", "gre", "", "gre0"},
			{"gre_csum", "gre", `tunnel_checksum = "csum"`, "grecsum"},
			{"gue", "gue", "tunnel_port = 6080", "tunl0"},
			{"gue_csum", "gue", "tunnel_port = 6080\ntunnel_checksum = \"csum\"", "tunl0"},
			{"gue_remcsum", "gue", "tunnel_port = 6080\ntunnel_checksum = \"remcsum\"", "tunl0"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.name == "gre_csum" {
					// gre0 expects no checksum: a checksummed device per
					// real server for this case only.
					for i, h := range l.Reals() {
						if err := h.AddGRE("grecsum", reals4[i], true); err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() {
							if lk, err := h.Netlink().LinkByName("grecsum"); err == nil {
								_ = h.Netlink().LinkDel(lk)
							}
						})
					}
				}
				_, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "tun-%s"
address = %q
port = 80
scheduler = "rr"
forwarding = "tun"
tunnel_type = %q
%s
%s`, tc.name, drVIP, tc.typ, tc.extra, realsTOML(reals4, 0, nil, "")))
				ds, err := l.k.GetDestinations(key)
				if err != nil || len(ds) != 3 || ds[0].Forwarding != ipvs.ForwardTunnel || ds[0].TunnelType.String() != tc.typ {
					t.Fatalf("destinations %+v %v; want 3 %s tunnels", ds, err, tc.typ)
				}
				rx := func() []uint64 {
					t.Helper()
					out := make([]uint64, 3)
					for i, h := range l.Reals() {
						lk, err := h.Netlink().LinkByName(tc.dev)
						if err != nil {
							t.Fatalf("%s: %s: %v", h.Name(), tc.dev, err)
						}
						out[i] = lk.Attrs().Statistics.RxPackets
					}
					return out
				}
				before := rx()
				const n = 9
				ws := l.getN(t, l.drClient, vip, n)
				assertRoundRobin(t, names(ws), realNames)
				// Each connection brings at least its SYN, ACK and request
				// through the tunnel.
				for i, after := range rx() {
					if d := after - before[i]; d < 3*n/3 {
						t.Errorf("%s: %d packets arrived on %s for %d connections, want at least %d", realNames[i], d, tc.dev, n/3, 3*n/3)
					}
				}
				for _, w := range ws {
					if w.Local != vip || w.Remote.Addr() != drClient4 {
						t.Fatalf("%s saw local %s remote %s; want the VIP %s and the client %s", w.Name, w.Local, w.Remote, vip, drClient4)
					}
				}
				// The counters move only every 2 s; one encapsulation
				// suffices to show the replies bypass the director.
				if tc.typ != "ipip" {
					return
				}
				if st := l.serviceStats(t, key, n); st.PktsIn == 0 || st.PktsOut != 0 {
					t.Fatalf("%s service counted %d packets in and %d out; want some in and none out", tc.typ, st.PktsIn, st.PktsOut)
				}
			})
		}
	})

	// inhibit_on_failure exists for persistent services: the kernel keeps
	// a persistence template pointing at a quiesced (weight 0) server
	// valid (net.ipv4.vs.expire_quiescent_template=0, the default), so a
	// persistent client keeps its server while it drains, whereas a
	// removed server's templates are dropped and the client moves.
	for _, inhibit := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistent_inhibit=%v", inhibit), func(t *testing.T) {
			port := 85
			if !inhibit {
				port = 86
			}
			vip := ap(lab.VIP4, port)
			r, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "persistent"
address = %q
port = %d
scheduler = "rr"
persistence_timeout = "60s"
inhibit_on_failure = %v
check = { type = "tcp" }
%s`, lab.VIP4, port, inhibit, realsTOML(reals4, 80, nil, "")))
			seq := names(l.getN(t, l.Client, vip, 4))
			x := slices.Index(realNames, seq[0])
			if c := countNames(seq); c[seq[0]] != 4 {
				t.Fatalf("persistent client spread over %v, want one server", seq)
			}
			r.SetHealth(Verdict{Service: key, Real: ap(reals4[x], 80), Up: false})
			if _, err := r.Reconcile(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := names(l.getN(t, l.Client, vip, 4))
			c := countNames(after)
			switch {
			case inhibit && c[seq[0]] != 4:
				t.Fatalf("after %s was inhibited the persistent client went to %v; want it kept on %s while draining", seq[0], after, seq[0])
			case !inhibit && (c[seq[0]] != 0 || c[after[0]] != 4):
				t.Fatalf("after %s was removed the persistent client went to %v; want one other server", seq[0], after)
			}
		})
	}

	t.Run("quorum_sorry", func(t *testing.T) {
		// Weights 2+2+2 = 6, quorum 4, hysteresis 1: the quorum is lost
		// when the alive weight drops below 3 and regained at 5 or more.
		vip := ap(lab.VIP4, 84)
		sorry := ap(sorry4, 80)
		r, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "quorum"
address = %q
port = 84
scheduler = "rr"
quorum = 4
hysteresis = 1
sorry_server = "%s"
check = { type = "tcp" }
%s`, lab.VIP4, sorry, realsTOML(reals4, 80, []int{2, 2, 2}, "")))
		// The verdicts go through the Run loop here, as in the daemon.
		stop := runLoop(t, r)
		defer func() {
			stop()
			if c := r.Counters(); c.FailedPasses != 0 {
				t.Errorf("%d failed passes: %v", c.FailedPasses, c.Errors)
			}
		}()
		pool := func(up ...int) map[netip.AddrPort]int {
			m := map[netip.AddrPort]int{}
			for _, i := range up {
				m[ap(reals4[i], 80)] = 2
			}
			return m
		}
		// verdict sends one verdict and waits until a pass has taken it in.
		verdict := func(i int, up bool) {
			t.Helper()
			r.SetHealth(Verdict{Service: key, Real: ap(reals4[i], 80), Up: up})
			poll.Until(t, tableWait, fmt.Sprintf("a pass to take in %s up=%v", realNames[i], up), func() (bool, any) {
				s := r.Snapshot()
				rs := s[0].Reals[i]
				return rs.HealthKnown && rs.Healthy == up, s
			})
		}
		state := func(wantUp, wantSorry bool, alive int) {
			t.Helper()
			s := r.Snapshot()[0]
			if s.QuorumUp != wantUp || s.SorryActive != wantSorry || s.AliveWeight != alive {
				t.Fatalf("quorum up %v sorry %v alive %d; want %v %v %d", s.QuorumUp, s.SorryActive, s.AliveWeight, wantUp, wantSorry, alive)
			}
		}
		sorryOnly := map[netip.AddrPort]int{sorry: 1}

		l.wantDests(t, key, pool(0, 1, 2))
		state(true, false, 6)
		assertRoundRobin(t, names(l.getN(t, l.Client, vip, 6)), realNames)

		verdict(0, false) // alive 4: above the low mark 3, the pool serves
		l.waitDests(t, key, pool(1, 2))
		state(true, false, 4)
		assertRoundRobin(t, names(l.getN(t, l.Client, vip, 4)), realNames[1:])

		verdict(1, false) // alive 2 < 3: quorum lost, the sorry server alone
		l.waitDests(t, key, sorryOnly)
		state(false, true, 2)
		assertRoundRobin(t, names(l.getN(t, l.Client, vip, 3)), []string{"sorry"})

		verdict(1, true) // alive 4 < 5: hysteresis keeps the quorum lost
		state(false, true, 4)
		l.wantDests(t, key, sorryOnly)
		assertRoundRobin(t, names(l.getN(t, l.Client, vip, 3)), []string{"sorry"})

		verdict(0, true) // alive 6 >= 5: the pool is back, the sorry server gone
		l.waitDests(t, key, pool(0, 1, 2))
		state(true, false, 6)
		assertRoundRobin(t, names(l.getN(t, l.Client, vip, 6)), realNames)
	})

	t.Run("nat_ipv6", func(t *testing.T) {
		vip := ap(lab.VIP6, 80)
		l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "nat6"
address = %q
port = 80
scheduler = "rr"
%s`, lab.VIP6, realsTOML(reals6, 80, nil, "")))
		ws := l.getN(t, l.Client, vip, 9)
		assertRoundRobin(t, names(ws), realNames)
		client6 := netip.MustParseAddr("2001:db8:1::100")
		for _, w := range ws {
			i := slices.Index(realNames, w.Name)
			if w.Local != ap(reals6[i], 80) || w.Remote.Addr() != client6 {
				t.Fatalf("%s saw local %s remote %s; want %s and %s", w.Name, w.Local, w.Remote, ap(reals6[i], 80), client6)
			}
		}
	})

	t.Run("udp_rr", func(t *testing.T) {
		vip := ap(lab.VIP4, 5353)
		_, key, _ := l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "udp"
address = %q
port = 5353
protocol = "udp"
scheduler = "rr"
%s`, lab.VIP4, realsTOML(reals4, 5353, nil, "")))
		if key.Protocol != ipvs.UDP {
			t.Fatalf("key %s is not udp", key)
		}
		// IPVS keys a UDP "connection" on the client's address and port:
		// each datagram comes from a socket bound to a port of its own, so
		// each is scheduled anew (and a retry reuses its port and server).
		const n = 9
		var seq []string
		for i := range n {
			w, err := udpAsk(l.Client, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.100"), uint16(41000+i)), vip)
			if err != nil {
				t.Fatalf("datagram %d: %v (answers so far %v)", i+1, err, seq)
			}
			if w.Remote.Port() != uint16(41000+i) {
				t.Fatalf("%s saw the datagram from %s, want client port %d", w.Name, w.Remote, 41000+i)
			}
			seq = append(seq, w.Name)
		}
		assertRoundRobin(t, seq, realNames)
	})

	t.Run("fwmark_local_client", func(t *testing.T) {
		// The guest has neither nft nor iptables to mark forwarded
		// packets, and a mark does not survive the veth into another
		// namespace. IPVS also schedules the director's own outgoing
		// packets (LOCAL_OUT), so a socket on director1 with SO_MARK set
		// hits the fwmark service whatever address it connects to. The
		// client's address on the front switch stands in for "any
		// address": nothing listens there on :80, so a packet IPVS failed
		// to catch would be refused.
		const mark = 7
		l.director(t, fmt.Sprintf(`
[[virtual_server]]
name = "mark"
fwmark = %d
scheduler = "rr"
%s`, mark, realsTOML(reals4, 80, nil, "")))
		dst := ap(netip.MustParseAddr("192.0.2.100"), 80)
		var seq []string
		for i := range 6 {
			w, err := getMarked(l.Director1, dst, mark)
			if err != nil {
				t.Fatalf("marked connection %d: %v (answers so far %v)", i+1, err, seq)
			}
			seq = append(seq, w.Name)
		}
		assertRoundRobin(t, seq, realNames)
		// Unmarked, the same connection is not the service's.
		if w, err := getMarked(l.Director1, dst, 0); err == nil {
			t.Fatalf("unmarked connection to %s was answered by %s; want it refused", dst, w.Name)
		}
	})
	t.Logf("lab and all cases took %s", time.Since(start).Round(time.Millisecond))
}

// udpAsk sends one datagram from local to vip inside host and returns the
// answer, resending (from the same port) up to three times.
func udpAsk(h *lab.Host, local, vip netip.AddrPort) (who, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(local)}
		c, err = d.Dial("udp", vip.String())
		return err
	})
	if err != nil {
		return who{}, err
	}
	defer c.Close()
	buf := make([]byte, 512)
	var last error
	for range 3 {
		if _, err := c.Write([]byte("who\n")); err != nil {
			return who{}, err
		}
		_ = c.SetReadDeadline(time.Now().Add(reqTimeout / 2))
		n, err := c.Read(buf)
		if err == nil {
			return parseWho(buf[:n])
		}
		last = err
	}
	return who{}, last
}

// getMarked makes one request from inside h on a new connection whose
// packets carry mark (0: none).
func getMarked(h *lab.Host, dst netip.AddrPort, mark int) (who, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		d := net.Dialer{Timeout: reqTimeout}
		if mark != 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
				}); err != nil {
					return err
				}
				return serr
			}
		}
		c, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return who{}, err
	}
	hc := &httpConn{c: c, br: bufio.NewReader(c)}
	defer hc.Close()
	return hc.ask(reqTimeout, false)
}
