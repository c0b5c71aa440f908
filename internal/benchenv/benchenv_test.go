package benchenv

import (
	"strconv"
	"strings"
	"testing"
)

func TestLoadAverage(t *testing.T) {
	f := strings.Fields(LoadAverage())
	if len(f) != 3 {
		t.Fatalf("LoadAverage() = %q, want three numbers", LoadAverage())
	}
	for _, s := range f {
		if v, err := strconv.ParseFloat(s, 64); err != nil || v < 0 {
			t.Errorf("load %q is not a non-negative number", s)
		}
	}
}
