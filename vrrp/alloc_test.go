package vrrp

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
)

// TestAdvertPathAllocs: what a master does per advert sent and a backup
// per advert read allocates nothing, or (the protocol machine's actions)
// what its interface costs. At 10 ms the heap's share of a master's CPU
// was a tenth (perf), nine allocations an advert.
func TestAdvertPathAllocs(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	v6a := netip.MustParseAddr("fe80::10")
	t.Run("Advert.Append", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			a        Advert
			src, dst netip.Addr
		}{
			{"v2", Advert{Version: 2, VRID: 7, Priority: 100, Interval: time.Second, AuthType: AuthPass, AuthData: Password("secret"), Addrs: []netip.Addr{v4a, v4b}}, v4a, GroupV4},
			{"v3 IPv4", Advert{Version: 3, VRID: 7, Priority: 200, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{v4a}}, v4a, GroupV4},
			{"v3 IPv6", Advert{Version: 3, VRID: 7, Priority: 200, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, v6a, GroupV6},
		} {
			t.Run(tc.name, func(t *testing.T) {
				want, err := tc.a.Marshal(tc.src, tc.dst)
				if err != nil {
					t.Fatal(err)
				}
				// A buffer holding another advert's bytes: Append
				// must not leave any of them.
				buf := bytes.Repeat([]byte{0xff}, 64)
				var got []byte
				if n := testing.AllocsPerRun(100, func() {
					got, err = tc.a.Append(buf[:0], tc.src, tc.dst)
				}); n != 0 {
					t.Errorf("%.0f allocations per advert encoded, want 0", n)
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("Append = %x, %v; Marshal = %x", got, err, want)
				}
				// Appending after bytes already there keeps them.
				pre, err := tc.a.Append([]byte{1, 2}, tc.src, tc.dst)
				if err != nil || !bytes.Equal(pre[:2], []byte{1, 2}) || !bytes.Equal(pre[2:], want) {
					t.Fatalf("Append after 2 bytes = %x, %v", pre, err)
				}
			})
		}
	})

	t.Run("send and read", func(t *testing.T) {
		rx, txc := udpPair(t)
		tx, err := newRawSender(txc, "udp4")
		if err != nil {
			t.Fatal(err)
		}
		port := rx.LocalAddr().(*net.UDPAddr).Port
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{127, 0, 0, 1}}
		sa.Port = uint16(port>>8) | uint16(port&0xff)<<8 // network order
		rb := newRecvBatch(rx, 0, func(*Received, []byte) {})
		payload := []byte("advert")
		var got []Received
		var sendErr, readErr error
		exchange := func() {
			payload[0]++
			sendErr = tx.send(payload, nil, unsafe.Pointer(&sa), unix.SizeofSockaddrInet4)
			got, readErr = rb.readNow()
		}
		exchange() // the first read of a socket sets up its poller
		if n := testing.AllocsPerRun(100, exchange); n != 0 {
			t.Errorf("%.0f allocations per advert sent and read, want 0", n)
		}
		if sendErr != nil || readErr != nil {
			t.Fatalf("send: %v, read: %v", sendErr, readErr)
		}
		// Loopback delivers within the send: each read got the packet
		// just sent, with its bytes.
		if len(got) != 1 || !bytes.Equal(got[0].Payload, payload) || got[0].Src != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
			t.Fatalf("read %+v, want one packet %q from 127.0.0.1", got, payload)
		}
	})

	t.Run("driver master Adver_Timer", func(t *testing.T) {
		// The whole of what a master does when its Adver_Timer fires,
		// but the socket: the machine, the status, the encoding, the
		// timer re-armed.
		d, conn := masterDriver(t)
		sent := conn.n
		fire := func() {
			d.m.deadline = time.Now().Add(-time.Millisecond) // due
			d.handle(EvTimer{})
		}
		n := testing.AllocsPerRun(100, fire)
		t.Logf("%.1f allocations per advert", n)
		if n > 2 {
			t.Errorf("%.0f allocations per advert, want at most 2 (the machine's actions)", n)
		}
		if got := conn.n - sent; got != 101 {
			t.Fatalf("%d adverts sent in 101 fires", got)
		}
	})

	t.Run("driver readWaiting", func(t *testing.T) {
		// A backup's wake-up reads what waits before its timer counts;
		// with nothing waiting it allocates nothing.
		in := NewInstance(specOf(goodInstance()), Options{})
		conn := &waitingCountConn{}
		rt := &runtime{src: v4a, conn: conn, xmit: conn, vips: &fakeVIPs{}, announce: logAnnouncer{log: &ioLog{}}, path: fakePath{}}
		d := driverFor(t, in, rt)
		if n := testing.AllocsPerRun(100, d.readWaiting); n != 0 {
			t.Errorf("%.0f allocations per readWaiting, want 0", n)
		}
		if conn.reads != 101 {
			t.Fatalf("%d reads of the socket in 101 calls", conn.reads)
		}
	})

	t.Run("Decoder.Decode", func(t *testing.T) {
		// A backup decodes every advert its master sends; the address
		// list is the decoder's, not made for each.
		vip := netip.MustParseAddr("192.0.2.1")
		a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{vip, v4b}}
		p, err := a.Marshal(v4a, GroupV4)
		if err != nil {
			t.Fatal(err)
		}
		dec := Decoder{Routers: map[uint8]Expect{7: {Version: 3, Addrs: []netip.Addr{v4b, vip}}}, Drops: &DropCounters{}}
		r := Received{Payload: p, Src: v4a, Dst: GroupV4, TTL: 255}
		var got Advert
		var reason DropReason
		if n := testing.AllocsPerRun(100, func() { got, reason = dec.Decode(r) }); n != 0 {
			t.Errorf("%.0f allocations per advert decoded, want 0", n)
		}
		if reason != DropNone || got.Priority != 200 || !slices.Equal(got.Addrs, a.Addrs) {
			t.Fatalf("decoded %+v, %v; want %+v", got, reason, a)
		}
	})

	t.Run("driver backup advert", func(t *testing.T) {
		// The whole of what a backup does per advert read, but the
		// socket: decoding, the machine, the status, the timer pushed
		// back.
		d, read := backupDriver(t)
		n := testing.AllocsPerRun(100, read)
		if n > 2 {
			t.Errorf("%.0f allocations per advert read, want at most 2 (the machine's actions)", n)
		}
		if st := d.in.Status(); st.State != StateBackup || st.AdvertsRecv != 101 || st.PeerAddr != v4b {
			t.Fatalf("status %v, %d adverts from %v; want backup, 101 from %v", st.State, st.AdvertsRecv, st.PeerAddr, v4b)
		}
	})

	t.Run("machine", func(t *testing.T) {
		cfg := baseCfg()
		cfg.Interval = 10 * time.Millisecond
		for _, tc := range []struct {
			name  string
			prio  int
			ev    Event
			state State
		}{
			// The owner is master from startup: every EvTimer sends.
			{"master Adver_Timer", 255, EvTimer{}, StateMaster},
			// A backup hearing its master re-arms Master_Down_Timer.
			{"backup advert", 100, adv("192.0.2.20", 200, 10*time.Millisecond), StateBackup},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := cfg
				c.Priority = tc.prio
				m, err := NewMachine(c)
				if err != nil {
					t.Fatal(err)
				}
				now := t0
				m.Handle(now, EvStartup{})
				var acts []Action
				var reason IgnoreReason
				n := testing.AllocsPerRun(100, func() {
					now = now.Add(c.Interval)
					acts, reason = m.Handle(now, tc.ev)
				})
				// The action slice and ActSetTimer's box (a time.Time
				// does not fit an interface word): what the machine's
				// interface costs; nothing else.
				if n > 2 {
					t.Errorf("%.0f allocations per event, want at most 2", n)
				}
				if reason != Handled || m.State() != tc.state || !m.Deadline().After(now) {
					t.Fatalf("reason %v, state %v, deadline %v at %v", reason, m.State(), m.Deadline(), now)
				}
				if last, ok := acts[len(acts)-1].(ActSetTimer); !ok || !last.At.Equal(m.Deadline()) {
					t.Fatalf("actions %v do not end by arming the timer for %v", acts, m.Deadline())
				}
			})
		}
	})
}

