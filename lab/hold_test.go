package lab

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHoldReport(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := HoldReport{At: t0.Add(time.Minute), Conns: []HeldConn{
		{Server: "real1", Opened: t0, MaxStall: 3 * time.Millisecond},
		{Server: "real2", Opened: t0.Add(time.Second), MaxStall: 400 * time.Millisecond, Broken: true, Err: errors.New("reset")},
		{Server: "real2", Opened: t0.Add(2 * time.Second), MaxStall: 7 * time.Millisecond},
		{Server: "real3", Opened: t0.Add(3 * time.Second), MaxStall: 5 * time.Millisecond},
	}}
	if got := r.Survived(); got != 3 {
		t.Errorf("Survived() = %d, want 3", got)
	}
	if got := r.MaxStall(); got != 7*time.Millisecond {
		t.Errorf("MaxStall() = %v, want 7ms (the broken connection's stall does not count)", got)
	}
	total, broken := r.ByServer()
	if total["real2"] != 2 || broken["real2"] != 1 || total["real1"] != 1 || broken["real1"] != 0 {
		t.Errorf("ByServer() = %v, %v", total, broken)
	}
	if s := r.String(); !strings.Contains(s, "4 connections, 3 survived, max stall 7ms") || !strings.Contains(s, "real2 1/2") {
		t.Errorf("String() = %q", s)
	}
	for _, tt := range []struct {
		name                 string
		at                   time.Time
		wantOlder, wantYoung int
	}{
		{"before all", t0, 0, 4},
		{"between", t0.Add(1500 * time.Millisecond), 2, 2},
		{"after all", t0.Add(time.Hour), 4, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			older, younger := r.OpenedBefore(tt.at)
			if len(older.Conns) != tt.wantOlder || len(younger.Conns) != tt.wantYoung {
				t.Errorf("OpenedBefore: %d older, %d younger; want %d, %d", len(older.Conns), len(younger.Conns), tt.wantOlder, tt.wantYoung)
			}
			if older.At != r.At || younger.At != r.At {
				t.Error("OpenedBefore lost the report's time")
			}
		})
	}
}
