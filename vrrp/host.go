package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/nldump"
)

// The I/O seam. Run, the driver and the reload work with these small
// interfaces, not with sockets and netlink (seesaw's HAConn): openHost
// gives the real ones, in the instance's network namespace; tests give
// fakes, so the event loop, the sync group and tracking run without root.

// vipsIO adds and removes the addresses a master holds (vipManager).
type vipsIO interface {
	add() error                        // every managed address up
	remove() error                     // every managed address down
	del(ps []netip.Prefix) error       // some down (a reload removed them)
	managed() []netip.Prefix           // the addresses add puts up
	setManaged(ps []netip.Prefix)      // a reload's new list
	here(as []netip.Addr) []netip.Addr // those of as on the instance's own interface
}

// announceIO sends gratuitous ARP / unsolicited NA (announcer).
type announceIO interface {
	// run announces until ctx is done: a burst of first frames, then
	// repeat more delay later (when delay is non-zero), then again every
	// refresh (when non-zero). Errors go to report.
	run(ctx context.Context, first, repeat int, delay, refresh time.Duration, report func(error))
	// burst sends n frames per address now.
	burst(n int) error
	setVIPs(vips []netip.Addr) error
	close()
}

// pathIO watches the advert source and send path (pathWatch) and reports
// keySource and keySend.
type pathIO interface {
	start(ctx context.Context, wg *sync.WaitGroup, sourceFailing bool, out chan<- trackUpdate)
	sendFailed(f sendFailure) // never blocks
	close()
}

// hostOpener opens an instance's runtime; tracking changes of its links
// and send path go to trackCh.
type hostOpener func(ctx context.Context, in *Instance, trackCh chan<- trackUpdate) (*runtime, error)

// runtime is what Run works with: the instance's sockets and helpers.
type runtime struct {
	src      netip.Addr
	conn     advertConn // receives, and sends unless xmit is another socket
	xmit     advertConn // sends adverts: conn, or the virtual MAC's macvlan
	vips     vipsIO
	announce announceIO
	path     pathIO
	initial  []trackUpdate // the tracked links' and the source's state at open
	vmacName string        // use_vmac: the macvlan, for Status
	// free closes what the opener opened; nil when there is nothing.
	free func()
}

func (rt *runtime) close() {
	if rt.free != nil {
		rt.free()
	}
}

func (in *Instance) do(f func() error) error {
	if in.opts.Do != nil {
		return in.opts.Do(f)
	}
	return f()
}

// hostRuntime is what openHost opened, for close.
type hostRuntime struct {
	log      *slog.Logger
	conn     advertConn
	xmit     advertConn
	vmac     *vmac
	vips     *vipManager
	announce *announcer
	path     *pathWatch
	linkStop func()
}

// openHost opens the instance's raw sockets, netlink handles and
// subscriptions, and its announcers, in the network namespace of Options.Do.
func openHost(ctx context.Context, in *Instance, trackCh chan<- trackUpdate) (*runtime, error) {
	h := &hostRuntime{log: in.log}
	rt := &runtime{free: h.close}
	err := in.do(func() error {
		ifi, err := net.InterfaceByName(in.cfg.Interface)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: interface %q: %w", in.cfg.Name, in.cfg.Interface, err)
		}
		// NETLINK_ROUTE only: NewHandle() with no family also opens XFRM
		// and NETFILTER sockets, which fail ("protocol not supported") on
		// hosts that cannot load xfrm_user or nfnetlink.
		nh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: netlink: %w", in.cfg.Name, err)
		}
		vips := &vipManager{h: nh, ifindex: ifi.Index, placed: map[netip.Addr]placement{}, vips: managed(in.cfg)}
		h.vips, rt.vips = vips, vips
		// address_options: addresses on other interfaces are announced
		// there, by an announcer per interface.
		elsewhere := map[string][]netip.Addr{}
		var others []string
		own := in.cfg.Interface
		if in.cfg.UseVMAC {
			own = in.cfg.VMACInterface
		}
		for _, o := range in.cfg.AddressOptions {
			pl := placement{label: o.Label}
			if o.Interface != own {
				ifi, err := net.InterfaceByName(o.Interface)
				if err != nil {
					return fmt.Errorf("vrrp instance %q: address_options %v: interface %q: %w", in.cfg.Name, o.Address, o.Interface, err)
				}
				pl.ifi = ifi
				if elsewhere[o.Interface] == nil {
					others = append(others, o.Interface)
				}
				elsewhere[o.Interface] = append(elsewhere[o.Interface], o.Address)
			}
			vips.placed[o.Address] = pl
		}
		if rt.src, err = in.source(ctx, nh, ifi); err != nil {
			return err
		}
		multicast := len(in.cfg.UnicastPeers) == 0
		h.conn, err = in.opts.links.open(ifi, rt.src, in.cfg.VRID, multicast, in.sink, &in.drops)
		if err != nil {
			return err
		}
		h.xmit = h.conn
		announceOn, ndpSrc := ifi, netip.Addr{}
		if in.cfg.UseVMAC {
			h.vmac, err = openVMAC(nh, ifi, in.cfg.VMACInterface, VirtualMAC(in.cfg.VRID, in.family == 6), in.family == 6)
			if err != nil {
				return fmt.Errorf("vrrp instance %q: use_vmac: %w", in.cfg.Name, err)
			}
			vips.vmac, vips.ifindex = h.vmac, h.vmac.ifi.Index
			rt.vmacName = h.vmac.name
			announceOn = h.vmac.ifi
			if in.family == 6 {
				ndpSrc = rt.src
				if rt.src.IsLinkLocalUnicast() {
					h.vmac.linkLocal = rt.src
				}
			}
			// Multicast adverts leave from the macvlan, with the virtual
			// MAC. Unicast ones leave from the base interface (keepalived's
			// vmac_xmit_base): routing to a peer through the macvlan would
			// resolve the peer's address from the virtual MAC.
			if multicast {
				if h.xmit, err = listenSendOnly(h.vmac.ifi, rt.src); err != nil {
					return err
				}
			}
		}
		rt.conn, rt.xmit = h.conn, h.xmit
		if h.announce, err = newAnnouncer(announceOn, vips.here(slices.Concat(in.vips, in.excluded)), ndpSrc); err != nil {
			return err
		}
		rt.announce = h.announce
		for _, name := range others {
			a, err := newAnnouncer(vips.placed[elsewhere[name][0]].ifi, elsewhere[name], netip.Addr{})
			if err != nil {
				return err
			}
			h.announce.others = append(h.announce.others, a)
		}
		names := []string{in.cfg.Interface}
		for _, t := range in.cfg.TrackInterfaces {
			names = append(names, t.Name)
		}
		rt.initial, h.linkStop, err = watchLinks(ctx, nh, names, trackCh)
		if err != nil {
			return fmt.Errorf("vrrp instance %q: link subscription: %w", in.cfg.Name, err)
		}
		var src trackUpdate
		var repick *sourcePick
		if !in.cfg.UnicastSource.IsValid() {
			sp := in.sourcePick()
			repick = &sp
		}
		h.path, src, err = openPathWatch(ifi, rt.src, repick, in.destinations())
		if err != nil {
			return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, err)
		}
		rt.path = h.path
		rt.initial = append(rt.initial, src)
		return nil
	})
	if err != nil {
		h.close()
		return nil, err
	}
	return rt, nil
}

