package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// EchoServer is a TCP server in a host that greets every connection with
// the host's name and a newline, then echoes every byte back: the far end
// of Host.HoldConns.
type EchoServer struct {
	host *Host
	ln   net.Listener
	done chan struct{}

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// ServeEcho starts an EchoServer on addr (e.g. ":7" or "203.0.113.10:7")
// inside the host. It and its connections are closed at lab teardown.
func (h *Host) ServeEcho(addr string) (*EchoServer, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: echo listen %s: %w", h.name, addr, err)
	}
	s := &EchoServer{host: h, ln: ln, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	go s.serve()
	h.lab.track(s)
	return s, nil
}

// Addr returns the listening address.
func (s *EchoServer) Addr() net.Addr { return s.ln.Addr() }

func (s *EchoServer) serve() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			if _, err := fmt.Fprintln(c, s.host.name); err != nil {
				return
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

// Close stops the server and closes its connections.
func (s *EchoServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	<-s.done
	s.host.lab.untrack(s)
	return err
}

// Greetings opens n connections from the host to addr one after another
// (each a new source port, so a router hashes each anew), reads each
// greeting line (an EchoServer's host name) and closes it, and counts the
// connections per greeting: how flows spread. Each connection may take
// up to 5 s; ctx bounds the whole.
func (h *Host) Greetings(ctx context.Context, addr netip.AddrPort, n int) (map[string]int, error) {
	got := map[string]int{}
	err := h.Do(func() error {
		var d net.Dialer
		for i := range n {
			c, err := d.DialContext(ctx, "tcp", addr.String())
			if err != nil {
				return fmt.Errorf("connection %d of %d to %v: %w", i+1, n, addr, err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			name, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				return fmt.Errorf("connection %d of %d to %v: reading the greeting: %w", i+1, n, addr, err)
			}
			got[strings.TrimSpace(name)]++
		}
		return nil
	})
	if err != nil {
		return got, fmt.Errorf("host %s: %w", h.name, err)
	}
	return got, nil
}

// HoldOptions tune Host.HoldConns.
type HoldOptions struct {
	// Conns is the number of connections; 0 means 300.
	Conns int
	// Interval is how often each connection sends a round trip; 0 means
	// 10 ms. An outage shorter than Interval may go unseen.
	Interval time.Duration
	// Timeout is how long a round trip (or the greeting) may take before
	// the connection counts as broken; 0 means 3 s.
	Timeout time.Duration
}

func (o HoldOptions) withDefaults() HoldOptions {
	if o.Conns == 0 {
		o.Conns = 300
	}
	if o.Interval == 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Second
	}
	return o
}

// Held is a set of long-lived TCP connections from a host to one address
// (an EchoServer behind it), each sending an 8-byte sequence number every
// Interval and waiting for its echo, so that a test can count which
// connections survive an event (a director lost, withdrawn, rejoining) and
// how long they stalled. Stop it (or let teardown do so).
type Held struct {
	opts   HoldOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*heldConn
}

// heldConn is one connection's state; its loop writes, Report reads.
type heldConn struct {
	c      net.Conn
	local  netip.AddrPort
	server string
	opened time.Time

	mu         sync.Mutex
	roundTrips int
	maxStall   time.Duration
	inFlight   time.Time // start of the round trip under way, zero between
	brokenAt   time.Time
	err        error
}

// HeldConn is one connection in a HoldReport.
type HeldConn struct {
	Local netip.AddrPort
	// Server is the name the far end greeted with (the host that
	// accepted: a real server behind IPVS, or a director answering
	// itself).
	Server string
	Opened time.Time
	// RoundTrips counts completed round trips.
	RoundTrips int
	// MaxStall is the longest round trip since the start or the last
	// ResetStalls, counting one still under way at the time of the report.
	MaxStall time.Duration
	// Broken is set once a round trip failed (reset, timeout, wrong
	// echo); BrokenAt and Err tell when and how.
	Broken   bool
	BrokenAt time.Time
	Err      error
}

// HoldReport is the state of every held connection at one moment.
type HoldReport struct {
	At    time.Time
	Conns []HeldConn
}

// Survived counts the connections not broken.
func (r HoldReport) Survived() int {
	n := 0
	for _, c := range r.Conns {
		if !c.Broken {
			n++
		}
	}
	return n
}

// MaxStall is the longest stall of the connections not broken.
func (r HoldReport) MaxStall() time.Duration {
	var m time.Duration
	for _, c := range r.Conns {
		if !c.Broken {
			m = max(m, c.MaxStall)
		}
	}
	return m
}

// ByServer counts the connections, and the broken ones, per server name.
func (r HoldReport) ByServer() (total, broken map[string]int) {
	total, broken = map[string]int{}, map[string]int{}
	for _, c := range r.Conns {
		total[c.Server]++
		if c.Broken {
			broken[c.Server]++
		}
	}
	return total, broken
}

// OpenedBefore splits the report into the connections opened before t and
// the others: a director's connections younger than the sync flush may
// not be on the other directors yet, so their survival is reported apart.
func (r HoldReport) OpenedBefore(t time.Time) (older, younger HoldReport) {
	older.At, younger.At = r.At, r.At
	for _, c := range r.Conns {
		if c.Opened.Before(t) {
			older.Conns = append(older.Conns, c)
		} else {
			younger.Conns = append(younger.Conns, c)
		}
	}
	return older, younger
}

func (r HoldReport) String() string {
	total, broken := r.ByServer()
	var b strings.Builder
	fmt.Fprintf(&b, "%d connections, %d survived, max stall %v; per server (broken/total):", len(r.Conns), r.Survived(), r.MaxStall().Round(time.Millisecond))
	for _, s := range slices.Sorted(maps.Keys(total)) {
		fmt.Fprintf(&b, " %s %d/%d", s, broken[s], total[s])
	}
	return b.String()
}

// HoldConns opens opts.Conns connections from the host to addr one after
// another (each a new source port, so the router hashes each anew), reads
// each greeting, and keeps them all busy until Stop. It fails, closing
// what it opened, when a connection cannot be opened or greeted, or ctx
// ends first; ctx bounds only the opening.
func (h *Host) HoldConns(ctx context.Context, addr netip.AddrPort, opts HoldOptions) (*Held, error) {
	opts = opts.withDefaults()
	held := &Held{opts: opts}
	for i := range opts.Conns {
		c, err := h.Dial(ctx, "tcp", addr.String())
		if err != nil {
			held.Stop()
			return nil, fmt.Errorf("host %s: holding connection %d of %d to %v: %w", h.name, i+1, opts.Conns, addr, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(opts.Timeout))
		br := bufio.NewReader(c)
		greeting, err := br.ReadString('\n')
		if err == nil && br.Buffered() > 0 {
			err = errors.New("unexpected bytes after the greeting")
		}
		if err != nil {
			c.Close()
			held.Stop()
			return nil, fmt.Errorf("host %s: connection %d of %d to %v: reading the greeting: %w", h.name, i+1, opts.Conns, addr, err)
		}
		local, _ := netip.ParseAddrPort(c.LocalAddr().String())
		held.conns = append(held.conns, &heldConn{c: c, local: local, server: strings.TrimSpace(greeting), opened: time.Now()})
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	held.cancel = cancel
	h.lab.track(held)
	for i, hc := range held.conns {
		held.wg.Add(1)
		// Staggered starts spread the round trips over the interval.
		offset := opts.Interval * time.Duration(i) / time.Duration(len(held.conns))
		go func() {
			defer held.wg.Done()
			hc.run(loopCtx, offset, opts)
		}()
	}
	return held, nil
}

func (hc *heldConn) run(ctx context.Context, offset time.Duration, opts HoldOptions) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	var out, in [8]byte
	for seq := uint64(1); ; seq++ {
		start := time.Now()
		hc.mu.Lock()
		hc.inFlight = start
		hc.mu.Unlock()
		binary.BigEndian.PutUint64(out[:], seq)
		_ = hc.c.SetDeadline(start.Add(opts.Timeout))
		_, err := hc.c.Write(out[:])
		if err == nil {
			_, err = io.ReadFull(hc.c, in[:])
		}
		if err == nil && in != out {
			err = fmt.Errorf("echo of round trip %d came back as %d", seq, binary.BigEndian.Uint64(in[:]))
		}
		now := time.Now()
		hc.mu.Lock()
		hc.inFlight = time.Time{}
		if err != nil {
			if ctx.Err() == nil {
				hc.brokenAt, hc.err = now, err
			}
			hc.mu.Unlock()
			return
		}
		hc.roundTrips++
		hc.maxStall = max(hc.maxStall, now.Sub(start))
		hc.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Report returns the state of every connection now.
func (h *Held) Report() HoldReport {
	r := HoldReport{At: time.Now()}
	for _, hc := range h.conns {
		hc.mu.Lock()
		stall := hc.maxStall
		if !hc.inFlight.IsZero() {
			stall = max(stall, r.At.Sub(hc.inFlight))
		}
		r.Conns = append(r.Conns, HeldConn{
			Local: hc.local, Server: hc.server, Opened: hc.opened,
			RoundTrips: hc.roundTrips, MaxStall: stall,
			Broken: hc.err != nil, BrokenAt: hc.brokenAt, Err: hc.err,
		})
		hc.mu.Unlock()
	}
	return r
}

// ResetStalls forgets the stalls seen so far, so the next Report's MaxStall
// covers only what follows (call it just before the event under test).
func (h *Held) ResetStalls() {
	for _, hc := range h.conns {
		hc.mu.Lock()
		hc.maxStall = 0
		hc.mu.Unlock()
	}
}

// Close is Stop for the lab's teardown.
func (h *Held) Close() error {
	h.Stop()
	return nil
}

// Stop ends every connection's loop, closes the connections and returns
// the final report. It is idempotent.
func (h *Held) Stop() HoldReport {
	r := h.Report()
	if h.cancel != nil {
		h.cancel()
	}
	for _, hc := range h.conns {
		hc.c.Close() // unblocks a round trip under way
	}
	h.wg.Wait()
	return r
}
