package vrrp

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestSkipVRIDsFilter runs the socket filter in x/net/bpf's interpreter
// on packets as each family's raw socket hands them to it: IPv4 with its
// header (of any length), IPv6 without.
func TestSkipVRIDsFilter(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.11"), GroupV4
	payload := func(vrid uint8) []byte {
		a := Advert{Version: 3, VRID: vrid, Priority: 100, Interval: 100e6, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
		b, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ipv4 := func(options int, p []byte) []byte {
		h := make([]byte, 20+options)
		h[0] = 0x40 | byte((20+options)/4)
		return append(h, p...)
	}
	skip := []uint8{2, 3, 200}
	for _, tc := range []struct {
		name   string
		ipHdr  bool
		pkt    []byte
		accept bool
	}{
		{"v4 own", true, ipv4(0, payload(1)), true},
		{"v4 sibling", true, ipv4(0, payload(2)), false},
		{"v4 last sibling", true, ipv4(0, payload(200)), false},
		{"v4 sibling after IP options", true, ipv4(8, payload(3)), false},
		{"v4 unknown VRID, for Decode to count", true, ipv4(8, payload(9)), true},
		{"v4 too short to carry a VRID, for Decode to count", true, ipv4(0, []byte{0x31}), true},
		{"v6 own", false, payload(1), true},
		{"v6 sibling", false, payload(3), false},
		{"v6 unknown", false, payload(4), true},
		{"v6 too short", false, []byte{0x31}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := skipVRIDsFilter(skip, tc.ipHdr)
			if err != nil {
				t.Fatal(err)
			}
			prog, ok := bpf.Disassemble(raw)
			if !ok {
				t.Fatalf("filter does not disassemble: %v", prog)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tc.accept {
				t.Errorf("accepted %v, want %v", got, tc.accept)
			}
		})
	}
	t.Run("no siblings", func(t *testing.T) {
		raw, err := skipVRIDsFilter(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		prog, _ := bpf.Disassemble(raw)
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := vm.Run(ipv4(0, payload(2))); n == 0 || err != nil {
			t.Errorf("without siblings an advert is dropped (%d, %v)", n, err)
		}
	})
}
