package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// VirtualMAC returns the VRRP virtual router MAC address of RFC 5798 §7.3:
// 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
func VirtualMAC(vrid uint8, ipv6 bool) net.HardwareAddr {
	if ipv6 {
		return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x02, vrid}
	}
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// vmac is the macvlan that carries an instance's virtual MAC (use_vmac).
//
// It is in bridge mode, not keepalived's private mode. In private mode the
// kernel takes a multicast frame whose source MAC is one of its own
// macvlans' for that macvlan's own frame come back (from a VEPA switch) and
// hands it to the macvlan alone: another master's adverts, which carry the
// same virtual MAC, would never reach the base interface where haldir
// listens, and two masters would never resolve. keepalived does not hit
// this because it listens on the macvlan and keeps it up in every state;
// haldir keeps it down unless master (see up), so that a backup never sends
// a frame with the virtual MAC — an IGMP/MLD report or a router
// solicitation from a backup would move the switch's forwarding entry for
// the virtual MAC to the backup, which keepalived prevents with nftables
// rules.
type vmac struct {
	h    *netlink.Handle
	name string
	mac  net.HardwareAddr
	link netlink.Link
	ifi  *net.Interface
	ipv6 bool
	// linkLocal is added to the macvlan while it is up: IPv6 adverts and
	// neighbour advertisements leave from the base interface's link-local
	// address, and the kernel sends from a link-local address only on an
	// interface that has it.
	linkLocal netip.Addr
}

// sysctls are the IPv4 settings keepalived makes for a vmac (its
// vrrp_if_config.c), for the same reasons.
var (
	// On the macvlan:
	vmacSysctls = []struct{ key, value, why string }{
		// Answer ARP only for addresses on the macvlan itself (the VIPs):
		// with the default 0 it would also answer for the host's own
		// addresses with the virtual MAC, and after a failover clients
		// would send this host's own traffic to the new master.
		{"arp_ignore", "1", "answer ARP for the virtual addresses only"},
		// A packet from one of this host's own addresses arriving on the
		// macvlan (another VRRP router on this host, or a lab namespace
		// sharing the segment) is not a martian here.
		{"accept_local", "1", "accept packets from local addresses"},
		// Loose reverse-path filtering: replies to clients are routed
		// through the base interface, so strict mode would drop what
		// arrives on the macvlan. The kernel uses the larger of the
		// "all" and the per-interface value, and 2 is the largest, so
		// this holds whatever conf/all/rp_filter says; keepalived
		// instead lowers all.rp_filter to 0 and raises every other
		// interface, which touches interfaces that are not its own.
		{"rp_filter", "2", "loose reverse-path filter"},
	}
	// On an IPv6 instance's macvlan:
	vmacSysctls6 = []struct{ key, value, why string }{
		// A new interface takes net.ipv6.conf.default, which may have
		// IPv6 off.
		{"disable_ipv6", "0", "IPv6 on"},
		// No addresses or routes from router advertisements: the
		// macvlan is up only while master, and a default route through
		// it would come and go with every failover.
		{"accept_ra", "0", "ignore router advertisements"},
	}
	// On the base interface, which must never answer ARP for a VIP with
	// its own MAC: arp_ignore=1 answers only for addresses on the
	// receiving interface (the VIPs are on the macvlan), and arp_filter=1
	// answers only when the route back leaves through it. They stay set
	// when haldir stops: another instance on the same interface may still
	// use them, and they are what a host with several addresses on one
	// segment wants anyway.
	//
	// arp_announce=2 (not in keepalived) is needed as well: a reply from a
	// VIP to a client on the segment may leave through the base
	// interface, and with the default 0 the kernel resolves the client
	// with an ARP request that names the VIP as sender, from the base's
	// MAC, which the client takes as the VIP's new address. With 2 the
	// request names the base interface's own address.
	vmacBaseSysctls = []struct{ key, value, why string }{
		{"arp_ignore", "1", "the base interface must not answer ARP for the virtual addresses"},
		{"arp_filter", "1", "the base interface must not answer ARP for the virtual addresses"},
		{"arp_announce", "2", "the base interface must not name a virtual address in its ARP requests"},
	}
)

// setSysctl writes /proc/sys/net/<family>/conf/<ifname>/<key>. /proc/sys/net
// is resolved against the network namespace of the calling thread, so it
// must run inside Instance.do.
func setSysctl(family, ifname, key, value string) error {
	p := filepath.Join("/proc/sys/net", family, "conf", ifname, key)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", p, value, err)
	}
	return nil
}

