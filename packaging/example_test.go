package packaging

import (
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// exampleNetwork reads the "Network used in this example" lines of the
// example's header, one per interface:
//
//	#   eth0  client-facing: A = 192.0.2.2, 2001:db8::2; B = 192.0.2.3, 2001:db8::3
//
// into interface -> director ("A", "B") -> its own addresses there.
func exampleNetwork(t *testing.T, text string) map[string]map[string][]netip.Addr {
	t.Helper()
	re := regexp.MustCompile(`(?m)^#\s+(\S+)\s+[^:\n]*:\s*A = ([^;\n]+); B = ([^\n]+)$`)
	nets := map[string]map[string][]netip.Addr{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		nets[m[1]] = map[string][]netip.Addr{}
		for i, dir := range []string{"A", "B"} {
			for _, s := range strings.Split(m[2+i], ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(s))
				if err != nil {
					t.Fatalf("example header, %s of %s: %v", dir, m[1], err)
				}
				nets[m[1]][dir] = append(nets[m[1]][dir], a)
			}
		}
	}
	if len(nets) == 0 {
		t.Fatal("the example's header documents no interface addresses (`#   ethN  what: A = addr, ...; B = addr, ...`)")
	}
	return nets
}

// directorB turns the example (director A's file) into director B's by
// applying every `# ON B: value` comment to the value on its line.
func directorB(t *testing.T, text string) string {
	t.Helper()
	line := regexp.MustCompile(`^(\s*[\w.]+\s*=\s*)(.*?)\s*#\s*ON B:\s*(.*)$`)
	lines := strings.Split(text, "\n")
	n := 0
	for i, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		lines[i] = m[1] + leadingValue(m[3])
		n++
	}
	if n == 0 {
		t.Fatal(`the example has no "ON B:" lines`)
	}
	return strings.Join(lines, "\n")
}

// leadingValue is the TOML value at the start of s: a string, an array of
// strings, or a bare word; prose after it ("100 (the higher ...)") is cut.
func leadingValue(s string) string {
	switch {
	case strings.HasPrefix(s, `"`):
		if i := strings.Index(s[1:], `"`); i >= 0 {
			return s[:i+2]
		}
	case strings.HasPrefix(s, "["):
		if i := strings.Index(s, "]"); i >= 0 {
			return s[:i+1]
		}
	}
	return strings.Fields(s)[0]
}

// TestExampleUnicastMatchesInterfaces checks the example for the mistake
// it shipped with (issue 11, defect 4): VI_FRONT on eth0 advertised from
// eth1's address, so its adverts left through the default route. For A's
// file and for the B file its "ON B:" comments make, every instance's
// unicast_source must be that director's own address on the instance's
// interface and its peers the other director's addresses there.
func TestExampleUnicastMatchesInterfaces(t *testing.T) {
	raw, err := os.ReadFile("haldir.toml")
	if err != nil {
		t.Fatal(err)
	}
	nets := exampleNetwork(t, string(raw))
	files := map[string]string{"A": string(raw), "B": directorB(t, string(raw))}
	for self, other := range map[string]string{"A": "B", "B": "A"} {
		t.Run("director "+self, func(t *testing.T) {
			cfg, err := conf.Parse([]byte(files[self]), "haldir.toml ("+self+")")
			if err != nil {
				t.Fatalf("director %s's file is invalid: %v", self, err)
			}
			unicast := 0
			sourceOn := map[netip.Addr]string{}
			for _, in := range cfg.VRRP {
				if !in.UnicastSource.IsValid() {
					continue
				}
				unicast++
				own, ok := nets[in.Interface]
				if !ok {
					t.Errorf("%s: interface %s is not in the example's network description", in.Name, in.Interface)
					continue
				}
				if !slices.Contains(own[self], in.UnicastSource) {
					t.Errorf("%s on %s: unicast_source %s is not director %s's address on %s (%s)",
						in.Name, in.Interface, in.UnicastSource, self, in.Interface, own[self])
				}
				for _, p := range in.UnicastPeers {
					if !slices.Contains(own[other], p) {
						t.Errorf("%s on %s: unicast peer %s is not director %s's address on %s (%s)",
							in.Name, in.Interface, p, other, in.Interface, own[other])
					}
				}
				// Instances on different interfaces never share a source.
				if ifc, dup := sourceOn[in.UnicastSource]; dup && ifc != in.Interface {
					t.Errorf("%s: unicast_source %s is used on %s and %s", in.Name, in.UnicastSource, ifc, in.Interface)
				}
				sourceOn[in.UnicastSource] = in.Interface
			}
			if unicast < 2 {
				t.Errorf("the example shows unicast on %d instances; it is meant to show it on the front and the back", unicast)
			}
		})
	}
}

// TestConfigsParse keeps both shipped files valid without an RPM: the
// example (documentation) and the minimal live configuration, which must
// configure nothing that acts on the host.
func TestConfigsParse(t *testing.T) {
	example, err := conf.Load("haldir.toml")
	if err != nil {
		t.Fatalf("example: %v", err)
	}
	if len(example.VRRP) == 0 || len(example.VirtualServers) == 0 {
		t.Errorf("the example shows %d VRRP instances and %d virtual servers; it is meant to show both",
			len(example.VRRP), len(example.VirtualServers))
	}
	minimal, err := conf.Load("haldir.minimal.toml")
	if err != nil {
		t.Fatalf("minimal: %v", err)
	}
	assertHarmless(t, "haldir.minimal.toml", minimal)
}

// assertHarmless fails unless cfg starts no component that acts on the
// host or the network: no VRRP, no IPVS, no kernel sync, no gossip.
func assertHarmless(t *testing.T, name string, cfg *conf.Config) {
	t.Helper()
	if len(cfg.VRRP) != 0 || len(cfg.VRRPSyncGroups) != 0 {
		t.Errorf("%s configures VRRP (%d instances, %d sync groups)", name, len(cfg.VRRP), len(cfg.VRRPSyncGroups))
	}
	if len(cfg.VirtualServers) != 0 {
		t.Errorf("%s configures %d virtual servers", name, len(cfg.VirtualServers))
	}
	if cfg.Sync != nil {
		t.Errorf("%s configures the IPVS sync daemon", name)
	}
	if cfg.Cluster != nil {
		t.Errorf("%s configures cluster gossip", name)
	}
}
