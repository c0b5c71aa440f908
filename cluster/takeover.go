package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// msgTakeOver tags a takeover request among memberlist's user messages;
// a director's gossiped state is JSON and starts with '{'.
const msgTakeOver = 0x01

// TakeOverRequest asks another director to take over VRRP instances in a
// planned handoff (haldir handoff): the sender yields them, and releases
// each once it hears the receiver's first advert. It travels encrypted
// and authenticated by the cluster key, like the gossip.
type TakeOverRequest struct {
	From     string // the asking director's cluster name
	Instance string // a VRRP instance (its sync group moves with it)
	// Window is how long the receiver holds on against the sender's
	// adverts; a duration, not a time: the two clocks differ.
	Window time.Duration
	Reason string
}

// SendTakeOver sends req to the director called to, reliably (TCP). It
// fails when to is not a live member.
func (cl *Cluster) SendTakeOver(to string, req TakeOverRequest) error {
	if to == cl.name {
		return errors.New("cluster: a director cannot hand over to itself")
	}
	for _, n := range cl.ml.Members() {
		if n.Name != to {
			continue
		}
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		if err := cl.ml.SendReliable(n, append([]byte{msgTakeOver}, b...)); err != nil {
			return fmt.Errorf("cluster: takeover request to %s: %w", to, err)
		}
		return nil
	}
	return fmt.Errorf("cluster: %s is not a live member", to)
}

// takeOverMsg hands a received request to OnTakeOver; a malformed one is
// dropped and counted like a malformed state.
func (cl *Cluster) takeOverMsg(b []byte) {
	var req TakeOverRequest
	if err := json.Unmarshal(b, &req); err != nil || req.From == "" || req.Instance == "" || req.Window <= 0 {
		cl.log.Warn("cluster: malformed takeover request dropped", "bytes", len(b), "error", err)
		cl.mu.Lock()
		cl.malformed++
		cl.mu.Unlock()
		return
	}
	if cl.onTakeOver == nil {
		cl.log.Warn("cluster: takeover request dropped: this director takes none", "from", req.From, "instance", req.Instance)
		return
	}
	cl.onTakeOver(req)
}
