package healthcheck

import (
	"context"
	"errors"
	"golang.org/x/sys/unix"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// TestStarvedCheckerJudgedByArrival: a checker that the host does not run
// for a while (pause stands in for a starved process: a cgroup's quota, an
// overloaded VM) judges its target by when the answer reached the kernel,
// not by when it got around to reading it. A healthy server is up however
// late the checker was; a server that answered after its timeout is down
// however the checker's lateness is spread; a silent one still costs only
// its timeout on top of the checker's own lateness.
func TestStarvedCheckerJudgedByArrival(t *testing.T) {
	const (
		timeout = 100 * time.Millisecond
		starved = 300 * time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		answer time.Duration // the server's delay after the request
		step   string        // where the checker is starved ("" nowhere)
		up     bool
		// early is how long before Run the check started: the checker
		// starved between its start (which the deadline counts from)
		// and Run.
		early time.Duration
	}{
		{"answers at once, starved after sending", 0, "sent", true, 0},
		{"answers at once, starved after connecting", 0, "connected", true, 0},
		{"answers in 40ms, starved after connecting", 40 * time.Millisecond, "connected", true, 0},
		{"answers after its timeout, starved after sending", 200 * time.Millisecond, "sent", false, 0},
		{"answers after its timeout, starved after connecting", 200 * time.Millisecond, "connected", false, 0},
		{"answers after its timeout, not starved", 200 * time.Millisecond, "", false, 0},
		{"silent, starved after sending", 2 * time.Second, "sent", false, 0},
		{"answers at once, starved before Run", 0, "", true, starved},
		{"answers after its timeout, starved before Run", 200 * time.Millisecond, "", false, starved},
	} {
		for _, path := range []string{"Run", "loop"} {
			t.Run(path+"/"+tc.name, func(t *testing.T) {
				ap := serve(t, byPath(tc.answer, map[string]string{"/": "200 OK"}, nil))
				spec := complete(conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: httpPath("/"), Timeout: timeout}, ap)
				ck, err := newHTTP(&spec)
				if err != nil {
					t.Fatal(err)
				}
				hc := ck.(*httpChecker)
				var paused []string
				hc.dial.pause = func(step string) {
					paused = append(paused, step)
					if step == tc.step {
						// The process not running is what is simulated;
						// the kernel keeps receiving meanwhile.
						time.Sleep(starved)
					}
				}
				start := time.Now()
				deadline := start.Add(timeout - tc.early)
				var r Result
				if path == "Run" {
					r = hc.Run(context.Background(), deadline)
				} else {
					r, _ = runOnLoop(t, hc, deadline)
				}
				took := time.Since(start)
				if r.Up != tc.up {
					t.Fatalf("up %v (%s), want %v; steps %v", r.Up, r.Reason, tc.up, paused)
				}
				if !tc.up && !strings.Contains(r.Reason, "timeout") {
					t.Fatalf("reason %q, want a timeout", r.Reason)
				}
				if tc.step != "" && !strings.Contains(strings.Join(paused, ","), tc.step) {
					t.Fatalf("steps %v never reached %q", paused, tc.step)
				}
				// The check costs the target's timeout plus the checker's
				// own lateness, and no more (with room for a busy host).
				if limit := timeout + starved + 300*time.Millisecond; took > limit {
					t.Fatalf("the check took %s, want under %s", took, limit)
				}
			})
		}
	}
}

// TestLateRefusalIsNoTimeout: a refusal that the loop reads only after
// the check's deadline (it was busy) is reported as the refusal it is, not
// as a timeout: only a timeout can be the checker's own doing (lateFailure
// retries those), and the reason must tell an operator what the target
// did. The loop learns of it either from the socket's event, handled in
// the poll that finds the deadline past, or, when no event came (the
// refusal landed between the poll's wait and its deadlines), at the
// deadline itself (expire).
func TestLateRefusalIsNoTimeout(t *testing.T) {
	for _, via := range []string{"event", "deadline"} {
		t.Run(via, func(t *testing.T) {
			ap, closeListener := blackhole(t)
			spec := complete(conf.CheckSpec{Kind: conf.CheckTCP, Timeout: 50 * time.Millisecond}, ap)
			ck, err := NewChecker(Target{Addr: ap, Check: &spec})
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := ck.(loopChecker).loopSpec()
			l, err := newCheckLoop()
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			f := &flight{spec: ls}
			l.start(f, time.Now().Add(50*time.Millisecond))
			if f.state != connecting {
				t.Fatalf("state %d, want connecting to the black hole", f.state)
			}
			if via == "deadline" {
				// No event will tell the loop: only its deadline.
				if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, f.fd, nil); err != nil {
					t.Fatal(err)
				}
			}
			// The SYN's retransmission (after a second) meets no
			// listener: the kernel has the refusal, and the loop, busy,
			// has not looked.
			closeListener()
			pfd := []unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLOUT}}
			for limit := time.Now().Add(10 * time.Second); pfd[0].Revents&unix.POLLERR == 0; {
				if time.Now().After(limit) {
					t.Fatal("no refusal within 10s")
				}
				if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
					t.Fatal(err)
				}
			}
			l.poll(time.Now().Add(time.Second))
			done := l.finished()
			if len(done) != 1 {
				t.Fatalf("%d finished, want the one check", len(done))
			}
			if r := done[0].r; r.Up || r.TimedOut || !strings.Contains(r.Reason, "connection refused") {
				t.Fatalf("result %+v, want a refusal that is no timeout", r)
			}
		})
	}
}

// TestFailureTimedOut: which errors make a timeout.
func TestFailureTimedOut(t *testing.T) {
	past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name     string
		err      error
		deadline time.Time
		reason   string
		timedOut bool
	}{
		{"deadline exceeded", os.ErrDeadlineExceeded, future, "timeout after 1s connecting", true},
		{"refused before the deadline", os.NewSyscallError("connect", syscall.ECONNREFUSED), future, "connect: connection refused", false},
		{"refused, read after the deadline", os.NewSyscallError("connect", syscall.ECONNREFUSED), past, "connect: connection refused", false},
		{"reset, read after the deadline", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, past, "connect: connection reset by peer", false},
		{"partial data past the deadline", errors.New("malformed MIME header line"), past, "timeout after 1s connecting", true},
		{"partial data before the deadline", errors.New("malformed MIME header line"), future, "connect: malformed MIME header line", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := failure("connect", tc.err, tc.deadline, time.Second)
			if r.Up || r.Reason != tc.reason || r.TimedOut != tc.timedOut {
				t.Fatalf("got %+v, want reason %q timed out %v", r, tc.reason, tc.timedOut)
			}
		})
	}
}
