package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"
)

// forcedCollections is the runtime's count of collections forced by the
// program (runtime.GC, debug.FreeOSMemory).
func forcedCollections() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitForcedAbove polls until a collection beyond n was forced.
func waitForcedAbove(t *testing.T, n uint64, what string) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c := forcedCollections(); c > n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no collection forced within 10s: the load's garbage stays resident", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoadReleasesGarbage: a start and a reload each hand what loading
// left behind back to the kernel (memtune.ReleaseAfterLoad), which forces
// one collection.
func TestLoadReleasesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haldir.toml")
	src := "[global]\nrouter_id = \"a\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, src)
	before := forcedCollections()
	d := startLoop(t, cfg, Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	afterStart := waitForcedAbove(t, before, "start")

	var err error
	d.call(func() { _, err = d.rereadConfig() })
	if err != nil {
		t.Fatal(err)
	}
	waitForcedAbove(t, afterStart, "reload")
}
