package vrrp

import (
	"testing"
	"time"
)

func TestFDTimer(t *testing.T) {
	cases := []struct {
		name  string
		arm   func(*fdTimer)
		fires bool
	}{
		{"fires after reset", func(tm *fdTimer) { tm.reset(5 * time.Millisecond) }, true},
		{"a past deadline fires at once", func(tm *fdTimer) { tm.reset(-time.Second) }, true},
		// 100ms leaves room for a descheduled test between the calls.
		{"stop disarms", func(tm *fdTimer) { tm.reset(100 * time.Millisecond); tm.stop() }, false},
		{"reset re-arms later", func(tm *fdTimer) { tm.reset(100 * time.Millisecond); tm.reset(time.Hour) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm, err := newFDTimer()
			if err != nil {
				t.Fatal(err)
			}
			defer tm.close()
			start := time.Now()
			c.arm(tm)
			select {
			case <-tm.C:
				if !c.fires {
					t.Fatalf("fired after %v", time.Since(start))
				}
			case <-time.After(300 * time.Millisecond):
				if c.fires {
					t.Fatal("did not fire within 300ms")
				}
			}
		})
	}
}
