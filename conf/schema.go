package conf

import (
	"net/netip"
)

// Config is the whole haldir configuration file. Every key is documented in
// docs/config.md; defaults are applied by applyDefaults in defaults.go and
// nowhere else.
type Config struct {
	Global         Global          `toml:"global"`
	IPVS           IPVS            `toml:"ipvs"`
	VRRP           []VRRPInstance  `toml:"vrrp"`
	VRRPSyncGroups []VRRPSyncGroup `toml:"vrrp_sync_group"`
	VirtualServers []VirtualServer `toml:"virtual_server"`
	Sync           *ConnSync       `toml:"sync"`
	Cluster        *Cluster        `toml:"cluster"`
	BGP            *BGP            `toml:"bgp"`
}

// Global holds daemon-wide settings.
type Global struct {
	RouterID      string   `toml:"router_id"`      // default: the host name
	ControlSocket string   `toml:"control_socket"` // default /run/haldir/haldir.sock
	StateDir      string   `toml:"state_dir"`      // default /var/lib/haldir
	MetricsListen string   `toml:"metrics_listen"` // default 127.0.0.1:9712; "" disables
	LogLevel      string   `toml:"log_level"`      // debug | info | warn | error
	LogFormat     string   `toml:"log_format"`     // text | json
	NotifyTimeout Duration `toml:"notify_timeout"` // a notify command is killed after this
}

// IPVS holds kernel-wide IPVS settings. A zero timeout leaves the kernel's
// value alone.
type IPVS struct {
	TimeoutTCP    Duration `toml:"timeout_tcp"`
	TimeoutTCPFin Duration `toml:"timeout_tcp_fin"`
	TimeoutUDP    Duration `toml:"timeout_udp"`
}

// VRRPInstance is one virtual router (one VRID on one interface).
type VRRPInstance struct {
	Name             string         `toml:"name"`
	Interface        string         `toml:"interface"`
	VRID             int            `toml:"vrid"`
	Priority         int            `toml:"priority"`
	Version          int            `toml:"version"`
	AdvertInterval   Duration       `toml:"advert_interval"`
	Preempt          bool           `toml:"preempt"`
	PreemptDelay     Duration       `toml:"preempt_delay"`
	AcceptMode       bool           `toml:"accept_mode"` // only true is supported (see validate.go)
	UseVMAC          bool           `toml:"use_vmac"`
	VMACInterface    string         `toml:"vmac_interface"` // default vrrp.<vrid> with use_vmac
	VirtualAddresses []netip.Prefix `toml:"virtual_addresses"`
	// ExcludedAddresses move with the instance like VirtualAddresses but
	// are not in its adverts (keepalived's virtual_ipaddress_excluded);
	// either family.
	ExcludedAddresses []netip.Prefix `toml:"excluded_addresses"`
	// AddressOptions place single addresses (keepalived's `dev` and
	// `label` of virtual_ipaddress).
	AddressOptions   []AddressOption `toml:"address_options"`
	UnicastSource    netip.Addr      `toml:"unicast_source"`
	UnicastPeers     []netip.Addr    `toml:"unicast_peers"`
	NotifyMaster     []string        `toml:"notify_master"`
	NotifyBackup     []string        `toml:"notify_backup"`
	NotifyFault      []string        `toml:"notify_fault"`
	NotifyStop       []string        `toml:"notify_stop"`
	Auth             *VRRPAuth       `toml:"auth"`
	GARP             GARP            `toml:"garp"`
	TrackInterfaces  []TrackIface    `toml:"track_interface"`
	TrackScripts     []TrackScript   `toml:"track_script"`
	TrackVirtualSrvs []TrackVS       `toml:"track_virtual_server"`
}

// AddressOption places one of an instance's virtual or excluded addresses
// on another interface than the instance's, or gives it an IPv4 label.
type AddressOption struct {
	Address   netip.Addr `toml:"address"`
	Interface string     `toml:"interface"` // default: the instance's (its vmac_interface with use_vmac)
	Label     string     `toml:"label"`     // IPv4 only; starts with the interface's name
}

// VRRPAuth is VRRPv2 authentication. Type "pass" (RFC 3768 type 1) is a
// cleartext password: it stops misconfigured peers, not attackers.
type VRRPAuth struct {
	Type     string `toml:"type"` // none | pass
	Password string `toml:"password"`
}

