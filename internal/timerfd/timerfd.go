// Package timerfd sets and reads the kernel timers (timerfd) that
// haldir's event loops wait on through Go's poller, with raw system calls:
// on a non-blocking descriptor neither call waits, and a plain call's
// entersyscall wakes the runtime's sysmon thread whenever the process was
// idle, two context switches on every fire.
package timerfd

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set makes fd fire once, d from now; d <= 0 disarms it. It cannot fail
// on a valid timerfd.
func Set(fd int, d time.Duration) {
	var spec unix.ItimerSpec // zero: disarm
	if d > 0 {
		spec.Value = unix.NsecToTimespec(d.Nanoseconds())
	}
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

// Read takes what fd counted (a timerfd's expirations, or an eventfd's
// counter, read the same way), and reports whether there was any: false
// when it would block.
func Read(fd uintptr) bool {
	var n [8]byte
	_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&n[0])), uintptr(len(n)))
	return errno != unix.EAGAIN
}
