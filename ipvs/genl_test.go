package ipvs

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// kernelDestMsg builds a GET_DEST dump message the way ip_vs_genl_fill_dest
// does: a 16-byte address whatever the family, every counter, STATS and
// STATS64, and the tunnel attributes.
func kernelDestMsg(d DestInfo) []byte {
	var addr [16]byte
	af := uint16(afInet)
	if d.Addr.Addr().Is4() {
		a := d.Addr.Addr().As4()
		copy(addr[:], a[:])
	} else {
		addr, af = d.Addr.Addr().As16(), afInet6
	}
	var in []byte
	in = appendAttr(in, ipvsDestAttrAddr, addr[:])
	in = appendAttr(in, ipvsDestAttrPort, be16(d.Addr.Port()))
	in = appendAttr(in, ipvsDestAttrFwdMethod, u32(uint32(d.Forwarding)))
	in = appendAttr(in, ipvsDestAttrWeight, u32(uint32(d.Weight)))
	in = appendAttr(in, ipvsDestAttrTunType, u8(uint8(d.TunnelType)))
	in = appendAttr(in, ipvsDestAttrTunPort, be16(d.TunnelPort))
	in = appendAttr(in, ipvsDestAttrTunFlags, u16(d.TunnelFlags))
	in = appendAttr(in, ipvsDestAttrUThresh, u32(d.UpperThreshold))
	in = appendAttr(in, ipvsDestAttrLThresh, u32(d.LowerThreshold))
	in = appendAttr(in, ipvsDestAttrActiveConns, u32(d.ActiveConns))
	in = appendAttr(in, ipvsDestAttrInactConns, u32(d.InactiveConns))
	in = appendAttr(in, ipvsDestAttrPersistConns, u32(0))
	in = appendAttr(in, ipvsDestAttrAddrFamily, u16(af))
	var st, st64 []byte
	st = appendAttr(st, ipvsStatsConns, u32(uint32(d.Stats.Conns)))
	st = appendAttr(st, ipvsStatsInBytes, binary.NativeEndian.AppendUint64(nil, d.Stats.BytesIn))
	st64 = appendAttr(st64, ipvsStatsConns, binary.NativeEndian.AppendUint64(nil, d.Stats.Conns))
	st64 = appendAttr(st64, ipvsStatsInBytes, binary.NativeEndian.AppendUint64(nil, d.Stats.BytesIn))
	st64 = appendAttr(st64, ipvsStatsOutPkts, binary.NativeEndian.AppendUint64(nil, d.Stats.PktsOut))
	st64 = appendAttr(st64, 11, binary.NativeEndian.AppendUint64(nil, 0)) // IPVS_STATS_ATTR_PAD-ish
	in = appendAttr(in, ipvsDestAttrStats, st)
	in = appendAttr(in, ipvsDestAttrStats64, st64)
	msg := []byte{ipvsCmdNewDest, 1, 0, 0}
	return append(msg, appendAttr(nil, ipvsCmdAttrDest, in)...)
}

func TestDecodeKernelDest(t *testing.T) {
	for _, d := range []DestInfo{
		{Destination: Destination{Addr: netip.MustParseAddrPort("198.51.100.1:8080"),
			DestSettings: DestSettings{Weight: 7, Forwarding: ForwardNAT, UpperThreshold: 10, LowerThreshold: 5}},
			ActiveConns: 3, InactiveConns: 4, Stats: Stats{Conns: 1 << 40, BytesIn: 99, PktsOut: 12}},
		{Destination: Destination{Addr: netip.MustParseAddrPort("198.51.100.2:80"), DestSettings: DestSettings{Weight: 65535, Forwarding: ForwardDR}}},
		{Destination: Destination{Addr: netip.MustParseAddrPort("[2001:db8::2]:443"), DestSettings: DestSettings{Weight: 1, Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 6080, TunnelFlags: TunnelCsum}}},
		{Destination: Destination{Addr: netip.MustParseAddrPort("198.51.100.3:0"), DestSettings: DestSettings{Weight: 0, Forwarding: ForwardTunnel, TunnelType: TunnelGRE, TunnelFlags: TunnelRemCsum}}},
	} {
		got, err := decodeDestMsg(kernelDestMsg(d))
		if err != nil || got != d {
			t.Errorf("decoded %+v (%v), want %+v", got, err, d)
		}
	}
}

