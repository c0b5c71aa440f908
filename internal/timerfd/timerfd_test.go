package timerfd

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSetAndRead: a timer set fires after its time and not before, a
// disarmed one never, and Read reports an expiration once.
func TestSetAndRead(t *testing.T) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if Read(uintptr(fd)) {
		t.Fatal("a new timer read as fired")
	}
	start := time.Now()
	Set(fd, 20*time.Millisecond)
	for !Read(uintptr(fd)) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the timer never fired")
		}
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("fired after %v, before its 20ms", took)
	}
	if Read(uintptr(fd)) {
		t.Fatal("one expiration read twice")
	}
	Set(fd, 10*time.Millisecond)
	Set(fd, 0) // disarmed before it fires
	time.Sleep(50 * time.Millisecond)
	if Read(uintptr(fd)) {
		t.Fatal("a disarmed timer fired")
	}
	if n := testing.AllocsPerRun(100, func() { Set(fd, time.Hour); Read(uintptr(fd)) }); n != 0 {
		t.Errorf("%.0f allocations per Set and Read, want 0", n)
	}
}
