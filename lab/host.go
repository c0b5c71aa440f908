package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/nldump"
)

// Host is one network namespace of a lab, named "<lab id>-<host name>" under
// NetNSDir.
type Host struct {
	lab    *Lab
	name   string
	nsName string
	nl     *netlink.Handle

	// nsMu orders Do's use of the namespace handle before the lab's close
	// of it: a dial still in flight on another goroutine (an HTTP client's)
	// may enter the namespace while the lab tears down.
	nsMu sync.RWMutex
	ns   netns.NsHandle
}

// Name returns the host name given to AddHost.
func (h *Host) Name() string { return h.name }

// Lab returns the lab the host belongs to.
func (h *Host) Lab() *Lab { return h.lab }

// NetNSName returns the namespace name (for `ip netns exec NAME ...`).
func (h *Host) NetNSName() string { return h.nsName }

// NetNSPath returns the bind-mount path of the namespace, for setns(2).
func (h *Host) NetNSPath() string { return filepath.Join(NetNSDir, h.nsName) }

// Netlink returns a netlink handle bound to the host's namespace, for
// settings this package has no helper for. The lab closes it.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

func (h *Host) String() string { return h.name + "(" + h.nsName + ")" }

// Do runs f on the calling goroutine with its OS thread switched into the
// host's namespace, then switches back. Sockets f creates stay in the host's
// namespace for their whole life; goroutines f starts do not run in it (they
// get other threads). If switching back fails the thread is left locked so
// the runtime discards it rather than reuse a thread in the wrong namespace.
func (h *Host) Do(f func() error) (err error) {
	runtime.LockOSThread()
	orig, gerr := netns.Get()
	if gerr != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("host %s: current namespace: %w", h, gerr)
	}
	defer orig.Close()
	h.nsMu.RLock()
	serr := errors.New("lab closed")
	if h.ns.IsOpen() {
		serr = netns.Set(h.ns)
	}
	h.nsMu.RUnlock()
	if serr != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("host %s: entering namespace: %w", h, serr)
	}
	// Deferred so that a panic in f, recovered further up, does not leave
	// the goroutine running in the host's namespace.
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			// Deliberately still locked: see above.
			err = errors.Join(err, fmt.Errorf("host %s: leaving namespace: %w", h, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return f()
}

// Listen is net.Listen inside the host. The listener is closed at lab
// teardown if the caller has not closed it. Use numeric addresses: a name
// lookup would run outside the namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	h.lab.track(ln)
	return ln, nil
}

// ListenPacket is net.ListenPacket inside the host, closed at teardown.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := h.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	h.lab.track(pc)
	return pc, nil
}

// Dial connects from inside the host. Connections are not tracked (a load
// loop would pile them up): the caller closes them.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	return c, nil
}

// Interface returns the host's interface called name as the net package
// sees it from inside the namespace (index, MAC, flags).
func (h *Host) Interface(name string) (*net.Interface, error) {
	var ifi *net.Interface
	err := h.Do(func() (err error) {
		ifi, err = net.InterfaceByName(name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.name, err)
	}
	return ifi, nil
}

// sysctlPath maps "net.ipv4.ip_forward" to /proc/sys/net/ipv4/ip_forward.
// Keys already written with slashes are taken as they are.
func sysctlPath(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("bad sysctl key %q", key)
	}
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key), nil
}

// Sysctl sets a kernel parameter in the host's namespace. /proc/sys/net is
// resolved against the namespace of the thread that opens it, so the write
// happens inside Do.
func (h *Host) Sysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return fmt.Errorf("host %s: %w", h.name, err)
	}
	err = h.Do(func() error { return os.WriteFile(p, []byte(value), 0o644) })
	if err != nil {
		return fmt.Errorf("host %s: sysctl %s=%s: %w", h.name, key, value, err)
	}
	return nil
}

// ReadSysctl reads a kernel parameter in the host's namespace.
func (h *Host) ReadSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", fmt.Errorf("host %s: %w", h.name, err)
	}
	var b []byte
	err = h.Do(func() (err error) {
		b, err = os.ReadFile(p)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("host %s: sysctl %s: %w", h.name, key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddAddr adds an address to one of the host's interfaces (use "lo" for a
// VIP on loopback). IPv6 addresses get the nodad flag so they are usable at
// once.
func (h *Host) AddAddr(iface string, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("host %s: invalid prefix %v for %s", h.name, p, iface)
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("host %s: interface %s: %w", h.name, iface, err)
	}
	a := &netlink.Addr{IPNet: prefixToIPNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(link, a); err != nil {
		return fmt.Errorf("host %s: adding %v to %s: %w", h.name, p, iface, err)
	}
	return nil
}

// DelAddr removes an address from one of the host's interfaces.
func (h *Host) DelAddr(iface string, p netip.Prefix) error {
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("host %s: interface %s: %w", h.name, iface, err)
	}
	if err := h.nl.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(p)}); err != nil {
		return fmt.Errorf("host %s: removing %v from %s: %w", h.name, p, iface, err)
	}
	return nil
}

// Addrs lists the addresses on one of the host's interfaces.
func (h *Host) Addrs(iface string) ([]netip.Prefix, error) {
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("host %s: interface %s: %w", h.name, iface, err)
	}
	as, err := nldump.Retry(func() ([]netlink.Addr, error) { return h.nl.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("host %s: listing addresses of %s: %w", h.name, iface, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// AddRoute adds a static route in the host.
func (h *Host) AddRoute(r Route) error {
	if !r.Dst.IsValid() {
		return fmt.Errorf("host %s: route needs a destination prefix (0.0.0.0/0 or ::/0 for default)", h.name)
	}
	if !r.Via.IsValid() && r.Dev == "" {
		return fmt.Errorf("host %s: route to %v needs Via or Dev", h.name, r.Dst)
	}
	if r.Via.IsValid() && r.Via.Unmap().Is4() != r.Dst.Addr().Unmap().Is4() {
		return fmt.Errorf("host %s: route to %v via %v mixes address families", h.name, r.Dst, r.Via)
	}
	nr := &netlink.Route{Dst: prefixToIPNet(r.Dst.Masked())}
	if r.Via.IsValid() {
		nr.Gw = r.Via.Unmap().AsSlice()
	}
	if r.Dev != "" {
		link, err := h.nl.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("host %s: route to %v: interface %s: %w", h.name, r.Dst, r.Dev, err)
		}
		nr.LinkIndex = link.Attrs().Index
	}
	if err := h.nl.RouteAdd(nr); err != nil {
		return fmt.Errorf("host %s: adding route to %v via %v dev %q: %w", h.name, r.Dst, r.Via, r.Dev, err)
	}
	return nil
}

// Link returns the host's link whose interface is iface, or nil.
func (h *Host) Link(iface string) *Link {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	for _, l := range h.lab.links {
		if l.host == h && l.iface == iface {
			return l
		}
	}
	return nil
}

// HardwareAddr returns the MAC of one of the host's interfaces.
func (h *Host) HardwareAddr(iface string) (net.HardwareAddr, error) {
	link, err := h.nl.LinkByName(iface)
	if err != nil {
		return nil, fmt.Errorf("host %s: interface %s: %w", h.name, iface, err)
	}
	return link.Attrs().HardwareAddr, nil
}
