package ipvs

import (
	"fmt"
	"net/netip"
	"strings"
)

// The kernel's IPVS connection sync daemons: a master sends the director's
// connection state to a multicast group, a backup receives it into its own
// table so that a failover keeps established connections. They are IPVS
// generic netlink commands of the same family as the table's.

// SyncState is a sync daemon's role (IP_VS_STATE_MASTER / _BACKUP).
type SyncState uint32

// The two roles; the kernel runs at most one daemon of each.
const (
	SyncMaster SyncState = 1
	SyncBackup SyncState = 2
)

var syncStateNames = map[SyncState]string{SyncMaster: "master", SyncBackup: "backup"}

func (s SyncState) String() string {
	if n, ok := syncStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("sync_state(%d)", uint32(s))
}

// SyncDaemon is one kernel sync daemon. Zero MaxLen, Port and TTL and an
// invalid Group mean the kernel's defaults (8848, TTL 1, 224.0.0.81).
type SyncDaemon struct {
	State     SyncState
	Interface string // IPVS_DAEMON_ATTR_MCAST_IFN
	SyncID    uint8  // the kernel keeps 32 bits; ipvsadm and keepalived use 0..255
	MaxLen    uint16
	Group     netip.Addr
	Port      uint16
	TTL       uint8
}

func (d SyncDaemon) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s syncid %d", d.State, d.Interface, d.SyncID)
	if d.Group.IsValid() {
		fmt.Fprintf(&b, " group %s", d.Group)
	}
	if d.Port != 0 {
		fmt.Fprintf(&b, " port %d", d.Port)
	}
	if d.TTL != 0 {
		fmt.Fprintf(&b, " ttl %d", d.TTL)
	}
	if d.MaxLen != 0 {
		fmt.Fprintf(&b, " maxlen %d", d.MaxLen)
	}
	return b.String()
}

// IPVS sync daemon netlink constants (include/uapi/linux/ip_vs.h).
const (
	ipvsCmdNewDaemon = 9
	ipvsCmdDelDaemon = 10
	ipvsCmdGetDaemon = 11

	ipvsCmdAttrDaemon = 3

	ipvsDaemonAttrState       = 1
	ipvsDaemonAttrMcastIfn    = 2
	ipvsDaemonAttrSyncID      = 3
	ipvsDaemonAttrSyncMaxLen  = 4
	ipvsDaemonAttrMcastGroup  = 5
	ipvsDaemonAttrMcastGroup6 = 6
	ipvsDaemonAttrMcastPort   = 7
	ipvsDaemonAttrMcastTTL    = 8
)

// encodeSyncDaemon is the nested daemon attribute. full adds what
// NEW_DAEMON takes; DEL_DAEMON needs the state only.
func encodeSyncDaemon(d SyncDaemon, full bool) []byte {
	in := appendAttr(nil, ipvsDaemonAttrState, u32(uint32(d.State)))
	if full {
		in = appendAttr(in, ipvsDaemonAttrMcastIfn, append([]byte(d.Interface), 0))
		in = appendAttr(in, ipvsDaemonAttrSyncID, u32(uint32(d.SyncID)))
		if d.MaxLen != 0 {
			in = appendAttr(in, ipvsDaemonAttrSyncMaxLen, u16(d.MaxLen))
		}
		switch {
		case d.Group.Is4():
			in = appendAttr(in, ipvsDaemonAttrMcastGroup, d.Group.AsSlice())
		case d.Group.Is6():
			in = appendAttr(in, ipvsDaemonAttrMcastGroup6, d.Group.AsSlice())
		}
		if d.Port != 0 {
			in = appendAttr(in, ipvsDaemonAttrMcastPort, u16(d.Port))
		}
		if d.TTL != 0 {
			in = appendAttr(in, ipvsDaemonAttrMcastTTL, u8(d.TTL))
		}
	}
	return appendAttr(nil, ipvsCmdAttrDaemon, in)
}

// decodeSyncDaemonMsg parses one GET_DAEMON reply (generic netlink header
// included).
func decodeSyncDaemonMsg(msg []byte) (SyncDaemon, error) {
	b, err := topAttr(msg, ipvsCmdAttrDaemon, "sync daemon")
	if err != nil {
		return SyncDaemon{}, err
	}
	return decodeSyncDaemon(b)
}

func decodeSyncDaemon(b []byte) (SyncDaemon, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return SyncDaemon{}, err
	}
	var d SyncDaemon
	for _, a := range attrs {
		var v uint64
		switch a.typ {
		case ipvsDaemonAttrState, ipvsDaemonAttrSyncID:
			v, err = attrUint(a, 4)
		case ipvsDaemonAttrSyncMaxLen, ipvsDaemonAttrMcastPort:
			v, err = attrUint(a, 2)
		case ipvsDaemonAttrMcastTTL:
			v, err = attrUint(a, 1)
		}
		if err != nil {
			return SyncDaemon{}, fmt.Errorf("sync daemon: %w", err)
		}
		switch a.typ {
		case ipvsDaemonAttrState:
			d.State = SyncState(v)
		case ipvsDaemonAttrSyncID:
			d.SyncID = uint8(v)
		case ipvsDaemonAttrSyncMaxLen:
			d.MaxLen = uint16(v)
		case ipvsDaemonAttrMcastPort:
			d.Port = uint16(v)
		case ipvsDaemonAttrMcastTTL:
			d.TTL = uint8(v)
		case ipvsDaemonAttrMcastIfn:
			d.Interface = strings.TrimRight(string(a.val), "\x00")
		case ipvsDaemonAttrMcastGroup, ipvsDaemonAttrMcastGroup6:
			g, ok := netip.AddrFromSlice(a.val)
			if !ok || (a.typ == ipvsDaemonAttrMcastGroup) != g.Is4() {
				return SyncDaemon{}, fmt.Errorf("%w: sync daemon group of %d bytes", errMalformed, len(a.val))
			}
			d.Group = g
		}
	}
	if d.State != SyncMaster && d.State != SyncBackup {
		return SyncDaemon{}, fmt.Errorf("%w: sync daemon state %d", errMalformed, uint32(d.State))
	}
	return d, nil
}
