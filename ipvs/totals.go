package ipvs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TotalsPath is the kernel's IPVS-wide counters of the current network
// namespace: every connection and packet IPVS has handled since the
// module loaded, services deleted since included. Netlink has no command
// for them; the Prometheus node exporter reads this file too.
const TotalsPath = "/proc/net/ip_vs_stats"

// ReadTotals reads the IPVS-wide counters from path (TotalsPath).
func ReadTotals(path string) (Stats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stats{}, fmt.Errorf("reading the IPVS totals: %w", err)
	}
	st, err := ParseTotals(string(b))
	if err != nil {
		return Stats{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// ParseTotals decodes the text of /proc/net/ip_vs_stats (ip_vs_stats_show
// in net/netfilter/ipvs/ip_vs_ctl.c): two header lines, a line of five
// hexadecimal counters (connections, packets in and out, bytes in and
// out), a blank line, a header and a line of the five rates.
func ParseTotals(text string) (Stats, error) {
	lines := strings.Split(text, "\n")
	hex := func(n int) ([]uint64, error) {
		if n >= len(lines) {
			return nil, fmt.Errorf("line %d missing (%d lines)", n+1, len(lines))
		}
		f := strings.Fields(lines[n])
		if len(f) != 5 {
			return nil, fmt.Errorf("line %d: want 5 hexadecimal numbers, got %q", n+1, lines[n])
		}
		v := make([]uint64, 5)
		for i, s := range f {
			x, err := strconv.ParseUint(s, 16, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d field %d: %q is not hexadecimal", n+1, i+1, s)
			}
			v[i] = x
		}
		return v, nil
	}
	c, err := hex(2)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Conns: c[0], PktsIn: c[1], PktsOut: c[2], BytesIn: c[3], BytesOut: c[4]}
	r, err := hex(5)
	if err != nil {
		return Stats{}, err
	}
	st.CPS, st.PPSIn, st.PPSOut, st.BPSIn, st.BPSOut = r[0], r[1], r[2], r[3], r[4]
	return st, nil
}
