package director

import (
	"errors"
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
		{Key: ServiceKey{Protocol: TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}, Scheduler: "wrr", Flags: FlagPersistent, Timeout: 300, NetmaskBits: 24},
		{Key: ServiceKey{Protocol: SCTP, Addr: netip.MustParseAddrPort("[2001:db8::1]:443")}, Scheduler: "mh", Flags: FlagSched1 | FlagSched2, NetmaskBits: 64},
		{Key: ServiceKey{Fwmark: 42, V6: true}, Scheduler: "sh", Flags: FlagSched2, NetmaskBits: 128},
		{Key: ServiceKey{Fwmark: 43}, Scheduler: "rr", Flags: FlagOnePacket, NetmaskBits: 32},
	}
	for _, s := range svcs {
		m := toMobyService(s)
		m.Flags |= FlagHashed // as the kernel reports it
		got, err := fromMobyService(m)
		if err != nil || got != s {
			t.Errorf("service %s: got %+v, %v", s.Key, got, err)
		}
	}
	key := svcs[0].Key
	for _, d := range []Destination{
		{Addr: netip.MustParseAddrPort("198.51.100.1:8080"), Weight: 7, Forwarding: ForwardNAT, UpperThreshold: 10, LowerThreshold: 5},
		{Addr: netip.MustParseAddrPort("198.51.100.2:80"), Weight: 0, Forwarding: ForwardDR},
		{Addr: netip.MustParseAddrPort("198.51.100.3:80"), Weight: 1, Forwarding: ForwardTunnel},
	} {
		m, err := toMobyDest(key, d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fromMobyDest(m)
		if err != nil || got != d {
			t.Errorf("dest %s: got %+v, %v", d.Addr, got, err)
		}
	}
}

func TestMobyUnsupportedFeatures(t *testing.T) {
	key := ServiceKey{Protocol: TCP, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	cases := []struct {
		d    Destination
		want string
	}{
		{Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), Forwarding: ForwardTunnel, TunnelType: TunnelGUE, TunnelPort: 6080}, "tunnel type gue"},
		{Destination{Addr: netip.MustParseAddrPort("198.51.100.1:80"), Forwarding: ForwardTunnel, TunnelType: TunnelGRE, TunnelFlags: TunnelCsum}, "tunnel type gre"},
		{Destination{Addr: netip.MustParseAddrPort("[2001:db8::1]:80"), Forwarding: ForwardTunnel}, "mixed address families"},
	}
	for _, tc := range cases {
		_, err := toMobyDest(key, tc.d)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "moby/ipvs") {
			t.Errorf("%+v: err = %v, want ErrUnsupported naming %q", tc.d, err, tc.want)
		}
		if errReason(err) != "unsupported" {
			t.Errorf("counted as %q", errReason(err))
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
		t.Skip("this kernel has IPVS; the VM test covers MobyKernel")
	}
	_, err := NewMobyKernel("")
	if err == nil {
		t.Skip("ip_vs could be loaded here; nothing to assert about its absence")
	}
	for _, want := range []string{"the kernel has no IPVS", "modprobe ip_vs", "CONFIG_IP_VS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