// GARP controls gratuitous ARP / unsolicited NA after becoming master.
type GARP struct {
	Delay   Duration `toml:"delay"`   // second burst this long after the first; 0 = none
	Repeat  int      `toml:"repeat"`  // frames per burst
	Refresh Duration `toml:"refresh"` // re-announce while master; 0 = never
}

// TrackIface lowers the priority by Weight (negative) while the interface is
// down; Weight 0 puts the instance in FAULT instead.
type TrackIface struct {
	Name   string `toml:"name"`
	Weight int    `toml:"weight"`
}

// TrackVS follows the quorum of a virtual server of this director: while
// it is lost the priority changes by Weight; Weight 0 puts the instance in
// FAULT instead.
type TrackVS struct {
	Name   string `toml:"name"` // a virtual_server name
	Weight int    `toml:"weight"`
}

// TrackScript runs Command (argv, no shell) every Interval.
type TrackScript struct {
	Name     string   `toml:"name"`
	Command  []string `toml:"command"`
	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
	Rise     int      `toml:"rise"`
	Fall     int      `toml:"fall"`
	Weight   int      `toml:"weight"`
}

// VRRPSyncGroup makes its member instances change state together.
type VRRPSyncGroup struct {
	Name         string   `toml:"name"`
	Instances    []string `toml:"instances"`
	NotifyMaster []string `toml:"notify_master"`
	NotifyBackup []string `toml:"notify_backup"`
	NotifyFault  []string `toml:"notify_fault"`
}

// VirtualServer is one IPVS service: an address and port, or a firewall mark.
type VirtualServer struct {
	Name                   string         `toml:"name"`
	Address                netip.Addr     `toml:"address"`
	Port                   int            `toml:"port"`
	Fwmark                 int            `toml:"fwmark"`
	Family                 string         `toml:"family"` // fwmark services only: inet | inet6
	Protocol               string         `toml:"protocol"`
	Scheduler              string         `toml:"scheduler"`
	SchedulerFlags         []string       `toml:"scheduler_flags"`
	Forwarding             string         `toml:"forwarding"` // nat | dr | tun
	TunnelType             string         `toml:"tunnel_type"`
	TunnelPort             int            `toml:"tunnel_port"`
	TunnelChecksum         string         `toml:"tunnel_checksum"`
	PersistenceTimeout     Duration       `toml:"persistence_timeout"`
	PersistenceGranularity int            `toml:"persistence_granularity"` // prefix length
	Quorum                 int            `toml:"quorum"`
	Hysteresis             int            `toml:"hysteresis"`
	InhibitOnFailure       bool           `toml:"inhibit_on_failure"`
	SorryServer            netip.AddrPort `toml:"sorry_server"`
	SorryServerWeight      int            `toml:"sorry_server_weight"`
	Check                  *Check         `toml:"check"`
	RealServers            []RealServer   `toml:"real_server"`
}

// RealServer is one IPVS destination of a virtual server.
type RealServer struct {
	Name           string     `toml:"name"`
	Address        netip.Addr `toml:"address"`
	Port           int        `toml:"port"`
	Weight         int        `toml:"weight"`
	UpperThreshold int        `toml:"upper_threshold"`
	LowerThreshold int        `toml:"lower_threshold"`
	Forwarding     string     `toml:"forwarding"` // overrides the virtual server's
	NotifyUp       []string   `toml:"notify_up"`
	NotifyDown     []string   `toml:"notify_down"`
	Check          *Check     `toml:"check"`
}

