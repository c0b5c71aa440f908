// Package benchenv describes the machine a benchmark ran on, so that every
// table haldir's benchmarks print says how busy the host was.
package benchenv

import (
	"os"
	"strings"
)

// LoadAverage returns the 1, 5 and 15 minute load averages as the kernel
// prints them ("0.52 0.61 0.70"), or "?" when /proc/loadavg is unreadable.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
