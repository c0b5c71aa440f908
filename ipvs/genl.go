package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// This file is the part of the IPVS generic netlink protocol haldir encodes
// and decodes itself: destinations. github.com/moby/ipvs v1.1.0 has no
// IPVS_DEST_ATTR_ADDR_FAMILY on write nor IPVS_DEST_ATTR_TUN_* at all, and
// panics on short attributes; the codec here is pure (bytes in, values out)
// so it is unit-tested and fuzzed without a kernel.

// IPVS generic netlink constants (include/uapi/linux/ip_vs.h).
const (
	ipvsCmdNewDest = 5
	ipvsCmdSetDest = 6
	ipvsCmdDelDest = 7
	ipvsCmdGetDest = 8

	ipvsCmdAttrService = 1
	ipvsCmdAttrDest    = 2

	ipvsSvcAttrAF       = 1
	ipvsSvcAttrProtocol = 2
	ipvsSvcAttrAddr     = 3
	ipvsSvcAttrPort     = 4
	ipvsSvcAttrFwmark   = 5

	ipvsDestAttrAddr         = 1
	ipvsDestAttrPort         = 2
	ipvsDestAttrFwdMethod    = 3
	ipvsDestAttrWeight       = 4
	ipvsDestAttrUThresh      = 5
	ipvsDestAttrLThresh      = 6
	ipvsDestAttrActiveConns  = 7
	ipvsDestAttrInactConns   = 8
	ipvsDestAttrPersistConns = 9
	ipvsDestAttrStats        = 10
	ipvsDestAttrAddrFamily   = 11
	ipvsDestAttrStats64      = 12
	ipvsDestAttrTunType      = 13
	ipvsDestAttrTunPort      = 14
	ipvsDestAttrTunFlags     = 15

	ipvsStatsConns    = 1
	ipvsStatsInPkts   = 2
	ipvsStatsOutPkts  = 3
	ipvsStatsInBytes  = 4
	ipvsStatsOutBytes = 5
	ipvsStatsCPS      = 6
	ipvsStatsInPPS    = 7
	ipvsStatsOutPPS   = 8
	ipvsStatsInBPS    = 9
	ipvsStatsOutBPS   = 10

	afInet  = 2
	afInet6 = 10

	nlaHdrLen   = 4
	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	genlHdrLen  = 4
)

// errMalformed is wrapped by every decoding error.
var errMalformed = errors.New("malformed IPVS netlink message")

type nlattr struct {
	typ uint16
	val []byte
}

func nlaAlign(n int) int { return (n + 3) &^ 3 }

// appendAttr appends one netlink attribute (host byte order header).
func appendAttr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u8(v uint8) []byte    { return []byte{v} }
func u16(v uint16) []byte  { return binary.NativeEndian.AppendUint16(nil, v) }
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte  { return binary.NativeEndian.AppendUint32(nil, v) }

// parseAttrs splits b into attributes, refusing any length that does not
// fit instead of reading past the buffer.
func parseAttrs(b []byte) ([]nlattr, error) {
	var out []nlattr
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return nil, fmt.Errorf("%w: %d trailing bytes, shorter than an attribute header", errMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b))
		if l < nlaHdrLen || l > len(b) {
			return nil, fmt.Errorf("%w: attribute length %d with %d bytes left", errMalformed, l, len(b))
		}
		out = append(out, nlattr{binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, b[nlaHdrLen:l]})
		b = b[min(nlaAlign(l), len(b)):]
	}
	return out, nil
}

func attrUint(a nlattr, size int) (uint64, error) {
	if len(a.val) < size {
		return 0, fmt.Errorf("%w: attribute %d has %d bytes, want %d", errMalformed, a.typ, len(a.val), size)
	}
	switch size {
	case 1:
		return uint64(a.val[0]), nil
	case 2:
		return uint64(binary.NativeEndian.Uint16(a.val)), nil
	case 4:
		return uint64(binary.NativeEndian.Uint32(a.val)), nil
	}
	return binary.NativeEndian.Uint64(a.val), nil
}

