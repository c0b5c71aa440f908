// Package logbuf is a log sink for tests: the code under test writes to it
// from its goroutines while the test reads and waits for lines.
package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Wait polls until the buffer holds want count times, or fails t after
// ten seconds with everything written so far.
func (s *Buffer) Wait(t testing.TB, want string, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.String(), want) < count {
		if time.Now().After(deadline) {
			t.Fatalf("log never had %d× %q:\n%s", count, want, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
