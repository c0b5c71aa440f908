package vrrp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// fakeHost is the I/O seam's test side: each instance opened through it
// gets an in-memory advert socket (what it sends is recorded, what the
// test injects is read), addresses that are only flags, and an announcer
// and path watch that do nothing. No root, no namespace.
type fakeHost struct {
	mu    sync.Mutex
	hosts map[string]*fakeInstanceIO // by instance name, the latest open
	// failOpen makes opening these instances fail.
	failOpen map[string]error
}

func newFakeHost() *fakeHost {
	return &fakeHost{hosts: map[string]*fakeInstanceIO{}, failOpen: map[string]error{}}
}

// options are Options that open instances through f.
func (f *fakeHost) options() Options {
	return Options{host: f.open, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (f *fakeHost) open(_ context.Context, in *Instance, _ chan<- trackUpdate) (*runtime, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failOpen[in.Name()]; err != nil {
		return nil, err
	}
	src := netip.MustParseAddr("192.0.2.100")
	if in.family == 6 {
		src = netip.MustParseAddr("fe80::100")
	}
	io := &fakeInstanceIO{recv: make(chan Received), closed: make(chan struct{}), sink: in.sink}
	io.vips.prefixes = managed(in.cfg)
	f.hosts[in.Name()] = io
	return &runtime{
		src: src, conn: io, xmit: io, vips: &io.vips, announce: fakeAnnouncer{}, path: fakePath{},
		initial: []trackUpdate{{key: ifaceKey(in.cfg.Interface)}, {key: keySource}},
		free:    func() { io.Close() },
	}, nil
}

// io returns the I/O of the instance called name, once opened.
func (f *fakeHost) io(name string) *fakeInstanceIO {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hosts[name]
}

// fakeInstanceIO is one instance's advert socket and addresses.
type fakeInstanceIO struct {
	recv      chan Received
	closed    chan struct{}
	closeOnce sync.Once

	// sink is the instance's; readWaiting hands it what waits.
	sink func(Received)

	mu   sync.Mutex
	sent []fakeSent
	vips fakeVIPs
	// waiting is what sits in the socket unread: only readWaiting takes
	// it, as after a stall that kept the reader from running.
	waiting []Received
	reads   int // readWaiting calls
}

type fakeSent struct {
	at       time.Time
	priority uint8
}

func (c *fakeInstanceIO) Read(buf []byte) (Received, error) {
	select {
	case r := <-c.recv:
		return r, nil
	case <-c.closed:
		return Received{}, net.ErrClosed
	}
}

func (c *fakeInstanceIO) Write(b []byte, _ netip.Addr) error {
	prio := uint8(0)
	if len(b) > 2 {
		prio = b[2]
	}
	c.mu.Lock()
	c.sent = append(c.sent, fakeSent{at: time.Now(), priority: prio})
	c.mu.Unlock()
	return nil
}

func (c *fakeInstanceIO) setSource(netip.Addr) {}

// wait leaves r in the socket for readWaiting.
func (c *fakeInstanceIO) wait(r Received) {
	c.mu.Lock()
	c.waiting = append(c.waiting, r)
	c.mu.Unlock()
}

func (c *fakeInstanceIO) readWaiting(mine func(Received)) {
	c.mu.Lock()
	rs := c.waiting
	c.waiting = nil
	c.reads++
	c.mu.Unlock()
	for _, r := range rs {
		mine(r)
	}
}

func (c *fakeInstanceIO) waitingReads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func (c *fakeInstanceIO) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// adverts returns what the instance sent so far.
func (c *fakeInstanceIO) adverts() []fakeSent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

// fakeVIPs records whether the addresses are up.
type fakeVIPs struct {
	mu       sync.Mutex
	up       bool
	prefixes []netip.Prefix
}

func (v *fakeVIPs) add() error                        { v.mu.Lock(); v.up = true; v.mu.Unlock(); return nil }
func (v *fakeVIPs) remove() error                     { v.mu.Lock(); v.up = false; v.mu.Unlock(); return nil }
func (v *fakeVIPs) del([]netip.Prefix) error          { return nil }
func (v *fakeVIPs) managed() []netip.Prefix           { return v.prefixes }
func (v *fakeVIPs) setManaged(ps []netip.Prefix)      { v.prefixes = ps }
func (v *fakeVIPs) here(as []netip.Addr) []netip.Addr { return as }
func (v *fakeVIPs) isUp() bool                        { v.mu.Lock(); defer v.mu.Unlock(); return v.up }

type fakeAnnouncer struct{}

func (fakeAnnouncer) run(ctx context.Context, _, _ int, _, _ time.Duration, _ func(error)) {
	<-ctx.Done()
}
func (fakeAnnouncer) burst(int) error            { return nil }
func (fakeAnnouncer) setVIPs([]netip.Addr) error { return nil }
func (fakeAnnouncer) close()                     {}

type fakePath struct{}

func (fakePath) start(context.Context, *sync.WaitGroup, bool, chan<- trackUpdate) {}
func (fakePath) sendFailed(sendFailure)                                           {}
func (fakePath) close()                                                           {}
