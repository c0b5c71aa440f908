package vrrp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// vipManager adds and removes the virtual addresses on the interface.
type vipManager struct {
	h       *netlink.Handle
	ifindex int
	vips    []netip.Prefix
	// vmac, when set, is the macvlan the VIPs live on (ifindex is its
	// index): up before they are added, down once they are removed.
	vmac *vmac
	// placed are address_options: another interface, a label.
	placed map[netip.Addr]placement
}

// placement is where one address goes: ifi nil is the instance's
// interface (or its macvlan).
type placement struct {
	ifi   *net.Interface
	label string
}

func (v *vipManager) managed() []netip.Prefix      { return v.vips }
func (v *vipManager) setManaged(ps []netip.Prefix) { v.vips = ps }

// here lists the addresses of as that go on the instance's own interface.
func (v *vipManager) here(as []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range as {
		if v.placed[a].ifi == nil {
			out = append(out, a)
		}
	}
	return out
}

// linkOf is the link an address goes on.
func (v *vipManager) linkOf(p netip.Prefix, own netlink.Link) (netlink.Link, error) {
	pl := v.placed[p.Addr()]
	if pl.ifi == nil {
		return own, nil
	}
	l, err := v.h.LinkByIndex(pl.ifi.Index)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface %s of %v: %w", pl.ifi.Name, p, err)
	}
	return l, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (v *vipManager) link() (netlink.Link, error) {
	l, err := v.h.LinkByIndex(v.ifindex)
	if err != nil {
		return nil, fmt.Errorf("vrrp: interface index %d: %w", v.ifindex, err)
	}
	return l, nil
}

