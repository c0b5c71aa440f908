package ipvs

import (
	"fmt"
	"net/netip"
)

// Protocol is an IP protocol number as IPVS uses it (IPPROTO_*).
type Protocol uint16

// Protocols IPVS can balance.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	case 0:
		return "any"
	}
	return fmt.Sprintf("proto-%d", uint16(p))
}

// ServiceKey identifies an IPVS service the way the kernel does: either
// protocol + address + port, or a firewall mark within an address family.
// It is comparable and used as a map key.
type ServiceKey struct {
	Fwmark   uint32 // non-zero for fwmark services; Addr and Protocol are then zero
	V6       bool   // address family of a fwmark service (derived from Addr otherwise)
	Protocol Protocol
	Addr     netip.AddrPort
}

// IsV6 reports whether the service is in the inet6 family.
func (k ServiceKey) IsV6() bool {
	if k.Fwmark != 0 {
		return k.V6
	}
	return k.Addr.Addr().Is6()
}

func (k ServiceKey) String() string {
	if k.Fwmark != 0 {
		fam := "inet"
		if k.V6 {
			fam = "inet6"
		}
		return fmt.Sprintf("fwmark %d %s", k.Fwmark, fam)
	}
	return k.Protocol.String() + " " + k.Addr.String()
}

// Less orders keys deterministically so that plans are reproducible.
func (k ServiceKey) Less(o ServiceKey) bool { return k.String() < o.String() }

// Service flag bits (IP_VS_SVC_F_* in include/uapi/linux/ip_vs.h).
const (
	FlagPersistent uint32 = 0x0001
	FlagHashed     uint32 = 0x0002 // set by the kernel, never by us; masked on read
	FlagOnePacket  uint32 = 0x0004
	FlagSched1     uint32 = 0x0008
	FlagSched2     uint32 = 0x0010
	FlagSched3     uint32 = 0x0020
)

// Schedulers are the scheduler names the kernel ships (net/netfilter/ipvs).
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// ServiceSettings are what can be changed on an existing service without
// recreating it (IPVS_CMD_SET_SERVICE). The struct is comparable: two
// services are configured alike exactly when their keys and settings are
// ==, with no field list to keep up to date.
type ServiceSettings struct {
	Scheduler string
	Flags     uint32 // IP_VS_SVC_F_* without FlagHashed
	Timeout   uint32 // persistence timeout in seconds
	// NetmaskBits is the persistence granularity as a prefix length (the
	// kernel stores a netmask for inet and a prefix length for inet6).
	NetmaskBits int
}

// Service is one IPVS virtual service as configured: its identity and its
// settings.
type Service struct {
	Key ServiceKey
	ServiceSettings
}

// ServiceInfo is a service as the kernel reports it: the configuration
// and its counters.
type ServiceInfo struct {
	Service
	Stats Stats
}

// Forwarding is a destination's packet forwarding method
// (IP_VS_CONN_F_FWD_MASK values).
type Forwarding uint32

// Forwarding methods.
const (
	ForwardNAT    Forwarding = 0 // masquerading
	ForwardLocal  Forwarding = 1
	ForwardTunnel Forwarding = 2
	ForwardDR     Forwarding = 3 // direct routing
)

func (f Forwarding) String() string {
	switch f {
	case ForwardNAT:
		return "nat"
	case ForwardLocal:
		return "local"
	case ForwardTunnel:
		return "tun"
	case ForwardDR:
		return "dr"
	}
	return fmt.Sprintf("fwd-%d", uint32(f))
}

// TunnelType is the encapsulation of a tunnel destination
// (IP_VS_CONN_F_TUNNEL_TYPE_*).
type TunnelType uint8

// Tunnel types.
const (
	TunnelIPIP TunnelType = 0
	TunnelGUE  TunnelType = 1
	TunnelGRE  TunnelType = 2
)

func (t TunnelType) String() string {
	switch t {
	case TunnelIPIP:
		return "ipip"
	case TunnelGUE:
		return "gue"
	case TunnelGRE:
		return "gre"
	}
	return fmt.Sprintf("tuntype-%d", uint8(t))
}

// Tunnel checksum flags (IP_VS_TUNNEL_ENCAP_FLAG_*).
const (
	TunnelNoCsum  uint16 = 0
	TunnelCsum    uint16 = 1 << 0
	TunnelRemCsum uint16 = 1 << 1
)

// DestSettings are what can be changed on an existing destination
// (IPVS_CMD_SET_DEST, the forwarding method included). Comparable, like
// ServiceSettings.
type DestSettings struct {
	Weight         int
	Forwarding     Forwarding
	TunnelType     TunnelType
	TunnelPort     uint16 // gue only
	TunnelFlags    uint16 // TunnelCsum / TunnelRemCsum
	UpperThreshold uint32
	LowerThreshold uint32
}

// Destination is one real server of a service as configured: its address
// (its identity within the service) and its settings.
type Destination struct {
	Addr netip.AddrPort
	DestSettings
}

// DestInfo is a destination as the kernel reports it: the configuration,
// the connection counts and the counters.
type DestInfo struct {
	Destination
	ActiveConns   uint32
	InactiveConns uint32
	Stats         Stats
}

// MaxWeight is the largest destination weight haldir programs: the kernel
// takes an int, but ipvsadm, keepalived and moby/ipvs (which reads the
// attribute back as 16 bits) all stop at 65535.
const MaxWeight = 65535

// Stats are the kernel's counters of a service or destination.
type Stats struct {
	Conns    uint64
	PktsIn   uint64
	PktsOut  uint64
	BytesIn  uint64
	BytesOut uint64
	CPS      uint64
	PPSIn    uint64
	PPSOut   uint64
	BPSIn    uint64
	BPSOut   uint64
}
