package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/internal/logbuf"
	"github.com/haldir-lb/haldir/internal/poll"
)

// syncBuffer is the daemon's log, read by the test while it runs.
type syncBuffer = logbuf.Buffer

// waitFor polls until the log contains want count times.
func waitFor(t *testing.T, log *syncBuffer, want string, count int) {
	t.Helper()
	poll.True(t, 10*time.Second, fmt.Sprintf("%d× %q in the log", count, want),
		func() bool { return strings.Count(log.String(), want) >= count }, log.String)
}
