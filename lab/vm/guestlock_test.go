package vm

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestLockGuest: a second guest waits until the first releases the lock,
// and gives up with the context.
func TestLockGuest(t *testing.T) {
	old := GuestLockPath
	GuestLockPath = filepath.Join(t.TempDir(), "vm.lock")
	t.Cleanup(func() { GuestLockPath = old })

	release1, _, err := lockGuest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := lockGuest(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while the first is held: %v, want a deadline error", err)
	}

	got := make(chan time.Time, 1)
	go func() {
		release2, _, err := lockGuest(context.Background())
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		release2()
	}()
	// Let it reach the lock before the release (it must not get it).
	time.Sleep(100 * time.Millisecond)
	releasedAt := time.Now()
	release1()
	select {
	case at := <-got:
		if at.Before(releasedAt) {
			t.Fatalf("the second guest got the lock at %v, before the first released it at %v", at, releasedAt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second guest never got the lock after the first released it")
	}
}
