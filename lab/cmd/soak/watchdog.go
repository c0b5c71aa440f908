package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// stuckAfter is how long the schedule may make no progress before the
// watchdog dumps what everything is doing: the soak's goroutines, both
// daemons' recent log and the kernel's blocked tasks.
const stuckAfter = 60 * time.Second

// progress is the schedule's last sign of life (Unix nanoseconds).
type progress struct{ at atomic.Int64 }

func (p *progress) tick() { p.at.Store(time.Now().UnixNano()) }

func (p *progress) since() time.Duration { return time.Since(time.Unix(0, p.at.Load())) }

// watchdog ends the run when the schedule is stuck, after dumping what
// it can and the report so far.
func (s *soak) watchdog(ctx context.Context) {
	every(ctx, 5*time.Second, func() {
		if d := s.progress.since(); d > stuckAfter && !s.stuck.Swap(true) {
			s.violate(invRecovers, d, fmt.Sprintf("the soak made no progress for %v: stuck (goroutines and the kernel's blocked tasks below)", d.Round(time.Second)))
			var b bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			s.block(b.String())
			s.block(blockedTasks())
			// Whatever is stuck may never return: report now and end.
			rep := s.report()
			s.block(rep.Text())
			if b, err := rep.JSON(); err == nil {
				fmt.Fprintf(s.out, "%s%s\n", jsonMarker, b)
			}
			os.Exit(3)
		}
	})
}

// blockedTasks asks the kernel for its blocked tasks (sysrq w) and
// returns what it printed.
func blockedTasks() string {
	if err := os.WriteFile("/proc/sysrq-trigger", []byte("w"), 0o200); err != nil {
		return "sysrq w: " + err.Error()
	}
	time.Sleep(500 * time.Millisecond)
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "/dev/kmsg: " + err.Error()
	}
	defer f.Close()
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			lines = append(lines, strings.TrimSpace(string(buf[:n])))
		}
		if err != nil {
			if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EPIPE) {
				lines = append(lines, err.Error())
			}
			if errors.Is(err, syscall.EPIPE) {
				continue
			}
			break
		}
	}
	if len(lines) > 300 {
		lines = lines[len(lines)-300:]
	}
	return strings.Join(lines, "\n")
}
