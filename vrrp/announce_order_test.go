package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// ioLog records, in order, what an instance sent.
type ioLog struct {
	mu  sync.Mutex
	evs []string
}

func (l *ioLog) add(format string, args ...any) {
	l.mu.Lock()
	l.evs = append(l.evs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *ioLog) events() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// logAnnouncer records its bursts and the announcer's start.
type logAnnouncer struct{ log *ioLog }

func (a logAnnouncer) run(ctx context.Context, first, _ int, _, _ time.Duration, _ func(error)) {
	a.log.add("announcer started, first burst %d", first)
	<-ctx.Done()
}
func (a logAnnouncer) burst(n int) error        { a.log.add("burst %d", n); return nil }
func (logAnnouncer) setVIPs([]netip.Addr) error { return nil }
func (logAnnouncer) close()                     {}

// logConn records each advert and whether the announcer's goroutine had
// been started by then (it is written on the driver's own goroutine).
type logConn struct {
	log *ioLog
	d   *driver
}

func (c *logConn) Read([]byte) (Received, error) { return Received{}, context.Canceled }
func (c *logConn) setSource(netip.Addr)          {}
func (c *logConn) Close() error                  { return nil }
func (c *logConn) Write(b []byte, _ netip.Addr) error {
	c.log.add("advert priority %d, announcer running %v", b[2], c.d.announceCancel != nil)
	return nil
}

// TestTakeoverAnnouncesThenAdvertises: a backup taking over sends one
// announcement and then its first advert with nothing started between
// them; the announcer's goroutine (the rest of the first burst, then
// repeat and refresh) starts only after the advert. A goroutine started
// between the two woke another thread that, on a loaded host, took the
// CPU and sent the advert 1.5–1.9 ms after the announcement (the failover
// bench's smoke test, twice in CI).
func TestTakeoverAnnouncesThenAdvertises(t *testing.T) {
	ic := goodInstance()
	ic.GARP.Repeat = 3
	in := NewInstance(specOf(ic), Options{})
	log := &ioLog{}
	conn := &logConn{log: log}
	rt := &runtime{src: netip.MustParseAddr("192.0.2.11"), conn: conn, xmit: conn, vips: &fakeVIPs{}, announce: logAnnouncer{log: log}, path: fakePath{}}
	d := driverFor(t, in, rt)
	d.track = tracking{}
	m := d.m
	conn.d = d
	t.Cleanup(d.stopAnnounce)
	// Backup for long enough that the master down timer is due.
	if _, reason := m.Handle(time.Now().Add(-time.Minute), EvStartup{}); reason != Handled || m.State() != StateBackup {
		t.Fatalf("startup: %v, state %v", reason, m.State())
	}
	d.handle(EvTimer{})
	if m.State() != StateMaster {
		t.Fatalf("state %v after the master down timer, want master", m.State())
	}
	first := in.cfg.GARP.Repeat - 1
	want := []string{"burst 1", "advert priority 100, announcer running false", fmt.Sprintf("announcer started, first burst %d", first)}
	deadline := time.Now().Add(5 * time.Second)
	for len(log.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := log.events(); !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}
