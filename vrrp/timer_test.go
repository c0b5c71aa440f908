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
		{"reset re-arms earlier", func(tm *fdTimer) { tm.reset(time.Hour); tm.reset(5 * time.Millisecond) }, true},
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
			limit := time.After(300 * time.Millisecond)
			for {
				select {
				case now := <-tm.C:
					if !tm.due(now) {
						continue // re-armed for a later deadline
					}
					if !c.fires {
						t.Fatalf("fired after %v", time.Since(start))
					}
				case <-limit:
					if c.fires {
						t.Fatal("did not fire within 300ms")
					}
				}
				return
			}
		})
	}
}

// TestFDTimerLaterCostsNoRearm: pushing the deadline later (a backup on
// every advert) arms nothing; the kernel fires at the first deadline and
// due re-arms once for the last one, which it then reports on time.
func TestFDTimerLaterCostsNoRearm(t *testing.T) {
	tm, err := newFDTimer()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.close()
	start := time.Now()
	tm.resetAt(start, start.Add(20*time.Millisecond))
	first := tm.armed
	for i := 1; i <= 10; i++ {
		tm.resetAt(start, start.Add(time.Duration(20+5*i)*time.Millisecond))
		if tm.armed != first {
			t.Fatalf("deadline %d moved the kernel timer to %v", i, tm.armed.Sub(start))
		}
	}
	want := start.Add(70 * time.Millisecond)
	fires := 0
	for {
		select {
		case now := <-tm.C:
			fires++
			if !tm.due(now) {
				continue
			}
			if late := now.Sub(want); late < 0 || late > 50*time.Millisecond {
				t.Fatalf("due at %v, want at 70ms (+ scheduling)", now.Sub(start))
			}
			if fires != 2 {
				t.Fatalf("%d fires, want 2 (the first deadline, then the last)", fires)
			}
			return
		case <-time.After(time.Second):
			t.Fatal("never due")
		}
	}
}
