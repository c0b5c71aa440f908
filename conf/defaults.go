package conf

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"time"
)

// Defaults. docs/config.md documents each one; keep the two in step.
const (
	DefaultControlSocket = "/run/haldir/haldir.sock"
	DefaultStateDir      = "/var/lib/haldir"
	DefaultMetricsListen = "127.0.0.1:9712"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "text"
	DefaultNotifyTimeout = 10 * time.Second

	DefaultVRRPVersion    = 3
	DefaultAdvertInterval = time.Second
	DefaultPriority       = 100
	DefaultGARPDelay      = 5 * time.Second
	DefaultGARPRepeat     = 5

	DefaultTrackInterval = 2 * time.Second
	DefaultTrackTimeout  = time.Second
	DefaultTrackRise     = 1
	DefaultTrackFall     = 1

	DefaultProtocol   = "tcp"
	DefaultScheduler  = "wlc"
	DefaultForwarding = "nat"
	DefaultTunnelType = "ipip"
	DefaultQuorum     = 1
	DefaultWeight     = 1

	DefaultCheckInterval = 2 * time.Second
	DefaultCheckTimeout  = time.Second
	DefaultCheckRise     = 1
	DefaultCheckFall     = 2
	DefaultInitialState  = "up"
	DefaultHTTPPath      = "/"
	DefaultQueryType     = "A"

	DefaultBGPDevice     = "haldir0"
	DefaultBGPPort       = 179
	DefaultBGPHoldTime   = 9 * time.Second
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
)

// isSetFunc reports whether an indexed key path
// ("virtual_server[0].real_server[1].weight") is present in the file. It is
// how defaults tell an unset key from an explicit zero: toml's
// MetaData.IsDefined cannot address elements of arrays of tables.
type isSetFunc func(path string) bool

// applyDefaults fills every unset key with its default, and computes each
// real server's effective check and forwarding method. It is the only place
// defaults are applied. It must tolerate invalid values: validation runs
// afterwards on the result.
func applyDefaults(c *Config, isSet isSetFunc) {
	g := &c.Global
	if !isSet("global.router_id") {
		if h, err := os.Hostname(); err == nil {
			g.RouterID = h
		}
	}
	if !isSet("global.control_socket") {
		g.ControlSocket = DefaultControlSocket
	}
	if !isSet("global.state_dir") {
		g.StateDir = DefaultStateDir
	}
	if !isSet("global.metrics_listen") {
		g.MetricsListen = DefaultMetricsListen
	}
	if !isSet("global.log_level") {
		g.LogLevel = DefaultLogLevel
	}
	if !isSet("global.log_format") {
		g.LogFormat = DefaultLogFormat
	}
	if !isSet("global.notify_timeout") {
		g.NotifyTimeout = Duration(DefaultNotifyTimeout)
	}

	for i := range c.VRRP {
		vrrpDefaults(&c.VRRP[i], fmt.Sprintf("vrrp[%d]", i), isSet)
	}
	for i := range c.VirtualServers {
		vsDefaults(&c.VirtualServers[i], fmt.Sprintf("virtual_server[%d]", i), isSet)
	}

	if s := c.Sync; s != nil && !isSet("sync.sync_id") {
		for _, in := range c.VRRP {
			if in.Name == s.VRRPInstance {
				s.SyncID = in.VRID
				break
			}
		}
	}
	if b := c.BGP; b != nil {
		bgpDefaults(b, isSet)
	}
	if cl := c.Cluster; cl != nil {
		if !isSet("cluster.name") {
			cl.Name = g.RouterID
		}
		if !isSet("cluster.advertise") {
			cl.Advertise = cl.Bind
		}
	}
}

func bgpDefaults(b *BGP, isSet isSetFunc) {
	if !isSet("bgp.graceful_shutdown") {
		b.GracefulShutdown = true
	}
	if !isSet("bgp.device") {
		b.Device = DefaultBGPDevice
	}
	for i := range b.Peers {
		peer, p := &b.Peers[i], fmt.Sprintf("bgp.peer[%d]", i)
		if !isSet(p + ".port") {
			peer.Port = DefaultBGPPort
		}
		if !isSet(p + ".hold_time") {
			peer.HoldTime = Duration(DefaultBGPHoldTime)
		}
		if bfd := peer.BFD; bfd != nil {
			if !isSet(p + ".bfd.min_tx") {
				bfd.MinTx = Duration(DefaultBFDInterval)
			}
			if !isSet(p + ".bfd.min_rx") {
				bfd.MinRx = Duration(DefaultBFDInterval)
			}
			if !isSet(p + ".bfd.multiplier") {
				bfd.Multiplier = DefaultBFDMultiplier
			}
		}
	}
}

