package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/haldir-lb/haldir/bgp"
	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/control"
)

// The BGP speaker of [bgp]: the loop owns the Announcer (what is to be
// announced, from the director's quorum reports, maintenance and the
// stop) and hands its actions to the Speaker, which carries them out on
// its own goroutine; peer state changes come back through bgpPeers.

// bgpState is the running [bgp]; nil without it.
type bgpState struct {
	spec      conf.BGPSpec
	routerID  netip.Addr
	speaker   *bgp.Speaker
	announcer *bgp.Announcer
	device    *bgp.Device
	// stopping: the daemon stops; every prefix is withdrawn.
	stopping bool
}

// startBGP starts the speaker of spec's [bgp], when there is one. A
// speaker that cannot start (no router ID, the device, the listener) is
// not running, logged and in status; the rest of the daemon runs on.
func (d *Daemon) startBGP(spec *conf.Spec) {
	if spec.BGP == nil {
		delete(d.notRunning, "bgp")
		return
	}
	b, err := d.newBGP(spec)
	if err != nil {
		d.log.Error("bgp not started", "error", err)
		d.notRunning["bgp"] = err.Error()
		return
	}
	delete(d.notRunning, "bgp")
	d.bgp = b
	d.log.Info("bgp speaker started", "asn", b.spec.ASN, "router_id", b.routerID.String(), "listen_port", b.spec.ListenPort,
		"peers", len(b.spec.Peers), "prefixes", len(b.spec.Announce), "device", b.device.Name())
	d.setBGPPeers(b, spec.BGP.Peers)
	d.warnUnreachable(b.spec)
	d.applyBGP(b.announcer.SetConfig(b.spec.GracefulShutdown, b.spec.Announce, d.bgpInputs(), time.Now()))
}

func (d *Daemon) newBGP(spec *conf.Spec) (*bgpState, error) {
	s := *spec.BGP
	id, err := bgp.RouterID(s.RouterID)
	if err != nil {
		return nil, err
	}
	dev, err := bgp.OpenDevice(s.Device, d.opts.BGPDo)
	if err != nil {
		return nil, err
	}
	if err := dev.SetAddrs(bgp.Addresses(s, spec.VirtualServers)); err != nil {
		d.log.Error("bgp: the announced addresses", "error", err)
	}
	// The peers are set after Start returns: a peer's bad password file
	// is a peer not running, not a speaker not running.
	noPeers := s
	noPeers.Peers = nil
	sp, err := bgp.Start(noPeers, id, bgp.Options{Logger: d.log.With("component", "bgp"), OnPeer: d.bgpPeers.Put,
		GracefulWait: d.opts.BGPGracefulWait})
	if err != nil {
		_ = dev.Close()
		return nil, err
	}
	return &bgpState{spec: s, routerID: id, speaker: sp, announcer: bgp.NewAnnouncer(), device: dev}, nil
}

// setBGPPeers gives the speaker its peers; a peer that cannot be set up is
// not running ("bgp peers"), with why.
func (d *Daemon) setBGPPeers(b *bgpState, peers []conf.BGPPeerSpec) {
	if err := b.speaker.SetPeers(peers); err != nil {
		d.log.Error("bgp: peers", "error", err)
		d.notRunning["bgp peers"] = err.Error()
		return
	}
	delete(d.notRunning, "bgp peers")
}

// warnUnreachable logs each prefix no peer of its family hears of.
func (d *Daemon) warnUnreachable(spec conf.BGPSpec) {
	for _, p := range bgp.Unreachable(spec) {
		d.log.Warn("bgp: no peer of the prefix's family: announced to nobody", "prefix", p.String())
	}
}

// bgpInputs are what the announcer decides from, as the loop has them now.
func (d *Daemon) bgpInputs() bgp.Inputs {
	return bgp.Inputs{Quorum: d.quorum, Maintenance: d.op.Maintenance != nil, Stopping: d.bgp != nil && d.bgp.stopping}
}

// decideBGP asks the announcer again after an input changed.
func (d *Daemon) decideBGP() {
	if d.bgp != nil {
		d.applyBGP(d.bgp.announcer.Decide(d.bgpInputs(), time.Now()))
	}
}

