package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/nldump"
)

// The send path is tracked like an interface with weight 0: an instance
// whose adverts cannot reach its peers as configured must not be master,
// or its peers become master too (two masters, and nothing in the log).
// Two items watch it:
//
//   - keySource fails while the advert source (unicast_source, or the
//     address picked at start) is not an address of the instance's
//     interface: adverts would leave with an address the peers do not
//     expect, or (with the kernel's on-link assumption for a bound socket)
//     through another route, or not at all (EINVAL). A picked source that
//     is replaced is picked again from the interface (the update carries
//     the new source), so a re-addressed interface does not leave the
//     instance in Fault until a restart.
//   - keySend fails when sending an advert fails with an error that says
//     the path is broken (sendFaults). The driver sets it at once, so a
//     new master that cannot send does not announce its addresses. It
//     clears once a route lookup from the source through the interface to
//     every destination succeeds again, checked every probeInterval; for
//     errors a route lookup cannot see (a firewall's EPERM) it clears
//     after a backoff that doubles up to maxBackoff while they recur, and
//     the next advert as master tries again.
//
// keySource follows address events (only those that can change it) and
// costs nothing while nothing changes; only if the subscription is lost
// is it polled every probeInterval.
var (
	keySource = trackKey{kind: trackSource}
	keySend   = trackKey{kind: trackSend}
)

const (
	probeInterval = time.Second
	maxBackoff    = time.Minute
)

// sendFaults are the send errors that put an instance in Fault: the
// advert cannot leave as configured and retrying will not help until the
// host changes. Transient ones (ENOBUFS, EAGAIN) are only counted.
var sendFaults = []syscall.Errno{
	unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EADDRNOTAVAIL, unix.EINVAL,
	unix.EPERM, unix.EACCES, unix.ENETDOWN, unix.ENODEV, unix.ENXIO,
}

// SendErrorReason names a send error for the send-error counter: the
// errno's name in lower case ("ehostunreach"), or "other".
func SendErrorReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return strings.ToLower(n)
		}
	}
	return "other"
}

// sendFault is whether err puts the instance in Fault, and whether a route
// lookup shows when the cause is gone (else: a backoff).
func sendFault(err error) (fault, routed bool) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false, false
	}
	for _, e := range sendFaults {
		if errno == e {
			return true, errno != unix.EPERM && errno != unix.EACCES
		}
	}
	return false, false
}

// sendFailure is one send error that broke the path.
type sendFailure struct {
	why    string
	routed bool
}

// pathWatch keeps the send path under watch and reports keySource and
// keySend as tracking updates.
type pathWatch struct {
	h   *netlink.Handle // its own: the driver's is used from another goroutine
	ifi *net.Interface
	src netip.Addr // owned by run once it started
	// repick, nil for unicast_source, picks a new source from the
	// interface when src is no longer one of its addresses.
	repick   *sourcePick
	dsts     []netip.Addr
	updates  chan netlink.AddrUpdate
	done     chan struct{}
	stopOnce sync.Once
	failed   chan sendFailure // one slot; the first wins
	// checks counts checkSource's netlink round trips (for tests: a
	// steady instance makes none).
	checks atomic.Uint64
	// running: run owns h from here and closes it when it returns, so
	// that close never pulls the handle from under a lookup.
	running bool
}

// openPathWatch subscribes to address changes in the calling thread's
// network namespace (call it inside Instance.do) and checks the source
// once: its result is the keySource item's initial state.
func openPathWatch(ifi *net.Interface, src netip.Addr, repick *sourcePick, dsts []netip.Addr) (*pathWatch, trackUpdate, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, trackUpdate{}, err
	}
	p := &pathWatch{h: h, ifi: ifi, src: src, repick: repick, dsts: dsts,
		updates: make(chan netlink.AddrUpdate, 64), done: make(chan struct{}), failed: make(chan sendFailure, 1)}
	// A burst (every VIP of a sync group added at once) must not overflow
	// the subscription: a lost event closes it (ENOBUFS), and from then on
	// run polls every probeInterval.
	opts := netlink.AddrSubscribeOptions{ReceiveBufferSize: 1 << 20, ReceiveBufferForceSize: true}
	if err := netlink.AddrSubscribeWithOptions(p.updates, p.done, opts); err != nil {
		h.Close()
		return nil, trackUpdate{}, fmt.Errorf("address subscription: %w", err)
	}
	return p, p.checkSource(), nil
}

// close stops the address subscription (and run, through its context).
// Call it from the goroutine that started run.
func (p *pathWatch) close() {
	p.stopOnce.Do(func() {
		close(p.done)
		if !p.running {
			p.h.Close()
		}
	})
}

// start runs run in a goroutine counted by wg.
func (p *pathWatch) start(ctx context.Context, wg *sync.WaitGroup, sourceFailing bool, out chan<- trackUpdate) {
	p.running = true
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer p.h.Close()
		p.run(ctx, sourceFailing, out)
	}()
}

// sendFailed reports a send error that breaks the path. It never blocks.
func (p *pathWatch) sendFailed(f sendFailure) {
	select {
	case p.failed <- f:
	default:
	}
}

