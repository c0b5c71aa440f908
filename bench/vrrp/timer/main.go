// Command bench probes the timer a haldir VRRP backup waits on, in a
// process as idle as a backup daemon, to explain BenchmarkFailover's
// numbers at short advert intervals (issue #4).
//
// A backup re-arms its Master_Down timer on every advert and takes over
// when it fires; on a priority-0 advert it arms Skew_Time instead. This
// program does the same with the same structure as vrrp's driver — a
// reader goroutine handing datagrams to a select loop over a channel and
// the timer — fed over loopback by a child process that sends "adverts"
// every interval, then stops (hard) or sends a "priority 0" (graceful).
// Lateness is when the select loop runs minus when the timer was due
// (the datagram's receipt plus Master_Down_Interval or Skew_Time).
//
// It compares Go's time.Timer, which the driver uses, with a timerfd read
// through the poller. The Go runtime sleeps in epoll_wait, whose timeout
// counts whole milliseconds: the sub-millisecond remainder of a runtime
// timer can become a whole 1ms sleep (golang/go#53824). A timerfd makes
// the epoll set readable at the deadline itself.
//
//	go run ./bench/vrrp/timer                # 10ms and 100ms
//	go run ./bench/vrrp/timer -intervals 1s -rounds 5
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/benchenv"
)

// backupPriority is the benchmark's backup priority (Skew_Time =
// 156/256 × interval), as in vrrp's BenchmarkFailover.
const backupPriority = 100

func skew(interval time.Duration) time.Duration {
	return time.Duration(256-backupPriority) * interval / 256
}

func masterDown(interval time.Duration) time.Duration { return 3*interval + skew(interval) }

// Datagram payloads from the sender.
const (
	msgAdvert = 'A'
	msgResign = '0'
)

// advertsPerRound is how many adverts precede each failover.
const advertsPerRound = 3

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/vrrp/timer:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench/vrrp/timer", flag.ContinueOnError)
	intervals := fs.String("intervals", "10ms,100ms", "advert intervals, comma separated")
	rounds := fs.Int("rounds", 20, "failovers per interval, kind and timer")
	send := fs.String("send", "", "internal: act as the sender to this address")
	interval := fs.Duration("interval", 0, "internal: the sender's interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *send != "" {
		return sender(*send, *interval)
	}
	if *rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", *rounds)
	}
	ivs, err := parseIntervals(*intervals)
	if err != nil {
		return err
	}
	var rows []row
	for _, iv := range ivs {
		for _, tm := range []string{timerGo, timerFD} {
			r, err := probe(iv, tm, *rounds)
			if err != nil {
				return fmt.Errorf("%v %s: %w", iv, tm, err)
			}
			rows = append(rows, r)
		}
	}
	fmt.Fprint(out, render(rows, *rounds))
	return nil
}

func parseIntervals(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 10*time.Millisecond || d%(10*time.Millisecond) != 0 {
			return nil, fmt.Errorf("-intervals %q: %q is not a VRRPv3 interval (10ms steps, at least 10ms)", s, f)
		}
		out = append(out, d)
	}
	return out, nil
}

// Timer implementations.
const (
	timerGo = "time.Timer"
	timerFD = "timerfd"
)

// timer is what the select loop waits on.
type timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Close()
}

type goTimer struct{ t *time.Timer }

func newGoTimer() *goTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &goTimer{t}
}

func (g *goTimer) C() <-chan time.Time   { return g.t.C }
func (g *goTimer) Reset(d time.Duration) { g.t.Reset(d) }
func (g *goTimer) Close()                { g.t.Stop() }

// fdTimer is a one-shot timer on a timerfd (CLOCK_MONOTONIC, nanosecond
// resolution), read through Go's poller by a goroutine. A fire that
// races a Reset can arrive stale; vrrp's Machine already ignores a timer
// event before its deadline (IgnoreStaleTimer).
type fdTimer struct {
	fd int
	f  *os.File
	c  chan time.Time
}

func newFDTimer() (*fdTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	t := &fdTimer{fd: fd, f: os.NewFile(uintptr(fd), "timerfd"), c: make(chan time.Time, 1)}
	go func() {
		var buf [8]byte // the expiration count
		for {
			if _, err := t.f.Read(buf[:]); err != nil {
				return
			}
			select {
			case t.c <- time.Now():
			default:
			}
		}
	}()
	return t, nil
}

