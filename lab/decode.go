package lab

import (
	"encoding/binary"
	"fmt"
	"github.com/haldir-lb/haldir/internal/inetsum"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Kind says what a captured frame was decoded as.
type Kind uint8

// Frame kinds the observer decodes.
const (
	KindOther Kind = iota // anything else (kept raw)
	KindVRRP              // IPv4 protocol 112 or IPv6 next header 112
	KindARP               // EtherType 0x0806
	KindNA                // ICMPv6 neighbour advertisement
)

func (k Kind) String() string {
	switch k {
	case KindVRRP:
		return "vrrp"
	case KindARP:
		return "arp"
	case KindNA:
		return "na"
	}
	return "other"
}

// DropReason names why a frame could not be decoded. The frame is still
// recorded (raw, with Malformed set) and counted per reason.
type DropReason string

// Reasons a frame fails to decode.
const (
	DropShortEthernet DropReason = "short-ethernet"
	DropBadIPv4       DropReason = "bad-ipv4-header"
	DropBadIPv6       DropReason = "bad-ipv6-header"
	DropBadIPv6Ext    DropReason = "bad-ipv6-extension-header"
	DropShortVRRP     DropReason = "short-vrrp"
	DropBadVRRP       DropReason = "bad-vrrp-version-or-type"
	DropBadARP        DropReason = "bad-arp"
	DropBadNDP        DropReason = "bad-ndp"
)

// EtherTypes and protocol numbers the decoder looks for.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	protoVRRP     = 112
	protoICMPv6   = 58
	icmpv6NA      = 136
)

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// Record is one captured frame.
type Record struct {
	Seq       uint64 // 1 for the first frame the observer kept
	Time      time.Time
	Len       int    // length on the wire
	Frame     []byte // the first Snaplen bytes
	Src, Dst  net.HardwareAddr
	EtherType uint16
	Kind      Kind
	VRRP      *VRRP           // set for KindVRRP
	ARP       *ARP            // set for KindARP
	NA        *NeighborAdvert // set for KindNA
	Malformed DropReason      // why decoding stopped, "" if it did not
}

// VRRP is a decoded VRRP packet (version 2 or 3, IPv4 or IPv6).
type VRRP struct {
	Src, Dst   netip.Addr
	TTL        uint8 // IPv4 TTL or IPv6 hop limit; RFC 5798 requires 255
	Version    uint8
	Type       uint8 // 1 = advertisement
	VRID       uint8
	Priority   uint8
	AuthType   uint8         // version 2 only
	Interval   time.Duration // v2: seconds field; v3: centiseconds field
	Addrs      []netip.Addr
	ChecksumOK bool // v3: with the RFC 5798 pseudo-header; v2: message only
}

// ARP is a decoded ARP packet.
type ARP struct {
	Op                   uint16 // ARPRequest or ARPReply
	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   netip.Addr
	// Gratuitous is true when sender and target IP are the same: an
	// announcement of the sender's own address (request or reply form).
	Gratuitous bool
}

// NeighborAdvert is a decoded IPv6 neighbour advertisement.
type NeighborAdvert struct {
	Src, Dst  netip.Addr
	HopLimit  uint8
	Target    netip.Addr
	Router    bool
	Solicited bool // false for an unsolicited advertisement (after failover)
	Override  bool
	TargetMAC net.HardwareAddr // from the target link-layer address option, if any
}

// DecodeFrame decodes an Ethernet frame into a Record (Seq and Time unset;
// Frame is the input, not copied). It never fails: what it cannot decode
// is left raw and named in Malformed.
func DecodeFrame(b []byte) Record {
	r := Record{Len: len(b), Frame: b}
	if len(b) < 14 {
		r.Malformed = DropShortEthernet
		return r
	}
	r.Dst = net.HardwareAddr(b[0:6])
	r.Src = net.HardwareAddr(b[6:12])
	r.EtherType = binary.BigEndian.Uint16(b[12:14])
	payload := b[14:]
	switch r.EtherType {
	case etherTypeARP:
		decodeARP(&r, payload)
	case etherTypeIPv4:
		decodeIPv4(&r, payload)
	case etherTypeIPv6:
		decodeIPv6(&r, payload)
	}
	return r
}

func decodeARP(r *Record, b []byte) {
	var p arp.Packet
	if err := p.UnmarshalBinary(b); err != nil {
		r.Malformed = DropBadARP
		return
	}
	r.Kind = KindARP
	r.ARP = &ARP{
		Op:        uint16(p.Operation),
		SenderMAC: p.SenderHardwareAddr,
		TargetMAC: p.TargetHardwareAddr,
		SenderIP:  p.SenderIP,
		TargetIP:  p.TargetIP,
	}
	r.ARP.Gratuitous = p.SenderIP == p.TargetIP
}

