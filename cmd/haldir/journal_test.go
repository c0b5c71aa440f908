package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestJournalHandler(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			h := newJournalHandler(&buf, func(w io.Writer) slog.Handler {
				if format == "json" {
					return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug - 4})
				}
				return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug - 4})
			})
			log := slog.New(h)
			derived := log.With("component", "vrrp").WithGroup("g")
			log.Debug("d")
			log.Info("i")
			derived.Warn("w", "k", "v")
			log.Error("e")
			derived.Log(t.Context(), slog.LevelError+4, "beyond error")
			derived.Log(t.Context(), slog.LevelDebug-4, "below debug")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			want := []struct{ prefix, msg string }{
				{"<7>", "d"}, {"<6>", "i"}, {"<4>", "w"}, {"<3>", "e"}, {"<3>", "beyond error"}, {"<7>", "below debug"},
			}
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), &buf)
			}
			for i, w := range want {
				if !strings.HasPrefix(lines[i], w.prefix) || !strings.Contains(lines[i], w.msg) {
					t.Errorf("line %d %q, want prefix %s and message %q", i, lines[i], w.prefix, w.msg)
				}
			}
			if !strings.Contains(lines[2], "vrrp") || !strings.Contains(lines[2], "g") {
				t.Errorf("derived handler lost its attributes: %q", lines[2])
			}
		})
	}
}

// TestJournalHandlerConcurrent: loggers sharing the stream never give a
// line another record's priority.
func TestJournalHandlerConcurrent(t *testing.T) {
	var buf syncBuffer
	h := newJournalHandler(&buf, func(w io.Writer) slog.Handler {
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	})
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	var wg sync.WaitGroup
	for _, l := range levels {
		log := slog.New(h).With("from", l.String())
		wg.Go(func() {
			for range 200 {
				log.Log(t.Context(), l, "x")
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, line := range lines {
		for _, l := range levels {
			if strings.Contains(line, "from="+l.String()) && !strings.HasPrefix(line, fmt.Sprintf("<%d>", journalPriority(l))) {
				t.Fatalf("line %q has the wrong priority", line)
			}
		}
	}
}

// journalFile is a file and the JOURNAL_STREAM value that names it.
func journalFile(t *testing.T) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestOnJournal(t *testing.T) {
	f, stream := journalFile(t)
	other, _ := journalFile(t)
	for _, tc := range []struct {
		name   string
		stream string
		f      *os.File
		want   bool
	}{
		{"the stream", stream, f, true},
		{"redirected elsewhere", stream, other, false},
		{"not under systemd", "", f, false},
		{"garbage", "x:y", f, false},
		{"one number", "12", f, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := onJournal(tc.stream, tc.f); got != tc.want {
				t.Errorf("onJournal(%q) = %v, want %v", tc.stream, got, tc.want)
			}
		})
	}
}

// TestDaemonLogsToJournal: the daemon's logger on the journal stream gives
// journald priorities; elsewhere it writes plain lines.
func TestDaemonLogsToJournal(t *testing.T) {
	f, stream := journalFile(t)
	t.Setenv("JOURNAL_STREAM", stream)
	c := mustLoad(t, "[global]\nlog_level = \"debug\"\n")
	log := daemonOptions("x", c, f, "").Logger
	log.Error("boom")
	log.Info("fine")
	var plain bytes.Buffer
	daemonOptions("x", c, &plain, "").Logger.Error("boom")

	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "<3>") || !strings.HasPrefix(lines[1], "<6>") {
		t.Errorf("journal lines %q, want <3>... and <6>...", lines)
	}
	if strings.HasPrefix(plain.String(), "<") {
		t.Errorf("plain log has a priority prefix: %q", plain.String())
	}

	// A start that fails before the logger exists is an error too.
	if code := runDaemon([]string{"-c", writeFile(t, invalidConfig)}, f, nil); code != exitInvalid {
		t.Fatalf("exit %d", code)
	}
	b, _ = os.ReadFile(f.Name())
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")[2:] {
		if !strings.HasPrefix(line, "<3>") {
			t.Errorf("start error line without <3>: %q", line)
		}
	}
}