func (t *fdTimer) C() <-chan time.Time { return t.c }

func (t *fdTimer) Reset(d time.Duration) {
	_ = unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{Value: unix.NsecToTimespec(max(d, 1).Nanoseconds())}, nil)
}

func (t *fdTimer) Close() { _ = t.f.Close() }

// row is one interval and timer.
type row struct {
	interval      time.Duration
	timer         string
	hard, resign  []time.Duration // lateness after Master_Down_Interval / Skew_Time
	wrongTakeover int             // fires that came too early (must be 0)
}

// probe runs rounds hard and rounds graceful failovers against one timer.
func probe(interval time.Duration, kind string, rounds int) (row, error) {
	r := row{interval: interval, timer: kind}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	defer conn.Close()
	var tm timer
	if kind == timerGo {
		tm = newGoTimer()
	} else if tm, err = newFDTimer(); err != nil {
		return r, err
	}
	defer tm.Close()

	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	child := exec.Command(self, "-send", conn.LocalAddr().String(), "-interval", interval.String())
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return r, err
	}
	if err := child.Start(); err != nil {
		return r, err
	}
	defer func() {
		stdin.Close()
		_ = child.Wait()
	}()

	type dgram struct {
		at  time.Time
		msg byte
	}
	pkts := make(chan dgram, 16)
	go func() {
		buf := make([]byte, 16)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				close(pkts)
				return
			}
			if n > 0 {
				pkts <- dgram{time.Now(), buf[0]}
			}
		}
	}()

	// The child sends one round per line on its stdin: "h" for hard (it
	// just stops) or "g" for graceful (it ends with a priority 0).
	var due time.Time
	for i := range 2 * rounds {
		graceful := i%2 == 1
		cmd := "h\n"
		if graceful {
			cmd = "g\n"
		}
		if _, err := io.WriteString(stdin, cmd); err != nil {
			return r, fmt.Errorf("sender: %w", err)
		}
		armed := false
		for done := false; !done; {
			select {
			case p, ok := <-pkts:
				if !ok {
					return r, errors.New("socket closed")
				}
				d := masterDown(interval)
				if p.msg == msgResign {
					d = skew(interval)
				}
				tm.Reset(d)
				due, armed = p.at.Add(d), true
			case <-tm.C():
				ran := time.Now()
				if !armed || ran.Before(due) {
					r.wrongTakeover++ // stale fire: vrrp's Machine would ignore it
					continue
				}
				late := ran.Sub(due)
				if graceful {
					r.resign = append(r.resign, late)
				} else {
					r.hard = append(r.hard, late)
				}
				done = true
			case <-time.After(masterDown(interval) + 5*time.Second):
				return r, fmt.Errorf("round %d: no takeover", i)
			}
		}
	}
	return r, nil
}

// sender writes advertsPerRound adverts every interval for each line on
// stdin, then stops ("h") or sends a priority 0 ("g"), until stdin closes.
func sender(addr string, interval time.Duration) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	line := make([]byte, 2)
	for {
		if _, err := io.ReadFull(os.Stdin, line); err != nil {
			return nil // the prober is done
		}
		for i := range advertsPerRound {
			if i > 0 {
				time.Sleep(interval)
			}
			if _, err := c.Write([]byte{msgAdvert}); err != nil {
				return err
			}
		}
		if line[0] == 'g' {
			time.Sleep(interval / 2)
			if _, err := c.Write([]byte{msgResign}); err != nil {
				return err
			}
		}
	}
}

func stats(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	ms := func(x time.Duration) string {
		return strconv.FormatFloat(float64(x)/float64(time.Millisecond), 'f', 2, 64)
	}
	return ms(s[n/2]) + " / " + ms(s[(n*9)/10]) + " / " + ms(s[n-1])
}

func render(rows []row, rounds int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Backup timer lateness, time.Timer vs timerfd (%d failovers of each kind; load average %s; p50 / p90 / max, ms)\n\n", rounds, benchenv.LoadAverage())
	b.WriteString("| interval | timer | hard: after Master_Down_Interval | graceful: after Skew_Time | stale fires |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %v | %s | %s | %s | %d |\n", r.interval, r.timer, stats(r.hard), stats(r.resign), r.wrongTakeover)
	}
	return b.String()
}
