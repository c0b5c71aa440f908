package vrrp

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// cmsgInfo reads a received packet's hop limit (IP_TTL, IPV6_HOPLIMIT) and
// destination address (IP_PKTINFO, IPV6_PKTINFO) from its control
// messages; ttl is -1 when none says. x/net's ControlMessage.Parse does
// the same with four allocations per packet (the messages' slice and its
// growth, the address, the struct that escapes to hold them): at 100
// adverts a second they were the largest part of a backup's own CPU after
// the system calls (perf, the failover bench's 1 × 10 ms row). ok is false
// for a malformed message; what came before it stands.
func cmsgInfo(oob []byte, v6 bool) (ttl int, dst netip.Addr, ok bool) {
	ttl = -1
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return ttl, dst, false
		}
		switch {
		case !v6 && h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL && len(data) >= 4,
			v6 && h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(data) >= 4:
			ttl = int(binary.NativeEndian.Uint32(data))
		case !v6 && h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ipi_ifindex, ipi_spec_dst, ipi_addr (the
			// header's destination).
			dst = netip.AddrFrom4([4]byte(data[8:12]))
		case v6 && h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: ipi6_addr, ipi6_ifindex.
			dst = netip.AddrFrom16([16]byte(data[:16]))
		}
		oob = rest
	}
	return ttl, dst, true
}

// sendCmsg is the control message of a socket's sends from src, built
// once per source address: marshalled per advert, it was two allocations
// on every one a master sent. The drivers of a link's instances send on
// one socket concurrently, hence the atomic pointer; a built message is
// never changed.
type sendCmsg struct {
	p atomic.Pointer[builtCmsg]
}

type builtCmsg struct {
	src netip.Addr
	oob []byte
}

// get returns src's control message, building it with build on a miss.
func (s *sendCmsg) get(src netip.Addr, build func() []byte) []byte {
	if b := s.p.Load(); b != nil && b.src == src {
		return b.oob
	}
	b := &builtCmsg{src: src, oob: build()}
	s.p.Store(b)
	return b.oob
}
