package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// ObserverConfig bounds an Observer's memory.
type ObserverConfig struct {
	Capacity int // records kept, oldest dropped first; default 4096
	Snaplen  int // bytes kept of each frame; default 256
	// Keep, if set, selects the records to keep; the others are only
	// counted (Filtered), so bulk traffic cannot push out the frames a
	// test waits for. KeepControl keeps VRRP, ARP and NAs.
	Keep func(Record) bool
}

// KeepControl keeps the frames of failover: VRRP, ARP and neighbour
// advertisements.
func KeepControl(r Record) bool { return r.Kind != KindOther }

// Observer captures the frames crossing a switch or one switch port, with
// an AF_PACKET socket in the lab's fabric namespace, and decodes VRRP, ARP
// and neighbour advertisements. It keeps the newest Capacity records.
type Observer struct {
	lab    *Lab
	where  string
	conn   *packet.Conn
	cfg    ObserverConfig
	done   chan struct{}
	stopMu sync.Once

	mu        sync.Mutex
	ring      []Record
	seq       uint64
	evicted   uint64
	drops     map[DropReason]uint64
	notify    chan struct{} // closed and replaced on every new record
	readErr   error
	kdrops    uint64
	filtered  uint64
	unstamped uint64 // frames without a kernel timestamp (dated by time.Now)
}

// Observe captures everything crossing the switch (the bridge device, put
// in promiscuous mode so forwarded unicast is seen too).
func (s *Switch) Observe() (*Observer, error) { return s.ObserveWith(ObserverConfig{}) }

// ObserveWith is Observe with explicit bounds.
func (s *Switch) ObserveWith(cfg ObserverConfig) (*Observer, error) {
	return s.lab.observe(s.bridge, "switch "+s.name, true, cfg)
}

// Observe captures the frames entering and leaving the switch through
// this link's port, in both directions. Frames dropped by a cut (port
// down) are not seen.
func (k *Link) Observe() (*Observer, error) { return k.ObserveWith(ObserverConfig{}) }

// ObserveWith is Observe with explicit bounds.
func (k *Link) ObserveWith(cfg ObserverConfig) (*Observer, error) {
	return k.lab.observe(k.port, "port "+k.String(), false, cfg)
}

func (l *Lab) observe(ifname, where string, promisc bool, cfg ObserverConfig) (*Observer, error) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 4096
	}
	if cfg.Snaplen <= 0 {
		cfg.Snaplen = 256
	}
	var conn *packet.Conn
	err := l.fabric.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return err
		}
		// A burst (a failover sends several GARPs and adverts at once)
		// must not overflow the default ~200 KiB socket buffer. Kernel
		// receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME like
		// time.Now) date a frame when it reached the switch, not when the
		// reader goroutine got to run: on a loaded two-core machine that
		// differs by milliseconds, the whole budget of a 10ms failover.
		rc, err := conn.SyscallConn()
		if err == nil {
			var serr error
			err = rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
			})
			err = errors.Join(err, serr)
		}
		if err != nil {
			conn.Close()
			return err
		}
		if promisc {
			if err := conn.SetPromiscuous(true); err != nil {
				conn.Close()
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab %s: observing %s: %w", l.id, where, err)
	}
	o := &Observer{
		lab: l, where: where, conn: conn, cfg: cfg,
		done:   make(chan struct{}),
		drops:  map[DropReason]uint64{},
		notify: make(chan struct{}),
	}
	go o.run()
	l.track(o)
	return o, nil
}

func (o *Observer) run() {
	defer close(o.done)
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16))
	rc, err := o.conn.SyscallConn()
	for err == nil {
		var n, oobn int
		n, oobn, err = recvmsg(rc, buf, oob)
		if err != nil {
			break
		}
		stamp, ok := kernelStamp(oob[:oobn])
		if !ok {
			stamp = time.Now()
		}
		keep := min(n, o.cfg.Snaplen)
		r := DecodeFrame(append([]byte(nil), buf[:keep]...))
		r.Len = n
		r.Time = stamp
		if keep < n && r.Malformed != "" {
			// Cut by the snap length, not broken on the wire.
			r.Malformed = ""
		}
		o.add(r, ok)
	}
	o.mu.Lock()
	o.readErr = err
	close(o.notify)
	o.notify = make(chan struct{})
	o.mu.Unlock()
}

// recvmsg reads one frame and its control messages through the runtime
// poller (packet.Conn's ReadFrom drops the control messages).
func recvmsg(rc syscall.RawConn, buf, oob []byte) (n, oobn int, err error) {
	for {
		var rerr error
		err = rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err == nil && errors.Is(rerr, unix.EINTR) {
			continue
		}
		if err == nil {
			err = rerr
		}
		if errors.Is(err, os.ErrClosed) {
			err = net.ErrClosed
		}
		return n, oobn, err
	}
}

