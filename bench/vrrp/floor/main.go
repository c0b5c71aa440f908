// Command floor is the VRRP benchmark's bare Go program: a master's or a
// backup's wire work and nothing else, woken the way haldir is (one
// timerfd and a raw socket read through Go's poller, every system call
// raw). BenchmarkFailover's CPU table measures it beside haldir and
// keepalived in the same run: what haldir spends above it is haldir's
// own; what it spends above keepalived is the Go runtime's.
//
// A master sends the VRRPv3 advert of every instance each interval, all
// on one wake-up. A backup reads every advert as it comes, one system
// call per packet as keepalived does, and pushes one Master_Down timer
// back per advert; it prints a line when it first hears the master, and
// another if the master falls silent.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/vrrp"
)

func main() {
	var (
		role      = flag.String("role", "", "master or backup")
		ifname    = flag.String("interface", "", "the interface adverts leave and arrive on")
		src       = flag.String("src", "", "master: the interface's IPv4 address (the checksum's pseudo-header)")
		instances = flag.Int("instances", 1, "master: instances, VRIDs 1..N, VIP 192.0.2.(100+VRID)")
		interval  = flag.Duration("interval", time.Second, "advert interval")
		priority  = flag.Int("priority", 200, "master: the adverts' priority")
	)
	flag.Parse()
	if err := run(*role, *ifname, *src, *instances, *interval, *priority); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(role, ifname, src string, instances int, interval time.Duration, priority int) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	c, err := net.ListenPacket("ip4:112", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	p := ipv4.NewPacketConn(c)
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		return err
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return err
	}
	tf := os.NewFile(uintptr(tfd), "timerfd")
	defer tf.Close()
	trc, err := tf.SyscallConn()
	if err != nil {
		return err
	}
	t := &timer{fd: tfd, rc: trc}
	// SIGTERM ends the process, as it does the daemons.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }()
	switch role {
	case "master":
		return master(p, rc, t, ifi, src, instances, interval, priority)
	case "backup":
		return backup(p, rc, t, ifi, interval)
	}
	return fmt.Errorf("-role %q: want master or backup", role)
}

// timer is the timerfd, waited on through the poller.
type timer struct {
	fd int
	rc syscall.RawConn
	// at is when the timerfd can fire for its last setting, in ns since
	// epoch (monotonic), 0 when its fire was taken; arm runs on the
	// backup's reading goroutine.
	at atomic.Int64
}

// epoch is the monotonic origin of timer.at.
var epoch = time.Now()

// each calls fire after each fire of the timer, until fire returns an
// error or the timerfd is closed. It waits as haldir's timerSet does: one
// Read for all fires (a Read per fire would begin with a read that fails
// with EAGAIN, since Read forgets what the poller saw before it), and no
// read of the expiration count, the clock telling a fire from a wake-up
// for a setting replaced since.
func (t *timer) each(fire func() error) error {
	var err error
	rerr := t.rc.Read(func(uintptr) bool {
		at := t.at.Load()
		if at == 0 || int64(time.Since(epoch)) < at || !t.at.CompareAndSwap(at, 0) {
			return false
		}
		err = fire()
		return err != nil
	})
	return errors.Join(err, rerr)
}

// arm sets the timer d from now.
func (t *timer) arm(d time.Duration) {
	d = max(d, 1)
	t.at.Store(int64(time.Since(epoch) + d))
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	_, _, _ = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(t.fd), 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
}

func master(p *ipv4.PacketConn, rc syscall.RawConn, t *timer, ifi *net.Interface, src string, instances int, interval time.Duration, priority int) error {
	from, err := netip.ParseAddr(src)
	if err != nil || !from.Is4() {
		return fmt.Errorf("-src %q: want the interface's IPv4 address", src)
	}
	if instances < 1 || instances > 155 {
		return fmt.Errorf("-instances %d: want 1..155", instances)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return err
	}
	// A router listens to the group as well, and a member's multicast
	// route is not cached: the kernel makes one per packet sent, a cost
	// haldir's and keepalived's masters pay too.
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: vrrp.GroupV4.AsSlice()}); err != nil {
		return err
	}
	if err := p.SetMulticastTTL(255); err != nil {
		return err
	}
	if err := p.SetMulticastLoopback(false); err != nil {
		return err
	}
	// The adverts are encoded once; each wake-up only sends them.
	var msgs [][]byte
	for i := 1; i <= instances; i++ {
		a := vrrp.Advert{Version: 3, VRID: uint8(i), Priority: uint8(priority), Interval: interval,
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})}}
		b, err := a.Marshal(from, vrrp.GroupV4)
		if err != nil {
			return err
		}
		msgs = append(msgs, b)
	}
	to := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: vrrp.GroupV4.As4()}
	var cur []byte
	var errno syscall.Errno
	send := func(fd uintptr) bool {
		_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&cur[0])), uintptr(len(cur)), unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&to)), unix.SizeofSockaddrInet4)
		return errno != unix.EAGAIN
	}
	next := time.Now()
	sendAll := func() error {
		for _, cur = range msgs {
			if err := rc.Write(send); err != nil {
				return err
			}
			if errno != 0 {
				return fmt.Errorf("sendto: %w", errno)
			}
		}
		// On a grid, as haldir's and keepalived's masters send.
		next = next.Add(interval)
		now := time.Now()
		if !next.After(now) {
			next = now.Add(interval)
		}
		t.arm(next.Sub(now))
		return nil
	}
	if err := sendAll(); err != nil {
		return err
	}
	return t.each(sendAll)
}

func backup(p *ipv4.PacketConn, rc syscall.RawConn, t *timer, ifi *net.Interface, interval time.Duration) error {
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: vrrp.GroupV4.AsSlice()}); err != nil {
		return err
	}
	// Master_Down_Interval at priority 100 (RFC 5798: 3 intervals and
	// the skew).
	down := 3*interval + (256-100)*interval/256
	var buf [1500]byte
	var n uintptr
	var errno syscall.Errno
	recv := func(fd uintptr) bool {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_DONTWAIT, 0, 0)
		return errno != unix.EAGAIN
	}
	heard := false
	t.arm(down)
	timerDone := make(chan error, 1)
	go func() {
		// The timer fires only when the master falls silent.
		timerDone <- t.each(func() error {
			fmt.Println("floor backup: master down")
			return nil
		})
	}()
	for {
		if err := rc.Read(recv); err != nil {
			return err
		}
		switch {
		case errno != 0:
			return fmt.Errorf("recvfrom: %w", errno)
		case n < 20 || int(n) < int(buf[0]&0x0f)*4+8:
			continue // not an advert
		}
		// One re-arm per packet, as a backup pushes its
		// Master_Down_Timer back on every advert.
		t.arm(down)
		if !heard {
			heard = true
			fmt.Printf("floor backup: hearing the master (VRID %d)\n", buf[int(buf[0]&0x0f)*4+1])
		}
		select {
		case err := <-timerDone:
			return errors.Join(errors.New("timer"), err)
		default:
		}
	}
}
