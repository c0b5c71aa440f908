package vrrp

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestVirtualMAC(t *testing.T) {
	for _, tc := range []struct {
		vrid uint8
		ipv6 bool
		want string
	}{
		{1, false, "00:00:5e:00:01:01"},
		{42, false, "00:00:5e:00:01:2a"},
		{255, false, "00:00:5e:00:01:ff"},
		{42, true, "00:00:5e:00:02:2a"},
		{255, true, "00:00:5e:00:02:ff"},
	} {
		if got := VirtualMAC(tc.vrid, tc.ipv6).String(); got != tc.want {
			t.Errorf("VirtualMAC(%d, ipv6=%v) = %s, want %s", tc.vrid, tc.ipv6, got, tc.want)
		}
	}
}

// TestAdoptable covers every reason an existing interface is not taken
// over as the virtual MAC's macvlan.
func TestAdoptable(t *testing.T) {
	base := &net.Interface{Index: 3, Name: "eth0"}
	mac := VirtualMAC(42, false)
	macvlan := func(parent int, hw net.HardwareAddr, mode netlink.MacvlanMode) netlink.Link {
		return &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "vrrp.42", ParentIndex: parent, HardwareAddr: hw}, Mode: mode}
	}
	for _, tc := range []struct {
		name string
		link netlink.Link
		want string // "" = adoptable
	}{
		{"ours", macvlan(3, mac, netlink.MACVLAN_MODE_BRIDGE), ""},
		{"not a macvlan", &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "vrrp.42", HardwareAddr: mac}}, "is a bridge, not a macvlan"},
		{"other parent", macvlan(4, mac, netlink.MACVLAN_MODE_BRIDGE), "on interface index 4, not on eth0 (index 3)"},
		{"other MAC", macvlan(3, VirtualMAC(43, false), netlink.MACVLAN_MODE_BRIDGE), "has MAC 00:00:5e:00:01:2b, not the virtual MAC 00:00:5e:00:01:2a"},
		{"IPv6 MAC for IPv4", macvlan(3, VirtualMAC(42, true), netlink.MACVLAN_MODE_BRIDGE), "not the virtual MAC"},
		{"keepalived's private mode", macvlan(3, mac, netlink.MACVLAN_MODE_PRIVATE), "in mode private, not bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := adoptable(tc.link, base, mac)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
