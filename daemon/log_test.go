package daemon

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines and the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls until the log contains want count times, or fails after a
// deadline.
func waitFor(t *testing.T, log *syncBuffer, want string, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(log.String(), want) < count {
		if time.Now().After(deadline) {
			t.Fatalf("log never had %d× %q:\n%s", count, want, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
