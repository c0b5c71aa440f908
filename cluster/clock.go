package cluster

import (
	"encoding/binary"
	"time"

	"github.com/hashicorp/memberlist"
)

// Each director's clock, as the others see it: memberlist probes every
// member about once a second, and the ack carries the acker's wall clock
// (AckPayload). The prober takes the round trip: the ack was stamped about
// half a round trip before it arrived, so the peer's clock runs
// payload - (arrival - rtt/2) ahead of this one. Of the last clockSamples
// probes the one with the shortest round trip is kept, as NTP's clock
// filter does: its half round trip is the tightest bound on the error.
// A drill aligns the peers' events with it.

// clockSamples is how many probes per member the estimate looks at.
const clockSamples = 8

// clockSample is one probe's estimate.
type clockSample struct {
	offset, rtt time.Duration
}

// ClockEstimate is a member's clock offset from this director's (positive:
// its clock is ahead) and the round trip of the probe it rests on; the
// error is at most half that round trip, plus any asymmetry of the path.
type ClockEstimate struct {
	Offset time.Duration
	RTT    time.Duration
}

// pingDelegate is the Cluster as memberlist's PingDelegate.
type pingDelegate Cluster

// AckPayload stamps an ack with this director's wall clock.
func (p *pingDelegate) AckPayload() []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
}

// NotifyPingComplete takes a probe's round trip and the peer's stamp.
func (p *pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	arrived := time.Now()
	if len(payload) != 8 || other == nil || rtt < 0 {
		return // an older haldir's ack carries no stamp
	}
	peer := time.Unix(0, int64(binary.BigEndian.Uint64(payload)))
	s := clockSample{offset: peer.Sub(arrived.Add(-rtt / 2)), rtt: rtt}
	cl := (*Cluster)(p)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.clocks == nil {
		cl.clocks = map[string][]clockSample{}
	}
	ss := append(cl.clocks[other.Name], s)
	if len(ss) > clockSamples {
		ss = ss[len(ss)-clockSamples:]
	}
	cl.clocks[other.Name] = ss
}

// clockOf is the estimate for a member from its samples (cl.mu held).
func (cl *Cluster) clockOf(name string) *ClockEstimate {
	ss := cl.clocks[name]
	if len(ss) == 0 {
		return nil
	}
	best := ss[0]
	for _, s := range ss[1:] {
		if s.rtt < best.rtt {
			best = s
		}
	}
	return &ClockEstimate{Offset: best.offset, RTT: best.rtt}
}
