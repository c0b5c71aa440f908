package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recorder is a slog.Handler that keeps every record's message and
// attributes (the handler's own With attributes included).
type recorder struct {
	mu    *sync.Mutex
	recs  *[]logRecord
	attrs []slog.Attr
}

type logRecord struct {
	msg   string
	attrs map[string]string
}

func newRecorder() *recorder { return &recorder{mu: &sync.Mutex{}, recs: &[]logRecord{}} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{mu: r.mu, recs: r.recs, attrs: append(slices.Clone(r.attrs), as...)}
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{msg: rec.Message, attrs: map[string]string{}}
	for _, a := range r.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, lr)
	r.mu.Unlock()
	return nil
}

// take returns the records with msg logged since the last take.
func (r *recorder) take(msg string) []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logRecord
	for _, lr := range *r.recs {
		if lr.msg == msg {
			out = append(out, lr)
		}
	}
	*r.recs = nil
	return out
}

// fakeConn sends nothing; Write fails with err when set.
type fakeConn struct {
	mu   sync.Mutex
	err  error
	sent int
}

func (c *fakeConn) Read([]byte) (Received, error) { return Received{}, net.ErrClosed }
func (c *fakeConn) Close() error                  { return nil }
func (c *fakeConn) setSource(netip.Addr)          {}
func (c *fakeConn) Write([]byte, netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.sent++
	return nil
}

// testDriver is an instance's driver without sockets: the machine, the
// timer and the notifier are real, the advert socket is a fakeConn. It
// stays out of Master (no VIPs to add: there is no netlink handle).
func testDriver(t *testing.T, rec *recorder) (*driver, *fakeConn) {
	t.Helper()
	cfg := goodInstance()
	in := NewInstance(specOf(cfg), Options{Logger: slog.New(rec)})
	src := netip.MustParseAddr("192.0.2.11")
	c := &fakeConn{}
	rt := &runtime{src: src, conn: c, xmit: c, path: &pathWatch{failed: make(chan sendFailure, 1)}}
	return driverFor(t, in, rt), c
}

// driverFor is in's driver over rt: the machine (its primary address
// rt.src), the timer and the notifier are real.
func driverFor(t testing.TB, in *Instance, rt *runtime) *driver {
	t.Helper()
	m, err := NewMachine(in.machineConfig(rt.src))
	if err != nil {
		t.Fatal(err)
	}
	timer, err := newFDTimer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(timer.close)
	notify := newNotifier(time.Second, func(error) {})
	t.Cleanup(notify.close)
	return &driver{in: in, m: m, rt: rt, notify: notify, timer: timer}
}

// TestPriorityChangeLogged checks that a tracked script that starts or
// stops failing logs one record naming the cause with the old and new
// priority, counts it, and shows in Status; and that a transition is
// logged once.
func TestPriorityChangeLogged(t *testing.T) {
	rec := newRecorder()
	d, _ := testDriver(t, rec)
	base := int(d.in.cfg.Priority)
	track := tracking{
		ifaceKey("eth0"): {desc: "interface eth0", down: "down"},
		{kind: trackScript, name: "chk", index: 0}: {weight: -10, desc: "track_script chk", down: "failing"},
	}
	d.applyTracking(track, true)
	d.handle(EvStartup{})
	if got := rec.take("vrrp state change"); len(got) != 1 || got[0].attrs["to"] != "backup" {
		t.Fatalf("startup logged %d state changes, want 1 to backup: %+v", len(got), got)
	}
	if got := rec.take("priority change"); len(got) != 0 {
		t.Fatalf("priority change logged without a change: %+v", got)
	}

	steps := []struct {
		name    string
		failing bool
		from    int
		to      int
		cause   string
		count   uint64
		status  []string
	}{
		{"script fails", true, base, base - 10, "track_script chk failing -10", 1, []string{"track_script chk failing -10"}},
		{"script recovers", false, base - 10, base, "track_script chk recovered +10", 2, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			track[trackKey{kind: trackScript, name: "chk", index: 0}].failing = s.failing
			d.tracked(track)
			d.tracked(track) // the same state again: no second record
			got := rec.take("priority change")
			if len(got) != 1 {
				t.Fatalf("%d priority change records, want 1: %+v", len(got), got)
			}
			want := map[string]string{"vrrp_instance": d.in.cfg.Name, "from": fmt.Sprint(s.from), "to": fmt.Sprint(s.to),
				"base": fmt.Sprint(base), "cause": s.cause, "state": "backup"}
			for k, v := range want {
				if got[0].attrs[k] != v {
					t.Errorf("record %s = %q, want %q (%v)", k, got[0].attrs[k], v, got[0].attrs)
				}
			}
			st := d.in.Status()
			if n := st.PriorityChanges["track_script:chk"]; n != s.count {
				t.Errorf("PriorityChanges[track_script:chk] = %d, want %d", n, s.count)
			}
			if int(st.Priority) != s.to || !slices.Equal(st.Failing, s.status) {
				t.Errorf("status priority %d failing %q, want %d %q", st.Priority, st.Failing, s.to, s.status)
			}
			if sc := rec.take("vrrp state change"); len(sc) != 0 {
				t.Errorf("a priority change alone logged a transition: %+v", sc)
			}
		})
	}

	// A weight-0 failure is a transition, logged once with its cause.
	track[ifaceKey("eth0")].failing = true
	d.tracked(track)
	got := rec.take("vrrp state change")
	if len(got) != 1 || got[0].attrs["to"] != "fault" || got[0].attrs["reason"] != "tracking fault: interface eth0 down (fault)" {
		t.Fatalf("fault logged as %+v, want one record to fault naming interface eth0", got)
	}
	if pc := rec.take("priority change"); len(pc) != 0 {
		t.Fatalf("a fault logged a priority change: %+v", pc)
	}
}

