package ipvstest

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Conn is one IPv4 entry of the kernel's IPVS connection table.
type Conn struct {
	Proto   string // TCP, UDP, SCTP
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	State   string
}

// ReadConns reads the IPv4 entries of the IPVS connection table of the
// calling thread's network namespace (/proc/thread-self/net/ip_vs_conn:
// /proc/net follows the process's main thread), so call it inside
// lab.Host.Do. IPv6 entries are skipped.
func ReadConns() ([]Conn, error) {
	b, err := os.ReadFile("/proc/thread-self/net/ip_vs_conn")
	if err != nil {
		return nil, err
	}
	var out []Conn
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires PEName PEData
		f := strings.Fields(line)
		if len(f) < 8 || len(f[1]) != 8 {
			continue
		}
		var addrs [3]netip.AddrPort
		for i := range addrs {
			ip, err1 := hex.DecodeString(f[1+2*i])
			port, err2 := strconv.ParseUint(f[2+2*i], 16, 16)
			a, ok := netip.AddrFromSlice(ip)
			if err1 != nil || err2 != nil || !ok {
				return nil, fmt.Errorf("ip_vs_conn line %q", line)
			}
			addrs[i] = netip.AddrPortFrom(a, uint16(port))
		}
		out = append(out, Conn{Proto: f[0], Client: addrs[0], Virtual: addrs[1], Dest: addrs[2], State: f[7]})
	}
	return out, nil
}