// encodeServiceID is the nested service attribute identifying key: all a
// destination command needs (ip_vs_genl_parse_service with need_full_svc
// unset).
func encodeServiceID(key ServiceKey) []byte {
	var in []byte
	if key.IsV6() {
		in = appendAttr(in, ipvsSvcAttrAF, u16(afInet6))
	} else {
		in = appendAttr(in, ipvsSvcAttrAF, u16(afInet))
	}
	if key.Fwmark != 0 {
		in = appendAttr(in, ipvsSvcAttrFwmark, u32(key.Fwmark))
	} else {
		in = appendAttr(in, ipvsSvcAttrProtocol, u16(uint16(key.Protocol)))
		in = appendAttr(in, ipvsSvcAttrAddr, key.Addr.Addr().AsSlice())
		in = appendAttr(in, ipvsSvcAttrPort, be16(key.Addr.Port()))
	}
	return appendAttr(nil, ipvsCmdAttrService, in)
}

// encodeDest is the nested destination attribute. full adds everything
// NEW_DEST/SET_DEST need; a DEL_DEST only identifies the destination.
// The tunnel attributes (kernel >= 5.3) are sent only when they differ
// from the defaults, so ipip tunnels keep working on older kernels.
func encodeDest(d Destination, full bool) []byte {
	var in []byte
	af := uint16(afInet)
	if d.Addr.Addr().Is6() {
		af = afInet6
	}
	in = appendAttr(in, ipvsDestAttrAddrFamily, u16(af))
	in = appendAttr(in, ipvsDestAttrAddr, d.Addr.Addr().AsSlice())
	in = appendAttr(in, ipvsDestAttrPort, be16(d.Addr.Port()))
	if full {
		in = appendAttr(in, ipvsDestAttrFwdMethod, u32(uint32(d.Forwarding)))
		in = appendAttr(in, ipvsDestAttrWeight, u32(uint32(d.Weight)))
		in = appendAttr(in, ipvsDestAttrUThresh, u32(d.UpperThreshold))
		in = appendAttr(in, ipvsDestAttrLThresh, u32(d.LowerThreshold))
		if d.Forwarding == ForwardTunnel && (d.TunnelType != TunnelIPIP || d.TunnelPort != 0 || d.TunnelFlags != 0) {
			in = appendAttr(in, ipvsDestAttrTunType, u8(uint8(d.TunnelType)))
			in = appendAttr(in, ipvsDestAttrTunPort, be16(d.TunnelPort))
			in = appendAttr(in, ipvsDestAttrTunFlags, u16(d.TunnelFlags))
		}
	}
	return appendAttr(nil, ipvsCmdAttrDest, in)
}

// topAttr returns the value of the top-level attribute typ of one reply
// message (generic netlink header included); what names it in the error
// when it is missing.
func topAttr(msg []byte, typ uint16, what string) ([]byte, error) {
	if len(msg) < genlHdrLen {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the generic netlink header", errMalformed, len(msg))
	}
	top, err := parseAttrs(msg[genlHdrLen:])
	if err != nil {
		return nil, err
	}
	for _, a := range top {
		if a.typ == typ {
			return a.val, nil
		}
	}
	return nil, fmt.Errorf("%w: no %s attribute", errMalformed, what)
}

