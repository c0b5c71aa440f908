package main

import (
	"bufio"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// runEpoll is the event-driven floor: the scenario's HTTP checks from one
// locked OS thread and one epoll set, with bare nonblocking system calls
// and nothing else (no runtime poller, no timers, no parsing beyond "some
// bytes came back"). It is what a C event loop such as keepalived's
// checker would spend at best per check on this host: socket, SO_LINGER,
// connect, write, epoll_ctl, read, close, and a share of epoll_wait. The
// blocking rawhttp reference pays thread wake-ups on top; haldir pays the
// Go runtime, its scheduler and response parsing on top.
func runEpoll(r result, n int, d time.Duration, srvPID int, stdin io.Writer, lines *bufio.Scanner) result {
	r.Bare = true
	req := []byte("GET / HTTP/1.1\r\nHost: 127.1.0.1:8080\r\nUser-Agent: haldir-healthcheck\r\nConnection: close\r\n\r\n")
	var checks, failed atomic.Int64
	done := make(chan struct{})
	m := startMeter(srvPID)
	served0 := served(stdin, lines)
	go func() {
		defer close(done)
		runtime.LockOSThread()
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			failed.Add(1)
			return
		}
		defer unix.Close(epfd)
		// fd -> waiting for writability (connect in progress) or not.
		connecting := map[int32]bool{}
		finish := func(fd int32, ok bool) {
			unix.Close(int(fd)) // also leaves the epoll set
			delete(connecting, fd)
			if ok {
				checks.Add(1)
			} else {
				failed.Add(1)
			}
		}
		start := func(i int) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				failed.Add(1)
				return
			}
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
			switch err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: addr(i).Addr().As4()}); err {
			case nil, unix.EINPROGRESS:
			default:
				unix.Close(fd)
				failed.Add(1)
				return
			}
			// On loopback the handshake is done when connect returns, so
			// the request usually goes out at once.
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
			if _, err := unix.Write(fd, req); err == unix.EAGAIN {
				ev.Events = unix.EPOLLOUT
				connecting[int32(fd)] = true
			} else if err != nil {
				unix.Close(fd)
				failed.Add(1)
				return
			}
			if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				unix.Close(fd)
				failed.Add(1)
			}
		}
		events := make([]unix.EpollEvent, 256)
		var buf [512]byte
		k := 0
		for time.Since(m.t0) < d {
			for due := int(time.Since(m.t0).Seconds() * float64(n)); k < due; k++ {
				start(k % n)
			}
			got, err := unix.EpollWait(epfd, events, 1)
			if err != nil && err != unix.EINTR {
				failed.Add(1)
				return
			}
			for _, ev := range events[:max(got, 0)] {
				fd := ev.Fd
				if connecting[fd] {
					if _, err := unix.Write(int(fd), req); err != nil {
						finish(fd, false)
						continue
					}
					delete(connecting, fd)
					unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, int(fd), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: fd})
					continue
				}
				k, err := unix.Read(int(fd), buf[:])
				if err == unix.EAGAIN {
					continue
				}
				finish(fd, err == nil && k > 0)
			}
		}
	}()
	<-done
	return finishBare(r, m, checks.Load(), failed.Load(), served0, stdin, lines)
}
