package director

import (
	"strings"
	"testing"
)

// The round-robin check of the traffic tests tolerates exactly one slip.
func TestRotationSlips(t *testing.T) {
	for _, tc := range []struct {
		seq, order string
		want       int
	}{
		{"a b a b a b", "a b", 0},
		{"a b c a b c", "a b c", 0},
		{"b c a b c a", "a b c", 0},
		{"a b a b b a b a", "a b", 1}, // over two servers: one twice in a row
		{"a b c b c a", "a b c", 1},   // a skipped once
		{"a a b b", "a b", -1},        // two slips
		{"a b b a a b", "a b", -1},
		{"a c b a c b", "a b c", -1}, // another order
		{"a x b", "a b", -1},
	} {
		t.Run(tc.seq+" over "+tc.order, func(t *testing.T) {
			if got := rotationSlips(strings.Fields(tc.seq), strings.Fields(tc.order)); got != tc.want {
				t.Fatalf("rotationSlips = %d, want %d", got, tc.want)
			}
		})
	}
}
