package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/haldir-lb/haldir/internal/inetsum"
	"net/netip"
	"slices"
	"time"
)

// Protocol is the IP protocol number of VRRP.
const Protocol = 112

// Multicast groups adverts are sent to (RFC 3768 §5.2.2, RFC 5798 §5.1.1.2
// and §5.1.2.2).
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// AuthType is the VRRPv2 authentication type (RFC 3768 §5.3.6). VRRPv3 has
// no authentication.
type AuthType uint8

// Authentication types. AuthPass puts a cleartext password of up to eight
// bytes in every advert: anyone on the segment can read and replay it, so it
// protects nothing against an attacker there. It only keeps a misconfigured
// router from joining the wrong virtual router.
const (
	AuthNone AuthType = 0
	AuthPass AuthType = 1
	AuthAH   AuthType = 2 // IPsec AH; obsolete, never accepted
)

const (
	headerLen   = 8
	authDataLen = 8
	typeAdvert  = 1
)

// Advert is one VRRP advertisement, version 2 or 3.
type Advert struct {
	Version  int // 2 or 3
	VRID     uint8
	Priority uint8
	// Interval is the advertisement interval: whole seconds in v2,
	// centiseconds in v3 (the v3 field is "Max Adver Int").
	Interval time.Duration
	AuthType AuthType // v2 only
	AuthData [8]byte  // v2 only: the password, zero padded
	Addrs    []netip.Addr
}

// Password returns the v2 auth data as an 8-byte zero-padded field.
func Password(s string) [8]byte {
	var p [8]byte
	copy(p[:], s)
	return p
}

// Marshal encodes a as the payload of an IP packet from src to dst; the
// addresses are needed for the v3 checksum pseudo-header and to pick the
// address size.
func (a *Advert) Marshal(src, dst netip.Addr) ([]byte, error) { return a.Append(nil, src, dst) }

// Append is Marshal appending to buf: a master re-encodes its advert
// every interval into the same buffer instead of allocating one.
func (a *Advert) Append(buf []byte, src, dst netip.Addr) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	v6 := src.Is6()
	if dst.Is6() != v6 {
		return nil, fmt.Errorf("vrrp: source %v and destination %v are of different families", src, dst)
	}
	alen := 4
	if v6 {
		alen = 16
	}
	if len(a.Addrs) == 0 || len(a.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: advert needs 1..255 addresses, have %d", len(a.Addrs))
	}
	for i, ad := range a.Addrs {
		if ad.Is6() != v6 {
			return nil, fmt.Errorf("vrrp: address %d (%v) is not of the packet's family", i, ad)
		}
	}
	var b []byte
	switch a.Version {
	case 2:
		if v6 {
			return nil, errors.New("vrrp: version 2 is defined for IPv4 only (RFC 3768); use version 3 for IPv6")
		}
		secs := a.Interval / time.Second
		if a.Interval%time.Second != 0 || secs < 1 || secs > 255 {
			return nil, fmt.Errorf("vrrp: v2 advert interval %v must be whole seconds in 1s..255s", a.Interval)
		}
		buf, b = grow(buf, headerLen+alen*len(a.Addrs)+authDataLen)
		b[0] = 2<<4 | typeAdvert
		b[1], b[2], b[3] = a.VRID, a.Priority, byte(len(a.Addrs))
		b[4] = byte(a.AuthType)
		b[5] = byte(secs)
		off := headerLen
		for _, ad := range a.Addrs {
			off += copy(b[off:], ad.AsSlice())
		}
		if a.AuthType == AuthPass {
			copy(b[off:], a.AuthData[:])
		}
		binary.BigEndian.PutUint16(b[6:], checksum(b, 0))
	case 3:
		cs := a.Interval / (10 * time.Millisecond)
		if cs < 1 || cs > 0xfff {
			return nil, fmt.Errorf("vrrp: v3 advert interval %v out of range 10ms..40.95s", a.Interval)
		}
		buf, b = grow(buf, headerLen+alen*len(a.Addrs))
		b[0] = 3<<4 | typeAdvert
		b[1], b[2], b[3] = a.VRID, a.Priority, byte(len(a.Addrs))
		binary.BigEndian.PutUint16(b[4:], uint16(cs))
		off := headerLen
		for _, ad := range a.Addrs {
			off += copy(b[off:], ad.AsSlice())
		}
		binary.BigEndian.PutUint16(b[6:], checksum(b, pseudoSum(src, dst, len(b))))
	default:
		return nil, fmt.Errorf("vrrp: unsupported version %d (want 2 or 3)", a.Version)
	}
	return buf, nil
}

// grow extends buf by n zeroed bytes, within its capacity when they fit,
// and returns it and those bytes.
func grow(buf []byte, n int) (all, tail []byte) {
	all = slices.Grow(buf, n)[:len(buf)+n]
	tail = all[len(buf):]
	clear(tail)
	return all, tail
}

// Parse decodes and checks the structure of a VRRP payload received from src
// to dst: length, version, type, checksum and interval. It knows nothing of
// the configured virtual routers; Decoder.Decode adds those checks.
func Parse(b []byte, src, dst netip.Addr) (Advert, DropReason) {
	return parseInto(b, src, dst, nil)
}

