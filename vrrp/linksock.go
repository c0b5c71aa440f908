package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"
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
// before. Beside it each link has a quiet socket, which nothing waits on,
// for the adverts a backup may handle later (routineFilter).
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

	mu sync.Mutex // guards subs, refs, joined, waiting and quietBatch
	// subs are the instances by VRID: an array, not a map, since every
	// packet read looks its VRID up (a map's lookup was 2% of a 10ms
	// backup's CPU).
	subs   [256][]*linkSub
	refs   int
	joined bool
	// waiting is readWaiting's buffers, made on its first use: most
	// sockets never need them.
	waiting *recvBatch

	// quiet receives the routine adverts (see routineFilter); nil when
	// it could not be set up, and every packet is read at once.
	quiet      *quietSocket
	quietBatch *recvBatch
	created    time.Time
	// fmu guards the filters' state; it is taken inside mu and inside
	// an instance's driver, never the other way round.
	fmu     sync.Mutex
	routine map[uint8]bool // VRIDs whose routine adverts go to quiet
	// quietGone: setting the filters failed once; quiet takes nothing.
	quietGone bool
	shared    map[uint8]bool // VRIDs with more than one instance here: never routine
	// live is set while quiet may hold packets: readers drain it first.
	// filterGen counts refilters (under fmu): a drain that found nothing
	// routine clears live only if no refilter came since it looked, or a
	// VRID made routine during the drain would never be read again.
	live      atomic.Bool
	filterGen uint64

	// promptDrops and quietDrops are the sockets' overflow counts
	// already counted (countDrops); lostLogged is when a loss was last
	// logged. Under mu.
	promptDrops, quietDrops uint32
	lostLogged              time.Time
}

// sharedRaw is a raw VRRP socket that many instances send from, each with
// its own source address.
type sharedRaw interface {
	// newBatch returns the buffers the link's reader reads into.
	newBatch() *recvBatch
	writeFrom(b []byte, src, dst netip.Addr) error
	join() error
	setFilter(prog []bpf.RawInstruction) error
	Close() error
}

