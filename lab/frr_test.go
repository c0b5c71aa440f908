package lab

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The testdata/frr files are vtysh's JSON from the BGP lab's router (FRR
// 8.4.4, Debian 12) with three stand-in directors up.
func TestParseBGPSummary(t *testing.T) {
	captured, err := os.ReadFile("testdata/frr/bgp-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	est := func(last byte) BGPPeer {
		return BGPPeer{Address: netip.AddrFrom4([4]byte{192, 0, 2, last}), Family: "ipv4Unicast", RemoteAS: 65010, State: "Established", PfxRcd: 1}
	}
	runParseCases(t, parseBGPSummary, []parseCase[[]BGPPeer]{
		{name: "captured, all established", in: string(captured), want: []BGPPeer{est(11), est(12), est(13)}},
		{
			name: "two families, one peer down",
			in: `{"ipv6Unicast":{"peers":{"2001:db8:1::11":{"remoteAs":65010,"state":"Active","pfxRcd":0}}},
			      "ipv4Unicast":{"peers":{"192.0.2.12":{"remoteAs":65010,"state":"Established","pfxRcd":1}}}}`,
			want: []BGPPeer{
				{Address: netip.MustParseAddr("192.0.2.12"), Family: "ipv4Unicast", RemoteAS: 65010, State: "Established", PfxRcd: 1},
				{Address: netip.MustParseAddr("2001:db8:1::11"), Family: "ipv6Unicast", RemoteAS: 65010, State: "Active"},
			},
		},
		{name: "no bgp instance", in: `{}`},
		{name: "not JSON", in: `% BGP instance not found`, wantErr: "parsing `show bgp summary json`"},
		{name: "peer not an address", in: `{"ipv4Unicast":{"peers":{"eth0":{"state":"Idle"}}}}`, wantErr: `peer "eth0" is not an address`},
	})
}

func TestParseBFDPeers(t *testing.T) {
	captured, err := os.ReadFile("testdata/frr/bfd-peers.json")
	if err != nil {
		t.Fatal(err)
	}
	up := func(last byte) BFDPeer {
		return BFDPeer{
			Peer: netip.AddrFrom4([4]byte{192, 0, 2, last}), Local: netip.MustParseAddr("192.0.2.1"), Status: "up",
			DetectMultiplier: 3, TransmitInterval: 100 * time.Millisecond, ReceiveInterval: 100 * time.Millisecond,
		}
	}
	runParseCases(t, parseBFDPeers, []parseCase[[]BFDPeer]{
		{name: "captured, all up", in: string(captured), want: []BFDPeer{up(11), up(12), up(13)}},
		{
			name: "down, no local address yet",
			in:   `[{"peer":"192.0.2.13","status":"down","detect-multiplier":3,"transmit-interval":300,"receive-interval":300}]`,
			want: []BFDPeer{{Peer: netip.MustParseAddr("192.0.2.13"), Status: "down", DetectMultiplier: 3, TransmitInterval: 300 * time.Millisecond, ReceiveInterval: 300 * time.Millisecond}},
		},
		{name: "none", in: `[]`, want: []BFDPeer{}},
		{name: "not JSON", in: `% Unknown command`, wantErr: "parsing `show bfd peers json`"},
		{name: "peer not an address", in: `[{"peer":"x"}]`, wantErr: `peer "x" is not an address`},
	})
}

func TestParseBGPPaths(t *testing.T) {
	captured, err := os.ReadFile("testdata/frr/bgp-prefix-gshut.json")
	if err != nil {
		t.Fatal(err)
	}
	path := func(last byte) BGPPath {
		a := netip.AddrFrom4([4]byte{192, 0, 2, last})
		return BGPPath{Peer: a, NextHop: a, LocalPref: 100, Multipath: true}
	}
	gshut, best := path(11), path(12)
	gshut.LocalPref, gshut.Multipath, gshut.Communities = 0, false, []string{"graceful-shutdown"}
	best.Best = true
	runParseCases(t, parseBGPPaths, []parseCase[[]BGPPath]{
		{name: "captured, one path in graceful shutdown", in: string(captured), want: []BGPPath{gshut, best, path(13)}},
		{
			name: "communities and MED",
			in:   `{"paths":[{"locPrf":200,"metric":5,"community":{"string":"65010:100 65010:7"},"nexthops":[{"ip":"2001:db8:1::11"}],"peer":{"peerId":"2001:db8:1::11"}}]}`,
			want: []BGPPath{{Peer: netip.MustParseAddr("2001:db8:1::11"), NextHop: netip.MustParseAddr("2001:db8:1::11"), LocalPref: 200, MED: 5, Communities: []string{"65010:100", "65010:7"}}},
		},
		{name: "no such prefix", in: `{}`, want: []BGPPath{}},
		{name: "not JSON", in: `% Network not in table`, wantErr: "parsing `show bgp ... json`"},
		{name: "peer not an address", in: `{"paths":[{"peer":{"peerId":"x"}}]}`, wantErr: `path 0: peer "x" is not an address`},
	})
}

type parseCase[T any] struct {
	name    string
	in      string
	want    T
	wantErr string
}

func runParseCases[T any](t *testing.T, parse func([]byte) (T, error), cases []parseCase[T]) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
