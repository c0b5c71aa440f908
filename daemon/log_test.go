package daemon

import (
	"testing"

	"github.com/haldir-lb/haldir/internal/logbuf"
)

// syncBuffer is the daemon's log, read by the test while it runs.
type syncBuffer = logbuf.Buffer

// waitFor polls until the log contains want count times.
func waitFor(t *testing.T, log *syncBuffer, want string, count int) {
	t.Helper()
	log.Wait(t, want, count)
}
