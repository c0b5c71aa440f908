package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// AcceptTunnels makes h a real server for IPVS tunnel forwarding: the
// kernel's fallback tunnel devices (tunl0 for ipip, gre0 for gre; they
// exist in every namespace once the ipip and ip_gre modules are loaded)
// are brought up, reverse-path filtering is turned off (the client's
// address arrives on a tunnel device while its route points at the
// ethernet), and, when guePort is non-zero, a GUE receive port is opened
// whose inner IPIP packets go to tunl0 (module fou). The VIP itself goes on
// lo, as for direct routing.
func (h *Host) AcceptTunnels(guePort uint16) error {
	for _, dev := range []string{"tunl0", "gre0"} {
		link, err := h.nl.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("host %s: fallback tunnel device %s (is module ipip / ip_gre loaded?): %w", h.name, dev, err)
		}
		if err := h.nl.LinkSetUp(link); err != nil {
			return fmt.Errorf("host %s: setting %s up: %w", h.name, dev, err)
		}
		if err := h.Sysctl("net.ipv4.conf."+dev+".rp_filter", "0"); err != nil {
			return err
		}
	}
	if err := h.Sysctl("net.ipv4.conf.all.rp_filter", "0"); err != nil {
		return err
	}
	if guePort == 0 {
		return nil
	}
	if err := h.Do(func() error { return addGUEPort(guePort) }); err != nil {
		return fmt.Errorf("host %s: GUE receive port %d (is module fou loaded?): %w", h.name, guePort, err)
	}
	return nil
}

// AddGRE adds a GRE device called name, up and with reverse-path
// filtering off, that receives the GRE packets sent to local from any
// source; with csum it expects them checksummed. Linux drops a GRE packet
// whose checksum flag differs from the receiving device's (ip_tunnel_rcv
// counts it in rx_crc_errors), and the fallback gre0 expects none, so a
// real server behind tunnel_type "gre" with tunnel_checksum "csum" needs
// such a device. Matching on local, it takes those packets from gre0:
// unchecksummed GRE to local is then dropped until the device is removed.
func (h *Host) AddGRE(name string, local netip.Addr, csum bool) error {
	if !local.Is4() {
		return fmt.Errorf("host %s: GRE device %s: local %s is not IPv4", h.name, name, local)
	}
	g := &netlink.Gretun{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: local.AsSlice()}
	if csum {
		g.IFlags = nl.GRE_CSUM
	}
	if err := h.nl.LinkAdd(g); err != nil {
		return fmt.Errorf("host %s: adding GRE device %s: %w", h.name, name, err)
	}
	if err := h.nl.LinkSetUp(g); err != nil {
		return fmt.Errorf("host %s: setting %s up: %w", h.name, name, err)
	}
	return h.Sysctl("net.ipv4.conf."+name+".rp_filter", "0")
}

// Generic netlink "fou" family (include/uapi/linux/fou.h).
const (
	fouCmdAdd      = 1
	fouAttrPort    = 1
	fouAttrAF      = 2
	fouAttrType    = 4
	fouEncapGUE    = 2
	fouGenlVersion = 1
)

// addGUEPort opens a GUE port in the calling thread's namespace.
// netlink.FouAdd cannot: it always sends FOU_ATTR_IPPROTO, and a zero
// protocol (the only one GUE allows) is refused with ERANGE by kernels
// whose policy bounds that attribute (seen on 6.1).
func addGUEPort(port uint16) error {
	fam, err := netlink.GenlFamilyGet("fou")
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	raw := []byte{fouCmdAdd, fouGenlVersion, 0, 0}
	p := binary.BigEndian.AppendUint16(nil, port)
	for _, a := range []*nl.RtAttr{
		nl.NewRtAttr(fouAttrPort, p),
		nl.NewRtAttr(fouAttrAF, []byte{unix.AF_INET}),
		nl.NewRtAttr(fouAttrType, []byte{fouEncapGUE}),
	} {
		raw = append(raw, a.Serialize()...)
	}
	req.AddRawData(raw)
	_, err = req.Execute(unix.NETLINK_GENERIC, 0)
	return err
}