// linkSub is one instance's share of a linkSocket.
type linkSub struct {
	vrid uint8
	// drops counts the packets the link's sockets lost
	// (DropSocketOverflow) for the instance.
	drops *DropCounters
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
func (ls *linkSockets) open(ifi *net.Interface, src netip.Addr, vrid uint8, multicast bool, sink func(Received), drops *DropCounters) (advertConn, error) {
	key := linkKey{ifindex: ifi.Index, v6: src.Is6()}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	s := ls.m[key]
	if s == nil {
		c, err := listenRaw(ifi, src)
		if err != nil {
			return nil, err
		}
		s = &linkSocket{owner: ls, key: key, ifi: ifi, conn: c.(sharedRaw),
			routine: map[uint8]bool{}, shared: map[uint8]bool{}, created: time.Now()}
		s.openQuiet()
		ls.m[key] = s
		go s.read()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if multicast && !s.joined {
		if err := s.conn.join(); err != nil {
			if s.refs == 0 {
				s.close()
				delete(ls.m, key)
			}
			return nil, fmt.Errorf("vrrp: joining the VRRP group on %s: %w", ifi.Name, err)
		}
		if s.quiet != nil {
			if err := s.quiet.join(); err != nil {
				s.dropQuiet(err)
			}
		}
		s.joined = true
	}
	sub := &linkSub{vrid: vrid, sink: sink, drops: drops}
	s.subs[vrid] = append(s.subs[vrid], sub)
	s.refs++
	if len(s.subs[vrid]) > 1 {
		s.fmu.Lock()
		s.shared[vrid] = true
		if s.routine[vrid] {
			delete(s.routine, vrid)
			s.refilter(false)
		}
		s.fmu.Unlock()
	}
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
		list = nil // deliverTo gives a VRID nobody has to everyone
	}
	s.subs[sub.vrid] = list
	if s.refs--; s.refs == 0 {
		s.close()
		if ls.m[s.key] == s {
			delete(ls.m, s.key)
		}
		return
	}
	s.fmu.Lock()
	s.shared[sub.vrid] = len(list) > 1
	if s.routine[sub.vrid] {
		delete(s.routine, sub.vrid)
		s.refilter(false)
	}
	s.fmu.Unlock()
}

// close closes both sockets; s.mu held.
func (s *linkSocket) close() {
	s.closeQuiet()
	s.conn.Close()
}

// closeQuiet closes the quiet socket, if any, and sends every packet to
// the prompt one again; s.mu held. Its descriptor is a bare number that
// a new socket may take: nothing reads it after this.
func (s *linkSocket) closeQuiet() {
	s.fmu.Lock()
	q := s.quiet
	if q != nil && !s.quietGone {
		_ = s.conn.setFilter(routineFilter(s.key.v6, nil, false))
	}
	clear(s.routine)
	s.quiet, s.quietBatch, s.quietGone = nil, nil, true
	s.fmu.Unlock()
	if q != nil {
		q.Close()
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
		s.countDrops(&s.promptDrops, b.drops)
		s.deliverAfterQuiet(rs, nil, nil)
		s.mu.Unlock()
	}
}

// deliverAfterQuiet hands rs, packets just read from the prompt socket,
// to the instances, after the quiet socket's packets that came before
// them, and those after; s.mu held.
func (s *linkSocket) deliverAfterQuiet(rs []Received, self *linkSub, mine func(Received)) {
	if s.quietBatch != nil && s.live.Load() {
		rs = s.drainQuiet(rs, self, mine)
	}
	for _, r := range rs {
		s.deliverTo(r, self, mine)
	}
}

// maxQuietBatches bounds one drain of the quiet socket. It holds what
// one Master_Down_Interval brings (a few adverts per routine VRID, 255
// at most): more is a flood, whose rest the next read takes.
const maxQuietBatches = 64

// drainQuiet reads the quiet socket until it is empty, and delivers its
// packets merged in order of arrival with those of rs that came before
// them; it returns the rest of rs. s.mu held.
func (s *linkSocket) drainQuiet(rs []Received, self *linkSub, mine func(Received)) []Received {
	s.fmu.Lock()
	idle, gen := len(s.routine) == 0, s.filterGen
	s.fmu.Unlock()
	for range maxQuietBatches {
		qs, err := s.quietBatch.readNow()
		if err != nil {
			break
		}
		s.countDrops(&s.quietDrops, s.quietBatch.drops)
		for _, q := range qs {
			for len(rs) > 0 && cameBefore(rs[0], q) {
				s.deliverTo(rs[0], self, mine)
				rs = rs[1:]
			}
			q.quiet = true
			s.deliverTo(q, self, mine)
		}
		if len(qs) < batchSize {
			// It was empty then: what comes later came after the
			// packets in hand, as with a prompt read.
			if idle {
				// Nothing is routine and nothing was left: stop
				// reading it until something is.
				s.quietIdle(gen)
			}
			break
		}
	}
	return rs
}

// quietIdle stops the drains of the quiet socket, which a drain that
// started at filter generation gen, with nothing routine, left empty;
// unless a refilter came since (it may have made a VRID routine, whose
// adverts now wait there).
func (s *linkSocket) quietIdle(gen uint64) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.filterGen == gen {
		s.live.Store(false)
	}
}

// countDrops counts what a socket lost since *last, given its overflow
// count now as a batch last read it (the reader's and readWaiting's
// batches read one socket, so either may be behind), for every instance
// on the link: the lost packets' VRIDs are unknown. s.mu held.
func (s *linkSocket) countDrops(last *uint32, now uint32) {
	n := int32(now - *last) // the kernel's count wraps
	if n <= 0 {
		return
	}
	*last = now
	for _, list := range &s.subs {
		for _, sub := range list {
			if sub.drops != nil {
				sub.drops.AddN(DropSocketOverflow, uint64(n))
			}
		}
	}
	if t := time.Now(); t.Sub(s.lostLogged) >= lostLogEvery {
		s.lostLogged = t
		s.owner.log.Warn("vrrp: the kernel dropped adverts for want of socket buffer room", "interface", s.ifi.Name, "packets", n, "total", now)
	}
}

// lostLogEvery bounds how often a link logs lost packets; the drop
// counter has every one.
const lostLogEvery = 10 * time.Second

// cameBefore reports whether a arrived before b: by the kernel's stamps
// (one clock for both sockets, whatever it was stepped by), else by At.
func cameBefore(a, b Received) bool {
	if a.stamp != 0 && b.stamp != 0 {
		return a.stamp < b.stamp
	}
	return a.At.Before(b.At)
}

// deliverTo hands r to the instances of its VRID, or to every instance
// on the link when none runs it; self's share goes to mine when it is
// set (driver.readWaiting). s.mu held.
func (s *linkSocket) deliverTo(r Received, self *linkSub, mine func(Received)) {
	var to []*linkSub
	if len(r.Payload) >= 2 {
		to = s.subs[r.Payload[1]]
	}
	give := func(sub *linkSub) {
		if sub == self && mine != nil {
			mine(r)
			return
		}
		sub.sink(r)
	}
	if to == nil {
		for _, list := range &s.subs {
			for _, sub := range list {
				give(sub)
			}
		}
	}
	for _, sub := range to {
		give(sub)
	}
}