// parseInto is Parse with the advert's addresses in addrs when they fit
// its capacity.
func parseInto(b []byte, src, dst netip.Addr, addrs []netip.Addr) (Advert, DropReason) {
	var a Advert
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return a, DropWrongFamily
	}
	v6 := !src.Is4()
	alen := 4
	if v6 {
		alen = 16
	}
	if len(b) < headerLen {
		return a, DropTooShort
	}
	a.Version = int(b[0] >> 4)
	if a.Version != 2 && a.Version != 3 || a.Version == 2 && v6 {
		return a, DropBadVersion
	}
	if b[0]&0x0f != typeAdvert {
		return a, DropBadType
	}
	n := int(b[3])
	want := headerLen + n*alen
	if a.Version == 2 {
		want += authDataLen
	}
	switch {
	case len(b) < want:
		return a, DropTooShort
	case len(b) > want:
		return a, DropTooLong
	}
	var initial uint32
	if a.Version == 3 {
		initial = pseudoSum(src, dst, len(b))
	}
	if checksum(b, initial) != 0 {
		return a, DropBadChecksum
	}
	a.VRID, a.Priority = b[1], b[2]
	if a.Version == 2 {
		a.AuthType = AuthType(b[4])
		a.Interval = time.Duration(b[5]) * time.Second
		copy(a.AuthData[:], b[headerLen+n*alen:])
	} else {
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&0xfff) * 10 * time.Millisecond
	}
	if a.Interval == 0 {
		return a, DropBadInterval
	}
	if cap(addrs) >= n {
		a.Addrs = addrs[:n]
	} else {
		a.Addrs = make([]netip.Addr, n)
	}
	for i := range n {
		p := b[headerLen+i*alen : headerLen+(i+1)*alen]
		if v6 {
			a.Addrs[i] = netip.AddrFrom16([16]byte(p))
		} else {
			a.Addrs[i] = netip.AddrFrom4([4]byte(p))
		}
	}
	return a, DropNone
}

// Expect is what one configured virtual router accepts.
type Expect struct {
	Version  int
	Addrs    []netip.Addr // the virtual addresses, compared as a set
	Interval time.Duration
	AuthType AuthType // v2 only
	AuthData [8]byte  // v2 only
	// Peers, when not empty, restricts accepted sources (unicast mode).
	Peers []netip.Addr
}

// Received is one packet as read from the socket: the VRRP payload (IP
// header stripped), the addresses and the TTL or hop limit from the control
// message (-1 when the kernel did not report it).
type Received struct {
	Payload  []byte
	Src, Dst netip.Addr
	TTL      int
	// At is when the packet arrived, from the kernel's receive time
	// (zero: unknown, take it as now). A packet of the quiet socket (see
	// routineFilter) is read long after.
	At time.Time
	// stamp is the kernel's receive time (wall clock nanoseconds, 0:
	// none): what orders the packets of a link's two sockets.
	stamp int64
	// quiet: read from the quiet socket.
	quiet bool
}

// Decoder validates received adverts against the configured virtual routers
// of one interface and counts every drop by reason.
type Decoder struct {
	Routers map[uint8]Expect
	Drops   *DropCounters // may be nil
	// addrs holds the addresses of the advert decoded last: a backup
	// decodes one advert per interval per instance, and a list made for
	// each was most of what it allocated.
	addrs []netip.Addr
}

// Decode validates r and returns the advert, or the reason it was dropped
// (the drop is counted). RFC 3768 §7.1 and RFC 5798 §7.1 list the checks.
// The advert's Addrs are the decoder's: valid until its next Decode.
func (d *Decoder) Decode(r Received) (Advert, DropReason) {
	a, reason := d.decode(r)
	if reason != DropNone && d.Drops != nil {
		d.Drops.Add(reason)
	}
	return a, reason
}

func (d *Decoder) decode(r Received) (Advert, DropReason) {
	// TTL first: a packet that crossed a router cannot come from a VRRP
	// peer on this link, whatever else it claims.
	if r.TTL != 255 {
		return Advert{}, DropBadTTL
	}
	a, reason := parseInto(r.Payload, r.Src, r.Dst, d.addrs)
	if reason != DropNone {
		return a, reason
	}
	if cap(a.Addrs) > cap(d.addrs) {
		d.addrs = a.Addrs
	}
	e, ok := d.Routers[a.VRID]
	if !ok {
		return a, DropUnknownVRID
	}
	if len(e.Peers) > 0 && !slices.Contains(e.Peers, r.Src.Unmap()) {
		return a, DropUnknownPeer
	}
	if a.Version != e.Version {
		return a, DropBadVersion
	}
	if a.Version == 2 {
		if a.AuthType != e.AuthType || e.AuthType == AuthPass && a.AuthData != e.AuthData {
			return a, DropAuthMismatch
		}
		if a.Interval != e.Interval {
			return a, DropIntervalMismatch
		}
	}
	// A zero priority advert still carries the list; keepalived and RFC
	// 5798 §7.1 both check it. An owner-less config with no addresses
	// (Expect.Addrs empty) skips the check.
	if len(e.Addrs) > 0 {
		if len(a.Addrs) != len(e.Addrs) {
			return a, DropAddrCount
		}
		for _, x := range a.Addrs {
			if !slices.Contains(e.Addrs, x) {
				return a, DropAddrList
			}
		}
	}
	return a, DropNone
}

func checksum(b []byte, initial uint32) uint16 { return inetsum.Checksum(b, initial) }

// pseudoSum is the pseudo-header sum the v3 checksum covers.
func pseudoSum(src, dst netip.Addr, length int) uint32 {
	return inetsum.PseudoHeader(src, dst, length, Protocol)
}
