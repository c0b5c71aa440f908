package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
)

// linkSockets shares one raw VRRP socket per link and family among the
// instances of a Runner (or of one Set), as keepalived shares one per
// interface. A raw socket receives every VRRP packet of its link, and the
// kernel clones the packet for each raw socket before any filter runs:
// with a socket per instance, n instances on a link cost n clones and n
// wake-ups per advert (half a core for a backup of 100 × 100 ms). The
// shared socket reads each packet once and hands it to the instance of
// its VRID; a packet of a VRID nobody here runs, or too short to carry
// one, goes to every instance on the link, whose Decode counts it as
// before.
type linkSockets struct {
	log *slog.Logger
	mu  sync.Mutex
	m   map[linkKey]*linkSocket
}

type linkKey struct {
	ifindex int
	v6      bool
}

func newLinkSockets(log *slog.Logger) *linkSockets {
	if log == nil {
		log = slog.Default()
	}
	return &linkSockets{log: log, m: map[linkKey]*linkSocket{}}
}

// linkSocket is the shared socket of one link and family.
type linkSocket struct {
	owner *linkSockets
	key   linkKey
	ifi   *net.Interface
	conn  sharedRaw

	mu     sync.Mutex // guards subs, refs, joined and waiting
	subs   map[uint8][]*linkSub
	refs   int
	joined bool
	// waiting is readWaiting's buffers, made on its first use: most
	// sockets never need them.
	waiting *recvBatch
}

// sharedRaw is a raw VRRP socket that many instances send from, each with
// its own source address.
type sharedRaw interface {
	// newBatch returns the buffers the link's reader reads into.
	newBatch() *recvBatch
	writeFrom(b []byte, src, dst netip.Addr) error
	join() error
	Close() error
}

// linkSub is one instance's share of a linkSocket.
type linkSub struct {
	vrid uint8
	// sink decodes a packet for the instance and queues the advert
	// without waiting (Instance.advertSink): one slow instance must not
	// hold up the others on its link.
	sink func(Received)
}

// open returns a connection for one instance of VRID vrid on ifi (in the
// calling thread's network namespace: call it inside Instance.do),
// opening the link's socket if it is the first; multicast joins the VRRP
// group. The link's reader hands the instance's packets to sink, on the
// reader's goroutine. Closing the connection gives its share back.
func (ls *linkSockets) open(ifi *net.Interface, src netip.Addr, vrid uint8, multicast bool, sink func(Received)) (advertConn, error) {
	key := linkKey{ifindex: ifi.Index, v6: src.Is6()}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s := ls.m[key]
	if s == nil {
		c, err := listenRaw(ifi, src)
		if err != nil {
			return nil, err
		}
		s = &linkSocket{owner: ls, key: key, ifi: ifi, conn: c.(sharedRaw), subs: map[uint8][]*linkSub{}}
		ls.m[key] = s
		go s.read()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if multicast && !s.joined {
		if err := s.conn.join(); err != nil {
			if s.refs == 0 {
				s.conn.Close()
				delete(ls.m, key)
			}
			return nil, fmt.Errorf("vrrp: joining the VRRP group on %s: %w", ifi.Name, err)
		}
		s.joined = true
	}
	sub := &linkSub{vrid: vrid, sink: sink}
	s.subs[vrid] = append(s.subs[vrid], sub)
	s.refs++
	return &sharedConn{s: s, sub: sub, src: src, closed: make(chan struct{})}, nil
}

// release gives sub's share back; the last one closes the socket.
func (s *linkSocket) release(sub *linkSub) {
	ls := s.owner
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.subs[sub.vrid]
	for i, x := range list {
		if x == sub {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.subs, sub.vrid)
	} else {
		s.subs[sub.vrid] = list
	}
	if s.refs--; s.refs == 0 {
		s.conn.Close()
		if ls.m[s.key] == s {
			delete(ls.m, s.key)
		}
	}
}

// read hands every packet to the instances it concerns until the socket
// is closed.
func (s *linkSocket) read() {
	b := s.conn.newBatch()
	for {
		rs, err := b.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.owner.log.Warn("reading adverts", "interface", s.ifi.Name, "err", err)
			continue
		}
		// The sinks decode under the lock, so none runs after release.
		s.mu.Lock()
		for _, r := range rs {
			s.deliver(r)
		}
		s.mu.Unlock()
	}
}

// deliver hands r to the instances of its VRID, or to every instance on
// the link when none runs it; s.mu held.
func (s *linkSocket) deliver(r Received) {
	var to []*linkSub
	if len(r.Payload) >= 2 {
		to = s.subs[r.Payload[1]]
	}
	if to == nil {
		for _, list := range s.subs {
			for _, sub := range list {
				sub.sink(r)
			}
		}
	}
	for _, sub := range to {
		sub.sink(r)
	}
}

// waitingReader is an advertConn that can read, without waiting, what
// its socket holds now and hand it to the instances' sinks before
// returning. The Run loop's timerFired needs it.
type waitingReader interface {
	readWaiting()
}

// maxWaitingBatches bounds readWaiting: a flood must not keep a timer
// fire reading forever. 4 × batchSize adverts are far more than the
// masters of a link send in any stall the timer could be late by.
const maxWaitingBatches = 4

// readWaiting hands what waits in the socket now to the instances it
// concerns, on the caller's goroutine, beside the reader's: two
// recvmmsg calls on one socket each take their own packets, and
// delivering under s.mu keeps the sinks one at a time. Packets the reader
// took just before are delivered by it, perhaps after these. Adverts of
// one master mostly carry the same priority, so their order rarely
// matters; where it does (its priority 0 read here, an older advert by
// the reader after it), the takeover waits one Master_Down_Interval, as
// if the priority 0 advert had been lost.
func (s *linkSocket) readWaiting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return // closed
	}
	if s.waiting == nil {
		s.waiting = s.conn.newBatch()
	}
	for range maxWaitingBatches {
		rs, err := s.waiting.readNow()
		if err != nil || len(rs) == 0 {
			return
		}
		for _, r := range rs {
			s.deliver(r)
		}
	}
}

// sharedConn is one instance's advertConn on a linkSocket.
type sharedConn struct {
	s      *linkSocket
	sub    *linkSub
	src    netip.Addr // owned by the writing goroutine
	once   sync.Once
	closed chan struct{}
}

// Read only waits for Close: the link's reader delivers to the sink.
func (c *sharedConn) Read([]byte) (Received, error) {
	<-c.closed
	return Received{}, net.ErrClosed
}

func (c *sharedConn) Write(b []byte, dst netip.Addr) error {
	return c.s.conn.writeFrom(b, c.src, dst)
}

func (c *sharedConn) Close() error {
	c.once.Do(func() {
		c.s.release(c.sub)
		close(c.closed)
	})
	return nil
}

func (c *sharedConn) setSource(src netip.Addr) { c.src = src }

func (c *sharedConn) readWaiting() { c.s.readWaiting() }
