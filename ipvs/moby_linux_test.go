package ipvs

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestNetmaskEncoding(t *testing.T) {
	for n := 0; n <= 32; n++ {
		if got := decodeNetmask(false, encodeNetmask(false, n)); got != n {
			t.Errorf("inet /%d round-trips to /%d", n, got)
		}
	}
	// On the wire moby writes the value in host order; for inet the bytes
	// must be the network-order mask the kernel expects.
	v := encodeNetmask(false, 24)
	var b [4]byte
	for i := range b {
		b[i] = byte(v >> (8 * i)) // little-endian hosts (the only ones CI runs)
	}
	if b != [4]byte{255, 255, 255, 0} {
		t.Errorf("inet /24 encodes as bytes %v", b)
	}
	for _, n := range []int{1, 64, 128} {
		if encodeNetmask(true, n) != uint32(n) || decodeNetmask(true, uint32(n)) != n {
			t.Errorf("inet6 /%d not a plain prefix length", n)
		}
	}
}

func TestMobyConversionRoundTrip(t *testing.T) {
	svcs := []Service{
		{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}, ServiceSettings: ServiceSettings{Scheduler: "wrr", Flags: FlagPersistent, Timeout: 300, NetmaskBits: 24}},
		{Key: ServiceKey{Protocol: SCTP, Addr: netip.MustParseAddrPort("[2001:db8::1]:443")}, ServiceSettings: ServiceSettings{Scheduler: "mh", Flags: FlagSched1 | FlagSched2, NetmaskBits: 64}},
		{Key: ServiceKey{Fwmark: 42, V6: true}, ServiceSettings: ServiceSettings{Scheduler: "sh", Flags: FlagSched2, NetmaskBits: 128}},
		{Key: ServiceKey{Fwmark: 43}, ServiceSettings: ServiceSettings{Scheduler: "rr", Flags: FlagOnePacket, NetmaskBits: 32}},
	}
	for _, s := range svcs {
		m := toMobyService(s)
		m.Flags |= FlagHashed // as the kernel reports it
		got, err := fromMobyService(m)
		if err != nil || got.Service != s {
			t.Errorf("service %s: got %+v, %v", s.Key, got, err)
		}
	}
}

// TestNoIPVSKernelError runs only where the kernel lacks IPVS (like the
// development hosts): the error must say what is missing and how to fix it.
func TestNoIPVSKernelError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to try loading ip_vs")
	}
	if _, err := netlink.GenlFamilyGet("IPVS"); err == nil {
		t.Skip("this kernel has IPVS; the VM tests cover Client")
	}
	_, err := Open("")
	if err == nil {
		t.Skip("ip_vs could be loaded here; nothing to assert about its absence")
	}
	for _, want := range []string{"the kernel has no IPVS", "modprobe ip_vs", "CONFIG_IP_VS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
