package vrrp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// capturedPacket is one VRRP packet read from a pcap in testdata.
type capturedPacket struct {
	Src, Dst netip.Addr
	TTL      int
	Payload  []byte
}

// readPcap reads the VRRP packets of an Ethernet pcap file (the classic
// libpcap format tcpdump -w writes).
func readPcap(t testing.TB, name string) []capturedPacket {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap file", name)
	}
	if lt := binary.LittleEndian.Uint32(b[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want 1 (Ethernet)", name, lt)
	}
	var out []capturedPacket
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		off += 16 + n
		et := binary.BigEndian.Uint16(frame[12:])
		ip := frame[14:]
		switch et {
		case 0x0800:
			hl := int(ip[0]&0x0f) * 4
			tot := int(binary.BigEndian.Uint16(ip[2:]))
			if ip[9] != Protocol {
				continue
			}
			out = append(out, capturedPacket{
				Src: netip.AddrFrom4([4]byte(ip[12:16])), Dst: netip.AddrFrom4([4]byte(ip[16:20])),
				TTL: int(ip[8]), Payload: ip[hl:tot],
			})
		case 0x86dd:
			pl := int(binary.BigEndian.Uint16(ip[4:]))
			if ip[6] != Protocol {
				continue
			}
			out = append(out, capturedPacket{
				Src: netip.AddrFrom16([16]byte(ip[8:24])), Dst: netip.AddrFrom16([16]byte(ip[24:40])),
				TTL: int(ip[7]), Payload: ip[40 : 40+pl],
			})
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no VRRP packets", name)
	}
	return out
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, x := range s {
		out[i] = netip.MustParseAddr(x)
	}
	return out
}

// TestKeepalivedCaptures decodes adverts keepalived 2.2.7 sent on the wire
// (see testdata/README) and checks that our encoder produces the same bytes.
func TestKeepalivedCaptures(t *testing.T) {
	cases := []struct {
		file   string
		expect Expect
		vrid   uint8
		prio   uint8
	}{
		{"keepalived-v2v4.pcap", Expect{Version: 2, Addrs: addrs("192.0.2.100", "192.0.2.101"), Interval: time.Second, AuthType: AuthPass, AuthData: Password("secret1")}, 51, 150},
		{"keepalived-v3v4.pcap", Expect{Version: 3, Addrs: addrs("192.0.2.101", "192.0.2.100"), Interval: 500 * time.Millisecond}, 52, 200},
		{"keepalived-v3v6.pcap", Expect{Version: 3, Addrs: addrs("2001:db8::100", "2001:db8::101"), Interval: time.Second}, 53, 100},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			pkts := readPcap(t, c.file)
			d := Decoder{Routers: map[uint8]Expect{c.vrid: c.expect}, Drops: &DropCounters{}}
			sawZero := false
			for i, p := range pkts {
				a, reason := d.Decode(Received{Payload: p.Payload, Src: p.Src, Dst: p.Dst, TTL: p.TTL})
				if reason != DropNone {
					t.Fatalf("packet %d dropped: %v", i, reason)
				}
				if a.VRID != c.vrid || a.Version != c.expect.Version || a.Interval != c.expect.Interval {
					t.Fatalf("packet %d: got %+v", i, a)
				}
				switch a.Priority {
				case c.prio:
				case 0:
					sawZero = true // keepalived resigns on SIGTERM
				default:
					t.Fatalf("packet %d: priority %d, want %d or 0", i, a.Priority, c.prio)
				}
				again, err := a.Marshal(p.Src, p.Dst)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, p.Payload) {
					t.Fatalf("packet %d: re-encoded\n%x\nkeepalived sent\n%x", i, again, p.Payload)
				}
			}
			if !sawZero {
				t.Errorf("capture has no priority 0 advert")
			}
		})
	}
}

