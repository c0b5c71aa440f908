package lab

import (
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/internal/nldump"
)

// Switch is a Linux bridge in the lab's fabric namespace. Multicast snooping
// is off so IPv6 multicast (VRRP to ff02::12, unsolicited neighbour
// advertisements) floods to every port like on a dumb switch, and STP is off
// so a port forwards as soon as it is up.
type Switch struct {
	lab    *Lab
	name   string
	bridge string // interface name in the fabric namespace
	index  int
}

// Name returns the switch name given to AddSwitch.
func (s *Switch) Name() string { return s.name }

// Bridge returns the bridge interface name inside the fabric namespace.
func (s *Switch) Bridge() string { return s.bridge }

// AddSwitch creates a switch. The name must be a valid interface name (a
// letter, then up to 14 letters, digits, '_' or '.').
func (l *Lab) AddSwitch(name string) (*Switch, error) {
	if err := l.checkOpen("AddSwitch " + name); err != nil {
		return nil, err
	}
	if !ifnamePattern.MatchString(name) {
		return nil, fmt.Errorf("lab %s: bad switch name %q: want a letter then up to 14 letters, digits, '_' or '.'", l.id, name)
	}
	l.mu.Lock()
	for _, s := range l.switches {
		if s.name == name {
			l.mu.Unlock()
			return nil, fmt.Errorf("lab %s: switch %q already exists", l.id, name)
		}
	}
	if l.ports[name] {
		l.mu.Unlock()
		return nil, fmt.Errorf("lab %s: switch name %q clashes with a port name", l.id, name)
	}
	l.ports[name] = true
	l.mu.Unlock()

	off := false
	ageing := uint32(30000) // centiseconds: learnt MACs expire after 300s as on real switches
	br := &netlink.Bridge{
		LinkAttrs:         netlink.LinkAttrs{Name: name},
		MulticastSnooping: &off,
		AgeingTime:        &ageing,
	}
	fab := l.fabric.nl
	if err := fab.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("lab %s: creating bridge for switch %q: %w", l.id, name, err)
	}
	link, err := fab.LinkByName(name)
	if err == nil {
		err = fab.LinkSetUp(link)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: switch %q up: %w", l.id, name, err)
	}
	s := &Switch{lab: l, name: name, bridge: name, index: link.Attrs().Index}
	l.mu.Lock()
	l.switches = append(l.switches, s)
	l.mu.Unlock()
	return s, nil
}

// Link is a veth pair: Iface inside the host, Port on the switch (in the
// fabric namespace).
type Link struct {
	lab   *Lab
	host  *Host
	sw    *Switch
	iface string
	port  string
}

// Host returns the host end's host.
func (k *Link) Host() *Host { return k.host }

// Switch returns the switch the link is plugged into.
func (k *Link) Switch() *Switch { return k.sw }

// Iface returns the interface name inside the host.
func (k *Link) Iface() string { return k.iface }

// Port returns the switch-side interface name inside the fabric namespace.
func (k *Link) Port() string { return k.port }

func (k *Link) String() string {
	return fmt.Sprintf("%s:%s<->%s:%s", k.host.name, k.iface, k.sw.name, k.port)
}

// Connect plugs host h into switch spec.Switch with a veth pair whose host
// end is spec.Iface, brings both ends up, adds spec.Addrs and waits until
// the link is usable.
func (l *Lab) Connect(h *Host, spec LinkSpec) (*Link, error) {
	if err := l.checkOpen("Connect " + spec.Iface); err != nil {
		return nil, err
	}
	if h == nil || h.lab != l {
		return nil, fmt.Errorf("lab %s: Connect: host is not part of this lab", l.id)
	}
	if !ifnamePattern.MatchString(spec.Iface) || spec.Iface == "lo" {
		return nil, fmt.Errorf("lab %s: host %s: bad interface name %q: want a letter then up to 14 letters, digits, '_' or '.'", l.id, h.name, spec.Iface)
	}
	sw := l.Switch(spec.Switch)
	if sw == nil {
		return nil, fmt.Errorf("lab %s: host %s: link %s: no switch %q", l.id, h.name, spec.Iface, spec.Switch)
	}
	if h.Link(spec.Iface) != nil {
		return nil, fmt.Errorf("lab %s: host %s already has interface %s", l.id, h.name, spec.Iface)
	}
	for _, a := range spec.Addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("lab %s: host %s: interface %s: invalid address prefix", l.id, h.name, spec.Iface)
		}
	}

	// The port name only has to be unique inside this lab's fabric; a
	// readable "host-iface" is used when it fits in IFNAMSIZ.
	l.mu.Lock()
	port := h.name + "-" + spec.Iface
	if len(port) > 15 || l.ports[port] {
		for i := len(l.ports); ; i++ {
			port = fmt.Sprintf("port%d", i)
			if !l.ports[port] {
				break
			}
		}
	}
	l.ports[port] = true
	l.mu.Unlock()

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port, MasterIndex: sw.index},
		PeerName:      spec.Iface,
		PeerNamespace: netlink.NsFd(int(h.ns)),
	}
	if spec.MAC != nil {
		veth.PeerHardwareAddr = append(net.HardwareAddr(nil), spec.MAC...)
	}
	fab := l.fabric.nl
	if err := fab.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("lab %s: veth %s (host %s) <-> %s (switch %s): %w", l.id, spec.Iface, h.name, port, sw.name, err)
	}
	k := &Link{lab: l, host: h, sw: sw, iface: spec.Iface, port: port}
	l.mu.Lock()
	l.links = append(l.links, k)
	l.mu.Unlock()

	if err := k.setPort(true); err != nil {
		return nil, err
	}
	hl, err := h.nl.LinkByName(spec.Iface)
	if err == nil {
		err = h.nl.LinkSetUp(hl)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: host %s: %s up: %w", l.id, h.name, spec.Iface, err)
	}
	for _, a := range spec.Addrs {
		if err := h.AddAddr(spec.Iface, a); err != nil {
			return nil, err
		}
	}
	// Carrier and IPv6 set-up complete asynchronously; until then the host
	// drops what it sends. Waiting makes a lab usable once it is built.
	if err := k.waitReady(5 * time.Second); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Link) portLink() (netlink.Link, error) {
	pl, err := k.lab.fabric.nl.LinkByName(k.port)
	if err != nil {
		return nil, fmt.Errorf("link %s: switch port: %w", k, err)
	}
	return pl, nil
}

