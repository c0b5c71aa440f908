package healthcheck

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
)

// runOnLoop runs one check of ck on a checkLoop of its own, as the
// scheduler's dispatcher does; ok is false for a checker the loop does not
// run (https, exec, dns, udp).
func runOnLoop(t *testing.T, ck Checker, deadline time.Time) (r Result, ok bool) {
	t.Helper()
	lc, ok := ck.(loopChecker)
	if !ok {
		return Result{}, false
	}
	spec, ok := lc.loopSpec()
	if !ok {
		return Result{}, false
	}
	l, err := newCheckLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	f := &flight{spec: spec}
	l.start(f, deadline)
	for limit := time.Now().Add(30 * time.Second); ; {
		for _, done := range l.finished() {
			if done != f {
				t.Fatalf("a flight finished that was never started")
			}
			if l.inflight != 0 || len(l.dl) != 0 {
				t.Fatalf("finished, yet %d in flight and %d deadlines", l.inflight, len(l.dl))
			}
			return f.r, true
		}
		if time.Now().After(limit) {
			t.Fatalf("the loop never finished the check (state %d, phase %q)", f.state, f.phase)
		}
		l.poll(time.Now().Add(time.Second))
	}
}

// TestLoopCheckAllocs: a check on the loop allocates nothing, for tcp
// and for an http response that httpURL.quick reads (net/http's parsing
// made 8).
func TestLoopCheckAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tc := range []struct {
		name string
		spec conf.CheckSpec
		max  float64
	}{
		{"tcp", conf.CheckSpec{Kind: conf.CheckTCP}, 0},
		{"http", conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: httpPath("/")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := rawServe(t, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine")
			tc.spec.Timeout = 3 * time.Second
			ck, err := NewChecker(tgt(ap, tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			spec, _ := ck.(loopChecker).loopSpec()
			l, err := newCheckLoop()
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			f := &flight{spec: spec}
			var last Result
			run := func() {
				l.start(f, time.Now().Add(tc.spec.Timeout))
				for limit := time.Now().Add(10 * time.Second); time.Now().Before(limit); l.poll(time.Now().Add(time.Second)) {
					if len(l.finished()) > 0 {
						last = f.r
						return
					}
				}
				t.Fatal("the check never finished")
			}
			run() // warm: the loop's tables and buffers grow once
			n := testing.AllocsPerRun(50, run)
			if !last.Up {
				t.Fatalf("check down: %s", last.Reason)
			}
			t.Logf("%.1f allocations per check", n)
			if n > tc.max {
				t.Fatalf("%.1f allocations per check, want at most %.0f", n, tc.max)
			}
		})
	}
}

// rawServe answers every connection on a loopback port with resp (none:
// it accepts and closes), with
// system calls that allocate nothing, so that allocation counts are the
// checker's alone.
func rawServe(t *testing.T, resp string) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf [4096]byte
		out := []byte(resp)
		for {
			c, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
			if errno != 0 {
				return // the listener was shut down
			}
			if len(out) > 0 {
				unix.Syscall(unix.SYS_READ, c, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				unix.Syscall(unix.SYS_WRITE, c, uintptr(unsafe.Pointer(&out[0])), uintptr(len(out)))
			}
			unix.Syscall(unix.SYS_CLOSE, c, 0, 0)
		}
	}()
	t.Cleanup(func() {
		unix.Shutdown(fd, unix.SHUT_RDWR) // wakes the accept
		<-done
		unix.Close(fd)
	})
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
}