// Golden packets built from the RFC layouts with an independent encoder (a
// few lines of Python's struct, checksums included); the v2 password packet
// is byte-identical to what keepalived sends for the same advert.
func TestGolden(t *testing.T) {
	cases := []struct {
		name     string
		a        Advert
		src, dst string
		hex      string
	}{
		{"v2v4-noauth", Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second, Addrs: addrs("192.0.2.10")}, "192.0.2.1", "224.0.0.18",
			"210164010001b8f1c000020a0000000000000000"},
		{"v2v4-pass", Advert{Version: 2, VRID: 51, Priority: 150, Interval: time.Second, AuthType: AuthPass, AuthData: Password("secret1"), Addrs: addrs("192.0.2.100")}, "192.0.2.1", "224.0.0.18",
			"2133960101011819c00002647365637265743100"},
		{"v3v4", Advert{Version: 3, VRID: 7, Priority: 255, Interval: 100 * time.Millisecond, Addrs: addrs("192.0.2.10", "192.0.2.11")}, "192.0.2.1", "224.0.0.18",
			"3107ff02000aa940c000020ac000020b"},
		{"v3v6", Advert{Version: 3, VRID: 7, Priority: 0, Interval: 40950 * time.Millisecond, Addrs: addrs("fe80::1")}, "fe80::2", "ff02::12",
			"310700010fffc256fe800000000000000000000000000001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
			b, err := c.a.Marshal(src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, c.hex); !bytes.Equal(b, want) {
				t.Fatalf("encoded\n%x\nwant\n%x", b, want)
			}
			a, reason := Parse(b, src, dst)
			if reason != DropNone {
				t.Fatalf("parse: %v", reason)
			}
			if !reflect.DeepEqual(a, c.a) {
				t.Fatalf("round trip: %+v != %+v", a, c.a)
			}
		})
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	if len(s)%2 == 1 {
		t.Fatalf("odd hex %q", s)
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				v |= byte(c-'a') + 10
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		b[i] = v
	}
	return b
}

func TestV2OverIPv6Rejected(t *testing.T) {
	a := Advert{Version: 2, VRID: 1, Priority: 100, Interval: time.Second, Addrs: addrs("2001:db8::1")}
	if _, err := a.Marshal(netip.MustParseAddr("fe80::1"), GroupV6); err == nil {
		t.Fatal("v2 over IPv6 encoded; RFC 3768 is IPv4 only")
	}
	// Hand-built v2 packet with one IPv6 address and no auth.
	b := make([]byte, 8+16+8)
	b[0], b[1], b[2], b[3], b[5] = 0x21, 1, 100, 1, 1
	binary.BigEndian.PutUint16(b[6:], checksum(b, 0))
	if _, r := Parse(b, netip.MustParseAddr("fe80::1"), GroupV6); r != DropBadVersion {
		t.Fatalf("got %v, want %v", r, DropBadVersion)
	}
}

