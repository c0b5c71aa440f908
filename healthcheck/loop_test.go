package healthcheck

import (
	"net/netip"
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
		l.poll(time.Second)
	}
}

// TestLoopCheckAllocs: a check on the loop allocates nothing of its own
// for tcp, and for http only what net/http's response parsing does (8 on
// Go 1.24).
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
		{"http", conf.CheckSpec{Kind: conf.CheckHTTP, HTTP: httpPath("/")}, 10},
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
				for limit := time.Now().Add(10 * time.Second); time.Now().Before(limit); l.poll(time.Second) {
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

// rawServe answers every connection on a loopback port with resp, with
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
			unix.Syscall(unix.SYS_READ, c, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			unix.Syscall(unix.SYS_WRITE, c, uintptr(unsafe.Pointer(&out[0])), uintptr(len(out)))
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