func vrrpDefaults(in *VRRPInstance, p string, isSet isSetFunc) {
	if !isSet(p + ".version") {
		in.Version = DefaultVRRPVersion
	}
	if !isSet(p + ".advert_interval") {
		in.AdvertInterval = Duration(DefaultAdvertInterval)
	}
	if !isSet(p + ".priority") {
		in.Priority = DefaultPriority
	}
	if !isSet(p + ".preempt") {
		in.Preempt = true
	}
	if !isSet(p + ".accept_mode") {
		in.AcceptMode = true
	}
	if in.UseVMAC && !isSet(p+".vmac_interface") {
		in.VMACInterface = fmt.Sprintf("vrrp.%d", in.VRID)
	}
	if !isSet(p + ".garp.delay") {
		in.GARP.Delay = Duration(DefaultGARPDelay)
	}
	if !isSet(p + ".garp.repeat") {
		in.GARP.Repeat = DefaultGARPRepeat
	}
	if in.Auth != nil && !isSet(p+".auth.type") {
		in.Auth.Type = "pass"
		if in.Auth.Password == "" {
			in.Auth.Type = "none"
		}
	}
	for j := range in.TrackScripts {
		ts := &in.TrackScripts[j]
		tp := fmt.Sprintf("%s.track_script[%d]", p, j)
		if !isSet(tp + ".interval") {
			ts.Interval = Duration(DefaultTrackInterval)
		}
		if !isSet(tp + ".timeout") {
			ts.Timeout = Duration(min(DefaultTrackTimeout, ts.Interval.D()))
		}
		if !isSet(tp + ".rise") {
			ts.Rise = DefaultTrackRise
		}
		if !isSet(tp + ".fall") {
			ts.Fall = DefaultTrackFall
		}
	}
}

func vsDefaults(vs *VirtualServer, p string, isSet isSetFunc) {
	if vs.Fwmark != 0 && !isSet(p+".family") {
		vs.Family = "inet"
	}
	if !isSet(p + ".protocol") {
		vs.Protocol = DefaultProtocol
	}
	if !isSet(p + ".scheduler") {
		vs.Scheduler = DefaultScheduler
	}
	if !isSet(p + ".forwarding") {
		vs.Forwarding = DefaultForwarding
	}
	if !isSet(p + ".persistence_granularity") {
		vs.PersistenceGranularity = 32
		if vs.isIPv6() {
			vs.PersistenceGranularity = 128
		}
	}
	if !isSet(p + ".quorum") {
		vs.Quorum = DefaultQuorum
	}
	if !isSet(p + ".sorry_server_weight") {
		vs.SorryServerWeight = DefaultWeight
	}
	if vs.SorryServer.Addr().IsValid() && vs.SorryServer.Port() == 0 && vs.Port > 0 && vs.Port <= 65535 {
		vs.SorryServer = netip.AddrPortFrom(vs.SorryServer.Addr(), uint16(vs.Port))
	}

	usesTun := vs.Forwarding == "tun"
	for j := range vs.RealServers {
		rs := &vs.RealServers[j]
		rp := fmt.Sprintf("%s.real_server[%d]", p, j)
		if !isSet(rp + ".port") {
			rs.Port = vs.Port
		}
		if !isSet(rp + ".weight") {
			rs.Weight = DefaultWeight
		}
		if !isSet(rp + ".forwarding") {
			rs.Forwarding = vs.Forwarding
		}
		usesTun = usesTun || rs.Forwarding == "tun"
		rs.Check = effectiveCheck(vs.Check, p+".check", rs.Check, rp+".check", isSet)
	}
	if usesTun && !isSet(p+".tunnel_type") {
		vs.TunnelType = DefaultTunnelType
	}
	if (vs.TunnelType == "gue" || vs.TunnelType == "gre") && !isSet(p+".tunnel_checksum") {
		vs.TunnelChecksum = "none"
	}
	if vs.Check != nil {
		checkDefaults(vs.Check, p+".check", isSet)
	}
}

