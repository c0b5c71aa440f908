package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/control"
	"github.com/haldir-lb/haldir/internal/poll"
	"github.com/haldir-lb/haldir/lab"
)

// The handoff benchmark (issue 17) moves mastership on purpose, the ways
// an operator can, while a client on the LAN opens a new TCP connection
// to the VIP every millisecond, and counts the connections that failed
// and the longest a connection took (its stall):
//
//   - haldir handoff: make-before-break (the target takes over and
//     announces before the old master releases);
//   - haldir handoff with use_vmac: the same, with the VIP's MAC address
//     the virtual MAC, so the hosts' ARP caches need no change;
//   - keepalived, lower the master's priority and reload (SIGHUP):
//     keepalived's best planned method;
//   - haldir, graceful stop (SIGTERM): priority 0, the backup takes over
//     after its Skew_Time.
//
// Each director answers on the VIP itself (port handoffPort, any
// address), with its name: the namespace lab has no IPVS, so the
// long-lived connections of the measure are the VM lab's
// (make demo's handoff step); here a connection a director accepted
// breaks when the VIP moves, whatever the method.

const (
	handoffPort = 8080
	// handoffConnTimeout bounds one client connection: a SYN to a director
	// that released the VIP is dropped and retransmitted after 1 s, so a
	// gap shows as a stall of a second or more, not as a failure.
	handoffConnTimeout = 3 * time.Second
	// handoffEvery is how often the client opens a new connection.
	handoffEvery = time.Millisecond
	// handoffInterval is the advert interval of the pairs: keepalived's
	// and haldir's default.
	handoffInterval = time.Second
)

// handoffMethod is one way of moving mastership.
type handoffMethod struct {
	name string
	impl string // implHaldir or implKeepalived
	vmac bool
	// move moves mastership away from master (index into the pair);
	// it returns when the method's own step is done (not when the
	// move is complete). nil: the baseline, nothing moves.
	move func(p *handoffPair, master int) error
	// restore undoes what move did to the old master, outside the
	// measured window (a stopped daemon is started again).
	restore func(p *handoffPair, old int)
}

// handoffMethods are the methods measured, in the table's order.
func handoffMethods() []handoffMethod {
	haldirHandoff := func(p *handoffPair, master int) error {
		c, err := control.Dial(p.d[master].socket())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), settle)
		defer cancel()
		reply, err := c.Handoff(ctx, control.HandoffRequest{Timeout: "5s", Reason: "bench"})
		if err != nil {
			return err
		}
		for _, r := range reply.Results {
			if !r.OK || r.Method != "make-before-break" {
				return fmt.Errorf("handoff of %s: %+v", r.Instance, r)
			}
		}
		return nil
	}
	return []handoffMethod{
		// The lab's own floor: the client's stall with nothing moving.
		{name: "no move (baseline)", impl: implHaldir},
		{name: "haldir handoff", impl: implHaldir, move: haldirHandoff},
		{name: "haldir handoff, use_vmac", impl: implHaldir, vmac: true, move: haldirHandoff},
		{name: "keepalived priority + reload", impl: implKeepalived, move: func(p *handoffPair, master int) error {
			// Lower the master below the backup and reload; the
			// next round's master is the other one, so the old
			// master gets its priority back at once (a backup with
			// equal priority does not preempt).
			return p.d[master].reloadPriority(benchPriority - 50)
		}, restore: func(p *handoffPair, old int) {
			if err := p.d[old].reloadPriority(benchPriority); err != nil {
				p.tb.Fatal(err)
			}
		}},
		{name: "haldir graceful stop", impl: implHaldir, move: func(p *handoffPair, master int) error {
			return p.d[master].signal()
		}, restore: func(p *handoffPair, old int) {
			p.d[old].waitExit()
			p.d[old].start()
		}},
	}
}

// handoffPair is two daemons, their services on the VIP and the client.
type handoffPair struct {
	tb     testing.TB
	m      handoffMethod
	d      [2]*benchDaemon
	client *lab.Host
}

// socket is a haldir daemon's control socket.
func (d *benchDaemon) socket() string { return filepath.Join(d.dir, "haldir.sock") }

// reloadPriority rewrites keepalived's configuration with priority p and
// reloads it (SIGHUP).
func (d *benchDaemon) reloadPriority(p int) error {
	ins := slices.Clone(d.ins)
	for i := range ins {
		ins[i].priority = p
	}
	d.ins = ins
	if err := d.writeConfig(); err != nil {
		return err
	}
	return d.proc.Signal(syscall.SIGHUP)
}

// handoffConfig renders a daemon's configuration: the bench's, and for
// haldir the cluster (make-before-break needs it) and use_vmac.
func handoffConfig(m handoffMethod, peer netip.Addr, secret string) func(d *benchDaemon) string {
	return func(d *benchDaemon) string {
		cfg := d.im.config(d.dir, d.h.Name(), d.ins)
		if d.im.name != implHaldir {
			return cfg
		}
		if m.vmac {
			cfg = strings.Replace(cfg, "preempt = true\n", "preempt = true\nuse_vmac = true\n", 1)
		}
		return cfg + fmt.Sprintf("\n[cluster]\nbind = %q\npeers = [%q]\nsecret_file = %q\n",
			netip.AddrPortFrom(d.addr, 7946).String(), netip.AddrPortFrom(peer, 7946).String(), secret)
	}
}

