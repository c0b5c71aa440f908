package inetsum

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3's example: the sum of these words is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != ^uint16(0xddf2) {
		t.Fatalf("Checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// An odd length pads with a zero byte.
	if got, want := Checksum([]byte{0x12}, 0), ^uint16(0x1200); got != want {
		t.Fatalf("odd length: %#04x, want %#04x", got, want)
	}
}

func TestFilledInChecksumVerifiesToZero(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"192.0.2.11", "224.0.0.18"},
		{"fe80::1", "ff02::12"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
			msg := []byte{0x31, 0x33, 0x96, 0x01, 0x00, 0x64, 0, 0, 0xc0, 0x00, 0x02, 0x0a, 0xab}
			init := PseudoHeader(src, dst, len(msg), 112)
			binary.BigEndian.PutUint16(msg[6:], Checksum(msg, init))
			if got := Checksum(msg, init); got != 0 {
				t.Fatalf("verify = %#04x, want 0", got)
			}
			msg[0] ^= 1
			if Checksum(msg, init) == 0 {
				t.Fatal("a flipped bit still verifies")
			}
		})
	}
}