// add puts every VIP on the interface. IPv6 VIPs get IFA_F_NODAD: duplicate
// address detection would keep a taken-over address tentative, unusable,
// for a second or more, and the old master has already dropped it.
func (v *vipManager) add() error {
	if v.vmac != nil {
		if err := v.vmac.up(); err != nil {
			return err
		}
	}
	l, err := v.link()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range v.vips {
		a := &netlink.Addr{IPNet: prefixNet(p), Label: v.placed[p.Addr()].label}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		on, err := v.linkOf(p, l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := v.h.AddrReplace(on, a); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: adding %v to %s: %w", p, on.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// remove takes every VIP off the interface; an address already gone is no
// error.
func (v *vipManager) remove() error {
	err := v.del(v.vips)
	if v.vmac != nil {
		err = errors.Join(err, v.vmac.down())
	}
	return err
}

// del takes ps off the interface (a reload's removed addresses, or all of
// them); an address already gone is no error.
func (v *vipManager) del(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	l, err := v.link()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		on, err := v.linkOf(p, l)
		if err == nil {
			err = v.h.AddrDel(on, &netlink.Addr{IPNet: prefixNet(p)})
		}
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("vrrp: removing %v: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// announcer sends gratuitous ARP (IPv4) or unsolicited neighbour
// advertisements (IPv6) for the VIPs from ifi's MAC: the interface's own,
// or the virtual MAC when ifi is the instance's macvlan (use_vmac).
type announcer struct {
	ifi  *net.Interface
	vips []netip.Addr
	arp  *packet.Conn
	// arpTx sends on arp with a raw system call, as adverts leave
	// (rawSender): a plain sendto of a broadcast through the bridge ran
	// past 20 µs, the runtime's sysmon gave the processor away, and the
	// takeover's first advert left 1.1 ms after its leading gratuitous
	// ARP (4 of 24 failover smoke runs).
	arpTx *rawSender
	bcast unix.RawSockaddrLinklayer
	ndp   *ndp.Conn
	// src, when valid, is the IPv6 source of the advertisements; else
	// the interface's own link-local address.
	src netip.Addr
	// others announce the addresses that address_options put on other
	// interfaces, with each burst.
	others []*announcer
}

// newAnnouncer opens the announcement sockets on ifi that vips need. With
// ndpSrc valid (the macvlan, which has no address until it is master) the
// IPv6 socket is not bound to an address and every advertisement names its
// source.
func newAnnouncer(ifi *net.Interface, vips []netip.Addr, ndpSrc netip.Addr) (*announcer, error) {
	a := &announcer{ifi: ifi, src: ndpSrc}
	if err := a.setVIPs(vips); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// setVIPs sets the addresses to announce and opens the socket a family
// needs that is not open yet: an instance's excluded addresses may be of
// the other family, and a reload may add them. Not while run runs.
func (a *announcer) setVIPs(vips []netip.Addr) error {
	a.vips = vips
	var err error
	if a.arp == nil && slices.ContainsFunc(vips, netip.Addr.Is4) {
		// A packet socket rather than arp.Dial, which insists on an
		// IPv4 address on the interface (the macvlan has none until it
		// is master). It only sends: the filter keeps ARP traffic from
		// piling up in its buffer.
		a.arp, err = packet.Listen(a.ifi, packet.Raw, int(ethernet.EtherTypeARP), &packet.Config{Filter: dropAll})
		if err != nil {
			return fmt.Errorf("vrrp: ARP socket on %s: %w", a.ifi.Name, err)
		}
		if a.arpTx, err = newRawSender(a.arp, "packet"); err != nil {
			return fmt.Errorf("vrrp: ARP socket on %s: %w", a.ifi.Name, err)
		}
		a.bcast = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: networkOrder(uint16(ethernet.EtherTypeARP)), Ifindex: int32(a.ifi.Index), Halen: 6}
		copy(a.bcast.Addr[:], ethernet.Broadcast)
	}
	if a.ndp != nil || !slices.ContainsFunc(vips, netip.Addr.Is6) {
		return nil
	}
	// ndp uses the interface name as the zone of every write; the index
	// spelled as a name resolves the same in any network namespace.
	numeric := *a.ifi
	numeric.Name = strconv.Itoa(a.ifi.Index)
	bind := ndp.LinkLocal
	if a.src.IsValid() {
		bind = ndp.Unspecified
	}
	c, _, err := ndp.Listen(&numeric, bind)
	if err != nil {
		return fmt.Errorf("vrrp: NDP socket on %s: %w", a.ifi.Name, err)
	}
	// The socket only sends: block every ICMPv6 type on receive so that
	// unread messages do not pile up in its buffer.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return fmt.Errorf("vrrp: NDP socket on %s: ICMPv6 filter: %w", a.ifi.Name, err)
	}
	a.ndp = c
	return nil
}

// burst sends repeat announcements for every VIP.
func (a *announcer) burst(repeat int) error {
	var errs []error
	if a.arp != nil {
		// A packet socket keeps ENETDOWN pending from the last time its
		// interface went down (the macvlan does on every loss of
		// mastership) and returns it from the next send: clear it.
		if err := clearSockError(a.arp); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: ARP socket on %s: %w", a.ifi.Name, err))
		}
	}
	for range max(repeat, 1) {
		for _, ip := range a.vips {
			if err := a.one(ip); err != nil {
				errs = append(errs, fmt.Errorf("vrrp: announcing %v on %s: %w", ip, a.ifi.Name, err))
			}
		}
	}
	for _, o := range a.others {
		errs = append(errs, o.burst(repeat))
	}
	return errors.Join(errs...)
}

func (a *announcer) one(ip netip.Addr) error {
	if ip.Is4() && a.arp != nil {
		p, err := arp.NewPacket(arp.OperationRequest, a.ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return err
		}
		f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: a.ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}
		fb, err := f.MarshalBinary()
		if err != nil {
			return err
		}
		return a.arpTx.send(fb, nil, unsafe.Pointer(&a.bcast), unix.SizeofSockaddrLinklayer)
	}
	if ip.Is6() && a.ndp != nil {
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: ip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: a.ifi.HardwareAddr}},
		}
		var cm *ipv6.ControlMessage // nil: the socket's link-local address
		if a.src.IsValid() {
			cm = &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: a.src.AsSlice(), IfIndex: a.ifi.Index}
		}
		return a.ndp.WriteTo(na, cm, netip.MustParseAddr("ff02::1"))
	}
	return nil
}

// run announces now, again after delay (when non-zero), then every refresh
// (when non-zero) until ctx is done. Errors go to report.
func (a *announcer) run(ctx context.Context, first, repeat int, delay, refresh time.Duration, report func(error)) {
	send := func() {
		if err := a.burst(repeat); err != nil {
			report(err)
		}
	}
	if first > 0 {
		if err := a.burst(first); err != nil {
			report(err)
		}
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if delay > 0 {
		if !wait(delay) {
			return
		}
		send()
	}
	if refresh <= 0 {
		return
	}
	for wait(refresh) {
		send()
	}
}

func (a *announcer) close() {
	for _, o := range a.others {
		o.close()
	}
	if a.arp != nil {
		a.arp.Close()
	}
	if a.ndp != nil {
		a.ndp.Close()
	}
}

// clearSockError reads (and so clears) a socket's pending error.
func clearSockError(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	})
	return errors.Join(err, serr)
}

// networkOrder puts v in network byte order as it sits in memory, for a
// sockaddr field.
func networkOrder(v uint16) uint16 {
	b := [2]byte{byte(v >> 8), byte(v)}
	return binary.NativeEndian.Uint16(b[:])
}