// handoffSample is one move as the client saw it.
type handoffSample struct {
	conns    int           // connections opened in the window
	failed   int           // of which failed (refused, reset, timed out)
	stall    time.Duration // the longest a successful connection took
	took     time.Duration // the method's step until the other director answered
	firstErr string
}

// runHandoffMethod runs rounds moves of one method in a lab of its own.
func runHandoffMethod(tb testing.TB, im benchImpl, m handoffMethod, rounds int) []handoffSample {
	tb.Helper()
	l := buildBenchLAN(tb, "handoff-"+strings.NewReplacer(" ", "", ",", "", "+", "").Replace(m.name), "c")
	defer l.Close()
	secret := filepath.Join(tb.TempDir(), "gossip.key")
	if err := os.WriteFile(secret, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	p := &handoffPair{tb: tb, m: m, client: l.Host("c")}
	for i, h := range []string{"r1", "r2"} {
		host := l.Host(h)
		ln, err := host.Listen("tcp", fmt.Sprintf(":%d", handoffPort))
		if err != nil {
			tb.Fatal(err)
		}
		go serveName(ln, h)
		ins := []benchInstance{{name: "vi", vrid: vrid, priority: benchPriority, interval: handoffInterval, vip: vip4}}
		peer := benchAddrs[[]string{"r2", "r1"}[i]].Addr()
		p.d[i] = launchDaemon(tb, im, host, benchAddrs[h].Addr(), ins, "", -1, handoffConfig(m, peer, secret))
	}
	var out []handoffSample
	for range rounds {
		out = append(out, p.round())
	}
	for _, d := range p.d {
		d.stop()
	}
	return out
}

// serveName answers each connection with name and a newline.
func serveName(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			c.SetDeadline(time.Now().Add(handoffConnTimeout))
			io.WriteString(c, name+"\n")
			c.Close()
		}()
	}
}

// holder is the index of the one director holding the VIP, or -1.
func (p *handoffPair) holder() int {
	var hs []int
	for i, d := range p.d {
		if d.holds(vip4) {
			hs = append(hs, i)
		}
	}
	if len(hs) != 1 {
		return -1
	}
	return hs[0]
}

// round waits for a steady pair, then moves mastership with the client
// running, and returns what the client saw.
func (p *handoffPair) round() handoffSample {
	tb := p.tb
	tb.Helper()
	master := -1
	poll.UntilEvery(tb, settle+10*handoffInterval, 5*time.Millisecond, p.m.name+": one director holds the VIP and answers", func() (bool, any) {
		master = p.holder()
		if master < 0 {
			return false, "no single holder"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		name, err := p.dialName(ctx)
		return err == nil && name == p.d[master].h.Name(), fmt.Sprintf("answered %q, %v", name, err)
	})
	if p.m.impl == implHaldir && p.m.move != nil {
		p.waitBackedUp(master)
	}
	cl := startHandoffClient(p)
	time.Sleep(200 * time.Millisecond) // a baseline of connections before the move
	t0 := time.Now()
	if p.m.move == nil {
		time.Sleep(time.Second)
		return cl.stop()
	}
	if err := p.m.move(p, master); err != nil {
		cl.stop()
		tb.Fatalf("%s from %s: %v", p.m.name, p.d[master], err)
	}
	other := p.d[1-master].h.Name()
	var took time.Duration
	poll.UntilEvery(tb, settle+10*handoffInterval, time.Millisecond, p.m.name+": the other director answers", func() (bool, any) {
		name, at := cl.lastAnswer()
		if name == other && !p.d[master].holds(vip4) {
			took = at.Sub(t0)
			return true, nil
		}
		return false, name
	})
	time.Sleep(300 * time.Millisecond)
	s := cl.stop()
	s.took = took
	if p.m.restore != nil {
		p.m.restore(p, master)
	}
	return s
}

// waitBackedUp waits until master's cluster view has the other director
// alive and backup: a handoff picks its target from it.
func (p *handoffPair) waitBackedUp(master int) {
	poll.UntilEvery(p.tb, settle, 10*time.Millisecond, p.m.name+": the cluster sees the backup", func() (bool, any) {
		c, err := control.Dial(p.d[master].socket())
		if err != nil {
			return false, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := c.Status(ctx)
		if err != nil || st.Cluster == nil {
			return false, err
		}
		for _, m := range st.Cluster.Members {
			for _, in := range m.VRRP {
				if !m.Self && m.Status == "alive" && in.State == "backup" {
					return true, nil
				}
			}
		}
		return false, st.Cluster.Members
	})
}

// dialName connects to the VIP once and reads the answering director.
func (p *handoffPair) dialName(ctx context.Context) (string, error) {
	c, err := p.client.Dial(ctx, "tcp", netip.AddrPortFrom(vip4.Addr(), handoffPort).String())
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(handoffConnTimeout))
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// handoffClient opens a connection every handoffEvery until stopped.
type handoffClient struct {
	p    *handoffPair
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	s    handoffSample
	last string
	at   time.Time
}

func startHandoffClient(p *handoffPair) *handoffClient {
	c := &handoffClient{p: p, quit: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tk := time.NewTicker(handoffEvery)
		defer tk.Stop()
		// Bounded: at most a minute of connections, each bounded by
		// handoffConnTimeout.
		for n := 0; n < 60000; n++ {
			select {
			case <-c.quit:
				return
			case <-tk.C:
			}
			c.wg.Add(1)
			go c.one()
		}
	}()
	return c
}

func (c *handoffClient) one() {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), handoffConnTimeout)
	defer cancel()
	start := time.Now()
	name, err := c.p.dialName(ctx)
	took := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.conns++
	switch {
	case err == nil && name != "":
		c.s.stall = max(c.s.stall, took)
		if start.After(c.at) {
			c.last, c.at = name, start
		}
	default:
		if err == nil {
			err = errors.New("closed without an answer")
		}
		c.s.failed++
		if c.s.firstErr == "" {
			c.s.firstErr = err.Error()
		}
	}
}