// applyBGP logs each action once, with its reason, keeps it for drill
// timelines, and hands them to the speaker.
func (d *Daemon) applyBGP(actions []bgp.Action) {
	if len(actions) == 0 {
		return
	}
	now := time.Now()
	for _, a := range actions {
		if a.Announce {
			d.log.Info("bgp: announcing", "prefix", a.Route.Prefix.String())
		} else {
			d.log.Warn("bgp: withdrawing", "prefix", a.Route.Prefix.String(), "reason", a.Reason, "graceful", a.Graceful)
		}
		d.remember(now, "bgp: "+a.String())
	}
	d.bgp.speaker.Apply(actions)
	d.tellCluster(nil)
}

// bgpPeerChanged logs a peer's session state change.
func (d *Daemon) bgpPeerChanged(e bgp.PeerEvent) {
	if e.State == "established" {
		d.log.Info("bgp peer established", "peer", e.Peer.String())
		d.remember(e.At, "bgp: peer "+e.Peer.String()+" established")
		return
	}
	d.log.Warn("bgp peer "+e.State, "peer", e.Peer.String(), "reason", e.Reason)
	if e.Reason != "" {
		d.remember(e.At, fmt.Sprintf("bgp: peer %s %s: %s", e.Peer, e.State, e.Reason))
	}
}

// reloadBGP takes a reload's [bgp]: peers and announcements change in
// place; a new ASN, router ID or listener (GoBGP takes them only at start)
// or device restarts the speaker, withdrawing gracefully first. That
// restart, and a reload that drops [bgp], hold the loop for the graceful
// wait (1 s): the old speaker must have withdrawn and closed its listener
// before the new one starts, and the addresses go only after the
// withdraw. Both are rare operator acts.
func (d *Daemon) reloadBGP(spec *conf.Spec) {
	b := d.bgp
	switch {
	case b == nil:
		d.startBGP(spec)
		return
	case spec.BGP == nil:
		d.stopBGP()
		return
	}
	next := *spec.BGP
	if bgp.NeedsRestart(b.spec, next) || b.spec.Device != next.Device {
		d.log.Warn("bgp: asn, router_id, listen_port or device changed: restarting the speaker")
		d.stopBGP()
		d.startBGP(spec)
		return
	}
	// Every reload: a password file's key may have changed behind the
	// same path; an unchanged peer is left alone.
	d.setBGPPeers(b, next.Peers)
	d.warnUnreachable(next)
	// The addresses follow the configuration: one whose prefix a reload
	// removed goes with its virtual server.
	if err := b.device.SetAddrs(bgp.Addresses(next, spec.VirtualServers)); err != nil {
		d.log.Error("bgp: the announced addresses", "error", err)
	}
	b.spec = next
	d.applyBGP(b.announcer.SetConfig(next.GracefulShutdown, next.Announce, d.bgpInputs(), time.Now()))
}

// stopBGP withdraws every prefix (gracefully when graceful_shutdown is
// on: the routers move the traffic before the route goes), stops the
// speaker once that is done, and only then takes the addresses off the
// device. It waits at most the graceful wait.
func (d *Daemon) stopBGP() {
	b := d.bgp
	if b == nil {
		return
	}
	b.stopping = true
	d.decideBGP()
	b.speaker.Stop()
	if err := b.device.Close(); err != nil {
		d.log.Error("bgp: removing the announced addresses", "error", err)
	}
	d.bgp = nil
	delete(d.notRunning, "bgp peers")
	d.tellCluster(nil)
	d.log.Info("bgp speaker stopped")
}

// announcedPrefixes are the prefixes this director announces now, for the
// cluster view.
func (d *Daemon) announcedPrefixes() []netip.Prefix {
	if d.bgp == nil {
		return nil
	}
	var out []netip.Prefix
	for _, st := range d.bgp.announcer.State() {
		if st.Announced {
			out = append(out, st.Prefix)
		}
	}
	return out
}

// bgpStatus is [bgp]'s part of the status: the loop's part (prefixes)
// copied on it; peers asks GoBGP, off the loop.
func (d *Daemon) bgpStatus() (*control.BGPStatus, func(*control.BGPStatus)) {
	b := d.bgp
	if b == nil {
		return nil, nil
	}
	st := &control.BGPStatus{ASN: b.spec.ASN, RouterID: b.routerID, Device: b.device.Name(), Prefixes: b.announcer.State()}
	sp := b.speaker
	return st, func(st *control.BGPStatus) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ps, err := sp.Peers(ctx)
		if err != nil {
			st.PeersError = err.Error()
		}
		st.Peers = ps
	}
}