// TestSendErrorFaults checks that an advert that cannot be sent is counted
// per reason, puts the instance in Fault at once with the error as the
// reason, and is reported to the path watch (which clears it: by a route
// lookup, or after a backoff for a firewall's EPERM); a transient error is
// only counted.
func TestSendErrorFaults(t *testing.T) {
	sendErr := func(e unix.Errno) error {
		return &net.OpError{Op: "write", Net: "ip4:112", Err: os.NewSyscallError("sendmsg", e)}
	}
	for _, tc := range []struct {
		err    error
		reason string
		fault  bool
		routed bool
	}{
		{sendErr(unix.EHOSTUNREACH), "ehostunreach", true, true},
		{sendErr(unix.EINVAL), "einval", true, true},
		{sendErr(unix.EPERM), "eperm", true, false},
		{sendErr(unix.ENOBUFS), "enobufs", false, false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			rec := newRecorder()
			d, c := testDriver(t, rec)
			d.track = tracking{keySend: {desc: "advert sending", down: "failing"}}
			d.applyTracking(d.track, true)
			d.handle(EvStartup{})
			rec.take("vrrp state change")
			c.err = tc.err
			d.send(100)
			d.handle(EvTimer{}) // the next event finds the broken send
			st := d.in.Status()
			if st.SendErrors != 1 || st.SendErrorReasons[tc.reason] != 1 {
				t.Fatalf("SendErrors %d, reasons %v; want 1 %s", st.SendErrors, st.SendErrorReasons, tc.reason)
			}
			why := "adverts to 224.0.0.18 from 192.0.2.11 cannot be sent: write ip4:112: sendmsg: " + tc.err.(*net.OpError).Err.(*os.SyscallError).Err.Error()
			sc := rec.take("vrrp state change")
			if !tc.fault {
				if st.State != StateBackup || len(sc) != 0 {
					t.Fatalf("a transient error changed the state to %v: %+v", st.State, sc)
				}
				select {
				case f := <-d.rt.path.(*pathWatch).failed:
					t.Fatalf("transient error reported as a broken path: %+v", f)
				default:
				}
				return
			}
			if st.State != StateFault || len(sc) != 1 || sc[0].attrs["reason"] != "tracking fault: "+why+" (fault)" {
				t.Fatalf("state %v, transitions %+v; want one to fault because %s", st.State, sc, why)
			}
			if !slices.Equal(st.Failing, []string{why + " (fault)"}) {
				t.Errorf("status failing %q", st.Failing)
			}
			select {
			case f := <-d.rt.path.(*pathWatch).failed:
				if f.why != why || f.routed != tc.routed {
					t.Fatalf("path watch told %+v, want %q routed %v", f, why, tc.routed)
				}
			default:
				t.Fatal("the send error was not reported to the path watch")
			}
		})
	}
}
