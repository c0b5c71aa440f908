package vrrp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// wireTap records the failover frames (VRRP, ARP, NA) arriving at one lab
// host's interface, stamped by the kernel when the frame entered that
// host's veth (SO_TIMESTAMPNS, CLOCK_REALTIME). lab.Observer stamps frames
// with time.Now() after its reader goroutine wakes, which on a loaded
// two-core machine can lag the wire by milliseconds: too coarse for a
// 10ms advert interval, whose whole budget for graceful failover is about
// 8ms. The frames are decoded with lab.DecodeFrame.
type wireTap struct {
	conn *packet.Conn
	done chan struct{}

	mu      sync.Mutex
	recs    []lab.Record // oldest first, at most tapCapacity
	seq     uint64
	notify  chan struct{} // closed and replaced on every new record
	err     error         // why the reader stopped
	noStamp uint64        // frames the kernel gave no timestamp (none expected)
}

// tapCapacity bounds the tap's memory: a 10-instance CPU window at 100
// adverts/s keeps ~1000 records per 10s.
const tapCapacity = 1 << 15

// tapSnaplen is enough for any VRRP, ARP or NA frame the bench sends.
const tapSnaplen = 256

// newWireTap starts the tap; the caller closes it.
func newWireTap(tb testing.TB, h *lab.Host, iface string) *wireTap {
	tb.Helper()
	var conn *packet.Conn
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		tb.Fatalf("tap on %s %s: %v", h.Name(), iface, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		tb.Fatalf("tap on %s %s: %v", h.Name(), iface, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		if serr == nil {
			// A takeover sends a burst; the reader may be descheduled.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		}
	}); err != nil || serr != nil {
		conn.Close()
		tb.Fatalf("tap on %s %s: socket options: %v", h.Name(), iface, errors.Join(err, serr))
	}
	w := &wireTap{conn: conn, done: make(chan struct{}), notify: make(chan struct{})}
	go w.run(rc)
	return w
}

func (w *wireTap) run(rc syscall.RawConn) {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(16))
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err == nil && errors.Is(rerr, unix.EINTR) {
			continue
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			w.stop(err)
			return
		}
		r := lab.DecodeFrame(bytes.Clone(buf[:min(n, tapSnaplen)]))
		if r.Kind == lab.KindOther {
			continue
		}
		r.Len = n
		ts, ok := kernelStamp(oob[:oobn])
		w.add(r, ts, ok)
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

func (w *wireTap) add(r lab.Record, ts time.Time, stamped bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !stamped {
		w.noStamp++
		ts = time.Now()
	}
	w.seq++
	r.Seq, r.Time = w.seq, ts
	if len(w.recs) >= tapCapacity {
		w.recs = append(w.recs[:0], w.recs[tapCapacity/4:]...)
	}
	w.recs = append(w.recs, r)
	close(w.notify)
	w.notify = make(chan struct{})
}

func (w *wireTap) stop(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
	close(w.notify)
	w.notify = make(chan struct{})
}

func (w *wireTap) close() {
	w.conn.Close()
	<-w.done
}

// mark returns the Seq of the newest record; pass it as after to see only
// later frames.
func (w *wireTap) mark() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// unstamped says how many frames came without a kernel timestamp (and were
// stamped in user space instead).
func (w *wireTap) unstamped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.noStamp
}

// records returns the kept records with from < Seq <= to matching pred.
func (w *wireTap) records(from, to uint64, pred func(lab.Record) bool) []lab.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []lab.Record
	for _, r := range w.recs {
		if r.Seq > from && r.Seq <= to && pred(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitN waits for n records after the mark matching pred and returns them.
func (w *wireTap) waitN(ctx context.Context, after uint64, n int, pred func(lab.Record) bool) ([]lab.Record, error) {
	for {
		w.mu.Lock()
		var got []lab.Record
		for _, r := range w.recs {
			if r.Seq > after && pred(r) {
				if got = append(got, r); len(got) == n {
					w.mu.Unlock()
					return got, nil
				}
			}
		}
		notify, err := w.notify, w.err
		w.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("tap stopped: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("tap: %d of %d frames: %w", len(got), n, ctx.Err())
		case <-notify:
		}
	}
}

// waitFirst is waitN for one record.
func (w *wireTap) waitFirst(ctx context.Context, after uint64, pred func(lab.Record) bool) (lab.Record, error) {
	rs, err := w.waitN(ctx, after, 1, pred)
	if err != nil {
		return lab.Record{}, err
	}
	return rs[0], nil
}
