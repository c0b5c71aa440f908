package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

func mustParse(t *testing.T, src string) *conf.Config {
	t.Helper()
	c, err := conf.Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReloadAppliesLogLevel: global.log_level is taken at start and on
// reload, -log-level (LevelOverride) wins over the file across reloads,
// and a log_format change is named as taking effect at restart.
func TestReloadAppliesLogLevel(t *testing.T) {
	var log syncBuffer
	c := mustParse(t, "[global]\nrouter_id = \"a\"\n")
	level := new(slog.LevelVar)
	d := New(c, Options{Logger: slog.New(slog.NewTextHandler(&log, nil)), Level: level})
	if got := level.Level(); got != slog.LevelInfo {
		t.Fatalf("level %v, want info", got)
	}
	c2 := mustParse(t, "[global]\nlog_level = \"debug\"\nlog_format = \"json\"\n")
	if err := d.reloadWith(c2); err != nil {
		t.Fatal(err)
	}
	if got := level.Level(); got != slog.LevelDebug {
		t.Errorf("level after reload %v, want debug", got)
	}
	if d.cfg != c2 {
		t.Error("reload did not switch the configuration")
	}
	if !strings.Contains(log.String(), "global.log_format changes take effect at restart") {
		t.Errorf("no warning about log_format:\n%s", log.String())
	}

	d = New(c2, Options{Logger: slog.New(slog.NewTextHandler(&log, nil)), Level: level, LevelOverride: "error"})
	if err := d.reloadWith(c2); err != nil {
		t.Fatal(err)
	}
	if got := level.Level(); got != slog.LevelError {
		t.Errorf("level with override %v, want error", got)
	}
}
