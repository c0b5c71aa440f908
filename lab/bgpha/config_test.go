package bgpha

import (
	"testing"

	"github.com/haldir-lb/haldir/conf"
)

// TestConfigLoads keeps the directors' configuration loadable, with the
// weights a soak reloads with and the metrics endpoint it scrapes.
func TestConfigLoads(t *testing.T) {
	c := &Cluster{dir: "/run/bgpha", opts: Options{MetricsListen: "127.0.0.1:9100"}, Weights: map[string]int{"real3": 4}}
	cfg, err := conf.Parse([]byte(c.Config(1)), "director2.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.MetricsListen != "127.0.0.1:9100" {
		t.Errorf("metrics_listen %q", cfg.Global.MetricsListen)
	}
	if len(cfg.VirtualServers) != 2 {
		t.Fatalf("%d virtual servers, want 2", len(cfg.VirtualServers))
	}
	for _, vs := range cfg.VirtualServers {
		for j, rs := range vs.RealServers {
			want := conf.DefaultWeight
			if j == 2 {
				want = 4
			}
			if rs.Weight != want {
				t.Errorf("%s: %s's weight %d, want %d", vs.Name, rs.Name, rs.Weight, want)
			}
		}
	}
}