func TestMarshalErrors(t *testing.T) {
	v4, g4 := netip.MustParseAddr("192.0.2.1"), GroupV4
	cases := []struct {
		name string
		a    Advert
		src  netip.Addr
		dst  netip.Addr
	}{
		{"no addresses", Advert{Version: 3, Interval: time.Second}, v4, g4},
		{"v2 fractional interval", Advert{Version: 2, Interval: 1500 * time.Millisecond, Addrs: addrs("192.0.2.9")}, v4, g4},
		{"v3 interval too long", Advert{Version: 3, Interval: 41 * time.Second, Addrs: addrs("192.0.2.9")}, v4, g4},
		{"v3 interval too short", Advert{Version: 3, Interval: time.Millisecond, Addrs: addrs("192.0.2.9")}, v4, g4},
		{"mixed family", Advert{Version: 3, Interval: time.Second, Addrs: addrs("2001:db8::9")}, v4, g4},
		{"src/dst family", Advert{Version: 3, Interval: time.Second, Addrs: addrs("192.0.2.9")}, v4, GroupV6},
		{"version 4", Advert{Version: 4, Interval: time.Second, Addrs: addrs("192.0.2.9")}, v4, g4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.a.Marshal(c.src, c.dst); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestDecodeDrops(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), GroupV4
	v2 := Advert{Version: 2, VRID: 9, Priority: 100, Interval: time.Second, AuthType: AuthPass, AuthData: Password("pw"), Addrs: addrs("192.0.2.50", "192.0.2.51")}
	v3 := Advert{Version: 3, VRID: 10, Priority: 100, Interval: 100 * time.Millisecond, Addrs: addrs("192.0.2.60")}
	exp := map[uint8]Expect{
		9:  {Version: 2, Interval: time.Second, AuthType: AuthPass, AuthData: Password("pw"), Addrs: v2.Addrs},
		10: {Version: 3, Interval: time.Second, Addrs: v3.Addrs}, // v3 interval mismatch is no drop
		11: {Version: 3, Interval: time.Second, Addrs: v3.Addrs, Peers: addrs("192.0.2.77")},
	}
	enc := func(a Advert) []byte {
		b, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// refix recomputes the checksum after a mutation so that the check
	// under test, not the checksum, fires.
	refix := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		var init uint32
		if b[0]>>4 == 3 {
			init = pseudoSum(src, dst, len(b))
		}
		binary.BigEndian.PutUint16(b[6:], checksum(b, init))
		return b
	}
	with := func(a Advert, f func(*Advert)) Advert { f(&a); return a }
	cases := []struct {
		name string
		b    []byte
		ttl  int
		src  netip.Addr
		want DropReason
	}{
		{"v2 ok", enc(v2), 255, src, DropNone},
		{"v3 ok", enc(v3), 255, src, DropNone},
		{"v3 other interval ok", enc(with(v3, func(a *Advert) { a.Interval = 3 * time.Second })), 255, src, DropNone},
		{"ttl 64", enc(v3), 64, src, DropBadTTL},
		{"ttl unknown", enc(v3), -1, src, DropBadTTL},
		{"empty", nil, 255, src, DropTooShort},
		{"header only", enc(v3)[:8], 255, src, DropTooShort},
		{"truncated address", enc(v3)[:10], 255, src, DropTooShort},
		{"trailing byte", refix(append(enc(v3), 0, 0)), 255, src, DropTooLong},
		{"version 1", refix(func() []byte { b := enc(v3); b[0] = 0x11; return b }()), 255, src, DropBadVersion},
		{"type 2", refix(func() []byte { b := enc(v3); b[0] = 0x32; return b }()), 255, src, DropBadType},
		{"bad checksum", func() []byte { b := enc(v3); b[7] ^= 1; return b }(), 255, src, DropBadChecksum},
		{"v3 checksum with other source", enc(v3), 255, netip.MustParseAddr("192.0.2.2"), DropBadChecksum},
		{"unknown vrid", enc(with(v3, func(a *Advert) { a.VRID = 99 })), 255, src, DropUnknownVRID},
		{"wrong version for vrid", enc(with(v2, func(a *Advert) { a.VRID = 10 })), 255, src, DropBadVersion},
		{"address count", enc(with(v3, func(a *Advert) { a.Addrs = addrs("192.0.2.60", "192.0.2.61") })), 255, src, DropAddrCount},
		{"address list", enc(with(v3, func(a *Advert) { a.Addrs = addrs("192.0.2.61") })), 255, src, DropAddrList},
		{"auth type", enc(with(v2, func(a *Advert) { a.AuthType = AuthNone })), 255, src, DropAuthMismatch},
		{"auth password", enc(with(v2, func(a *Advert) { a.AuthData = Password("px") })), 255, src, DropAuthMismatch},
		{"auth AH", enc(with(v2, func(a *Advert) { a.AuthType = AuthAH })), 255, src, DropAuthMismatch},
		{"v2 interval", enc(with(v2, func(a *Advert) { a.Interval = 2 * time.Second })), 255, src, DropIntervalMismatch},
		{"v3 interval zero", refix(func() []byte { b := enc(v3); b[4], b[5] = 0xf0, 0; return b }()), 255, src, DropBadInterval},
		{"unicast peer", enc(with(v3, func(a *Advert) { a.VRID = 11 })), 255, src, DropUnknownPeer},
		{"family", enc(v3), 255, netip.MustParseAddr("fe80::1"), DropWrongFamily},
	}
	drops := &DropCounters{}
	d := Decoder{Routers: exp, Drops: drops}
	want := map[string]uint64{}
	for _, r := range DropReasons() {
		want[r.String()] = 0
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, r := d.Decode(Received{Payload: c.b, Src: c.src, Dst: dst, TTL: c.ttl})
			if r != c.want {
				t.Fatalf("got %v, want %v", r, c.want)
			}
		})
		if c.want != DropNone {
			want[c.want.String()]++
		}
	}
	if got := drops.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("counters\n%v\nwant\n%v", got, want)
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range DropReasons() {
		s := r.String()
		if s == "" || s == "unknown" || s == "none" || seen[s] {
			t.Fatalf("reason %d has bad or duplicate name %q", r, s)
		}
		seen[s] = true
	}
	if DropReason(-1).String() != "unknown" || numDropReasons.String() != "unknown" {
		t.Fatal("out of range reasons must be named unknown")
	}
}

