package pair

import (
	"net/netip"
	"strings"
	"testing"
)

// connTable is /proc/net/ip_vs_conn as the 6.1 kernel prints it.
const connTable = `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0000264 A9A4 C0000201 0050 0A000115 0050 ESTABLISHED     897
TCP C0000264 A9A6 C0000201 0050 0A000116 0050 TIME_WAIT       118
`

func TestConnsEntry(t *testing.T) {
	c := Conns(connTable)
	for _, tc := range []struct {
		name   string
		client string
		want   string
	}{
		{"established", "192.0.2.100:43428", "TCP C0000264 A9A4 C0000201 0050 0A000115 0050 ESTABLISHED 897"},
		{"time wait", "192.0.2.100:43430", "TCP C0000264 A9A6 C0000201 0050 0A000116 0050 TIME_WAIT 118"},
		{"other port", "192.0.2.100:43429", ""},
		{"other client", "192.0.2.101:43428", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := netip.MustParseAddrPort(tc.client)
			if got := c.Entry(id); got != tc.want {
				t.Errorf("Entry(%v) = %q, want %q", id, got, tc.want)
			}
			if got := c.Holds(id); got != (tc.want != "") {
				t.Errorf("Holds(%v) = %v", id, got)
			}
		})
	}
}

func TestConfigWeights(t *testing.T) {
	c := Config{Name: "director1", Priority: 150, Dir: "/run/x", AdvertInterval: "100ms", CheckInterval: "300ms", CheckTimeout: "250ms",
		Weights: map[string]int{"real3": 4}}
	text := c.TOML()
	for _, want := range []string{`router_id = "director1"`, "priority = 150", `metrics_listen = ""`,
		"name = \"real3\"\naddress = \"10.0.1.23\"\nweight = 4\n", "name = \"real2\"\naddress = \"10.0.1.22\"\n\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("configuration lacks %q:\n%s", want, text)
		}
	}
}