func (h *hostRuntime) close() {
	if h.conn != nil {
		h.conn.Close()
	}
	if h.xmit != nil && h.xmit != h.conn {
		h.xmit.Close()
	}
	if h.announce != nil {
		h.announce.close()
	}
	if h.linkStop != nil {
		h.linkStop()
	}
	if h.path != nil {
		h.path.close()
	}
	if h.vmac != nil {
		if err := h.vmac.remove(); err != nil {
			h.log.Warn("removing the virtual MAC interface", "err", err)
		}
	}
	if h.vips != nil {
		h.vips.h.Close()
	}
}

// managed is every address the instance adds as master: the virtual
// addresses, then the excluded ones.
func managed(cfg conf.VRRPInstanceSpec) []netip.Prefix {
	return slices.Concat(cfg.VirtualAddresses, cfg.ExcludedAddresses)
}

// sourcePick is how an instance without unicast_source picks its advert
// source from its interface: at start (Instance.source) and again when
// that address is replaced (pathWatch).
type sourcePick struct {
	family int // 4 or 6
	// wantLL: IPv6 from the link-local address (RFC 5798 §5.1.2.1), or
	// from a global one when unicasting to global peers, so that the
	// peers can match our source against their unicast_peers.
	wantLL bool
	// skip lists the addresses never to pick: the instance's own virtual
	// and excluded addresses, which it holds as master.
	skip func() []netip.Addr
}

func (in *Instance) sourcePick() sourcePick {
	excluded := slices.Clone(in.excluded)
	return sourcePick{
		family: in.family,
		wantLL: len(in.expect.Peers) == 0 || in.expect.Peers[0].IsLinkLocalUnicast(),
		// addrs follows a reload's new virtual addresses.
		skip: func() []netip.Addr { return slices.Concat(in.addrs.Load().Addrs, excluded) },
	}
}

// want says what pick looks for, for an error.
func (sp sourcePick) want() string {
	switch {
	case sp.family == 4:
		return "an IPv4 address"
	case sp.wantLL:
		return "a link-local address"
	}
	return "a global address for the unicast peers"
}

// pick returns the first usable address of link l: the first IPv4 one
// that is not skipped, or for IPv6 the first of the wanted scope that has
// finished duplicate address detection. tentative says an address of the
// wanted scope is still in detection.
func (sp sourcePick) pick(h *netlink.Handle, l netlink.Link) (src netip.Addr, tentative bool, err error) {
	fam := netlink.FAMILY_V4
	if sp.family == 6 {
		fam = netlink.FAMILY_V6
	}
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, fam) })
	if err != nil {
		return netip.Addr{}, false, err
	}
	skip := sp.skip()
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if slices.Contains(skip, ip) {
			continue
		}
		if sp.family == 4 {
			return ip, false, nil
		}
		if ip.IsLinkLocalUnicast() == sp.wantLL {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				tentative = true
				continue
			}
			return ip, false, nil
		}
	}
	return netip.Addr{}, tentative, nil
}

// source picks the advert source: unicast_source when set; else one of
// the interface's addresses (sourcePick), waiting briefly for duplicate
// address detection to finish.
func (in *Instance) source(ctx context.Context, h *netlink.Handle, ifi *net.Interface) (netip.Addr, error) {
	if in.cfg.UnicastSource.IsValid() {
		return in.cfg.UnicastSource, nil
	}
	l, err := h.LinkByIndex(ifi.Index)
	if err != nil {
		return netip.Addr{}, err
	}
	sp := in.sourcePick()
	deadline := time.Now().Add(5 * time.Second)
	for {
		src, tentative, err := sp.pick(h, l)
		if err != nil || src.IsValid() {
			return src, err
		}
		if !tentative || time.Now().After(deadline) {
			return netip.Addr{}, fmt.Errorf("vrrp instance %q: interface %s has no usable IPv%d source address (want %s; or set unicast_source)",
				in.cfg.Name, ifi.Name, in.family, sp.want())
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