func (vs *VirtualServer) isIPv6() bool {
	if vs.Fwmark != 0 || !vs.Address.IsValid() {
		return vs.Family == "inet6"
	}
	return vs.Address.Is6()
}

// genericCheckKeys are inherited by a real server's check even when it
// changes the check type; every other key belongs to a type.
var genericCheckKeys = map[string]bool{
	"type": true, "interval": true, "timeout": true, "rise": true, "fall": true,
	"retry_delay": true, "warmup": true, "initial_state": true,
	"connect_address": true, "connect_port": true, "source_address": true,
}

// effectiveCheck overlays the keys a real server's check sets on its
// virtual server's check. Type-specific keys are only inherited while the
// type stays the same. The result is nil when neither level has a check or
// the effective type is "none".
func effectiveCheck(vsc *Check, vp string, rsc *Check, rp string, isSet isSetFunc) *Check {
	if vsc == nil && rsc == nil {
		return nil
	}
	vsType := ""
	if vsc != nil {
		vsType = vsc.Type
	}
	eff := &Check{}
	out := reflect.ValueOf(eff).Elem()
	fields := tomlFields(reflect.TypeFor[Check]())
	typeChanged := rsc != nil && isSet(rp+".type") && rsc.Type != vsType
	set := map[string]bool{}
	for key, f := range fields {
		switch {
		case rsc != nil && isSet(rp+"."+key):
			out.FieldByIndex(f.Index).Set(reflect.ValueOf(rsc).Elem().FieldByIndex(f.Index))
		case vsc != nil && isSet(vp+"."+key) && (genericCheckKeys[key] || !typeChanged):
			out.FieldByIndex(f.Index).Set(reflect.ValueOf(vsc).Elem().FieldByIndex(f.Index))
		default:
			continue
		}
		set[key] = true
	}
	if eff.Type == "none" {
		return nil
	}
	// Each real server owns its check outright, slices included.
	eff.ExpectStatus = slices.Clone(eff.ExpectStatus)
	eff.Command = slices.Clone(eff.Command)
	eff.URLs = slices.Clone(eff.URLs)
	for i := range eff.URLs {
		eff.URLs[i].ExpectStatus = slices.Clone(eff.URLs[i].ExpectStatus)
	}
	checkDefaults(eff, "", func(p string) bool { return set[p[1:]] })
	return eff
}

// checkDefaults fills the unset keys of one check; p is its path.
func checkDefaults(c *Check, p string, isSet isSetFunc) {
	if c.Type == "none" {
		return
	}
	if !isSet(p + ".interval") {
		c.Interval = Duration(DefaultCheckInterval)
	}
	if !isSet(p + ".timeout") {
		c.Timeout = Duration(min(DefaultCheckTimeout, c.Interval.D()))
	}
	if !isSet(p + ".rise") {
		c.Rise = DefaultCheckRise
	}
	if !isSet(p + ".fall") {
		c.Fall = DefaultCheckFall
	}
	if !isSet(p + ".initial_state") {
		c.InitialState = DefaultInitialState
	}
	switch c.Type {
	case "http", "https":
		if !isSet(p + ".path") {
			c.Path = DefaultHTTPPath
		}
		if !isSet(p + ".expect_status") {
			c.ExpectStatus = StatusCodes{{200, 299}}
		}
		if !isSet(p + ".tls_verify") {
			c.TLSVerify = true
		}
		for i := range c.URLs {
			if len(c.URLs[i].ExpectStatus) == 0 {
				c.URLs[i].ExpectStatus = StatusCodes{{200, 299}}
			}
		}
	case "exec":
		if !isSet(p + ".dynamic_weight") {
			c.DynamicWeight = true
		}
	case "udp":
		if !isSet(p + ".require_reply") {
			c.RequireReply = true
		}
	case "dns":
		if !isSet(p + ".query_type") {
			c.QueryType = DefaultQueryType
		}
	}
}