func TestDropCountersConcurrent(t *testing.T) {
	var c DropCounters
	done := make(chan struct{})
	for range 4 {
		go func() {
			for range 1000 {
				c.Add(DropBadTTL)
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	if got := c.Get(DropBadTTL); got != 4000 {
		t.Fatalf("got %d, want 4000", got)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []int{2, 3} {
		for _, fam := range []string{"v4", "v6"} {
			if v == 2 && fam == "v6" {
				continue // not defined; TestV2OverIPv6Rejected
			}
			for _, n := range []int{1, 2, 255} {
				src, dst, base := netip.MustParseAddr("192.0.2.1"), GroupV4, netip.MustParseAddr("198.51.100.0")
				if fam == "v6" {
					src, dst, base = netip.MustParseAddr("fe80::1"), GroupV6, netip.MustParseAddr("2001:db8::")
				}
				a := Advert{Version: v, VRID: 200, Priority: 254, Interval: 2 * time.Second}
				for range n {
					base = base.Next()
					a.Addrs = append(a.Addrs, base)
				}
				if v == 2 {
					a.AuthType, a.AuthData = AuthPass, Password("12345678")
				}
				b, err := a.Marshal(src, dst)
				if err != nil {
					t.Fatal(err)
				}
				got, r := Parse(b, src, dst)
				if r != DropNone || !reflect.DeepEqual(got, a) {
					t.Fatalf("v%d %s n=%d: %v %+v", v, fam, n, r, got)
				}
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"keepalived-v2v4.pcap", "keepalived-v3v4.pcap", "keepalived-v3v6.pcap"} {
		for _, p := range readPcap(f, name) {
			f.Add(p.Payload, p.Src.Is6(), uint8(p.TTL))
		}
	}
	f.Add([]byte{}, false, uint8(255))
	f.Add([]byte{0x31, 1, 1, 0, 0, 1, 0, 0}, true, uint8(255))
	f.Fuzz(func(t *testing.T, b []byte, v6 bool, ttl uint8) {
		src, dst := netip.MustParseAddr("192.0.2.1"), GroupV4
		if v6 {
			src, dst = netip.MustParseAddr("fe80::f0a9:5cff:fe9a:2592"), GroupV6
		}
		d := Decoder{Routers: map[uint8]Expect{51: {Version: 2, Interval: time.Second, AuthType: AuthPass, AuthData: Password("secret1")}, 52: {Version: 3}, 53: {Version: 3}}, Drops: &DropCounters{}}
		a, r := d.Decode(Received{Payload: b, Src: src, Dst: dst, TTL: int(ttl)})
		if r == DropNone {
			// Whatever we accept must survive our own encoder and parser.
			again, err := a.Marshal(src, dst)
			if err != nil {
				t.Fatalf("accepted advert does not re-encode: %v (%+v)", err, a)
			}
			b2, r2 := Parse(again, src, dst)
			if r2 != DropNone || !reflect.DeepEqual(a, b2) {
				t.Fatalf("re-encoded advert differs: %v %+v %+v", r2, a, b2)
			}
			return
		}
		if d.Drops.Get(r) != 1 {
			t.Fatalf("drop %v not counted", r)
		}
	})
}

// TestStripIPv4Header: a batch read's datagrams lose their header (with
// options) like ReadFrom's; anything else stays whole for Decode.
func TestStripIPv4Header(t *testing.T) {
	hdr := func(ihl int, n int) []byte {
		b := make([]byte, n)
		b[0] = 0x40 | byte(ihl)
		for i := ihl * 4; i < n; i++ {
			b[i] = 0xee
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		skip int // bytes removed
	}{
		{"plain header", hdr(5, 60), 20},
		{"header with options", hdr(6, 60), 24},
		{"header only", hdr(5, 20), 20},
		{"header longer than the datagram", hdr(15, 40), 0},
		{"header length under 20", hdr(4, 40), 0},
		{"not IPv4", append([]byte{0x60}, make([]byte, 39)...), 0},
		{"short", []byte{0x45, 0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := stripIPv4Header(tc.in)
			if len(got) != len(tc.in)-tc.skip || (len(got) > 0 && &got[0] != &tc.in[tc.skip]) {
				t.Errorf("kept %d of %d bytes, want the last %d", len(got), len(tc.in), len(tc.in)-tc.skip)
			}
		})
	}
}
