package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Output bounds of a Proc: older lines are dropped first.
const (
	maxLineLen   = 16 << 10
	maxKeptBytes = 1 << 20
	maxKeptLines = 20000
)

// Line is one line of a process's output.
type Line struct {
	Seq    uint64 // 1 for the first line of the process, across both streams
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string // without the newline; longer lines come in 16 KiB pieces
}

// Proc is a process started in a host with Host.Start. Its output is kept
// in a bounded line buffer (the newest 1 MiB / 20000 lines).
type Proc struct {
	host *Host
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done

	mu      sync.Mutex
	lines   []Line
	bytes   int
	seq     uint64
	dropped uint64
	notify  chan struct{} // closed and replaced on every new line
}

// Start runs argv in the host. env nil means the current environment. The
// process runs in its own process group, is killed with SIGKILL if ctx ends
// or the lab is torn down, and gets SIGKILL too if this process dies
// (PR_SET_PDEATHSIG), so a killed test does not leave it running.
func (h *Host) Start(ctx context.Context, argv []string, env []string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("host %s: Start: empty argv", h.name)
	}
	p := &Proc{host: h, done: make(chan struct{}), notify: make(chan struct{})}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = &lineWriter{p: p, stream: "stdout"}
	cmd.Stderr = &lineWriter{p: p, stream: "stderr"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return p.Kill() }
	// A grandchild holding the output pipes must not block Wait forever.
	cmd.WaitDelay = 2 * time.Second
	p.cmd = cmd

	h.lab.mu.Lock()
	closed := h.lab.closed
	h.lab.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("host %s: Start: lab closed", h.name)
	}
	// fork happens on the lab's fork thread, inside the host's namespace:
	// that thread outlives every child it forks, which PR_SET_PDEATHSIG
	// (tied to the forking thread) needs (forkThread).
	var serr error
	err := h.lab.forks.do(func() { serr = h.Do(cmd.Start) })
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: starting %q: %w", h.name, argv, err)
	}
	go func() {
		p.err = cmd.Wait()
		for _, w := range []any{cmd.Stdout, cmd.Stderr} {
			w.(*lineWriter).flush()
		}
		close(p.done)
		p.mu.Lock()
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	late := h.lab.closed
	h.lab.mu.Unlock()
	if late {
		_ = p.Kill()
	}
	return p, nil
}

// Run runs argv in the host to completion and returns its combined output
// (bounded like Proc's). The error names the command and its exit status.
func (h *Host) Run(ctx context.Context, argv []string, env []string) (string, error) {
	p, err := h.Start(ctx, argv, env)
	if err != nil {
		return "", err
	}
	if err := p.Wait(); err != nil {
		return p.Output(), fmt.Errorf("host %s: %q: %w", h.name, argv, err)
	}
	return p.Output(), nil
}

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Args returns the argv the process was started with.
func (p *Proc) Args() []string { return p.cmd.Args }

// Host returns the host the process runs in.
func (p *Proc) Host() *Host { return p.host }

// Done is closed once the process has exited and its output is collected.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error (nil for
// status 0). It may be called any number of times.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("process %d already exited", p.Pid())
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL to the process group, catching children the process
// started. Killing an exited process is not an error.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Lines returns the kept output lines, oldest first.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// LastSeq returns the sequence number of the newest line so far (0 if none);
// pass it to WaitForLineAfter to wait only for later lines.
func (p *Proc) LastSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seq
}

// Output returns the kept lines of both streams, interleaved in arrival
// order, each ended by a newline.
func (p *Proc) Output() string { return p.text("") }

// Stdout returns the kept stdout lines.
func (p *Proc) Stdout() string { return p.text("stdout") }

// Stderr returns the kept stderr lines.
func (p *Proc) Stderr() string { return p.text("stderr") }

func (p *Proc) text(stream string) string {
	var b strings.Builder
	for _, l := range p.Lines() {
		if stream == "" || l.Stream == stream {
			b.WriteString(l.Text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// WaitForLine waits until a kept line of either stream matches re. It
// fails when ctx ends or the process exits without such a line.
func (p *Proc) WaitForLine(ctx context.Context, re *regexp.Regexp) (Line, error) {
	return p.WaitForLineAfter(ctx, 0, re)
}

// Follow calls f with every line matching re, in order, as they come,
// until the process exits or ctx ends (it returns then).
func (p *Proc) Follow(ctx context.Context, re *regexp.Regexp, f func(Line)) {
	var after uint64
	for {
		l, err := p.WaitForLineAfter(ctx, after, re)
		if err != nil {
			return
		}
		after = l.Seq
		f(l)
	}
}

// WaitForLineAfter is WaitForLine for lines with Seq > after.
func (p *Proc) WaitForLineAfter(ctx context.Context, after uint64, re *regexp.Regexp) (Line, error) {
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if l.Seq > after && re.MatchString(l.Text) {
				p.mu.Unlock()
				return l, nil
			}
		}
		if n := len(p.lines); n > 0 {
			after = max(after, p.lines[n-1].Seq)
		}
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-p.done:
			// One last look: the final lines arrive before done closes.
			p.mu.Lock()
			for _, l := range p.lines {
				if l.Seq > after && re.MatchString(l.Text) {
					p.mu.Unlock()
					return l, nil
				}
			}
			p.mu.Unlock()
			return Line{}, fmt.Errorf("process %d %q exited (%v) before printing a line matching %q", p.Pid(), p.Args(), p.err, re)
		case <-ctx.Done():
			return Line{}, fmt.Errorf("process %d %q: no line matching %q: %w", p.Pid(), p.Args(), re, ctx.Err())
		case <-notify:
		}
	}
}

func (p *Proc) addLine(stream string, text []byte) {
	if len(text) > maxLineLen {
		text = text[:maxLineLen]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.lines = append(p.lines, Line{Seq: p.seq, Time: time.Now(), Stream: stream, Text: string(text)})
	p.bytes += len(text)
	// Drop from the front by advancing the slice; append reallocates
	// now and then and leaves the dropped lines to the collector, so
	// each line costs O(1) amortised.
	for p.bytes > maxKeptBytes || len(p.lines) > maxKeptLines {
		p.bytes -= len(p.lines[0].Text)
		p.lines[0] = Line{}
		p.lines = p.lines[1:]
		p.dropped++
	}
	close(p.notify)
	p.notify = make(chan struct{})
}

// lineWriter splits a stream into lines for its Proc.
type lineWriter struct {
	p       *Proc
	stream  string
	mu      sync.Mutex
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		w.partial = append(w.partial, seg...)
		// An overlong line is cut into maxLineLen pieces, none lost.
		for len(w.partial) > maxLineLen {
			w.p.addLine(w.stream, w.partial[:maxLineLen])
			w.partial = append(w.partial[:0], w.partial[maxLineLen:]...)
		}
		if i < 0 {
			break
		}
		w.p.addLine(w.stream, w.partial)
		w.partial = w.partial[:0]
		b = b[i+1:]
	}
	return n, nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.p.addLine(w.stream, w.partial)
		w.partial = nil
	}
}