func (k *Link) setPort(up bool) error {
	pl, err := k.portLink()
	if err != nil {
		return err
	}
	if up {
		err = k.lab.fabric.nl.LinkSetUp(pl)
	} else {
		err = k.lab.fabric.nl.LinkSetDown(pl)
	}
	if err != nil {
		return fmt.Errorf("link %s: setting switch port up=%v: %w", k, up, err)
	}
	return nil
}

// Cut pulls the cable: it sets the switch-side veth down. Frames stop in
// both directions (the host is neither heard by its peers nor hears them),
// and the host sees carrier loss on its interface exactly as on a pulled
// cable, while keeping its interface admin-up with all its addresses and
// routes — so a daemon in it is not disturbed by the lab itself, and any
// reaction is its own response to carrier loss. The host-side end is left
// alone on purpose: setting it down would flush its IPv6 addresses and
// routes, which is an administrator's action, not a failure.
func (k *Link) Cut() error { return k.setPort(false) }

// Restore undoes Cut. Carrier returns asynchronously (the kernel's link
// watch), so it waits until the link is usable again (see waitReady):
// traffic flows as soon as Restore returns.
func (k *Link) Restore() error {
	if err := k.setPort(true); err != nil {
		return err
	}
	return k.waitReady(5 * time.Second)
}

// waitReady polls until the host end and the switch port are both
// operationally up and, unless IPv6 is off on the host end, the kernel has
// finished setting up its IPv6 addresses (a link-local one exists and none
// is still tentative: binding to a tentative address fails).
func (k *Link) waitReady(d time.Duration) error {
	v6 := true
	if v, err := k.host.ReadSysctl("net/ipv6/conf/" + k.iface + "/disable_ipv6"); err != nil || v == "1" {
		v6 = false
	}
	deadline := time.Now().Add(d)
	for {
		state, err := k.readiness(v6)
		if err == nil && state == "" {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("link %s: waiting for carrier: %w", k, err)
			}
			return fmt.Errorf("link %s: not ready after %v: %s", k, d, state)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readiness returns "" when the link is usable, else what it waits for.
func (k *Link) readiness(v6 bool) (string, error) {
	hl, err := k.host.nl.LinkByName(k.iface)
	if err != nil {
		return "", err
	}
	pl, err := k.portLink()
	if err != nil {
		return "", err
	}
	if s := hl.Attrs().OperState; s != netlink.OperUp {
		return fmt.Sprintf("host end %v", s), nil
	}
	if s := pl.Attrs().OperState; s != netlink.OperUp {
		return fmt.Sprintf("switch port %v", s), nil
	}
	if !v6 {
		return "", nil
	}
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return k.host.nl.AddrList(hl, netlink.FAMILY_V6) })
	if err != nil {
		return "", err
	}
	linkLocal := false
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return fmt.Sprintf("address %v tentative", a.IPNet), nil
		}
		linkLocal = linkLocal || a.IP.IsLinkLocalUnicast()
	}
	if !linkLocal {
		return "no IPv6 link-local address yet", nil
	}
	return "", nil
}

// Detach unplugs the port from the switch but leaves carrier up on both
// ends: the host's frames reach a dead end and it hears nothing, yet its
// interface looks healthy. That is a silent partition (a broken switch or
// uplink): a VRRP node behind it cannot tell from link state and will
// claim mastership, the split-brain case.
func (k *Link) Detach() error {
	pl, err := k.portLink()
	if err != nil {
		return err
	}
	if err := k.lab.fabric.nl.LinkSetNoMaster(pl); err != nil {
		return fmt.Errorf("link %s: detaching from switch: %w", k, err)
	}
	return nil
}

// Attach undoes Detach.
func (k *Link) Attach() error {
	pl, err := k.portLink()
	if err != nil {
		return err
	}
	if err := k.lab.fabric.nl.LinkSetMasterByIndex(pl, k.sw.index); err != nil {
		return fmt.Errorf("link %s: attaching to switch: %w", k, err)
	}
	return nil
}
