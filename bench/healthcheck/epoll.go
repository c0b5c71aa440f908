package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runEpoll is the event-driven floor: the scenario's HTTP checks from one
// goroutine and one epoll set, with bare nonblocking raw system calls and
// nothing else (no timers per check, no parsing beyond "some bytes came
// back"). It is what a C event loop such as keepalived's checker would
// spend at best per check on this host: socket, SO_LINGER, connect,
// write, epoll_ctl, read, close, and a share of the waits. It waits as
// haldir's check loop does, the least a Go program can: in Go's poller on
// the epoll set, with a timerfd for the next start (blocked in epoll_wait,
// a Go program pays the runtime's sysmon wake-ups; polling it every
// millisecond, a thousand wake-ups a second at any load). The blocking
// rawhttp reference pays thread wake-ups on top; haldir pays its
// scheduler and response parsing on top.
func runEpoll(r result, n int, d time.Duration, srvPID int, stdin io.Writer, lines *bufio.Scanner) result {
	r.Bare = true
	req := []byte("GET / HTTP/1.1\r\nHost: 127.1.0.1:8080\r\nUser-Agent: haldir-healthcheck\r\nConnection: close\r\n\r\n")
	var checks, failed atomic.Int64
	done := make(chan struct{})
	m := startMeter(srvPID)
	served0 := served(stdin, lines)
	go func() {
		defer close(done)
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			failed.Add(1)
			return
		}
		tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
		if err != nil {
			unix.Close(epfd)
			failed.Add(1)
			return
		}
		defer unix.Close(tfd)
		unix.SetNonblock(epfd, true)
		ep := os.NewFile(uintptr(epfd), "epoll") // closes epfd
		defer ep.Close()
		rc, err := ep.SyscallConn()
		if err != nil || rawCtl(epfd, unix.EPOLL_CTL_ADD, tfd, unix.EPOLLIN) != 0 {
			failed.Add(1)
			return
		}
		// fd -> waiting for writability (connect in progress) or not.
		connecting := map[int32]bool{}
		finish := func(fd int32, ok bool) {
			rawCall(unix.SYS_CLOSE, uintptr(fd), 0, 0) // also leaves the epoll set
			delete(connecting, fd)
			if ok {
				checks.Add(1)
			} else {
				failed.Add(1)
			}
		}
		linger := unix.Linger{Onoff: 1}
		start := func(i int) {
			sfd, errno := rawCall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if errno != 0 {
				failed.Add(1)
				return
			}
			fd := int(sfd)
			unix.RawSyscall6(unix.SYS_SETSOCKOPT, sfd, unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&linger)), unsafe.Sizeof(linger), 0)
			sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr(i).Addr().As4()}
			binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
			switch _, errno := rawCall(unix.SYS_CONNECT, sfd, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4); errno {
			case 0, unix.EINPROGRESS:
			default:
				finish(int32(fd), false)
				return
			}
			// On loopback the handshake is done when connect returns, so
			// the request usually goes out at once.
			events := uint32(unix.EPOLLIN)
			if _, errno := rawCall(unix.SYS_WRITE, sfd, uintptr(unsafe.Pointer(&req[0])), uintptr(len(req))); errno == unix.EAGAIN {
				events = unix.EPOLLOUT
				connecting[int32(fd)] = true
			} else if errno != 0 {
				finish(int32(fd), false)
				return
			}
			if rawCtl(epfd, unix.EPOLL_CTL_ADD, fd, events) != 0 {
				finish(int32(fd), false)
			}
		}
		events := make([]unix.EpollEvent, 256)
		var got int
		poll := func(uintptr) bool {
			n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
			got = int(n)
			if errno != 0 {
				got = 0
			}
			return got > 0
		}
		armed := time.Duration(-1) // the start tfd is set for, from m.t0; -1: none
		var buf [512]byte
		k := 0
		for time.Since(m.t0) < d {
			for due := int(time.Since(m.t0).Seconds() * float64(n)); k < due; k++ {
				start(k % n)
			}
			if !poll(0) {
				// Nothing waits: sleep until the next start (start k goes
				// out once k+1 of them are due), or an event. On a whole
				// millisecond, as epoll_wait's timeout would be: at 10k
				// checks/s the starts go out ten at a time, where a wake-up
				// per start cost a third more CPU.
				next := time.Duration(k+1) * time.Second / time.Duration(n)
				next = min((next + time.Millisecond - 1).Truncate(time.Millisecond), d)
				if next != armed {
					spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(time.Until(m.t0.Add(next)), 1).Nanoseconds())}
					unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(tfd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
					armed = next
				}
				if err := rc.Read(poll); err != nil {
					failed.Add(1)
					return
				}
			}
			for _, ev := range events[:got] {
				fd := ev.Fd
				if int(fd) == tfd {
					rawCall(unix.SYS_READ, uintptr(tfd), uintptr(unsafe.Pointer(&buf[0])), 8)
					armed = -1
					continue
				}
				if connecting[fd] {
					if _, errno := rawCall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&req[0])), uintptr(len(req))); errno != 0 {
						finish(fd, false)
						continue
					}
					delete(connecting, fd)
					rawCtl(epfd, unix.EPOLL_CTL_MOD, int(fd), unix.EPOLLIN)
					continue
				}
				k, errno := rawCall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
				if errno == unix.EAGAIN {
					continue
				}
				finish(fd, errno == 0 && k > 0)
			}
		}
	}()
	<-done
	return finishBare(r, m, checks.Load(), failed.Load(), served0, stdin, lines)
}

// rawCall is a raw system call: on a non-blocking descriptor none of the
// floor's waits, and a plain call's entersyscall can wake sysmon (see
// healthcheck's rawSocket).
func rawCall(trap, a1, a2, a3 uintptr) (uintptr, syscall.Errno) {
	r, _, errno := unix.RawSyscall(trap, a1, a2, a3)
	return r, errno
}

// rawCtl is epoll_ctl as a raw call.
func rawCtl(epfd, op, fd int, events uint32) syscall.Errno {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	return errno
}
