package lab

import (
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Frames captured from keepalived 2.2.7 in a lab (TestObserverDecodesKeepalived).
var (
	kaV2IPv4 = "01005e000012baffbabe2edb080045c0002800010000ff701891c0000201e00000122133c80100015401c00002c80000000000000000"
	kaV3IPv4 = "01005e000012bec55b65ae79080045c0002000010000ff701899c0000201e00000123133c8010032a13fc00002c8"
	kaV3IPv6 = "333300000012867da2c7e79486dd6c05c5b5001870fffe80000000000000847da2fffec7e794ff0200000000000000000000000000123133c8010032cae720010db8000000000000000000000200"
	kaGARP   = "ffffffffffffbaffbabe2edb08060001080006040001baffbabe2edbc00002c8ffffffffffffc00002c8"
	kaNA     = "333300000001867da2c7e79486dd6000000000203aff20010db8000000000000000000000200ff0200000000000000000000000000018800e6532000000020010db80000000000000000000002000201867da2c7e794"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corrupt returns a copy of frame with byte i replaced by v.
func corrupt(t testing.TB, frame string, i int, v byte) []byte {
	b := mustHex(t, frame)
	b[i] = v
	return b
}

func TestDecodeFrame(t *testing.T) {
	vip4 := netip.MustParseAddr("192.0.2.200")
	vip6 := netip.MustParseAddr("2001:db8::200")
	tests := []struct {
		name      string
		frame     []byte
		kind      Kind
		malformed DropReason
		check     func(t *testing.T, r Record)
	}{
		{name: "keepalived v2 ipv4 (ethernet padding)", frame: mustHex(t, kaV2IPv4), kind: KindVRRP, check: func(t *testing.T, r Record) {
			want := VRRP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255, Version: 2, Type: 1,
				VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{vip4}, ChecksumOK: true}
			if !reflect.DeepEqual(*r.VRRP, want) {
				t.Errorf("got %+v\nwant %+v", *r.VRRP, want)
			}
		}},
		{name: "keepalived v3 ipv4", frame: mustHex(t, kaV3IPv4), kind: KindVRRP, check: func(t *testing.T, r Record) {
			want := VRRP{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("224.0.0.18"), TTL: 255, Version: 3, Type: 1,
				VRID: 51, Priority: 200, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{vip4}, ChecksumOK: true}
			if !reflect.DeepEqual(*r.VRRP, want) {
				t.Errorf("got %+v\nwant %+v", *r.VRRP, want)
			}
		}},
		{name: "keepalived v3 ipv6", frame: mustHex(t, kaV3IPv6), kind: KindVRRP, check: func(t *testing.T, r Record) {
			want := VRRP{Src: netip.MustParseAddr("fe80::847d:a2ff:fec7:e794"), Dst: netip.MustParseAddr("ff02::12"), TTL: 255, Version: 3, Type: 1,
				VRID: 51, Priority: 200, Interval: 500 * time.Millisecond, Addrs: []netip.Addr{vip6}, ChecksumOK: true}
			if !reflect.DeepEqual(*r.VRRP, want) {
				t.Errorf("got %+v\nwant %+v", *r.VRRP, want)
			}
		}},
		{name: "v3 ipv4 bad checksum", frame: corrupt(t, kaV3IPv4, 14+20+2, 201), kind: KindVRRP, check: func(t *testing.T, r Record) {
			if r.VRRP.ChecksumOK || r.VRRP.Priority != 201 {
				t.Errorf("priority %d ChecksumOK %v, want 201 and a failed checksum", r.VRRP.Priority, r.VRRP.ChecksumOK)
			}
		}},
		{name: "v3 ipv6 checksum covers pseudo-header", frame: corrupt(t, kaV3IPv6, 14+8+15, 0x95), kind: KindVRRP, check: func(t *testing.T, r Record) {
			if r.VRRP.ChecksumOK {
				t.Error("checksum OK after changing the source address, want failure")
			}
		}},
		{name: "gratuitous ARP", frame: mustHex(t, kaGARP), kind: KindARP, check: func(t *testing.T, r Record) {
			a := r.ARP
			if a.Op != ARPRequest || !a.Gratuitous || a.SenderIP != vip4 || a.TargetIP != vip4 || a.SenderMAC.String() != "ba:ff:ba:be:2e:db" {
				t.Errorf("got %+v", *a)
			}
		}},
		{name: "ARP for another address is not gratuitous", frame: corrupt(t, kaGARP, 14+27, 0xc9), kind: KindARP, check: func(t *testing.T, r Record) {
			if r.ARP.Gratuitous || r.ARP.TargetIP != netip.MustParseAddr("192.0.2.201") {
				t.Errorf("got %+v, want a non-gratuitous request for 192.0.2.201", *r.ARP)
			}
		}},
		{name: "unsolicited NA", frame: mustHex(t, kaNA), kind: KindNA, check: func(t *testing.T, r Record) {
			n := r.NA
			if n.Solicited || !n.Override || n.Router || n.Target != vip6 || n.TargetMAC.String() != "86:7d:a2:c7:e7:94" || n.HopLimit != 255 {
				t.Errorf("got %+v", *n)
			}
		}},
		{name: "short ethernet", frame: make([]byte, 10), malformed: DropShortEthernet},
		{name: "ipv4 wrong version", frame: corrupt(t, kaV3IPv4, 14, 0x65), malformed: DropBadIPv4},
		{name: "ipv4 total length beyond frame", frame: corrupt(t, kaV3IPv4, 14+3, 0xff), malformed: DropBadIPv4},
		{name: "vrrp address count beyond packet", frame: corrupt(t, kaV3IPv4, 14+20+3, 2), malformed: DropShortVRRP},
		{name: "vrrp unknown version", frame: corrupt(t, kaV3IPv4, 14+20, 0x41), malformed: DropBadVRRP},
		{name: "vrrp v2 over ipv6", frame: corrupt(t, kaV3IPv6, 14+40, 0x21), malformed: DropBadVRRP},
		{name: "ipv6 payload length beyond frame", frame: corrupt(t, kaV3IPv6, 14+4, 0x10), malformed: DropBadIPv6},
		{name: "truncated ARP", frame: mustHex(t, kaGARP)[:20], malformed: DropBadARP},
		{name: "truncated NA", frame: append(corrupt(t, kaNA, 14+5, 8)[:14+40], mustHex(t, kaNA)[14+40:14+48]...), malformed: DropBadNDP},
		{name: "ipv4 later fragment is not decoded", frame: corrupt(t, kaV3IPv4, 14+7, 1), kind: KindOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := DecodeFrame(tc.frame)
			if r.Malformed != tc.malformed {
				t.Fatalf("Malformed = %q, want %q", r.Malformed, tc.malformed)
			}
			if tc.malformed != "" {
				if r.Kind != KindOther || r.VRRP != nil || r.ARP != nil || r.NA != nil {
					t.Fatalf("malformed frame decoded as %v", r.Kind)
				}
				return
			}
			if r.Kind != tc.kind {
				t.Fatalf("Kind = %v, want %v", r.Kind, tc.kind)
			}
			if r.Len != len(tc.frame) {
				t.Errorf("Len = %d, want %d", r.Len, len(tc.frame))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{kaV2IPv4, kaV3IPv4, kaV3IPv6, kaGARP, kaNA} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := DecodeFrame(b)
		if r.Len != len(b) {
			t.Fatalf("Len %d for %d bytes", r.Len, len(b))
		}
		switch r.Kind {
		case KindVRRP:
			if r.VRRP == nil || r.Malformed != "" {
				t.Fatal("VRRP kind without a clean VRRP decode")
			}
			if r.VRRP.Src.Is4() != r.VRRP.Dst.Is4() {
				t.Fatal("VRRP mixes address families")
			}
			for _, a := range r.VRRP.Addrs {
				if a.Is4() != r.VRRP.Src.Is4() {
					t.Fatalf("VRRP address %v of the wrong family", a)
				}
			}
		case KindARP:
			if r.ARP == nil || r.Malformed != "" {
				t.Fatal("ARP kind without a clean ARP decode")
			}
		case KindNA:
			if r.NA == nil || r.Malformed != "" {
				t.Fatal("NA kind without a clean NA decode")
			}
		case KindOther:
			if r.VRRP != nil || r.ARP != nil || r.NA != nil {
				t.Fatal("KindOther with a decoded payload")
			}
		}
	})
}

func TestParseStatStart(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{"plain", "123 (sleep) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100", 98765, false},
		{"comm with spaces and parens", "7 (a) (b c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", 42, false},
		{"zombie", "9 (x) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", 0, true},
		{"truncated", "9 (x) S 1 9", 0, true},
		{"no comm", "garbage", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatStart([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseStatStart = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRecordString(t *testing.T) {
	tests := []struct {
		frame string
		want  string
	}{
		{kaV3IPv4, "vrrp v3 192.0.2.1 > 224.0.0.18 vrid 51 prio 200 int 500ms addrs [192.0.2.200]"},
		{kaGARP, "arp request 192.0.2.200 (ba:ff:ba:be:2e:db) > 192.0.2.200 (ff:ff:ff:ff:ff:ff) gratuitous"},
		{kaNA, "na 2001:db8::200 > ff02::1 target 2001:db8::200 (86:7d:a2:c7:e7:94) router=false solicited=false override=true"},
	}
	for _, tc := range tests {
		got := DecodeFrame(mustHex(t, tc.frame)).String()
		if !strings.Contains(got, tc.want) {
			t.Errorf("String() = %q, want it to contain %q", got, tc.want)
		}
	}
	if got := DecodeFrame(make([]byte, 5)).String(); !strings.Contains(got, "malformed: short-ethernet") {
		t.Errorf("String() of a short frame = %q, want the drop reason", got)
	}
}

func FuzzParseProcFiles(f *testing.F) {
	f.Add([]byte("123 (sleep) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100"))
	f.Add([]byte("pid=42 start=98765 name=\"x\"\n"))
	f.Add([]byte("7 (a) (b c) R 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if start, err := parseStatStart(b); err == nil && start == 0 && !strings.Contains(string(b), " 0") {
			t.Fatalf("start time 0 parsed from %q", b)
		}
		if r, err := parseOwner(b); err == nil && !strings.HasPrefix(string(b), "pid=") {
			t.Fatalf("owner %+v parsed from %q", r, b)
		}
	})
}