// lastAnswer is the director that answered the latest connection that
// was answered, and when that connection started.
func (c *handoffClient) lastAnswer() (string, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.at
}

// stop ends the client and waits for its connections.
func (c *handoffClient) stop() handoffSample {
	close(c.quit)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// BenchmarkHandoff prints the handoff table: per method, HALDIR_BENCH_ROUNDS
// moves (default 10) with a new connection every millisecond.
//
// Run (root): go test -run '^$' -bench Handoff -benchtime 1x ./bench/vrrp/failover/
func BenchmarkHandoff(b *testing.B) {
	lab.SkipIfNotRoot(b)
	p, err := parseFailoverParams(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	impls := benchImpls(b)
	var table string
	for b.Loop() {
		table = handoffTable(b, impls, p.rounds)
	}
	fmt.Fprint(os.Stdout, table)
}

// handoffTable measures every method and renders the table.
func handoffTable(tb testing.TB, impls []benchImpl, rounds int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nPlanned handoff, %d moves per method, VRRPv3 at %v, a new TCP connection to the VIP every %v (namespace lab):\n\n",
		rounds, handoffInterval, handoffEvery)
	fmt.Fprintf(&b, "| method | connections | failed (total) | failed per move, median / max | stall per move, median / max | answered by the new director, median |\n|---|---|---|---|---|---|\n")
	for _, m := range handoffMethods() {
		var im benchImpl
		for _, x := range impls {
			if x.name == m.impl {
				im = x
			}
		}
		ss := runHandoffMethod(tb, im, m, rounds)
		var conns, failed int
		var fails, stalls, took []time.Duration
		for _, s := range ss {
			conns += s.conns
			failed += s.failed
			fails = append(fails, time.Duration(s.failed))
			stalls = append(stalls, s.stall)
			took = append(took, s.took)
		}
		fmed, fmax := durationStats(fails)
		smed, smax := durationStats(stalls)
		tmed, _ := durationStats(took)
		fmt.Fprintf(&b, "| %s | %d | %d | %d / %d | %s / %s | %s |\n", m.name, conns, failed, int(fmed), int(fmax), ms(smed), ms(smax), ms(tmed))
		for i, s := range ss {
			if s.firstErr != "" {
				fmt.Fprintf(&b, "|   move %d: first failure | %s | | | | |\n", i+1, s.firstErr)
				break
			}
		}
	}
	return b.String()
}

// TestHandoffNoGap: three haldir handoffs back and forth with a new
// connection every millisecond: no connection waited for a retransmitted
// SYN (a SYN sent to a director that had already let the VIP go), so the
// VIP was never without a holder the hosts could reach. A few
// connections per move may fail (at most 3; 0 or 1 on a quiet host, 2
// seen under load): those whose handshake straddled the moment the
// client learnt the new MAC (SYN to the old director, ACK to the new one,
// which resets it). A director that terminates the connections itself
// cannot avoid that; behind IPVS, conn sync and sloppy_tcp can.
func TestHandoffNoGap(t *testing.T) {
	lab.SkipIfNotRoot(t)
	impls := benchImpls(t)
	m := handoffMethods()[1]
	ss := runHandoffMethod(t, impls[0], m, 3)
	for i, s := range ss {
		t.Logf("move %d: %d connections, %d failed, stall %v, new director answering after %v", i+1, s.conns, s.failed, s.stall, s.took)
		if s.failed > 3 || s.conns < 300 || s.stall > 500*time.Millisecond {
			t.Errorf("move %d: %d of %d connections failed (first: %s), the longest took %v", i+1, s.failed, s.conns, s.firstErr, s.stall)
		}
	}
}
