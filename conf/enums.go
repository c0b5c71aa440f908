package conf

import (
	"fmt"
	"log/slog"
	"strings"
)

// The enumerated keys of the file as types. conf owns their spelling: the
// tables below are what validation accepts, what Compile parses and what
// String prints, so a component never compares configuration strings.
// Where "none" is a meaningful setting it is the zero value; otherwise the
// zero value is "unset" and String prints it as "invalid(0)".

// enumNames lists the file spelling of each value of E, indexed by value.
type enumNames[E ~uint8] []string

func (n enumNames[E]) name(e E) string {
	if int(e) < len(n) && n[e] != "" {
		return n[e]
	}
	return fmt.Sprintf("invalid(%d)", uint8(e))
}

// parse reads s; what names the key in the error.
func (n enumNames[E]) parse(what, s string) (E, error) {
	for i, name := range n {
		if name != "" && name == s {
			return E(i), nil
		}
	}
	return 0, parseErr(what, s, n.allowed())
}

// allowed is the list of spellings, in value order, for validation
// messages.
func (n enumNames[E]) allowed() []string {
	out := make([]string, 0, len(n))
	for _, s := range n {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseErr(what, s string, allowed []string) error {
	return fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(allowed, ", "))
}

// Protocol is a virtual server's transport protocol. Its values are the
// IP protocol numbers (IPPROTO_*), which is what IPVS keys services by.
type Protocol uint8

// Protocols a virtual server can balance.
const (
	ProtoTCP  Protocol = 6
	ProtoUDP  Protocol = 17
	ProtoSCTP Protocol = 132
)

var protocolNames = func() enumNames[Protocol] {
	n := make(enumNames[Protocol], ProtoSCTP+1)
	n[ProtoTCP], n[ProtoUDP], n[ProtoSCTP] = "tcp", "udp", "sctp"
	return n
}()

func (p Protocol) String() string { return protocolNames.name(p) }

// ParseProtocol reads protocol's spelling ("tcp", "udp", "sctp").
func ParseProtocol(s string) (Protocol, error) {
	return protocolNames.parse("protocol", s)
}

// Family is an address family: of a fwmark service (which has no address
// to take it from), and of every virtual server and VRRP instance.
type Family uint8

// Address families.
const (
	FamilyInet  Family = 1 // IPv4
	FamilyInet6 Family = 2 // IPv6
)

var familyNames = enumNames[Family]{FamilyInet: "inet", FamilyInet6: "inet6"}

func (f Family) String() string { return familyNames.name(f) }

// ParseFamily reads family's spelling ("inet", "inet6").
func ParseFamily(s string) (Family, error) {
	return familyNames.parse("family", s)
}

// IPVersion is the family's IP version, 4 or 6 (as the cluster gossips
// it).
func (f Family) IPVersion() int {
	if f == FamilyInet6 {
		return 6
	}
	return 4
}

// MaxPrefix is the family's address length in bits (32 or 128).
func (f Family) MaxPrefix() int {
	if f == FamilyInet6 {
		return 128
	}
	return 32
}

// Scheduler is an IPVS scheduling algorithm; String is the name the
// kernel's module registers (ip_vs_<name>).
type Scheduler uint8

// Schedulers the kernel ships (net/netfilter/ipvs).
const (
	SchedRR Scheduler = iota + 1
	SchedWRR
	SchedLC
	SchedWLC
	SchedLBLC
	SchedLBLCR
	SchedDH
	SchedSH
	SchedSED
	SchedNQ
	SchedMH
	SchedFO
	SchedOVF
	SchedTwoS
)

var schedulerNames = enumNames[Scheduler]{
	SchedRR: "rr", SchedWRR: "wrr", SchedLC: "lc", SchedWLC: "wlc", SchedLBLC: "lblc", SchedLBLCR: "lblcr",
	SchedDH: "dh", SchedSH: "sh", SchedSED: "sed", SchedNQ: "nq", SchedMH: "mh", SchedFO: "fo",
	SchedOVF: "ovf", SchedTwoS: "twos",
}

func (s Scheduler) String() string { return schedulerNames.name(s) }

// ParseScheduler reads a scheduler's name ("wlc").
func ParseScheduler(s string) (Scheduler, error) {
	return schedulerNames.parse("scheduler", s)
}

// SchedulerFlags is the set of scheduler_flags. The file spells the first
// two per scheduler (sh-port, mh-port; sh-fallback, mh-fallback) and
// validation ties each to its scheduler; the kernel has one bit for each.
type SchedulerFlags uint8

// Scheduler flags.
const (
	SchedFlagFallback  SchedulerFlags = 1 << iota // sh-fallback, mh-fallback: skip overloaded or weight-0 servers
	SchedFlagPort                                 // sh-port, mh-port: hash the source port too
	SchedFlagOnePacket                            // ops: schedule every UDP datagram on its own
)

// schedulerFlagNames maps each spelling to its bit and the scheduler it
// needs (0: any).
var schedulerFlagNames = map[string]struct {
	flag  SchedulerFlags
	sched Scheduler
}{
	"sh-fallback": {SchedFlagFallback, SchedSH}, "sh-port": {SchedFlagPort, SchedSH},
	"mh-fallback": {SchedFlagFallback, SchedMH}, "mh-port": {SchedFlagPort, SchedMH},
	"ops": {SchedFlagOnePacket, 0},
}

func (f SchedulerFlags) String() string {
	var parts []string
	for _, x := range []struct {
		bit  SchedulerFlags
		name string
	}{{SchedFlagFallback, "fallback"}, {SchedFlagPort, "port"}, {SchedFlagOnePacket, "ops"}} {
		if f&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	return strings.Join(parts, ",")
}

// Forwarding is a destination's packet forwarding method.
type Forwarding uint8

// Forwarding methods.
const (
	ForwardNAT    Forwarding = iota + 1 // masquerading
	ForwardDR                           // direct routing
	ForwardTunnel                       // tun: encapsulated (TunnelSpec says how)
)

var forwardingNames = enumNames[Forwarding]{ForwardNAT: "nat", ForwardDR: "dr", ForwardTunnel: "tun"}

func (f Forwarding) String() string { return forwardingNames.name(f) }

// ParseForwarding reads forwarding's spelling ("nat", "dr", "tun").
func ParseForwarding(s string) (Forwarding, error) {
	return forwardingNames.parse("forwarding", s)
}

// TunnelType is the encapsulation of tun forwarding.
type TunnelType uint8

// Tunnel types.
const (
	TunnelIPIP TunnelType = iota + 1
	TunnelGUE
	TunnelGRE
)

var tunnelTypeNames = enumNames[TunnelType]{TunnelIPIP: "ipip", TunnelGUE: "gue", TunnelGRE: "gre"}

func (t TunnelType) String() string { return tunnelTypeNames.name(t) }

// ParseTunnelType reads tunnel_type's spelling ("ipip", "gue", "gre").
func ParseTunnelType(s string) (TunnelType, error) {
	return tunnelTypeNames.parse("tunnel_type", s)
}

// TunnelChecksum is tunnel_checksum of a gue or gre tunnel.
type TunnelChecksum uint8

// Tunnel checksum modes; none is the zero value.
const (
	TunnelCsumNone TunnelChecksum = iota
	TunnelCsum
	TunnelRemCsum // gue only
)

var tunnelCsumNames = enumNames[TunnelChecksum]{TunnelCsumNone: "none", TunnelCsum: "csum", TunnelRemCsum: "remcsum"}

func (c TunnelChecksum) String() string { return tunnelCsumNames.name(c) }

// ParseTunnelChecksum reads tunnel_checksum's spelling.
func ParseTunnelChecksum(s string) (TunnelChecksum, error) {
	return tunnelCsumNames.parse("tunnel_checksum", s)
}

// CheckKind is a health check's type. "none" is not a kind: a real server
// without a check has a nil RealServerSpec.Check.
type CheckKind uint8

// Check kinds.
const (
	CheckTCP CheckKind = iota + 1
	CheckHTTP
	CheckHTTPS
	CheckExec
	CheckDNS
	CheckUDP
)

// checkTypeNone is the file's spelling of "no check".
const checkTypeNone = "none"

var checkKindNames = enumNames[CheckKind]{CheckTCP: "tcp", CheckHTTP: "http", CheckHTTPS: "https", CheckExec: "exec", CheckDNS: "dns", CheckUDP: "udp"}

func (k CheckKind) String() string { return checkKindNames.name(k) }

// ParseCheckKind reads check.type's spelling; "none" is not a kind.
func ParseCheckKind(s string) (CheckKind, error) {
	return checkKindNames.parse("check type", s)
}

// AuthType is VRRPv2 authentication; none is the zero value.
type AuthType uint8

// VRRPv2 authentication types (RFC 3768 numbers them the same way).
const (
	AuthNone AuthType = 0
	AuthPass AuthType = 1 // cleartext password
)

var authTypeNames = enumNames[AuthType]{AuthNone: "none", AuthPass: "pass"}

func (a AuthType) String() string { return authTypeNames.name(a) }

// ParseAuthType reads auth.type's spelling ("none", "pass").
func ParseAuthType(s string) (AuthType, error) {
	return authTypeNames.parse("auth type", s)
}

// LogFormat is global.log_format.
type LogFormat uint8

// Log formats.
const (
	LogText LogFormat = iota + 1
	LogJSON
)

var logFormatNames = enumNames[LogFormat]{LogText: "text", LogJSON: "json"}

func (f LogFormat) String() string { return logFormatNames.name(f) }

// ParseLogFormat reads log_format's spelling ("text", "json").
func ParseLogFormat(s string) (LogFormat, error) {
	return logFormatNames.parse("log_format", s)
}

// logLevelValues maps log_level's spellings to slog's levels.
var logLevelValues = []struct {
	name  string
	level slog.Level
}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}}

// ParseLogLevel reads log_level's spelling ("debug", "info", "warn",
// "error").
func ParseLogLevel(s string) (slog.Level, error) {
	for _, l := range logLevelValues {
		if l.name == s {
			return l.level, nil
		}
	}
	return 0, parseErr("log_level", s, logLevelNames())
}

func logLevelNames() []string {
	names := make([]string, len(logLevelValues))
	for i, l := range logLevelValues {
		names[i] = l.name
	}
	return names
}
