package healthcheck

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

func runScheduler(t *testing.T, opt Options) *Scheduler {
	t.Helper()
	s := New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not stop")
		}
	})
	return s
}

// Two virtual servers listing the same real server with the same check
// cause one request per interval, counted where it lands.
func TestDedupOneProbePerInterval(t *testing.T) {
	var hits atomic.Int64
	ap := serve(t, func(c net.Conn) {
		if _, ok := readRequest(c); ok {
			hits.Add(1)
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	check := conf.CheckSpec{Kind: conf.CheckHTTP, Interval: 50 * time.Millisecond, Timeout: time.Second}
	vs1 := tgt(ap, check)
	vs2 := tgt(ap, check) // same real server, other virtual server
	var checks atomic.Int64
	s := New(Options{OnResult: func(Observation) { checks.Add(1) }})
	states, err := s.Update([]Target{vs1, vs2})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 {
		t.Fatalf("%d states for one (target, check), want 1", len(states))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	tr := recv(t, s)
	if !tr.Up || tr.Key != vs1.Key() {
		t.Fatalf("transition %v, want up", tr)
	}
	waitFor(t, "ten checks", func() bool { return checks.Load() >= 10 })
	cancel()
	<-done // Run returns after every check in flight has finished
	elapsed := time.Since(tr.At)
	n, c := hits.Load(), checks.Load()
	// Each completed check made one request; a check cancelled by the stop
	// may have reached the server without completing, hence the +1.
	if n < c || n > c+1 {
		t.Fatalf("server saw %d requests for %d checks: probes not shared", n, c)
	}
	if max := int64(elapsed/(50*time.Millisecond)) + 2; n > max {
		t.Fatalf("server saw %d requests in %v at a 50ms interval (max %d)", n, elapsed, max)
	}
	if st := s.Status(); len(st) != 1 || st[0].Subscribers != 2 {
		t.Fatalf("status %+v, want one probe with two subscribers", st)
	}
}

// A target that hangs until its timeout must not hold up the others.
func TestHungTargetDoesNotDelayOthers(t *testing.T) {
	var lagMu sync.Mutex
	var maxLag time.Duration
	healthy := serve(t, silent)
	hung := blackholeAddr(t)
	s := runScheduler(t, Options{MaxConcurrent: 4, OnResult: func(o Observation) {
		lagMu.Lock()
		if l := o.Started.Sub(o.Scheduled); l > maxLag {
			maxLag = l
		}
		lagMu.Unlock()
	}})
	fast := tgt(healthy, conf.CheckSpec{Kind: conf.CheckTCP, Interval: 20 * time.Millisecond, Timeout: time.Second})
	var ts []Target
	ts = append(ts, fast)
	// Three hung probes occupy three of four slots for 3 s each.
	for i := range 3 {
		ts = append(ts, tgt(hung, conf.CheckSpec{Kind: conf.CheckTCP, Interval: 10 * time.Millisecond,
			Timeout: 3 * time.Second, Rise: i + 1}))
	}
	if _, err := s.Update(ts); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "25 checks of the healthy target", func() bool {
		for _, st := range s.Status() {
			if st.Key == fast.Key() {
				return st.Checks >= 25
			}
		}
		return false
	})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("25 checks at 20ms took %v next to hung targets", el)
	}
	for _, st := range s.Status() {
		if st.Key != fast.Key() && st.Checks != 0 {
			t.Fatalf("hung probe completed %d checks before its 3s timeout", st.Checks)
		}
	}
	lagMu.Lock()
	defer lagMu.Unlock()
	// Blocked behind the hung checks, the lag would be ~3s (their timeout);
	// the bound leaves room for a loaded machine.
	if maxLag > time.Second {
		t.Fatalf("max scheduling lag of the healthy target %v", maxLag)
	}
}

// End to end: a real server goes away and comes back; with fall 2 and rise
// 2 the transitions name the cause.
func TestDownAndUpEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	serveListener(t, ln, silent)
	s := runScheduler(t, Options{})
	tg := tgt(ap, conf.CheckSpec{Kind: conf.CheckTCP, Interval: 20 * time.Millisecond,
		Timeout: time.Second, Rise: 2, Fall: 2, InitialUp: true})
	if _, err := s.Update([]Target{tg}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two checks", func() bool { return s.Status()[0].Checks >= 2 })
	ln.Close()
	downAt := time.Now()
	tr := recv(t, s)
	if tr.Up || tr.Reason != "connect: connection refused" {
		t.Fatalf("got %v, want down: connect: connection refused", tr)
	}
	if d := tr.At.Sub(downAt); d > 500*time.Millisecond {
		t.Fatalf("detection took %v at interval 20ms fall 2", d)
	}
	ln2, err := net.Listen("tcp", ap.String())
	if err != nil {
		t.Skipf("could not re-listen on %s: %v", ap, err)
	}
	serveListener(t, ln2, silent)
	tr = recv(t, s)
	if !tr.Up || tr.Reason != "connected" {
		t.Fatalf("got %v, want up: connected", tr)
	}
}

func recv(t *testing.T, s *Scheduler) Transition {
	t.Helper()
	select {
	case tr := <-s.Transitions():
		return tr
	case <-time.After(5 * time.Second):
		t.Fatal("no transition")
		return Transition{}
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// Many hung targets cost at most MaxConcurrent sockets and one goroutine
// per probe, however long they hang.
func TestBoundedGoroutinesAndFDs(t *testing.T) {
	const probes, limit = 300, 40
	hung := blackholeAddr(t)
	fd0, g0 := openFDs(t), runtime.NumGoroutine()
	var inflight, maxInflight atomic.Int64
	s := runScheduler(t, Options{MaxConcurrent: limit, NewChecker: func(tg Target) (Checker, error) {
		ck, err := NewChecker(tg)
		if err != nil {
			return nil, err
		}
		return checkerFunc(func(ctx context.Context, deadline time.Time) Result {
			n := inflight.Add(1)
			for {
				m := maxInflight.Load()
				if n <= m || maxInflight.CompareAndSwap(m, n) {
					break
				}
			}
			defer inflight.Add(-1)
			return ck.Run(ctx, deadline)
		}), nil
	}})
	if _, err := s.Update(hungTargets(hung, probes, 200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	var maxFD, maxG int
	for time.Now().Before(deadline) {
		maxFD = max(maxFD, openFDs(t)-fd0)
		maxG = max(maxG, runtime.NumGoroutine()-g0)
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("max in flight %d, fd growth %d, goroutine growth %d", maxInflight.Load(), maxFD, maxG)
	if m := maxInflight.Load(); m > limit || m < limit/2 {
		t.Fatalf("max checks in flight %d, want <= %d (and near it: targets hang)", m, limit)
	}
	// Each check holds one socket; the runtime's epoll and pipes add a few.
	if maxFD > limit+10 {
		t.Fatalf("fds grew by %d with %d checks in flight", maxFD, limit)
	}
	// Probes waiting for a worker are heap entries, not goroutines, and a
	// check starts none of its own (no dialer watching a context): at most
	// MaxConcurrent workers, plus the dispatcher and a few of the runtime's.
	if maxG > limit+10 {
		t.Fatalf("goroutines grew by %d for %d probes (limit %d workers)", maxG, probes, limit)
	}
}

// hungTargets are n tcp probes of hung, checked every 10 ms: distinct
// definitions make distinct probes to the same dead end.
func hungTargets(hung netip.AddrPort, n int, timeout time.Duration) []Target {
	var ts []Target
	for i := range n {
		ts = append(ts, tgt(hung, conf.CheckSpec{Kind: conf.CheckTCP, Interval: 10 * time.Millisecond,
			Timeout: timeout, Rise: i + 1}))
	}
	return ts
}

type checkerFunc func(context.Context, time.Time) Result

func (f checkerFunc) Run(ctx context.Context, deadline time.Time) Result { return f(ctx, deadline) }

// IPv6 real servers: the request line, Host header and dial address all
// need the bracketed form.
func TestHTTPOverIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var gotHost atomic.Value
	ap := serveListener(t, ln, func(c net.Conn) {
		host, ok := readRequest(c)
		if !ok {
			return
		}
		gotHost.Store(host)
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	})
	ck, err := NewChecker(tgt(ap, conf.CheckSpec{Kind: conf.CheckHTTP, Timeout: 3 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if r := ck.Run(context.Background(), time.Now().Add(3*time.Second)); !r.Up {
		t.Fatalf("check of %s: %s", ap, r.Reason)
	}
	if want := ap.String(); gotHost.Load() != want {
		t.Fatalf("Host header %q, want %q", gotHost.Load(), want)
	}
}

func TestWarmupBoundsFirstCheck(t *testing.T) {
	clock := newFakeClock()
	var draws []time.Duration
	s := New(Options{Clock: clock,
		Rand:       func(n time.Duration) time.Duration { draws = append(draws, n); return n - 1 },
		NewChecker: func(Target) (Checker, error) { return &scripted{script: []Result{ok()}}, nil }})
	c := conf.CheckSpec{Kind: conf.CheckTCP, Interval: time.Second, Warmup: 30 * time.Second}
	if _, err := s.Update([]Target{target(1, c)}); err != nil {
		t.Fatal(err)
	}
	if len(draws) != 1 || draws[0] != 30*time.Second {
		t.Fatalf("warmup draws %v, want one within 30s", draws)
	}
	if off := s.Status()[0].Next.Sub(clock.Now()); off != 30*time.Second-1 {
		t.Fatalf("first check in %v, want the drawn %v", off, 30*time.Second-1)
	}
}
