package gcpace

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		before    int
		want      int
	}{
		{"unset: haldir's pace", "", 100, Percent},
		{"set: the operator's", "80", 80, 80},
		{"off stays off", "off", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			old := debug.SetGCPercent(tc.before)
			t.Cleanup(func() { debug.SetGCPercent(old) })
			if got := Apply(); got != tc.want {
				t.Errorf("Apply() = %d, want %d", got, tc.want)
			}
			if got := debug.SetGCPercent(tc.before); got != tc.want {
				t.Errorf("GC percent in force %d, want %d", got, tc.want)
			}
		})
	}
}
