package vrrp

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/conf"
)

// reloadBase has a lone instance "a" and a sync group "g" of "b" and "c".
func reloadBase() *conf.Config {
	mk := func(name string, vrid int) conf.VRRPInstance {
		ic := goodInstance()
		ic.Name, ic.VRID = name, vrid
		ic.VirtualAddresses = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(vrid)}), 24)}
		return ic
	}
	return &conf.Config{
		VRRP:           []conf.VRRPInstance{mk("a", 1), mk("b", 2), mk("c", 3)},
		VRRPSyncGroups: []conf.VRRPSyncGroup{{Name: "g", Instances: []string{"b", "c"}}},
	}
}

func TestPlanReload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*conf.Config)
		want   string // name=change per instance, in plan order
		why    map[string]string
	}{
		{"nothing", func(*conf.Config) {}, "a=keep b=keep c=keep", nil},
		{"priority in place", func(c *conf.Config) { c.VRRP[0].Priority = 50 }, "a=update b=keep c=keep",
			map[string]string{"a": "changed: priority"}},
		{"preempt and delay in place", func(c *conf.Config) {
			c.VRRP[0].Preempt, c.VRRP[0].PreemptDelay = true, conf.Duration(time.Second)
		}, "a=update b=keep c=keep", map[string]string{"a": "changed: preempt, preempt_delay"}},
		{"to the owner's 255 restarts", func(c *conf.Config) { c.VRRP[0].Priority = 255 }, "a=restart b=keep c=keep",
			map[string]string{"a": "priority changed to or from 255 (address owner)"}},
		{"addresses in place", func(c *conf.Config) {
			c.VRRP[0].VirtualAddresses = append(c.VRRP[0].VirtualAddresses, netip.MustParsePrefix("192.0.2.9/24"))
			c.VRRP[0].Priority = 90
		}, "a=update b=keep c=keep", map[string]string{"a": "changed: priority, virtual_addresses"}},
		{"addresses to another family restart", func(c *conf.Config) {
			c.VRRP[0].VirtualAddresses = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64")}
		}, "a=restart b=keep c=keep", map[string]string{"a": "virtual_addresses changed address family"}},
		{"interface and vrid restart", func(c *conf.Config) { c.VRRP[0].Interface, c.VRRP[0].VRID = "eth1", 9 },
			"a=restart b=keep c=keep", map[string]string{"a": "changed: interface, vrid"}},
		{"a group member's priority in place", func(c *conf.Config) { c.VRRP[1].Priority = 50 }, "a=keep b=update c=keep", nil},
		{"a group member restarts the group", func(c *conf.Config) { c.VRRP[2].AdvertInterval = conf.Duration(time.Second / 2) },
			"a=keep b=restart c=restart", map[string]string{"b": `sync group "g" member "c": restart`, "c": "changed: advert_interval"}},
		{"group notify restarts its members", func(c *conf.Config) { c.VRRPSyncGroups[0].NotifyMaster = []string{"/bin/true"} },
			"a=keep b=restart c=restart", map[string]string{"b": "its vrrp_sync_group changed"}},
		{"removed member", func(c *conf.Config) {
			c.VRRP = c.VRRP[:2]
			c.VRRPSyncGroups[0].Instances = []string{"b"}
		}, "a=keep b=restart c=remove", map[string]string{"c": "no longer configured"}},
		{"added and removed", func(c *conf.Config) {
			d := c.VRRP[0]
			d.Name, d.VRID = "d", 4
			c.VRRP = append(c.VRRP[1:], d)
		}, "a=remove b=keep c=keep d=add", nil},
		{"added into the group", func(c *conf.Config) {
			d := c.VRRP[0]
			d.Name, d.VRID = "d", 4
			c.VRRP = append(c.VRRP, d)
			c.VRRPSyncGroups[0].Instances = append(c.VRRPSyncGroups[0].Instances, "d")
		}, "a=keep b=restart c=restart d=add", nil},
		{"a lone instance joins a group", func(c *conf.Config) {
			c.VRRPSyncGroups[0].Instances = append(c.VRRPSyncGroups[0].Instances, "a")
		}, "a=restart b=restart c=restart", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cfg := reloadBase(), reloadBase()
			tc.change(cfg)
			plan := PlanReload(conf.Compile(old), conf.Compile(cfg))
			var got []string
			for _, p := range plan {
				got = append(got, p.Name+"="+p.Change.String())
				if p.Change != Keep && p.Why == "" {
					t.Errorf("%s: %s without a reason", p.Name, p.Change)
				}
				if want, ok := tc.why[p.Name]; ok && p.Why != want {
					t.Errorf("%s: why %q, want %q", p.Name, p.Why, want)
				}
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Fatalf("plan %s, want %s", s, tc.want)
			}
		})
	}
}