// kernelStamp extracts the SCM_TIMESTAMPNS control message.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

func (o *Observer) add(r Record, kernelStamped bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !kernelStamped {
		o.unstamped++
	}
	if r.Malformed != "" {
		o.drops[r.Malformed]++
	}
	if o.cfg.Keep != nil && !o.cfg.Keep(r) {
		o.filtered++
		return
	}
	o.seq++
	r.Seq = o.seq
	if len(o.ring) >= o.cfg.Capacity {
		// Drop the oldest quarter at once so appends stay amortised O(1).
		k := max(1, o.cfg.Capacity/4)
		o.evicted += uint64(k)
		o.ring = append(o.ring[:0], o.ring[k:]...)
	}
	o.ring = append(o.ring, r)
	close(o.notify)
	o.notify = make(chan struct{})
}

// Unstamped returns how many frames came without a kernel timestamp and
// were dated when the reader got them instead (none are expected).
func (o *Observer) Unstamped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.unstamped
}

// RecordsBetween returns the kept records with from < Seq <= to that match
// pred, oldest first.
func (o *Observer) RecordsBetween(from, to uint64, pred func(Record) bool) []Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Record
	for _, r := range o.ring {
		if r.Seq > from && r.Seq <= to && pred(r) {
			out = append(out, r)
		}
	}
	return out
}

// Where says what the observer captures.
func (o *Observer) Where() string { return o.where }

// Records returns a snapshot of the kept records, oldest first.
func (o *Observer) Records() []Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Record(nil), o.ring...)
}

// LastSeq returns the Seq of the newest record (0 if none); pass it to
// WaitForAfter to wait only for frames captured later.
func (o *Observer) LastSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seq
}

// Filtered returns how many frames ObserverConfig.Keep rejected.
func (o *Observer) Filtered() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.filtered
}

// Evicted returns how many records were dropped to stay within Capacity.
func (o *Observer) Evicted() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.evicted
}

// KernelDrops returns how many frames the kernel dropped because the
// capture socket's buffer was full (they never became records).
func (o *Observer) KernelDrops() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.done:
		return o.kdrops
	default:
	}
	// PACKET_STATISTICS resets on every read, hence the running sum.
	if st, err := o.conn.Stats(); err == nil {
		o.kdrops += uint64(st.Drops)
	}
	return o.kdrops
}

// Drops returns how many frames failed to decode, per reason.
func (o *Observer) Drops() map[DropReason]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := make(map[DropReason]uint64, len(o.drops))
	for k, v := range o.drops {
		m[k] = v
	}
	return m
}

// WaitFor returns the first kept record matching pred, waiting for new
// frames until ctx ends.
func (o *Observer) WaitFor(ctx context.Context, pred func(Record) bool) (Record, error) {
	return o.WaitForAfter(ctx, 0, pred)
}

// WaitForAfter is WaitFor for records with Seq > after.
func (o *Observer) WaitForAfter(ctx context.Context, after uint64, pred func(Record) bool) (Record, error) {
	rs, err := o.WaitN(ctx, after, 1, pred)
	if err != nil {
		return Record{}, err
	}
	return rs[0], nil
}

// WaitN returns the first n kept records with Seq > after that match
// pred, waiting for new frames until ctx ends.
func (o *Observer) WaitN(ctx context.Context, after uint64, n int, pred func(Record) bool) ([]Record, error) {
	var got []Record
	for {
		o.mu.Lock()
		for _, r := range o.ring {
			if r.Seq > after && pred(r) {
				if got = append(got, r); len(got) == n {
					o.mu.Unlock()
					return got, nil
				}
			}
		}
		after = max(after, o.seq)
		notify, rerr := o.notify, o.readErr
		o.mu.Unlock()
		if rerr != nil {
			return nil, fmt.Errorf("observer on %s stopped: %w", o.where, rerr)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("observer on %s: %d of %d matching frames: %w", o.where, len(got), n, ctx.Err())
		case <-notify:
		}
	}
}

// Stop closes the capture socket and waits for the reader to finish. Kept
// records stay readable. It is idempotent; the lab calls it at teardown.
func (o *Observer) Stop() error {
	var err error
	o.stopMu.Do(func() {
		err = o.conn.Close()
		<-o.done
		o.lab.untrack(o)
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Close is Stop, so the lab can tear observers down like other closers.
func (o *Observer) Close() error { return o.Stop() }
