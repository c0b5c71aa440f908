package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

func goodInstance() conf.VRRPInstance {
	return conf.VRRPInstance{
		Name: "vi", Interface: "eth0", VRID: 7, Priority: 100, Version: 3,
		AdvertInterval:   conf.Duration(time.Second),
		VirtualAddresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")},
	}
}

func TestNewInstance(t *testing.T) {
	in, err := NewInstance(goodInstance(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := in.Status()
	if st.Name != "vi" || st.State != StateInit || st.Priority != 100 || len(st.Drops) != len(DropReasons()) {
		t.Fatalf("initial status %+v", st)
	}
	v2 := goodInstance()
	v2.Version, v2.Auth = 2, &conf.VRRPAuth{Type: "pass", Password: "12345678"}
	in, err = NewInstance(v2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if in.expect.AuthType != AuthPass || in.expect.AuthData != Password("12345678") {
		t.Fatalf("auth not set: %+v", in.expect)
	}
}

func TestNewInstanceErrors(t *testing.T) {
	cases := map[string]struct {
		f    func(*conf.VRRPInstance)
		want string
	}{
		"no interface": {func(c *conf.VRRPInstance) { c.Interface = "" }, "no interface"},
		"vrid 0":       {func(c *conf.VRRPInstance) { c.VRID = 0 }, "vrid 0"},
		"vrid 256":     {func(c *conf.VRRPInstance) { c.VRID = 256 }, "vrid 256"},
		"no vips":      {func(c *conf.VRRPInstance) { c.VirtualAddresses = nil }, "no virtual_addresses"},
		"mixed families": {func(c *conf.VRRPInstance) {
			c.VirtualAddresses = append(c.VirtualAddresses, netip.MustParsePrefix("2001:db8::1/64"))
		}, "virtual_addresses[1]"},
		"v2 ipv6": {func(c *conf.VRRPInstance) {
			c.Version = 2
			c.VirtualAddresses = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")}
		}, "IPv4 only"},
		"peer family": {func(c *conf.VRRPInstance) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("2001:db8::2")} }, "unicast_peers[0]"},
		"long password": {func(c *conf.VRRPInstance) {
			c.Version = 2
			c.Auth = &conf.VRRPAuth{Type: "pass", Password: "123456789"}
		}, "longer than 8"},
		"auth type":      {func(c *conf.VRRPInstance) { c.Version = 2; c.Auth = &conf.VRRPAuth{Type: "ah"} }, `auth type "ah"`},
		"priority":       {func(c *conf.VRRPInstance) { c.Priority = 0 }, "priority 0"},
		"version":        {func(c *conf.VRRPInstance) { c.Version = 1 }, "version 1"},
		"v2 subsecond":   {func(c *conf.VRRPInstance) { c.Version = 2; c.AdvertInterval = conf.Duration(100 * time.Millisecond) }, "whole seconds"},
		"v3 too long":    {func(c *conf.VRRPInstance) { c.AdvertInterval = conf.Duration(time.Minute) }, "out of range"},
		"zero interval":  {func(c *conf.VRRPInstance) { c.AdvertInterval = 0 }, "interval"},
		"negative delay": {func(c *conf.VRRPInstance) { c.PreemptDelay = -1 }, "preempt delay"},
		"too many vips":  {func(c *conf.VRRPInstance) { c.VirtualAddresses = manyPrefixes(256) }, "1..255 addresses"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := goodInstance()
			c.f(&cfg)
			_, err := NewInstance(cfg, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"vi"`) {
				t.Fatalf("error %q does not name %q and the instance", err, c.want)
			}
		})
	}
}

func manyPrefixes(n int) []netip.Prefix {
	a := netip.MustParseAddr("198.51.100.0")
	out := make([]netip.Prefix, n)
	for i := range out {
		a = a.Next()
		out[i] = netip.PrefixFrom(a, 32)
	}
	return out
}

func TestNewSet(t *testing.T) {
	a, b := goodInstance(), goodInstance()
	b.Name, b.VRID = "vb", 8
	cfg := &conf.Config{
		Global:         conf.Global{NotifyTimeout: conf.Duration(3 * time.Second)},
		VRRP:           []conf.VRRPInstance{a, b},
		VRRPSyncGroups: []conf.VRRPSyncGroup{{Name: "g", Instances: []string{"vi", "vb"}}},
	}
	s, err := NewSet(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Groups[0].Close()
	if len(s.Instances) != 2 || len(s.Groups) != 1 || s.Instance("vb") == nil || s.Instance("vb").group != s.Groups[0] {
		t.Fatalf("set %+v", s)
	}
	if s.Instance("vi").opts.NotifyTimeout != 3*time.Second {
		t.Fatal("global notify_timeout not applied")
	}
	if !(*s.Instance("vi").siblings.Load())[8] || !(*s.Instance("vb").siblings.Load())[7] {
		t.Fatal("sibling VRIDs on the same link not known")
	}
	same := goodInstance()
	same.Name = "vc"
	if _, err := NewSet(&conf.Config{VRRP: []conf.VRRPInstance{a, same}}, Options{}); err == nil || !strings.Contains(err.Error(), "both use vrid 7") {
		t.Fatalf("vrid clash not reported: %v", err)
	}

	bad := &conf.Config{
		VRRP:           []conf.VRRPInstance{a, a},
		VRRPSyncGroups: []conf.VRRPSyncGroup{{Name: "g", Instances: []string{"vi", "nope"}}},
	}
	if _, err := NewSet(bad, Options{}); err == nil || !strings.Contains(err.Error(), `duplicate instance name "vi"`) {
		t.Fatalf("duplicate not reported: %v", err)
	}
	bad.VRRP = []conf.VRRPInstance{a}
	if _, err := NewSet(bad, Options{}); err == nil || !strings.Contains(err.Error(), `instances[1]: no vrrp instance "nope"`) {
		t.Fatalf("unknown member not reported: %v", err)
	}
	bad.VRRPSyncGroups = append(bad.VRRPSyncGroups[:0], conf.VRRPSyncGroup{Name: "g1", Instances: []string{"vi"}}, conf.VRRPSyncGroup{Name: "g2", Instances: []string{"vi"}})
	if _, err := NewSet(bad, Options{}); err == nil || !strings.Contains(err.Error(), `already in group "g1"`) {
		t.Fatalf("double membership not reported: %v", err)
	}
}

func TestRunMissingInterface(t *testing.T) {
	c := goodInstance()
	c.Interface = "haldir-nope0"
	in, err := NewInstance(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = in.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), `interface "haldir-nope0"`) || !strings.Contains(err.Error(), `"vi"`) {
		t.Fatalf("got %v, want an error naming the instance and the interface", err)
	}
	if err := in.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run: %v", err)
	}
}