// TestEncodeDest decodes what haldir sends with the same parser, which
// checks the attribute framing and values from the other side.
func TestEncodeDest(t *testing.T) {
	gue := Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"),
		DestSettings: DestSettings{Weight: 9, Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 6080, TunnelFlags: TunnelCsum, UpperThreshold: 8, LowerThreshold: 2}}
	top, err := parseAttrs(encodeDest(gue, true))
	if err != nil || len(top) != 1 || top[0].typ != ipvsCmdAttrDest {
		t.Fatalf("framing %v %v", top, err)
	}
	inner, _ := parseAttrs(top[0].val)
	types := map[uint16][]byte{}
	for _, a := range inner {
		types[a.typ] = a.val
	}
	if len(types[ipvsDestAttrAddr]) != 4 || binary.BigEndian.Uint16(types[ipvsDestAttrPort]) != 80 ||
		binary.NativeEndian.Uint16(types[ipvsDestAttrAddrFamily]) != afInet ||
		types[ipvsDestAttrTunType][0] != uint8(TunnelGUE) || binary.BigEndian.Uint16(types[ipvsDestAttrTunPort]) != 6080 {
		t.Fatalf("attributes %v", types)
	}
	got, err := decodeDest(top[0].val)
	if err != nil || got.Destination != gue {
		t.Fatalf("round trip %+v %v", got, err)
	}
	// ipip and non-tunnel destinations carry no tunnel attributes, so old
	// kernels without them keep working.
	for _, d := range []Destination{
		{Addr: gue.Addr, DestSettings: DestSettings{Forwarding: ForwardTunnel}},
		{Addr: gue.Addr, DestSettings: DestSettings{Forwarding: ForwardDR}},
	} {
		top, _ := parseAttrs(encodeDest(d, true))
		inner, _ := parseAttrs(top[0].val)
		for _, a := range inner {
			if a.typ >= ipvsDestAttrTunType {
				t.Errorf("%+v: sent tunnel attribute %d", d, a.typ)
			}
		}
	}
	// A delete only identifies the destination.
	top, _ = parseAttrs(encodeDest(gue, false))
	if inner, _ := parseAttrs(top[0].val); len(inner) != 3 {
		t.Errorf("delete sends %d attributes, want family, address, port", len(inner))
	}
}

func TestEncodeServiceID(t *testing.T) {
	cases := []struct {
		key  ServiceKey
		want map[uint16]int // attribute type -> value length
	}{
		{ServiceKey{Protocol: SCTP, Addr: netip.MustParseAddrPort("[2001:db8::1]:443")}, map[uint16]int{ipvsSvcAttrAF: 2, ipvsSvcAttrProtocol: 2, ipvsSvcAttrAddr: 16, ipvsSvcAttrPort: 2}},
		{ServiceKey{Fwmark: 5, V6: true}, map[uint16]int{ipvsSvcAttrAF: 2, ipvsSvcAttrFwmark: 4}},
	}
	for _, tc := range cases {
		top, err := parseAttrs(encodeServiceID(tc.key))
		if err != nil || len(top) != 1 || top[0].typ != ipvsCmdAttrService {
			t.Fatalf("framing %v %v", top, err)
		}
		inner, _ := parseAttrs(top[0].val)
		got := map[uint16]int{}
		for _, a := range inner {
			got[a.typ] = len(a.val)
			if a.typ == ipvsSvcAttrAF && binary.NativeEndian.Uint16(a.val) != afInet6 {
				t.Errorf("%s: family %d", tc.key, binary.NativeEndian.Uint16(a.val))
			}
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: attributes %v, want %v", tc.key, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: attribute %d has %d bytes, want %d", tc.key, k, got[k], v)
			}
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := kernelDestMsg(DestInfo{Destination: Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), DestSettings: DestSettings{Weight: 1}}})
	cases := map[string][]byte{
		"empty":             nil,
		"header only":       good[:4],
		"truncated":         good[:len(good)-3],
		"attribute too big": append([]byte{1, 0, 0, 0, 0xff, 0x7f, ipvsCmdAttrDest, 0}, make([]byte, 8)...),
		"no destination":    append([]byte{1, 0, 0, 0}, appendAttr(nil, ipvsCmdAttrService, nil)...),
		"short weight": append([]byte{1, 0, 0, 0}, appendAttr(nil, ipvsCmdAttrDest,
			appendAttr(appendAttr(nil, ipvsDestAttrPort, be16(80)), ipvsDestAttrWeight, []byte{1}))...),
		"no address": append([]byte{1, 0, 0, 0}, appendAttr(nil, ipvsCmdAttrDest, appendAttr(nil, ipvsDestAttrPort, be16(80)))...),
	}
	for name, b := range cases {
		if _, err := decodeDestMsg(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: err = %v, want errMalformed", name, err)
		}
	}
}

func FuzzDecodeDestMsg(f *testing.F) {
	f.Add(kernelDestMsg(DestInfo{Destination: Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), DestSettings: DestSettings{Weight: 1}}}))
	f.Add(kernelDestMsg(DestInfo{Destination: Destination{Addr: netip.MustParseAddrPort("[2001:db8::2]:443"), DestSettings: DestSettings{Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 1}}}))
	f.Add([]byte{1, 0, 0, 0, 8, 0, 2, 0, 4, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDestMsg(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error not marked malformed: %v", err)
			}
			return
		}
		if !d.Addr.IsValid() {
			t.Fatalf("decoded an invalid address without error: %+v", d)
		}
		// What decodes re-encodes to the same destination.
		top, err := parseAttrs(encodeDest(d.Destination, true))
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeDest(top[0].val)
		want := d
		want.ActiveConns, want.InactiveConns, want.Stats = 0, 0, Stats{}
		if d.Weight < 0 {
			t.Skip("negative weights are the kernel's to refuse")
		}
		if err != nil || again != want {
			t.Fatalf("re-encoded %+v (%v), want %+v", again, err, want)
		}
	})
}
