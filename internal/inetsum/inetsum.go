// Package inetsum computes the Internet checksum (RFC 1071) and the IPv4 and
// IPv6 pseudo-header sums that upper-layer checksums cover, for the VRRP
// codec and the lab's frame observer.
package inetsum

import "net/netip"

// Checksum is the Internet checksum of b added to initial, a partial sum
// such as PseudoHeader's. Over a message whose checksum field is filled in
// correctly it is 0.
func Checksum(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// PseudoHeader is the partial sum of the IPv4 (RFC 768 style) or IPv6
// (RFC 8200 §8.1) pseudo-header for a message of length bytes of protocol
// proto between src and dst.
func PseudoHeader(src, dst netip.Addr, length int, proto uint8) uint32 {
	var s uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			s += uint32(p[i])<<8 | uint32(p[i+1])
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	s += uint32(length>>16) + uint32(length&0xffff)
	s += uint32(proto)
	return s
}
