package healthcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// WeightConfigured in a Result or Transition means "use the real server's
// configured weight": only exec checks (keepalived's misc_dynamic) set an
// explicit weight, and 0 is a legitimate explicit weight (quiesced).
const WeightConfigured = -1

// Result is the outcome of one check run.
type Result struct {
	Up     bool
	Weight int    // WeightConfigured unless an exec check chose one
	Reason string // what happened, e.g. "connect: connection refused"
	// TimedOut: the target gave no answer by the deadline. It is the one
	// failure a late checker can cause by itself (lateFailure); a refusal,
	// a reset or a wrong answer is the target's word, however late the
	// checker read it.
	TimedOut bool
	Start    time.Time
	Took     time.Duration
}

// Checker runs one check against one target. Run must be over by deadline
// (plus a small scheduling slack, see CheckDeadline) and return early when
// ctx is cancelled; it is never called concurrently with itself for the
// same probe.
type Checker interface {
	Run(ctx context.Context, deadline time.Time) Result
}

// maxLagCredit caps how much of a late start a check gives back.
const maxLagCredit = 5 * time.Millisecond

// CheckDeadline is when a check that was due at scheduled and starts at
// started (both on the scheduler's clock) must be over, on that clock too.
// It counts from the check's actual start, not from when it was due: a
// director so busy that its checks start late must not also cut their time
// short, or overload alone would fail healthy real servers, all at once
// (CI's emulated VM showed exactly that). Only the ordinary jitter of a
// busy scheduler, up to 5 ms and never more than a tenth of the timeout,
// is taken back, so that it does not add to the time from a server going
// down to its transition (the goal is timeout + 5 ms). Lag is measured
// and reported on its own (Observation).
func CheckDeadline(scheduled, started time.Time, timeout time.Duration) time.Time {
	return started.Add(timeout - lagCredit(scheduled, started, timeout))
}

func lagCredit(scheduled, started time.Time, timeout time.Duration) time.Duration {
	return max(min(started.Sub(scheduled), maxLagCredit, timeout/10), 0)
}

// Target is one (real server, check) pair. Several virtual servers listing
// the same real server with the same check produce equal Keys and
// therefore share one probe.
type Target struct {
	Addr netip.AddrPort // the real server
	// Check is its effective check, every default applied (conf.Compile),
	// and never nil. It is shared, not copied: the compiled spec is
	// immutable, and a copy (440 bytes) in each probe was a fifth of what
	// a probe held.
	Check *conf.CheckSpec
	// Notify is this subscriber's notify_up/notify_down. It is not part
	// of the probe's identity: each subscriber of a probe has its own,
	// and a reload that changes only these keeps the probe's state.
	Notify Notify
}

// Notify is one subscriber's notify commands: the real server of a
// virtual server that a probe checks.
type Notify struct {
	VirtualServer string   // its name
	RealServer    string   // its name; "" when unnamed
	Up, Down      []string // argv run when the probe's verdict turns up or down; nil: nothing
}

// Key identifies t's probe: equal keys mean one probe.
func (t Target) Key() string {
	// Encoding the whole spec covers fields added later too, so a change
	// to any key of the definition starts a new probe.
	// A digest of the spec, not the spec: the key is held by the probe,
	// its transitions and each consumer's map, and the encoded spec is
	// most of a kilobyte per target. 128 bits make a collision between
	// two configured checks as good as impossible. The encoding streams
	// into the hash through the encoder's pooled buffer: a Marshal per
	// target was a kilobyte of garbage each, 1 MB for a first Update of
	// 1k targets.
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(t.Check); err != nil {
		h.Reset()
		fmt.Fprintf(h, "%#v", *t.Check)
	}
	var sum [sha256.Size]byte
	return t.Addr.String() + " " + t.Check.Kind.String() + " " + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// NewChecker builds the checker for t. The spec is conf's, validated and
// defaulted; what is left to fail is what only the host can tell (an
// unreadable ca_file, a source address of the wrong family).
func NewChecker(t Target) (Checker, error) {
	c := t.Check
	if c == nil {
		return nil, fmt.Errorf("check for %s: no check spec", t.Addr)
	}
	if c.Interval <= 0 || c.Timeout <= 0 {
		return nil, fmt.Errorf("%s check for %s: interval %s and timeout %s must be positive (a spec from conf.Compile)", c.Kind, t.Addr, c.Interval, c.Timeout)
	}
	var (
		ck  Checker
		err error
	)
	switch c.Kind {
	case conf.CheckTCP:
		ck, err = newTCP(c)
	case conf.CheckHTTP, conf.CheckHTTPS:
		ck, err = newHTTP(c)
	case conf.CheckExec:
		ck, err = newExec(c)
	case conf.CheckDNS:
		ck, err = newDNS(c)
	case conf.CheckUDP:
		ck, err = newUDP(c)
	default:
		return nil, fmt.Errorf("check for %s: unknown kind %v", t.Addr, c.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("%s check for %s: %w", c.Kind, t.Addr, err)
	}
	return ck, nil
}

// dialer returns a dialer bound to source (source_address) when it is
// valid.
func dialer(source netip.Addr, network string) *net.Dialer {
	d := &net.Dialer{}
	if source.IsValid() {
		ip := net.IP(source.AsSlice())
		switch network {
		case "udp":
			d.LocalAddr = &net.UDPAddr{IP: ip}
		default:
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	// Checks must not linger: a failed check should not leave a socket in
	// a state that delays the next one, and keep-alive probes are useless
	// on a connection that lives for one request.
	d.KeepAlive = -1
	return d
}

// failure is the result of an I/O error in phase: its reason names the
// phase and the cause without Go's "dial tcp 1.2.3.4:80->..." noise.
func failure(phase string, err error, deadline time.Time, timeout time.Duration) Result {
	// A read cut short by the deadline can surface as a parse error of the
	// partial data ("malformed MIME header"): past the deadline, the
	// deadline is the cause. An error the kernel reported (a refusal, a
	// reset, an unreachable host) is not: it is the target's answer, also
	// when the checker, late, reads it after the deadline.
	var errno syscall.Errno
	if isTimeout(err) || (!errors.As(err, &errno) && !deadline.IsZero() && !time.Now().Before(deadline)) {
		return timedOut(fmt.Sprintf("timeout after %s %s", timeout, gerund(phase)))
	}
	return down(phase + ": " + cause(err))
}

// timedOut is the result of a check whose target gave no answer by its
// deadline: down, and marked TimedOut (the one failure lateFailure may
// retry).
func timedOut(reason string) Result {
	r := down(reason)
	r.TimedOut = true
	return r
}

// deadlineOf is ctx's deadline, zero if it has none.
func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}

func gerund(phase string) string {
	switch phase {
	case "connect":
		return "connecting"
	case "tls handshake":
		return "in tls handshake"
	}
	return phase
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// cause extracts the innermost useful message: the errno text for socket
// errors, else the error itself.
func cause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "dial ") {
		return s[i+2:]
	}
	return s
}

func up(reason string) Result   { return Result{Up: true, Weight: WeightConfigured, Reason: reason} }
func down(reason string) Result { return Result{Weight: WeightConfigured, Reason: reason} }