// waitingReader is an advertConn that can read, without waiting, what
// its socket holds now and hand it to the instances' sinks before
// returning. The Run loop's timerFired needs it.
type waitingReader interface {
	// readWaiting hands the caller's own packets to mine, the others
	// to their instances' sinks.
	readWaiting(mine func(Received))
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
func (s *linkSocket) readWaiting(self *linkSub, mine func(Received)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return // closed
	}
	if s.waiting == nil {
		s.waiting = s.conn.newBatch()
		// No packet it reads is older than the socket.
		s.waiting.clock = newArrivalClock(s.created)
	}
	for i := range maxWaitingBatches {
		rs, err := s.waiting.readNow()
		if err != nil {
			return
		}
		s.countDrops(&s.promptDrops, s.waiting.drops)
		if i == 0 {
			s.deliverAfterQuiet(rs, self, mine)
		} else {
			for _, r := range rs {
				s.deliverTo(r, self, mine)
			}
		}
		if len(rs) == 0 {
			return
		}
	}
}

// openQuiet opens the quiet socket (see routineFilter), taking no packet
// until a VRID is routine. Without it every packet is read at once, as
// before it existed: a reason to log, not to fail.
func (s *linkSocket) openQuiet() {
	q, err := listenQuiet(s.ifi, s.key.v6)
	if err != nil {
		s.owner.log.Warn("vrrp: no quiet socket: every advert wakes the daemon", "interface", s.ifi.Name, "err", err)
		return
	}
	// Its buffers now: a stamp is trusted only as old as the reader's
	// clock (arrivalClock).
	s.quiet, s.quietBatch = q, q.newBatch()
}

// dropQuiet gives the quiet socket up after err: every packet goes to
// the prompt socket again. s.mu held.
func (s *linkSocket) dropQuiet(err error) {
	s.owner.log.Warn("vrrp: no quiet socket: every advert wakes the daemon", "interface", s.ifi.Name, "err", err)
	if s.quiet != nil {
		s.drainQuiet(nil, nil, nil)
	}
	s.closeQuiet()
}

// setRoutine makes vrid's routine adverts go to the quiet socket (on) or
// to the prompt one. Its instance's driver calls it as its Machine says
// (Machine.Quiet), without s.mu: it may be delivering an advert under it.
func (s *linkSocket) setRoutine(vrid uint8, on bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if on && (s.shared[vrid] || s.quietGone) {
		on = false
	}
	if s.routine[vrid] == on {
		return
	}
	if on {
		s.routine[vrid] = true
	} else {
		delete(s.routine, vrid)
	}
	s.refilter(on)
}

// refilter sets both sockets' filters for s.routine; fmu held. The
// socket that is to take more packets changes first, so that a packet
// that comes in between goes to both (read twice: the same advert
// handled twice changes nothing), never to neither.
func (s *linkSocket) refilter(grew bool) {
	if s.quiet == nil || s.quietGone {
		return
	}
	vrids := make([]uint8, 0, len(s.routine))
	for v := range s.routine {
		vrids = append(vrids, v)
	}
	slices.Sort(vrids)
	quiet := func() error { return s.quiet.setFilter(routineFilter(s.key.v6, vrids, true)) }
	prompt := func() error { return s.conn.setFilter(routineFilter(s.key.v6, vrids, false)) }
	first, second := prompt, quiet
	if grew {
		first, second = quiet, prompt
	}
	err := first()
	if err == nil {
		err = second()
	}
	if err != nil {
		// Back to one socket taking everything; quiet is read until
		// empty, then never again.
		s.owner.log.Warn("vrrp: setting the quiet socket's filters: every advert wakes the daemon", "interface", s.ifi.Name, "err", err)
		clear(s.routine)
		s.quietGone = true
		_ = s.conn.setFilter(routineFilter(s.key.v6, nil, false))
		_ = s.quiet.setFilter(routineFilter(s.key.v6, nil, true))
	}
	// Packets may wait in quiet from now on (or still, when it shrank).
	s.filterGen++
	s.live.Store(true)
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

func (c *sharedConn) readWaiting(mine func(Received)) { c.s.readWaiting(c.sub, mine) }

func (c *sharedConn) setRoutine(on bool) { c.s.setRoutine(c.sub.vrid, on) }
