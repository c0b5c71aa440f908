package vrrp

import "sync/atomic"

// DropReason names why a received advertisement was discarded. The String
// form is stable: it is the "reason" label of the drop metric.
type DropReason int

// Drop reasons. DropNone means the packet was accepted.
const (
	DropNone DropReason = iota
	DropTooShort
	DropTooLong
	DropBadVersion
	DropBadType
	DropBadTTL
	DropBadChecksum
	DropUnknownVRID
	DropAddrCount
	DropAddrList
	DropAuthMismatch
	DropIntervalMismatch
	DropBadInterval
	DropUnknownPeer
	DropWrongFamily
	// DropQueueFull: the instance's loop was advertQueue adverts behind,
	// and the reader (maybe its link's shared one) dropped the advert
	// rather than wait.
	DropQueueFull
	// DropSocketOverflow: the kernel dropped packets at the link's
	// socket for want of buffer room (SO_RXQ_OVFL), before anything
	// could read their VRID; each instance on the link counts them.
	DropSocketOverflow
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropNone:             "none",
	DropTooShort:         "too_short",
	DropTooLong:          "too_long",
	DropBadVersion:       "bad_version",
	DropBadType:          "bad_type",
	DropBadTTL:           "bad_ttl",
	DropBadChecksum:      "bad_checksum",
	DropUnknownVRID:      "unknown_vrid",
	DropAddrCount:        "addr_count_mismatch",
	DropAddrList:         "addr_list_mismatch",
	DropAuthMismatch:     "auth_mismatch",
	DropIntervalMismatch: "interval_mismatch",
	DropBadInterval:      "bad_interval",
	DropUnknownPeer:      "unknown_peer",
	DropWrongFamily:      "wrong_family",
	DropQueueFull:        "queue_full",
	DropSocketOverflow:   "socket_overflow",
}

func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropNames[r]
}

// DropReasons lists every reason except DropNone, in a fixed order, so an
// exporter can pre-register all label values.
func DropReasons() []DropReason {
	out := make([]DropReason, 0, numDropReasons-1)
	for r := DropNone + 1; r < numDropReasons; r++ {
		out = append(out, r)
	}
	return out
}

// DropCounters counts dropped packets per reason. The zero value is ready;
// it is safe for concurrent use.
type DropCounters struct {
	n [numDropReasons]atomic.Uint64
}

// Add counts one drop for r. DropNone and out-of-range reasons are ignored.
func (c *DropCounters) Add(r DropReason) { c.AddN(r, 1) }

// AddN counts n drops for r. DropNone and out-of-range reasons are
// ignored.
func (c *DropCounters) AddN(r DropReason, n uint64) {
	if r <= DropNone || r >= numDropReasons {
		return
	}
	c.n[r].Add(n)
}

// Get returns the count for r.
func (c *DropCounters) Get(r DropReason) uint64 {
	if r <= DropNone || r >= numDropReasons {
		return 0
	}
	return c.n[r].Load()
}

// Snapshot returns the counts keyed by reason name, including zero counts so
// that a metric series exists before the first drop.
func (c *DropCounters) Snapshot() map[string]uint64 {
	out := make(map[string]uint64, numDropReasons-1)
	for r := DropNone + 1; r < numDropReasons; r++ {
		out[r.String()] = c.n[r].Load()
	}
	return out
}
