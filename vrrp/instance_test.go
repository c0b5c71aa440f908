package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// specOf compiles one instance's raw configuration, as the daemon does the
// whole file.
func specOf(ic conf.VRRPInstance) conf.VRRPInstanceSpec {
	return conf.Compile(&conf.Config{VRRP: []conf.VRRPInstance{ic}}).VRRP[0]
}

func goodInstance() conf.VRRPInstance {
	return conf.VRRPInstance{
		Name: "vi", Interface: "eth0", VRID: 7, Priority: 100, Version: 3,
		AdvertInterval:   conf.Duration(time.Second),
		VirtualAddresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")},
	}
}

func TestNewInstance(t *testing.T) {
	in := NewInstance(specOf(goodInstance()), Options{})
	st := in.Status()
	if st.Name != "vi" || st.State != StateInit || st.Priority != 100 || len(st.Drops) != len(DropReasons()) {
		t.Fatalf("initial status %+v", st)
	}
	v2 := goodInstance()
	v2.Version, v2.Auth = 2, &conf.VRRPAuth{Type: "pass", Password: "12345678"}
	in = NewInstance(specOf(v2), Options{})
	if in.expect.AuthType != AuthPass || in.expect.AuthData != Password("12345678") {
		t.Fatalf("auth not set: %+v", in.expect)
	}
}

func TestNewSet(t *testing.T) {
	a, b := goodInstance(), goodInstance()
	b.Name, b.VRID = "vb", 8
	cfg := &conf.Config{
		Global:         conf.Global{NotifyTimeout: conf.Duration(3 * time.Second)},
		VRRP:           []conf.VRRPInstance{a, b},
		VRRPSyncGroups: []conf.VRRPSyncGroup{{Name: "g", Instances: []string{"vi", "vb"}}},
	}
	s := NewSet(conf.Compile(cfg), Options{})
	defer s.Groups[0].Close()
	if len(s.Instances) != 2 || len(s.Groups) != 1 || s.Instance("vb") == nil || s.Instance("vb").group != s.Groups[0] {
		t.Fatalf("set %+v", s)
	}
	if s.Instance("vi").opts.NotifyTimeout != 3*time.Second {
		t.Fatal("global notify_timeout not applied")
	}
	if s.Instance("vi").opts.links == nil || s.Instance("vi").opts.links != s.Instance("vb").opts.links {
		t.Fatal("the instances of a set do not share their link sockets")
	}
}

func TestRunMissingInterface(t *testing.T) {
	c := goodInstance()
	c.Interface = "haldir-nope0"
	in := NewInstance(specOf(c), Options{})
	err := in.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), `interface "haldir-nope0"`) || !strings.Contains(err.Error(), `"vi"`) {
		t.Fatalf("got %v, want an error naming the instance and the interface", err)
	}
	if err := in.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run: %v", err)
	}
}