// Check is one health check definition. A real server's check is its
// virtual server's check with the keys it sets overlaid.
type Check struct {
	Type           string     `toml:"type"` // tcp | http | https | exec | dns | udp | none
	Interval       Duration   `toml:"interval"`
	Timeout        Duration   `toml:"timeout"`
	Rise           int        `toml:"rise"`
	Fall           int        `toml:"fall"`
	RetryDelay     Duration   `toml:"retry_delay"`
	Warmup         Duration   `toml:"warmup"`
	InitialState   string     `toml:"initial_state"` // up | down
	ConnectAddress netip.Addr `toml:"connect_address"`
	ConnectPort    int        `toml:"connect_port"`
	SourceAddress  netip.Addr `toml:"source_address"`

	// http, https
	Path         string      `toml:"path"`
	Host         string      `toml:"host"`
	ExpectStatus StatusCodes `toml:"expect_status"`
	ExpectBody   string      `toml:"expect_body"`
	Digest       string      `toml:"digest"`
	TLSVerify    bool        `toml:"tls_verify"`
	CAFile       string      `toml:"ca_file"`
	ServerName   string      `toml:"server_name"`
	// URLs are several requests in one check, each with its own path,
	// status and body checks; the check passes only if all pass within
	// its one timeout (keepalived's several url blocks). They replace
	// path, expect_status, expect_body and digest.
	URLs []CheckURL `toml:"urls"`

	// exec
	Command []string `toml:"command"`
	// DynamicWeight reads exit codes 2-255 as up with weight code-2
	// (keepalived's misc_dynamic); false: any non-zero exit is down.
	DynamicWeight bool `toml:"dynamic_weight"`

	// dns
	QueryName    string `toml:"query_name"`
	QueryType    string `toml:"query_type"`
	ExpectAnswer string `toml:"expect_answer"`

	// udp
	Payload       string `toml:"payload"`
	ExpectPayload string `toml:"expect_payload"`
	// RequireReply: silence until the timeout is down. false: only an
	// ICMP error is down, silence is up (keepalived's UDP_CHECK without
	// require_reply).
	RequireReply bool `toml:"require_reply"`
}

// CheckURL is one request of an http/https check with urls.
type CheckURL struct {
	Path         string      `toml:"path"`
	ExpectStatus StatusCodes `toml:"expect_status"`
	ExpectBody   string      `toml:"expect_body"`
	Digest       string      `toml:"digest"`
}

// ConnSync configures the kernel IPVS connection sync daemon, switched
// between master and backup with VRRPInstance's state.
type ConnSync struct {
	Interface    string     `toml:"interface"`
	VRRPInstance string     `toml:"vrrp_instance"`
	SyncID       int        `toml:"sync_id"`
	MaxLen       int        `toml:"max_len"`
	McastGroup   netip.Addr `toml:"mcast_group"`
	McastPort    int        `toml:"mcast_port"`
	McastTTL     int        `toml:"mcast_ttl"`
}

// Cluster configures the memberlist gossip among directors.
type Cluster struct {
	Name       string         `toml:"name"` // default: global.router_id
	Bind       netip.AddrPort `toml:"bind"`
	Advertise  netip.AddrPort `toml:"advertise"`
	Peers      []string       `toml:"peers"` // host:port
	SecretFile string         `toml:"secret_file"`
}

// BGP configures the BGP speaker: active-active directors that announce
// the virtual servers' addresses to their routers (ECMP) instead of, or
// beside, moving them with VRRP.
type BGP struct {
	ASN              int           `toml:"asn"`
	RouterID         netip.Addr    `toml:"router_id"`   // default: the lowest global IPv4 address of the host
	ListenPort       int           `toml:"listen_port"` // 0: connect out only
	GracefulShutdown bool          `toml:"graceful_shutdown"`
	Device           string        `toml:"device"` // where announced addresses live; default haldir0
	Peers            []BGPPeer     `toml:"peer"`
	Announce         []BGPAnnounce `toml:"announce"`
}

// BGPPeer is one BGP neighbour (a router).
type BGPPeer struct {
	Address      netip.Addr `toml:"address"`
	ASN          int        `toml:"asn"`
	Port         int        `toml:"port"`
	HoldTime     Duration   `toml:"hold_time"`
	PasswordFile string     `toml:"password_file"`
	Multihop     int        `toml:"multihop"`
	LocalAddress netip.Addr `toml:"local_address"`
	BFD          *BFD       `toml:"bfd"`
}

// BFD is a peer's bidirectional forwarding detection session (RFC 5880,
// single hop).
type BFD struct {
	MinTx      Duration `toml:"min_tx"`
	MinRx      Duration `toml:"min_rx"`
	Multiplier int      `toml:"multiplier"`
}

// BGPAnnounce is one prefix and the virtual servers it stands for.
type BGPAnnounce struct {
	Prefix         netip.Prefix `toml:"prefix"`
	VirtualServers []string     `toml:"virtual_servers"`
	Communities    []string     `toml:"communities"` // "65010:100"
	MED            int          `toml:"med"`
}