// BenchmarkAdvertPath: what a master does per advert sent and a backup
// per advert read, hot, but the socket (the timer's timerfd_settime is
// real). In the VRRP CPU table each costs far more, once per wake-up on a
// CPU the other daemons share; this is the floor of that.
func BenchmarkAdvertPath(b *testing.B) {
	b.Run("master Adver_Timer", func(b *testing.B) {
		d, _ := masterDriver(b)
		b.ReportAllocs()
		for b.Loop() {
			d.m.deadline = time.Now().Add(-time.Millisecond) // due
			d.handle(EvTimer{})
		}
	})
	b.Run("backup advert", func(b *testing.B) {
		d, read := backupDriver(b)
		b.ReportAllocs()
		for b.Loop() {
			read()
		}
		if d.m.State() != StateBackup {
			b.Fatalf("state %v, want backup", d.m.State())
		}
	})
}

// advertDriver is a driver of goodInstance advertising every interval,
// whose socket counts the adverts written and holds nothing waiting.
func advertDriver(tb testing.TB, interval time.Duration) (*driver, *waitingCountConn) {
	tb.Helper()
	ic := goodInstance()
	ic.AdvertInterval = conf.Duration(interval)
	in := NewInstance(specOf(ic), Options{Logger: slog.New(slog.DiscardHandler)})
	in.decode = in.advertDecoder()
	conn := &waitingCountConn{}
	rt := &runtime{src: netip.MustParseAddr("192.0.2.10"), conn: conn, xmit: conn, vips: &fakeVIPs{}, announce: logAnnouncer{log: &ioLog{}}, path: fakePath{}}
	d := driverFor(tb, in, rt)
	d.track = tracking{}
	tb.Cleanup(d.stopAnnounce)
	return d, conn
}

