package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Journald priorities (sd-daemon.h): a line on a journal stream that
// starts with "<N>" is logged at priority N, so `journalctl -p err` finds
// the daemon's errors.
const (
	sdErr     = 3
	sdWarning = 4
	sdInfo    = 6
	sdDebug   = 7
)

func journalPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return sdErr
	case l >= slog.LevelWarn:
		return sdWarning
	case l >= slog.LevelInfo:
		return sdInfo
	}
	return sdDebug
}

// onJournal says whether f is the journal stream systemd connected: per
// systemd.exec(5), JOURNAL_STREAM is "DEV:INO" of that stream, and only a
// file with the same device and inode is it (a redirected stderr inherits
// the variable but not the stream).
func onJournal(journalStream string, f *os.File) bool {
	if journalStream == "" || f == nil {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(journalStream, "%d:%d", &dev, &ino); err != nil || n != 2 {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// journalOut is the writer under a journal handler: each record's single
// Write gets the record's priority in front. mu makes the priority and the
// write one step; every handler derived with WithAttrs or WithGroup shares
// it.
type journalOut struct {
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
}

func (j *journalOut) Write(p []byte) (int, error) {
	if _, err := j.out.Write(append(j.prefix, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// journalHandler prefixes each line of inner (whose output is j) with the
// record's journald priority.
type journalHandler struct {
	inner slog.Handler
	j     *journalOut
}

// newJournalHandler wraps the handler that newInner builds on the writer
// it is given.
func newJournalHandler(out io.Writer, newInner func(io.Writer) slog.Handler) slog.Handler {
	j := &journalOut{out: out}
	return &journalHandler{inner: newInner(j), j: j}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.j.mu.Lock()
	defer h.j.mu.Unlock()
	h.j.prefix = fmt.Appendf(h.j.prefix[:0], "<%d>", journalPriority(r.Level))
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), j: h.j}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), j: h.j}
}

// newLogHandler is the daemon's log handler: text or JSON on logOut, with
// journald priorities when logOut is systemd's journal stream.
func newLogHandler(logOut io.Writer, format string, opts *slog.HandlerOptions) slog.Handler {
	newInner := func(w io.Writer) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	if f, ok := logOut.(*os.File); ok && onJournal(os.Getenv("JOURNAL_STREAM"), f) {
		return newJournalHandler(logOut, newInner)
	}
	return newInner(logOut)
}

// journalLines gives each line of text priority prio when w is the journal
// stream, and returns text as it is otherwise.
func journalLines(w io.Writer, prio int, text string) string {
	f, ok := w.(*os.File)
	if !ok || !onJournal(os.Getenv("JOURNAL_STREAM"), f) {
		return text
	}
	var b strings.Builder
	for line := range strings.Lines(text) {
		fmt.Fprintf(&b, "<%d>%s", prio, line)
	}
	return b.String()
}
