package main

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haldir-lb/haldir/daemon"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
	"github.com/haldir-lb/haldir/metrics"
)

// TestNotConfiguredIsNotAFault: a component the file does not ask for (no
// VRRP, no [cluster], no [sync]) is neither warned about at start nor
// reported as not running (status, haldir_component_not_running); one that
// is configured but fails is, with its reason.
func TestNotConfiguredIsNotAFault(t *testing.T) {
	missingKey := filepath.Join(t.TempDir(), "no-such.key")
	for _, tc := range []struct {
		name  string
		extra string
		want  map[string]string // component -> substring of why
	}{
		{name: "not configured", want: map[string]string{}},
		{
			name:  "cluster configured but failing",
			extra: fmt.Sprintf("\n[cluster]\nbind = \"127.0.0.1:7946\"\nsecret_file = %q\n", missingKey),
			want:  map[string]string{"cluster": missingKey},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, daemonConfig+tc.extra)
			var d *daemon.Daemon
			fake := withFakeKernel(t, ipvstest.New())
			log, _ := startDaemon(t, path, func(e *runEnv) { fake(e); e.started = func(x *daemon.Daemon) { d = x } })
			waitFor(t, log, "metrics ready", 1)

			got := d.Status().NotRunning
			if len(got) != len(tc.want) {
				t.Errorf("status not running %v, want the components of %v", got, tc.want)
			}
			for comp, why := range tc.want {
				if !strings.Contains(got[comp], why) {
					t.Errorf("status not running[%s] = %q, want it to contain %q", comp, got[comp], why)
				}
			}

			warned := map[string]bool{}
			for _, line := range strings.Split(log.String(), "\n") {
				if strings.Contains(line, "level=WARN") {
					comp, ok := strings.CutPrefix(line[strings.Index(line, "msg="):], `msg="component not running" component=`)
					if !ok {
						t.Errorf("unexpected warning: %s", line)
						continue
					}
					warned[strings.Fields(comp)[0]] = true
				}
			}
			if !maps.Equal(warned, boolSet(tc.want)) {
				t.Errorf("warned about %v, want %v:\n%s", warned, boolSet(tc.want), log.String())
			}

			mfs, err := metrics.NewRegistry(d.Status).Gather()
			if err != nil {
				t.Fatal(err)
			}
			fired := map[string]bool{}
			for _, mf := range mfs {
				if mf.GetName() != "haldir_component_not_running" {
					continue
				}
				for _, m := range mf.GetMetric() {
					for _, lp := range m.GetLabel() {
						if lp.GetName() == "component" && m.GetGauge().GetValue() == 1 {
							fired[lp.GetValue()] = true
						}
					}
				}
			}
			if !maps.Equal(fired, boolSet(tc.want)) {
				t.Errorf("haldir_component_not_running fires for %v, want %v", fired, boolSet(tc.want))
			}
		})
	}
}

func boolSet(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