// checkSource reports keySource: failing, with what is wrong, while the
// source is not an address of the interface.
func (p *pathWatch) checkSource() trackUpdate {
	fam := netlink.FAMILY_V4
	if p.src.Is6() {
		fam = netlink.FAMILY_V6
	}
	p.checks.Add(1)
	what := "unicast_source"
	if p.repick != nil {
		what = "source"
	}
	l, err := p.h.LinkByIndex(p.ifi.Index)
	if err != nil {
		return trackUpdate{key: keySource, failing: true, reason: fmt.Sprintf("%s %v: interface %s: %v", what, p.src, p.ifi.Name, err)}
	}
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return p.h.AddrList(l, fam) })
	if err != nil {
		return trackUpdate{key: keySource, failing: true, reason: fmt.Sprintf("%s %v: addresses of %s: %v", what, p.src, p.ifi.Name, err)}
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.src {
			return trackUpdate{key: keySource}
		}
	}
	why := fmt.Sprintf("%s %v is not an address of %s", what, p.src, p.ifi.Name)
	// Say where it is, when it is local elsewhere: the usual mistake is
	// the address of the director's other interface.
	if all, err := nldump.Retry(func() ([]netlink.Addr, error) { return p.h.AddrList(nil, fam) }); err == nil {
		for _, a := range all {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.src {
				if other, err := p.h.LinkByIndex(a.LinkIndex); err == nil {
					why += " (it is on " + other.Attrs().Name + ")"
				}
				break
			}
		}
	}
	return trackUpdate{key: keySource, failing: true, reason: why}
}

// replacement picks a new source from the interface, or returns the zero
// address when it has none (yet).
func (p *pathWatch) replacement() netip.Addr {
	l, err := p.h.LinkByIndex(p.ifi.Index)
	if err != nil {
		return netip.Addr{}
	}
	src, _, err := p.repick.pick(p.h, l)
	if err != nil {
		return netip.Addr{}
	}
	return src
}

// probe is whether the kernel has a route from the source through the
// interface to every destination.
func (p *pathWatch) probe() error {
	for _, dst := range p.dsts {
		if _, err := p.h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{OifIndex: p.ifi.Index, SrcAddr: p.src.AsSlice()}); err != nil {
			return fmt.Errorf("route to %v from %v via %s: %w", dst, p.src, p.ifi.Name, err)
		}
	}
	return nil
}

// concerns is whether an address event can change keySource: the source
// itself added or removed, or, while it is failing, an address added to
// the interface (the source back, or one to pick). Other events (the VIPs
// of every instance, other links) need no recheck.
func (p *pathWatch) concerns(u netlink.AddrUpdate, failing bool) bool {
	ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	if ok && ip.Unmap() == p.src {
		return true
	}
	return failing && u.NewAddr && u.LinkIndex == p.ifi.Index
}

// run reports changes of keySource and keySend on out until ctx is done.
// sourceFailing is the initial state openPathWatch reported.
func (p *pathWatch) run(ctx context.Context, sourceFailing bool, out chan<- trackUpdate) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	source := trackUpdate{key: keySource, failing: sourceFailing}
	sendFailing := false
	var failure sendFailure
	var retryAt, clearedAt time.Time
	backoff := probeInterval
	report := func(u trackUpdate) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	recheck := func() bool {
		u := p.checkSource()
		if u.failing && p.repick != nil {
			if src := p.replacement(); src.IsValid() {
				p.src = src
				u = trackUpdate{key: keySource, source: src}
			}
		}
		if u.source.IsValid() || u != source {
			source = u
			source.source = netip.Addr{}
			return report(u)
		}
		return true
	}
	// The ticker runs only while there is something to poll: no
	// subscription, or a send failure to retry. A steady instance's
	// ticker woke the process once a second for nothing (n times with n
	// instances).
	ticking := true
	for {
		if need := p.updates == nil || sendFailing; need != ticking {
			if need {
				t.Reset(probeInterval)
			} else {
				t.Stop()
			}
			ticking = need
		}
		select {
		case <-ctx.Done():
			return
		case u, ok := <-p.updates:
			if !ok {
				p.updates = nil // closed: the ticker rechecks from now on
				continue
			}
			if !p.concerns(u, source.failing) {
				continue
			}
			if !recheck() {
				return
			}
		case f := <-p.failed:
			if !sendFailing {
				sendFailing, failure = true, f
				// Recurring soon after the last retry: wait longer.
				if !clearedAt.IsZero() && time.Since(clearedAt) < maxBackoff {
					backoff = min(2*backoff, maxBackoff)
				} else {
					backoff = probeInterval
				}
				retryAt = time.Now().Add(backoff)
				if !report(trackUpdate{key: keySend, failing: true, reason: f.why}) {
					return
				}
			}
		case <-t.C:
			// While the subscription lives, its events are the truth and
			// a steady instance costs no netlink work at all: a recheck
			// is two round trips and a dump of every address, once a
			// second per instance, n² with n instances and their VIPs.
			if p.updates == nil && !recheck() {
				return
			}
			if !sendFailing {
				continue
			}
			if failure.routed && p.probe() == nil || !failure.routed && !time.Now().Before(retryAt) {
				// Errors of sends made before the fault took effect (the
				// resignation) say nothing new.
				select {
				case <-p.failed:
				default:
				}
				sendFailing, clearedAt = false, time.Now()
				if !report(trackUpdate{key: keySend}) {
					return
				}
			}
		}
	}
}
