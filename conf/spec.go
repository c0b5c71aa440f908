package conf

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Spec is a validated configuration compiled into typed values (Compile):
// enums are types, durations are time.Durations, addresses are netip
// values with IPv4 unmapped, and every default is applied. Components take
// their part of it and never parse or default configuration again. Its
// slices are owned by the Spec; a component that keeps one across reloads
// must not modify it.
type Spec struct {
	Global         GlobalSpec
	IPVS           IPVSSpec
	VRRP           []VRRPInstanceSpec
	SyncGroups     []SyncGroupSpec
	VirtualServers []VirtualServerSpec
	Sync           *ConnSyncSpec // nil: no [sync]
	Cluster        *ClusterSpec  // nil: no [cluster]
	BGP            *BGPSpec      // nil: no [bgp]
}

// GlobalSpec is [global].
type GlobalSpec struct {
	RouterID      string
	ControlSocket string // "" disables the control socket
	// StateDir holds every file haldir keeps (operator overrides, drill
	// reports): one per daemon, so two daemons in a lab never share one.
	StateDir      string
	MetricsListen string // host:port; "" disables metrics
	LogLevel      slog.Level
	LogFormat     LogFormat
	NotifyTimeout time.Duration // a notify command (VRRP or real server) is killed after this
}

// IPVSSpec is [ipvs]: kernel-wide timeouts, whole seconds; 0 leaves the
// kernel's value alone.
type IPVSSpec struct {
	TimeoutTCP    time.Duration
	TimeoutTCPFin time.Duration
	TimeoutUDP    time.Duration
}

// VRRPInstanceSpec is one [[vrrp]] instance. A field's `key` tag is its
// key in the file where the field's name in snake_case is not (",inline":
// its fields' keys), so that a reload names what changed as the operator
// wrote it; Family and SyncGroup are derived and have no key.
type VRRPInstanceSpec struct {
	Name      string
	Interface string
	VRID      uint8 // 1..255
	Priority  uint8 // 1..255; 255 is the address owner
	Version   uint8 // 2 or 3
	// AdvertInterval fits the version's wire format: whole seconds for 2,
	// 10 ms steps up to 40.95 s for 3.
	AdvertInterval time.Duration
	Preempt        bool
	PreemptDelay   time.Duration
	// UseVMAC: the instance runs on VMACInterface, a macvlan with the
	// virtual MAC, created on Interface. VMACInterface is "" without it.
	UseVMAC       bool
	VMACInterface string
	// Family of VirtualAddresses (all of one family); ExcludedAddresses
	// may mix families.
	Family            Family
	VirtualAddresses  []netip.Prefix
	ExcludedAddresses []netip.Prefix
	// AddressOptions place single virtual or excluded addresses; Interface
	// is always set (the instance's, or its VMACInterface, by default).
	AddressOptions      []AddressOptionSpec
	UnicastSource       netip.Addr     // invalid: multicast adverts (unless peers are set)
	UnicastPeers        []netip.Addr   // empty: multicast
	Notify              VRRPNotifySpec `key:",inline"`
	Auth                AuthSpec       // VRRPv2 only; AuthNone otherwise
	GARP                GARPSpec
	TrackInterfaces     []TrackInterfaceSpec     `key:"track_interface"`
	TrackScripts        []TrackScriptSpec        `key:"track_script"`
	TrackVirtualServers []TrackVirtualServerSpec `key:"track_virtual_server"`
	// SyncGroup is the name of the vrrp_sync_group the instance is in; ""
	// for none.
	SyncGroup string
}

// AddressOptionSpec places one address of an instance.
type AddressOptionSpec struct {
	Address   netip.Addr
	Interface string
	Label     string // IPv4 label, "" for none
}

// VRRPNotifySpec are an instance's notify commands (argv; nil: none).
type VRRPNotifySpec struct {
	Master []string `key:"notify_master"`
	Backup []string `key:"notify_backup"`
	Fault  []string `key:"notify_fault"`
	Stop   []string `key:"notify_stop"`
}

// AuthSpec is VRRPv2 authentication; Password is set only with AuthPass.
type AuthSpec struct {
	Type     AuthType
	Password string
}

// GARPSpec is the gratuitous ARP / unsolicited NA schedule after becoming
// master.
type GARPSpec struct {
	Delay   time.Duration // second burst after the first; 0: none
	Repeat  int           // frames per burst, 1..100
	Refresh time.Duration // re-announce while master; 0: never
}

// TrackInterfaceSpec lowers the priority by Weight while the interface is
// down; Weight 0 means FAULT instead.
type TrackInterfaceSpec struct {
	Name   string
	Weight int // -254..254
}

