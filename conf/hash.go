package conf

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"time"
)

// Hashes hashes the parts of s that every director of a cluster must
// share, by name: "virtual_server" (the virtual servers with their real
// servers and checks), "ipvs" (kernel timeouts), "vrrp" (of each instance
// what the wire needs to match: VRRPWire) and "sync" (the conn-sync
// stream, "off" without [sync]) and "bgp" (what is announced, "off"
// without [bgp]). What differs between directors by design
// (priority, interfaces, unicast peers, notify commands, tracking) is left
// out. Equal values hash equal on every director and release; a field
// added to a hashed type is hashed without further code.
func (s *Spec) Hashes() map[string]string {
	wire := make([]VRRPWire, len(s.VRRP))
	for i := range s.VRRP {
		wire[i] = s.VRRP[i].Wire()
	}
	out := map[string]string{
		"virtual_server": Hash(sortedReals(s.VirtualServers)),
		"ipvs":           Hash(s.IPVS),
		"vrrp":           Hash(wire),
		"sync":           "off",
	}
	if x := s.Sync; x != nil {
		out["sync"] = Hash(struct {
			SyncID   uint8
			Port     uint16
			Group    string
			Instance string
		}{x.SyncID, x.McastPort, x.McastGroup.String(), x.VRRPInstance})
	}
	// What directors announce must be the same on all of them, or the
	// routers spread a prefix's flows over directors that serve it
	// differently; peers, ASN and router ID differ by design.
	out["bgp"] = "off"
	if x := s.BGP; x != nil {
		out["bgp"] = Hash(x.Announce)
	}
	return out
}

// sortedReals is vss with each one's real servers in address order: two
// directors listing the same real servers in another order run the same
// service (the director adds mh, sh and dh destinations in that order
// anyway), and that is no drift.
func sortedReals(vss []VirtualServerSpec) []VirtualServerSpec {
	out := slices.Clone(vss)
	for i := range out {
		out[i].RealServers = slices.SortedStableFunc(slices.Values(out[i].RealServers), func(a, b RealServerSpec) int {
			return a.Addr.Compare(b.Addr)
		})
	}
	return out
}

// VRRPWire is what two routers of one VRRP instance must agree on.
type VRRPWire struct {
	Name      string
	VRID      uint8
	Version   uint8
	Interval  time.Duration
	Addresses []string
	Auth      AuthSpec
}

// Wire returns what the instance's peers must share with it.
func (in *VRRPInstanceSpec) Wire() VRRPWire {
	w := VRRPWire{Name: in.Name, VRID: in.VRID, Version: in.Version, Interval: in.AdvertInterval, Auth: in.Auth}
	for _, p := range in.VirtualAddresses {
		w.Addresses = append(w.Addresses, p.String())
	}
	return w
}

// Hash is a short, stable digest of a spec value: 8 hex digits of the
// SHA-256 of a length-prefixed encoding of every field, walked by
// reflection so that no field list is kept by hand. It panics on a map,
// channel, function or interface value, which no spec type holds (a map's
// order would make it unstable).
func Hash(v any) string {
	b := appendValue(nil, reflect.ValueOf(v))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

func appendValue(b []byte, v reflect.Value) []byte {
	// netip values: their binary form is canonical, behind a length byte
	// (an address is 0, 4 or 16 bytes and a zone; zones are interface
	// names, far below 255 bytes). Read in place when addressable: boxing
	// each one in an interface would allocate.
	var p any
	switch v.Type() {
	case typeOfAddr, typeOfAddrPort, typeOfPrefix:
		if v.CanAddr() {
			p = v.Addr().Interface()
		} else {
			p = v.Interface()
		}
	}
	if p != nil {
		start := len(b)
		b = append(b, 0)
		var err error
		switch x := p.(type) {
		case *netip.Addr:
			b, err = x.AppendBinary(b)
		case *netip.AddrPort:
			b, err = x.AppendBinary(b)
		case *netip.Prefix:
			b, err = x.AppendBinary(b)
		case netip.Addr:
			b, err = x.AppendBinary(b)
		case netip.AddrPort:
			b, err = x.AppendBinary(b)
		case netip.Prefix:
			b, err = x.AppendBinary(b)
		}
		if err != nil { // netip never fails; say so rather than hash alike
			return append(b, err.Error()...)
		}
		b[start] = byte(min(len(b)-start-1, 255))
		return b
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1)
		}
		return append(b, 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return binary.AppendUvarint(b, v.Uint())
	case reflect.Float32, reflect.Float64:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v.Float()))
	case reflect.String:
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.String()...)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return append(b, v.Bytes()...)
		}
		for i := range v.Len() {
			b = appendValue(b, v.Index(i))
		}
		return b
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, 0)
		}
		return appendValue(append(b, 1), v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			b = appendValue(b, v.Field(i))
		}
		return b
	}
	panic(fmt.Sprintf("conf.Hash: cannot hash a %s", v.Type()))
}