// TestLoopBoundsAndCancels: on the dispatcher's loop, hung targets cost at
// most MaxConcurrent sockets and no goroutine per check, the probes beyond
// it wait their turn (and all get checked), and removing the probes ends
// their checks in flight at once, sockets closed.
func TestLoopBoundsAndCancels(t *testing.T) {
	const probes, limit = 300, 40
	hung := blackholeAddr(t)
	fd0, g0 := openFDs(t), runtime.NumGoroutine()
	s := runScheduler(t, Options{MaxConcurrent: limit})
	if _, err := s.Update(hungTargets(hung, probes, 100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var maxFD, maxG int
	checked := func() int {
		n := 0
		for _, st := range s.Status() {
			if st.Checks > 0 {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); checked() < probes; time.Sleep(5 * time.Millisecond) {
		maxFD = max(maxFD, openFDs(t)-fd0)
		maxG = max(maxG, runtime.NumGoroutine()-g0)
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d probes checked in 5s", checked(), probes)
		}
	}
	t.Logf("fd growth %d, goroutine growth %d", maxFD, maxG)
	// Each check holds one socket; the loop's epoll, eventfd and timerfd
	// add three.
	if maxFD < limit/2 || maxFD > limit+10 {
		t.Fatalf("fds grew by %d, want near %d: the targets hang", maxFD, limit)
	}
	// The dispatcher, the stall meter and a few of the runtime's.
	if maxG > 10 {
		t.Fatalf("goroutines grew by %d for %d probes", maxG, probes)
	}
	// Checks that would hang for 30 s, then removed. First the short
	// ones end, so that the sockets counted next are the long ones'.
	if _, err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); openFDs(t)-fd0 > 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds still open 2s after the probes were removed", openFDs(t)-fd0)
		}
	}
	if _, err := s.Update(hungTargets(hung, limit, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); openFDs(t)-fd0 < limit; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d fds open for %d hanging checks", openFDs(t)-fd0, limit)
		}
	}
	if _, err := s.Update(nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Second); openFDs(t)-fd0 > 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fds still open after the probes were removed", openFDs(t)-fd0)
		}
	}
}

// TestLoopFullTransitionsStallOnlyTheirProbes: the loop never waits for
// the consumer. While the Transitions channel is full, a probe with news
// waits (its next check too), the others keep being checked, and nothing
// is lost when the consumer reads again.
func TestLoopFullTransitionsStallOnlyTheirProbes(t *testing.T) {
	s := runScheduler(t, Options{Buffer: 1})
	var ts []Target
	for i := range 3 { // up at first, refused: each goes down once
		ts = append(ts, tgt(refusedAddr(t), conf.CheckSpec{Kind: conf.CheckTCP, Interval: 10 * time.Millisecond,
			Timeout: time.Second, Fall: 1, Rise: i + 1, InitialUp: true}))
	}
	healthy := tgt(rawServe(t, ""), conf.CheckSpec{Kind: conf.CheckTCP, Interval: 10 * time.Millisecond, Timeout: time.Second, InitialUp: true})
	ts = append(ts, healthy)
	if _, err := s.Update(ts); err != nil {
		t.Fatal(err)
	}
	checks := func() uint64 { return probeChecks(s, healthy.Key()) }
	// One transition fills the channel, the other two wait; the healthy
	// probe goes on.
	n0 := checks()
	for deadline := time.Now().Add(5 * time.Second); checks() < n0+20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the healthy probe was checked %d times in 5s while the channel was full", checks()-n0)
		}
	}
	seen := map[string]bool{}
	for range 3 {
		select {
		case tr := <-s.Transitions():
			if tr.Up {
				t.Fatalf("unexpected transition %s", tr)
			}
			seen[tr.Key] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 3 transitions came", len(seen))
		}
	}
	if len(seen) != 3 {
		t.Fatalf("transitions of %d probes, want 3", len(seen))
	}
}

// TestLoopNotHeldByBusyWorkers: checks that run on workers (exec here)
// and hang hold their workers, and the next of them waits for one; the
// loop's own checks go on meanwhile (a hung target costs only its own
// timeout). With MaxConcurrent 1, the second hung exec check waited on
// the loop's goroutine, and the tcp probe stood still until a worker came
// free (10 s here).
func TestLoopNotHeldByBusyWorkers(t *testing.T) {
	s := runScheduler(t, Options{MaxConcurrent: 1})
	hung := conf.CheckSpec{Kind: conf.CheckExec, Exec: conf.ExecCheckSpec{Command: []string{"/bin/sleep", "30"}},
		Interval: 50 * time.Millisecond, Timeout: 10 * time.Second, InitialUp: true, Warmup: 1}
	healthy := tgt(rawServe(t, ""), conf.CheckSpec{Kind: conf.CheckTCP, Interval: 20 * time.Millisecond, Timeout: time.Second, InitialUp: true, Warmup: 1})
	ts := []Target{healthy}
	for i := range 3 {
		ts = append(ts, tgt(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9000+i)), hung))
	}
	if _, err := s.Update(ts); err != nil {
		t.Fatal(err)
	}
	checks := func() uint64 { return probeChecks(s, healthy.Key()) }
	// 20 checks of the healthy probe take 0.4 s on schedule; the hung
	// ones hold the only worker for 10 s each.
	for deadline := time.Now().Add(5 * time.Second); checks() < 20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the healthy probe was checked %d times in 5s while the exec checks hung", checks())
		}
	}
}