// masterDriver is an advertDriver at 10ms that has taken over: master,
// its gratuitous ARPs stopped.
func masterDriver(tb testing.TB) (*driver, *waitingCountConn) {
	tb.Helper()
	d, conn := advertDriver(tb, 10*time.Millisecond)
	if _, reason := d.m.Handle(time.Now().Add(-time.Minute), EvStartup{}); reason != Handled {
		tb.Fatalf("startup: %v", reason)
	}
	d.handle(EvTimer{}) // master down: takes over
	d.stopAnnounce()
	if d.m.State() != StateMaster {
		tb.Fatalf("state %v, want master", d.m.State())
	}
	return d, conn
}

// backupDriver is a backup advertDriver at 1s, and read hands it one
// advert of its master, 192.0.2.11 at priority 200, as come now.
func backupDriver(tb testing.TB) (d *driver, read func()) {
	tb.Helper()
	d, _ = advertDriver(tb, time.Second)
	d.handle(EvStartup{})
	src := netip.MustParseAddr("192.0.2.11")
	a := Advert{Version: 3, VRID: 7, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
	p, err := a.Marshal(src, GroupV4)
	if err != nil {
		tb.Fatal(err)
	}
	r := Received{Payload: p, Src: src, Dst: GroupV4, TTL: 255}
	return d, func() {
		r.At = time.Now()
		d.mine(r)
	}
}

// waitingCountConn is a countConn whose socket never holds anything
// waiting; it counts readWaiting's reads.
type waitingCountConn struct {
	countConn
	reads int
}

func (c *waitingCountConn) readWaiting(func(Received)) { c.reads++ }

// countConn counts the adverts written.
type countConn struct{ n int }

func (c *countConn) Read([]byte) (Received, error)  { return Received{}, net.ErrClosed }
func (c *countConn) Write([]byte, netip.Addr) error { c.n++; return nil }
func (c *countConn) Close() error                   { return nil }
func (c *countConn) setSource(netip.Addr)           {}

// TestRecvBatchHeaders: recvmmsg writes the headers of the messages it
// returns (their address and control lengths shrink to what came), and
// a read sets again only those: a control message that the earlier
// packets lacked still arrives whole on a header they used.
func TestRecvBatchHeaders(t *testing.T) {
	rx, tx := udpPair(t)
	to := rx.LocalAddr().(*net.UDPAddr)
	rb := newRecvBatch(rx, 0, func(*Received, []byte) {})
	exchange := func(n int, tag byte) []Received {
		t.Helper()
		for i := range n {
			if _, err := tx.WriteToUDP([]byte{tag, byte(i)}, to); err != nil {
				t.Fatal(err)
			}
		}
		got, err := rb.readNow()
		if err != nil || len(got) != n {
			t.Fatalf("read %d packets, %v; want %d", len(got), err, n)
		}
		for i, r := range got {
			if len(r.Payload) != 2 || r.Payload[0] != tag || r.Payload[1] != byte(i) || !r.Src.IsLoopback() {
				t.Fatalf("packet %d: %x from %v", i, r.Payload, r.Src)
			}
		}
		return got
	}
	// A whole batch and more, then fewer: no control messages yet.
	exchange(batchSize, 1)
	exchange(3, 2)
	for _, r := range exchange(5, 3) {
		if r.stamp != 0 {
			t.Fatalf("a receive time before SO_TIMESTAMPNS")
		}
	}
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	for _, n := range []int{4, batchSize} {
		for i, r := range exchange(n, 4) {
			if r.stamp == 0 {
				t.Fatalf("%d packets: packet %d came without its receive time (control message cut)", n, i)
			}
		}
	}
}

// udpPair is two UDP sockets on loopback, closed when the test ends: the
// send and receive paths see only descriptors, and sendmsg and recvmmsg
// treat a UDP socket as they do a raw one.
func udpPair(t *testing.T) (rx, tx *net.UDPConn) {
	t.Helper()
	open := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return open(), open()
}