// TrackScriptSpec runs Command every Interval; Rise successes or Fall
// failures in a row change its state.
type TrackScriptSpec struct {
	Name     string
	Command  []string
	Interval time.Duration
	Timeout  time.Duration // <= Interval
	Rise     int
	Fall     int
	Weight   int // -254..254; 0: FAULT while failing
}

// TrackVirtualServerSpec follows the quorum of a virtual server of this
// director: while it is lost the priority changes by Weight (0: FAULT).
type TrackVirtualServerSpec struct {
	Name   string // a VirtualServerSpec.Name
	Weight int
}

// SyncGroupSpec is one vrrp_sync_group: its instances change state
// together.
type SyncGroupSpec struct {
	Name      string
	Instances []string // VRRPInstanceSpec names, each in at most one group
	Notify    GroupNotifySpec
}

// GroupNotifySpec are a sync group's notify commands (argv; nil: none).
type GroupNotifySpec struct {
	Master, Backup, Fault []string
}

// VirtualServerSpec is one IPVS service and its real servers.
type VirtualServerSpec struct {
	Name string // unique among virtual servers
	// The service is Fwmark within Family when Fwmark is non-zero, else
	// Protocol at Addr. Family is set for both.
	Fwmark   uint32
	Family   Family
	Protocol Protocol // also set (default tcp) for fwmark services, where it is not part of the identity
	Addr     netip.AddrPort
	// Scheduler and its flags; validation has tied each flag to its
	// scheduler.
	Scheduler      Scheduler
	SchedulerFlags SchedulerFlags
	// Forwarding is the virtual server's own method: its sorry server's,
	// and the default of its real servers (RealServerSpec.Forwarding is
	// always set).
	Forwarding Forwarding
	// Tunnel is set (Type non-zero) when the virtual server or any of its
	// real servers forwards with tun.
	Tunnel TunnelSpec
	// Persistence is the persistence timeout (whole seconds); 0: none.
	// PersistenceGranularity is a prefix length within Family, 32 or 128
	// by default.
	Persistence            time.Duration
	PersistenceGranularity int
	// Quorum is the total weight of live real servers the service needs;
	// once lost it comes back at Quorum+Hysteresis.
	Quorum           int
	Hysteresis       int
	InhibitOnFailure bool // a failed real server stays with weight 0
	// Sorry is the sorry server; its port defaults to the service's.
	// Invalid: none.
	Sorry       netip.AddrPort
	SorryWeight int
	RealServers []RealServerSpec
}

// TunnelSpec is how tun forwarding encapsulates.
type TunnelSpec struct {
	Type     TunnelType
	Port     uint16 // gue only
	Checksum TunnelChecksum
}

// RealServerSpec is one destination of a virtual server.
type RealServerSpec struct {
	Name string
	// Addr has the real server's port, its virtual server's by default;
	// the port is 0 for a fwmark service's real server without one.
	Addr           netip.AddrPort
	Weight         int    // 0..65535
	UpperThreshold uint32 // 0: no limit
	LowerThreshold uint32
	Forwarding     Forwarding
	// NotifyUp and NotifyDown run (argv) when the real server's check
	// changes its verdict; nil: nothing.
	NotifyUp   []string
	NotifyDown []string
	// Check is the effective check (the virtual server's with the real
	// server's keys overlaid); nil: not checked, always up.
	Check *CheckSpec
}

// CheckSpec is one real server's health check, every default applied.
// Only the part named by Kind (HTTP for http and https) is set.
type CheckSpec struct {
	Kind       CheckKind
	Interval   time.Duration // > 0
	Timeout    time.Duration // > 0, <= Interval
	Rise       int           // 1..1000 successes in a row bring a down server up
	Fall       int           // 1..1000 failures in a row bring an up server down
	RetryDelay time.Duration // a failing, still-up server is checked again after this; 0: the interval
	Warmup     time.Duration // first check drawn within this; 0: spread over the interval
	InitialUp  bool          // the verdict before the first check
	// Connect is where the check connects: connect_address and
	// connect_port, else the real server's address and port.
	Connect netip.AddrPort
	Source  netip.Addr // invalid: the kernel picks
	HTTP    HTTPCheckSpec
	Exec    ExecCheckSpec
	DNS     DNSCheckSpec
	UDP     UDPCheckSpec
}

// HTTPCheckSpec is an http or https check.
type HTTPCheckSpec struct {
	// Host is the Host header: the configured one, else Connect (without
	// the port when it is the scheme's).
	Host string
	// URLs are the requests, all of which must pass; a check written with
	// path/expect_status/expect_body/digest has one.
	URLs []URLSpec
	// https only. ServerName is the name the certificate is checked
	// against and sent as SNI: server_name, else Host's host part, else
	// Connect's address.
	TLSVerify  bool
	CAFile     string
	ServerName string
}