// openVMAC creates the macvlan name on base with mac, or adopts one left
// by an earlier run when it is a bridge-mode macvlan on base with mac;
// anything else of that name is an error, never deleted. The macvlan is
// left down and without addresses. It runs inside Instance.do.
func openVMAC(h *netlink.Handle, base *net.Interface, name string, mac net.HardwareAddr, ipv6 bool) (*vmac, error) {
	v := &vmac{h: h, name: name, mac: mac, ipv6: ipv6}
	l, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		ml := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: base.Index, HardwareAddr: mac},
			Mode:      netlink.MACVLAN_MODE_BRIDGE,
		}
		if err := h.LinkAdd(ml); err != nil {
			return nil, fmt.Errorf("creating macvlan %s on %s with MAC %s: %w", name, base.Name, mac, err)
		}
		if l, err = h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("macvlan %s: %w", name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("interface %s: %w", name, err)
	default:
		if err := adoptable(l, base, mac); err != nil {
			return nil, fmt.Errorf("interface %s exists but %w: delete it or choose another vmac_interface", name, err)
		}
	}
	v.link = l
	if err := h.LinkSetDown(l); err != nil {
		return nil, fmt.Errorf("setting %s down: %w", name, err)
	}
	if ipv6 {
		for _, s := range vmacSysctls6 {
			if err := setSysctl("ipv6", name, s.key, s.value); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", name, s.why, err)
			}
		}
		// No EUI-64 link-local from the virtual MAC: it would be the same
		// on every router (duplicate address detection fails on the
		// second) and it is not the adverts' source (RFC 5798 §7.4).
		if err := h.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return nil, fmt.Errorf("%s: IPv6 addr_gen_mode none: %w", name, err)
		}
	} else {
		for _, s := range vmacSysctls {
			if err := setSysctl("ipv4", name, s.key, s.value); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", name, s.why, err)
			}
		}
		// IPv6 off on an IPv4 macvlan: nothing to send from it, and its
		// MLD reports and router solicitations would carry the virtual MAC.
		if err := setSysctl("ipv6", name, "disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, s := range vmacBaseSysctls {
			if err := setSysctl("ipv4", base.Name, s.key, s.value); err != nil {
				return nil, fmt.Errorf("%s (%s): %w", base.Name, s.why, err)
			}
		}
	}
	if v.ifi, err = net.InterfaceByIndex(l.Attrs().Index); err != nil {
		return nil, fmt.Errorf("macvlan %s: %w", name, err)
	}
	return v, nil
}

// adoptable says why an existing link cannot serve as the vmac, or nil.
func adoptable(l netlink.Link, base *net.Interface, mac net.HardwareAddr) error {
	ml, ok := l.(*netlink.Macvlan)
	a := l.Attrs()
	switch {
	case !ok:
		return fmt.Errorf("is a %s, not a macvlan", l.Type())
	case a.ParentIndex != base.Index:
		return fmt.Errorf("is a macvlan on interface index %d, not on %s (index %d)", a.ParentIndex, base.Name, base.Index)
	case !bytes.Equal(a.HardwareAddr, mac):
		return fmt.Errorf("has MAC %s, not the virtual MAC %s", a.HardwareAddr, mac)
	case ml.Mode != netlink.MACVLAN_MODE_BRIDGE:
		return fmt.Errorf("is a macvlan in mode %s, not bridge", macvlanModeName(ml.Mode))
	}
	return nil
}

func macvlanModeName(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return fmt.Sprintf("%d", int(m))
}

// up brings the macvlan up before the VIPs go on it (becoming master).
func (v *vmac) up() error {
	if err := v.h.LinkSetUp(v.link); err != nil {
		return fmt.Errorf("vrrp: setting %s up: %w", v.name, err)
	}
	if v.linkLocal.IsValid() {
		a := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(v.linkLocal, 64)), Flags: unix.IFA_F_NODAD}
		if err := v.h.AddrReplace(v.link, a); err != nil {
			return fmt.Errorf("vrrp: adding %v to %s: %w", v.linkLocal, v.name, err)
		}
	}
	return nil
}

// down takes the macvlan down after its VIPs are gone (leaving master), so
// that no frame leaves with the virtual MAC while another router may be
// master.
func (v *vmac) down() error {
	if err := v.h.LinkSetDown(v.link); err != nil {
		return fmt.Errorf("vrrp: setting %s down: %w", v.name, err)
	}
	return nil
}

// remove deletes the macvlan (the instance stops).
func (v *vmac) remove() error {
	if err := v.h.LinkDel(v.link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("vrrp: deleting %s: %w", v.name, err)
	}
	return nil
}
