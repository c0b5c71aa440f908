package ipvs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file as ip_vs_stats_show prints it (%8LX and %16LX columns).
const totalsSample = "   Total Incoming Outgoing         Incoming         Outgoing\n" +
	"   Conns  Packets  Packets            Bytes            Bytes\n" +
	"      1F      2A0        0            1B3F4                0\n" +
	"\n" +
	" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n" +
	"       1        C        0              3E8                0\n"

func TestParseTotals(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Stats
		err        string
	}{
		{name: "kernel sample", text: totalsSample, want: Stats{Conns: 0x1f, PktsIn: 0x2a0, BytesIn: 0x1b3f4, CPS: 1, PPSIn: 0xc, BPSIn: 0x3e8}},
		{name: "empty", text: "", err: "line 3 missing"},
		{name: "not hex", text: strings.Replace(totalsSample, "2A0", "2G0", 1), err: `line 3 field 2: "2G0" is not hexadecimal`},
		{name: "short line", text: strings.Replace(totalsSample, "      1F      2A0", "", 1), err: "line 3: want 5 hexadecimal numbers"},
		{name: "no rates", text: strings.Join(strings.Split(totalsSample, "\n")[:4], "\n"), err: "line 6 missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTotals(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadTotalsNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ip_vs_stats")
	if err := os.WriteFile(p, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTotals(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v does not name %s", err, p)
	}
	if _, err := ReadTotals(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file read without error")
	}
}