// URLSpec is one request of an http check.
type URLSpec struct {
	Path         string
	ExpectStatus StatusCodes
	ExpectBody   string // a regular expression (validated); "" none
	// Digest is the expected body digest: 16 bytes MD5 or 32 bytes
	// SHA-256; nil none.
	Digest []byte
}

// ExecCheckSpec is an exec check.
type ExecCheckSpec struct {
	Command []string
	// DynamicWeight reads exit codes 2..255 as up with weight code-2.
	DynamicWeight bool
}

// DNSCheckSpec is a dns check.
type DNSCheckSpec struct {
	QueryName    string
	QueryType    uint16 // a DNS RR type number (A = 1)
	ExpectAnswer string // an answer record must contain it; "" any answer
}

// UDPCheckSpec is a udp check.
type UDPCheckSpec struct {
	Payload       []byte
	ExpectPayload []byte // the reply must contain it; nil any reply
	// RequireReply: silence until the timeout is down; false: only an
	// ICMP error is down.
	RequireReply bool
}

// ConnSyncSpec is [sync]: the kernel's connection sync daemon.
type ConnSyncSpec struct {
	Interface string
	// VRRPInstance: the daemon is master while this instance is master,
	// backup otherwise. "" (only with [bgp]) is N-way sync: master and
	// backup daemons both run all the time, every director sends its
	// connections and receives everyone else's.
	VRRPInstance string
	SyncID       uint8      // the instance's vrid by default
	MaxLen       uint16     // 0: the kernel's
	McastGroup   netip.Addr // invalid: the kernel's
	McastPort    uint16     // 0: the kernel's
	McastTTL     uint8      // 0: the kernel's
}

// ClusterSpec is [cluster]: the gossip among directors.
type ClusterSpec struct {
	Name       string         // global.router_id by default
	Bind       netip.AddrPort // port 1..65535
	Advertise  netip.AddrPort // Bind by default
	Peers      []string       // host:port
	SecretFile string
}

// NWay reports whether the sync is N-way (active-active directors): both
// kernel daemons run at once instead of following a VRRP instance.
func (s *ConnSyncSpec) NWay() bool { return s.VRRPInstance == "" }

// BGPSpec is [bgp]: the speaker that announces virtual servers' addresses.
type BGPSpec struct {
	ASN uint32
	// RouterID invalid: chosen at start (the lowest global-unicast IPv4
	// address on the host's interfaces, so the same at every start).
	RouterID   netip.Addr
	ListenPort uint16 // 0: connect out only, no listener
	// GracefulShutdown: before a withdraw on stop or maintenance, announce
	// once more with GRACEFUL_SHUTDOWN (65535:0, RFC 8326) so the routers
	// move traffic away first.
	GracefulShutdown bool
	Device           string // where announced addresses live (a dummy haldir creates)
	Peers            []BGPPeerSpec
	Announce         []BGPAnnounceSpec
}

// BGPPeerSpec is one [[bgp.peer]].
type BGPPeerSpec struct {
	Address      netip.Addr
	ASN          uint32
	Port         uint16
	HoldTime     time.Duration // whole seconds; the keepalive is a third of it
	PasswordFile string        // "": no TCP MD5
	Multihop     uint8         // 0: directly connected (TTL 1)
	LocalAddress netip.Addr    // invalid: the kernel's choice
	BFD          *BFDSpec      // nil: no BFD
}

// BFDSpec is a peer's BFD session.
type BFDSpec struct {
	MinTx, MinRx time.Duration
	Multiplier   uint8
}

// BGPAnnounceSpec is one [[bgp.announce]].
type BGPAnnounceSpec struct {
	Prefix netip.Prefix // masked
	// VirtualServers are announced for: the prefix is announced while all
	// of them have quorum on this director.
	VirtualServers []string
	Communities    []uint32 // RFC 1997 values
	MED            uint32
}

// ServiceName is the service as the kernel and the metrics name it:
// "tcp 192.0.2.10:80" or "fwmark 5 inet".
func (vs *VirtualServerSpec) ServiceName() string {
	if vs.Fwmark != 0 {
		return fmt.Sprintf("fwmark %d %s", vs.Fwmark, vs.Family)
	}
	return vs.Protocol.String() + " " + vs.Addr.String()
}

// Instance returns the VRRP instance called name, nil if there is none.
func (s *Spec) Instance(name string) *VRRPInstanceSpec {
	for i := range s.VRRP {
		if s.VRRP[i].Name == name {
			return &s.VRRP[i]
		}
	}
	return nil
}