// decodeEach decodes every message of a dump.
func decodeEach[T any](msgs [][]byte, decode func([]byte) (T, error)) ([]T, error) {
	out := make([]T, 0, len(msgs))
	for _, m := range msgs {
		v, err := decode(m)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// decodeDestMsg decodes one IPVS_CMD_NEW_DEST message of a GET_DEST dump:
// the generic netlink header, then IPVS_CMD_ATTR_DEST.
func decodeDestMsg(msg []byte) (DestInfo, error) {
	b, err := topAttr(msg, ipvsCmdAttrDest, "destination")
	if err != nil {
		return DestInfo{}, err
	}
	return decodeDest(b)
}

func decodeDest(b []byte) (DestInfo, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return DestInfo{}, err
	}
	var d DestInfo
	var addr []byte
	var af uint64
	var port uint16
	var havePort bool
	var stats, stats64 []byte
	for _, a := range attrs {
		var v uint64
		switch a.typ {
		case ipvsDestAttrAddr:
			addr = a.val
		case ipvsDestAttrPort:
			if len(a.val) < 2 {
				return d, fmt.Errorf("%w: port attribute has %d bytes", errMalformed, len(a.val))
			}
			port, havePort = binary.BigEndian.Uint16(a.val), true
		case ipvsDestAttrAddrFamily:
			af, err = attrUint(a, 2)
		case ipvsDestAttrFwdMethod:
			v, err = attrUint(a, 4)
			d.Forwarding = Forwarding(v & 0x7)
		case ipvsDestAttrWeight:
			v, err = attrUint(a, 4)
			d.Weight = int(int32(v))
		case ipvsDestAttrUThresh:
			v, err = attrUint(a, 4)
			d.UpperThreshold = uint32(v)
		case ipvsDestAttrLThresh:
			v, err = attrUint(a, 4)
			d.LowerThreshold = uint32(v)
		case ipvsDestAttrActiveConns:
			v, err = attrUint(a, 4)
			d.ActiveConns = uint32(v)
		case ipvsDestAttrInactConns:
			v, err = attrUint(a, 4)
			d.InactiveConns = uint32(v)
		case ipvsDestAttrTunType:
			v, err = attrUint(a, 1)
			d.TunnelType = TunnelType(v)
		case ipvsDestAttrTunPort:
			if len(a.val) < 2 {
				return d, fmt.Errorf("%w: tunnel port attribute has %d bytes", errMalformed, len(a.val))
			}
			d.TunnelPort = binary.BigEndian.Uint16(a.val)
		case ipvsDestAttrTunFlags:
			v, err = attrUint(a, 2)
			d.TunnelFlags = uint16(v)
		case ipvsDestAttrStats:
			stats = a.val
		case ipvsDestAttrStats64:
			stats64 = a.val
		}
		if err != nil {
			return d, err
		}
	}
	if !havePort {
		return d, fmt.Errorf("%w: destination without a port", errMalformed)
	}
	// Kernels before 3.18 send no family; an inet address then comes as
	// the first 4 of 16 bytes.
	switch {
	case af == afInet && len(addr) >= 4:
		d.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), port)
	case af == afInet6 && len(addr) >= 16:
		d.Addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[:16])), port)
	case af == 0 && len(addr) == 4:
		d.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr)), port)
	default:
		return d, fmt.Errorf("%w: destination address of %d bytes in family %d", errMalformed, len(addr), af)
	}
	if d.Forwarding != ForwardTunnel {
		// Tunnel attributes are reported for every destination; they only
		// mean something for tunnels, and are never sent for others.
		d.TunnelType, d.TunnelPort, d.TunnelFlags = 0, 0, 0
	}
	src := stats64
	if src == nil {
		src = stats
	}
	if src != nil {
		if d.Stats, err = decodeStats(src); err != nil {
			return d, err
		}
	}
	return d, nil
}

// decodeStats reads either stats flavour: IPVS_DEST_ATTR_STATS mixes u32
// and u64 counters, IPVS_DEST_ATTR_STATS64 has only u64; the attribute
// length tells which.
func decodeStats(b []byte) (Stats, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	for _, a := range attrs {
		var v uint64
		switch len(a.val) {
		case 4:
			v = uint64(binary.NativeEndian.Uint32(a.val))
		case 8:
			v = binary.NativeEndian.Uint64(a.val)
		default:
			continue // IPVS_STATS_ATTR_PAD and unknown sizes
		}
		switch a.typ {
		case ipvsStatsConns:
			s.Conns = v
		case ipvsStatsInPkts:
			s.PktsIn = v
		case ipvsStatsOutPkts:
			s.PktsOut = v
		case ipvsStatsInBytes:
			s.BytesIn = v
		case ipvsStatsOutBytes:
			s.BytesOut = v
		case ipvsStatsCPS:
			s.CPS = v
		case ipvsStatsInPPS:
			s.PPSIn = v
		case ipvsStatsOutPPS:
			s.PPSOut = v
		case ipvsStatsInBPS:
			s.BPSIn = v
		case ipvsStatsOutBPS:
			s.BPSOut = v
		}
	}
	return s, nil
}