func decodeIPv4(r *Record, b []byte) {
	if len(b) < 20 || b[0]>>4 != 4 {
		r.Malformed = DropBadIPv4
		return
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		r.Malformed = DropBadIPv4
		return
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return // a later fragment: no upper-layer header here
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	if b[9] == protoVRRP {
		// Ethernet pads short frames: the IP total length bounds the
		// payload, which matters for the checksum.
		decodeVRRP(r, b[ihl:total], src, dst, b[8])
	}
}

func decodeIPv6(r *Record, b []byte) {
	if len(b) < 40 || b[0]>>4 != 6 {
		r.Malformed = DropBadIPv6
		return
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if 40+plen > len(b) {
		r.Malformed = DropBadIPv6
		return
	}
	src, _ := netip.AddrFromSlice(b[8:24])
	dst, _ := netip.AddrFromSlice(b[24:40])
	hop := b[7]
	next := b[6]
	p := b[40 : 40+plen]
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(p) < 8 || int(p[1]+1)*8 > len(p) {
				r.Malformed = DropBadIPv6Ext
				return
			}
			next, p = p[0], p[int(p[1]+1)*8:]
			continue
		case protoVRRP:
			decodeVRRP(r, p, src, dst, hop)
		case protoICMPv6:
			if len(p) > 0 && p[0] == icmpv6NA {
				decodeNA(r, p, src, dst, hop)
			}
		}
		return
	}
}

func decodeVRRP(r *Record, b []byte, src, dst netip.Addr, ttl uint8) {
	if len(b) < 8 {
		r.Malformed = DropShortVRRP
		return
	}
	v := &VRRP{Src: src, Dst: dst, TTL: ttl, Version: b[0] >> 4, Type: b[0] & 0x0f, VRID: b[1], Priority: b[2]}
	if v.Type != 1 || (v.Version != 2 && v.Version != 3) || (v.Version == 2 && src.Is6()) {
		r.Malformed = DropBadVRRP
		return
	}
	count := int(b[3])
	alen := 4
	if src.Is6() {
		alen = 16
	}
	need := 8 + count*alen
	if v.Version == 2 {
		v.AuthType = b[4]
		v.Interval = time.Duration(b[5]) * time.Second
		v.ChecksumOK = inetsum.Checksum(b, 0) == 0
		need += 8 // authentication data
	} else {
		v.Interval = time.Duration(binary.BigEndian.Uint16(b[4:6])&0x0fff) * 10 * time.Millisecond
		v.ChecksumOK = inetsum.Checksum(b, inetsum.PseudoHeader(src, dst, len(b), protoVRRP)) == 0
	}
	if len(b) < need {
		r.Malformed = DropShortVRRP
		return
	}
	for i := 0; i < count; i++ {
		a, _ := netip.AddrFromSlice(b[8+i*alen : 8+(i+1)*alen])
		v.Addrs = append(v.Addrs, a)
	}
	r.Kind = KindVRRP
	r.VRRP = v
}

func decodeNA(r *Record, b []byte, src, dst netip.Addr, hop uint8) {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		r.Malformed = DropBadNDP
		return
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok {
		r.Malformed = DropBadNDP
		return
	}
	n := &NeighborAdvert{
		Src: src, Dst: dst, HopLimit: hop,
		Target: na.TargetAddress, Router: na.Router, Solicited: na.Solicited, Override: na.Override,
	}
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			n.TargetMAC = lla.Addr
		}
	}
	r.Kind = KindNA
	r.NA = n
}

// String describes the record on one line, for logs and test failures.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s > %s", r.Seq, r.Time.Format("15:04:05.000000"), r.Src, r.Dst)
	switch {
	case r.VRRP != nil:
		v := r.VRRP
		fmt.Fprintf(&b, " vrrp v%d %v > %v vrid %d prio %d int %v addrs %v", v.Version, v.Src, v.Dst, v.VRID, v.Priority, v.Interval, v.Addrs)
		if !v.ChecksumOK {
			b.WriteString(" BAD-CHECKSUM")
		}
	case r.ARP != nil:
		a := r.ARP
		op := "request"
		if a.Op == ARPReply {
			op = "reply"
		}
		fmt.Fprintf(&b, " arp %s %v (%v) > %v (%v)", op, a.SenderIP, a.SenderMAC, a.TargetIP, a.TargetMAC)
		if a.Gratuitous {
			b.WriteString(" gratuitous")
		}
	case r.NA != nil:
		n := r.NA
		fmt.Fprintf(&b, " na %v > %v target %v (%v) router=%v solicited=%v override=%v", n.Src, n.Dst, n.Target, n.TargetMAC, n.Router, n.Solicited, n.Override)
	default:
		fmt.Fprintf(&b, " ethertype %#04x len %d", r.EtherType, r.Len)
	}
	if r.Malformed != "" {
		fmt.Fprintf(&b, " malformed: %s", r.Malformed)
	}
	return b.String()
}
