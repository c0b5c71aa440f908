package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// GuestLockPath is the host-wide lock a guest holds while it runs. Every
// guest is a TCG emulator using as many host threads as it has vCPUs (2 by
// default, all of this project's machines), and the tests inside measure
// time: two guests at once (go test runs packages in parallel) took
// seconds of vCPU time from each other, enough for 250 ms health checks to
// time out in the demo guest while the director tests' guest ran. One
// guest at a time keeps what a guest measures about haldir.
var GuestLockPath = filepath.Join(os.TempDir(), "haldir-lab-vm.lock")

// maxGuestWait bounds the wait for another guest: each one is bounded by
// its own timeout, so a longer wait means something is stuck.
const maxGuestWait = 20 * time.Minute

// lockGuest takes GuestLockPath, waiting while another guest (of this
// process or another) holds it, until ctx ends or maxGuestWait. The kernel
// drops the lock when its holder dies.
func lockGuest(ctx context.Context) (release func(), waited time.Duration, err error) {
	f, err := os.OpenFile(GuestLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("vm: guest lock: %w", err)
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, maxGuestWait)
	defer cancel()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, time.Since(t0), nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, time.Since(t0), fmt.Errorf("vm: guest lock %s: %w", GuestLockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, time.Since(t0), fmt.Errorf("vm: another guest still holds %s after %s: %w", GuestLockPath, time.Since(t0).Round(time.Second), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
