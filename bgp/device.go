package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/internal/nldump"
)

// Why the addresses stay on the device while their prefix is configured,
// whether it is announced or not: IPVS takes a virtual server's packets in
// LOCAL_IN, so its address must be local for the director to serve it at
// all. A withdraw does not stop the traffic at once: the routers move it
// after they process the UPDATE, and flows they still send here (and
// those the other directors' conn sync hands over) must find the address
// and the IPVS service, or they are reset. Only the announcement follows
// quorum and maintenance; the address follows the configuration.

// Addresses are the addresses announced prefixes put on the device: the
// address of each listed virtual server inside its prefix, and a host
// prefix's (/32, /128) own address (a fwmark virtual server has none).
func Addresses(spec conf.BGPSpec, vss []conf.VirtualServerSpec) []netip.Addr {
	byName := map[string]*conf.VirtualServerSpec{}
	for i := range vss {
		byName[vss[i].Name] = &vss[i]
	}
	var out []netip.Addr
	for _, a := range spec.Announce {
		if a.Prefix.IsSingleIP() {
			out = append(out, a.Prefix.Addr())
		}
		for _, name := range a.VirtualServers {
			if vs := byName[name]; vs != nil && vs.Fwmark == 0 && a.Prefix.Contains(vs.Addr.Addr()) {
				out = append(out, vs.Addr.Addr())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// Device is the local device the announced addresses live on: by default
// a dummy device haldir creates (conf's "haldir0").
type Device struct {
	name    string
	h       *netlink.Handle
	created bool // haldir made it: deleted again at Close
	// ours are the addresses haldir manages on it: on a dummy device
	// every address it holds (it is there for haldir), elsewhere (lo)
	// only those haldir added.
	ours map[netip.Addr]bool
}

// OpenDevice finds the device called name, creating it as a dummy device
// (up) when there is none, in the network namespace do runs in (nil: this
// one).
func OpenDevice(name string, do func(func() error) error) (*Device, error) {
	if do == nil {
		do = func(f func() error) error { return f() }
	}
	d := &Device{name: name, ours: map[netip.Addr]bool{}}
	err := do(func() error {
		// NETLINK_ROUTE only, as vrrp: no XFRM or netfilter sockets.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		d.h = h
		l, err := h.LinkByName(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			aerr := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}})
			if errors.Is(aerr, unix.EOPNOTSUPP) {
				return fmt.Errorf("creating dummy device: %w: the kernel has no dummy devices (CONFIG_DUMMY, module dummy); set bgp.device = \"lo\"", aerr)
			}
			if aerr != nil {
				return fmt.Errorf("creating dummy device: %w", aerr)
			}
			d.created = true
			l, err = h.LinkByName(name)
		}
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting it up: %w", err)
		}
		if l.Type() == "dummy" {
			as, err := nldump.Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, unix.AF_UNSPEC) })
			if err != nil {
				return fmt.Errorf("listing its addresses: %w", err)
			}
			for _, a := range as {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
					d.ours[ip.Unmap()] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		if d.h != nil {
			d.h.Close()
		}
		return nil, fmt.Errorf("bgp: device %s: %w", name, err)
	}
	return d, nil
}

// Name is the device's name.
func (d *Device) Name() string { return d.name }

// SetAddrs puts want on the device and takes off the addresses haldir
// manages there that want lacks.
func (d *Device) SetAddrs(want []netip.Addr) error {
	l, err := d.h.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("bgp: device %s: %w", d.name, err)
	}
	var errs []error
	keep := map[netip.Addr]bool{}
	for _, a := range want {
		keep[a] = true
		na := &netlink.Addr{IPNet: hostNet(a)}
		if a.Is6() {
			// No duplicate address detection: a tentative address is
			// not local, and IPVS would not see its traffic for a second.
			na.Flags = unix.IFA_F_NODAD
		}
		if err := d.h.AddrReplace(l, na); err != nil {
			errs = append(errs, fmt.Errorf("bgp: adding %v to %s: %w", a, d.name, err))
			continue
		}
		d.ours[a] = true
	}
	for a := range d.ours {
		if keep[a] {
			continue
		}
		err := d.h.AddrDel(l, &netlink.Addr{IPNet: hostNet(a)})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("bgp: removing %v from %s: %w", a, d.name, err))
			continue
		}
		delete(d.ours, a)
	}
	return errors.Join(errs...)
}

// Close takes haldir's addresses off the device, deletes it when haldir
// created it, and closes the netlink handle.
func (d *Device) Close() error {
	err := d.SetAddrs(nil)
	if d.created {
		if l, lerr := d.h.LinkByName(d.name); lerr == nil {
			err = errors.Join(err, d.h.LinkDel(l))
		}
	}
	d.h.Close()
	return err
}

func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}
