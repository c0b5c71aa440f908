package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// vipManager adds and removes the virtual addresses on the interface.
type vipManager struct {
	h       *netlink.Handle
	ifindex int
	vips    []netip.Prefix
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
	l, err := v.link()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range v.vips {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := v.h.AddrReplace(l, a); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: adding %v to %s: %w", p, l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// remove takes every VIP off the interface; an address already gone is no
// error.
func (v *vipManager) remove() error {
	l, err := v.link()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range v.vips {
		err := v.h.AddrDel(l, &netlink.Addr{IPNet: prefixNet(p)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("vrrp: removing %v from %s: %w", p, l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// announcer sends gratuitous ARP (IPv4) or unsolicited neighbour
// advertisements (IPv6) for the VIPs from the interface MAC. The VRRP
// virtual MAC 00-00-5E-00-01-{VRID} is not used: that needs a macvlan per
// instance (keepalived's use_vmac) and is left for later.
type announcer struct {
	ifi  *net.Interface
	vips []netip.Addr
	arp  *arp.Client
	ndp  *ndp.Conn
}

func newAnnouncer(ifi *net.Interface, vips []netip.Addr) (*announcer, error) {
	a := &announcer{ifi: ifi, vips: vips}
	if len(vips) == 0 {
		return a, nil
	}
	var err error
	if vips[0].Is4() {
		a.arp, err = arp.Dial(ifi)
		if err != nil {
			return nil, fmt.Errorf("vrrp: ARP socket on %s: %w", ifi.Name, err)
		}
		return a, nil
	}
	// ndp uses the interface name as the zone of every write; the index
	// spelled as a name resolves the same in any network namespace.
	numeric := *ifi
	numeric.Name = strconv.Itoa(ifi.Index)
	a.ndp, _, err = ndp.Listen(&numeric, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("vrrp: NDP socket on %s: %w", ifi.Name, err)
	}
	// The socket only sends: block every ICMPv6 type on receive so that
	// unread messages do not pile up in its buffer.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := a.ndp.SetICMPFilter(&f); err != nil {
		a.ndp.Close()
		return nil, fmt.Errorf("vrrp: NDP socket on %s: ICMPv6 filter: %w", ifi.Name, err)
	}
	return a, nil
}

// burst sends repeat announcements for every VIP.
func (a *announcer) burst(repeat int) error {
	var errs []error
	for range max(repeat, 1) {
		for _, ip := range a.vips {
			if err := a.one(ip); err != nil {
				errs = append(errs, fmt.Errorf("vrrp: announcing %v on %s: %w", ip, a.ifi.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (a *announcer) one(ip netip.Addr) error {
	if a.arp != nil {
		p, err := arp.NewPacket(arp.OperationRequest, a.ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		return a.arp.WriteTo(p, ethernet.Broadcast)
	}
	if a.ndp != nil {
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: ip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: a.ifi.HardwareAddr}},
		}
		return a.ndp.WriteTo(na, nil, netip.MustParseAddr("ff02::1"))
	}
	return nil
}

// run announces now, again after delay (when non-zero), then every refresh
// (when non-zero) until ctx is done. Errors go to report.
func (a *announcer) run(ctx context.Context, repeat int, delay, refresh time.Duration, report func(error)) {
	send := func() {
		if err := a.burst(repeat); err != nil {
			report(err)
		}
	}
	send()
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
	if a.arp != nil {
		a.arp.Close()
	}
	if a.ndp != nil {
		a.ndp.Close()
	}
}