func TestInstanceReconfigure(t *testing.T) {
	in := NewInstance(specOf(goodInstance()), Options{})
	soft := goodInstance()
	soft.Priority, soft.Preempt = 42, true
	if err := in.Reconfigure(specOf(soft)); err != nil {
		t.Fatal(err)
	}
	if st := in.Status(); st.BasePriority != 42 {
		t.Fatalf("base priority %d after Reconfigure, want 42", st.BasePriority)
	}
	later := soft
	later.Priority = 43
	if err := in.Reconfigure(specOf(later)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.reconf:
		// One kick for both calls; the latest configuration wins.
		if in.pending == nil || !reflect.DeepEqual(*in.pending, specOf(later)) {
			t.Fatalf("pending %+v, want %+v", in.pending, later)
		}
	default:
		t.Fatal("the instance was not kicked")
	}
	hard := goodInstance()
	hard.VRID = 9
	if err := in.Reconfigure(specOf(hard)); err == nil || !strings.Contains(err.Error(), "needs a restart: changed: vrid") {
		t.Fatalf("changing the vrid in place: err %v", err)
	}
	other := goodInstance()
	other.Name = "x"
	if err := in.Reconfigure(specOf(other)); err == nil {
		t.Fatal("took another instance's configuration")
	}
}

// TestDifferingNamesFileKeys changes each setting of an instance spec in
// turn and checks that a reload names it by its key in the file (a
// [[vrrp]] key), so an operator reads back what they wrote.
func TestDifferingNamesFileKeys(t *testing.T) {
	keys := map[string]bool{}
	ft := reflect.TypeOf(conf.VRRPInstance{})
	for i := range ft.NumField() {
		keys[strings.Split(ft.Field(i).Tag.Get("toml"), ",")[0]] = true
	}
	derived := map[string]bool{"family": true, "sync_group": true} // computed, no key of their own
	var walk func(path []int, t reflect.Type)
	walk = func(path []int, st reflect.Type) {
		for i := range st.NumField() {
			f := st.Field(i)
			p := append(slices.Clone(path), i)
			if f.Tag.Get("key") == ",inline" {
				walk(p, f.Type)
				continue
			}
			var a, b conf.VRRPInstanceSpec
			reflect.ValueOf(&b).Elem().FieldByIndex(p).Set(nonZero(t, f.Type))
			got := differing(a, b)
			if len(got) != 1 {
				t.Errorf("%s changed: differing says %q, want one name", f.Name, got)
				continue
			}
			if !keys[got[0]] && !derived[got[0]] {
				t.Errorf("%s changed: differing names %q, not a key of [[vrrp]]", f.Name, got[0])
			}
		}
	}
	walk(nil, reflect.TypeOf(conf.VRRPInstanceSpec{}))
	if got := differing(conf.VRRPInstanceSpec{}, conf.VRRPInstanceSpec{Notify: conf.VRRPNotifySpec{Fault: []string{"/x"}}}); !slices.Equal(got, []string{"notify_fault"}) {
		t.Errorf("a changed notify_fault is named %q", got)
	}
}

// nonZero returns a value of type t that is not its zero value.
func nonZero(tb testing.TB, t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(t, 1, 1))
	case reflect.Struct:
		if t == reflect.TypeOf(netip.Addr{}) {
			v.Set(reflect.ValueOf(netip.MustParseAddr("192.0.2.1")))
			break
		}
		v.Field(0).Set(nonZero(tb, t.Field(0).Type))
	default:
		tb.Fatalf("nonZero: no value for %s", t)
	}
	return v
}
