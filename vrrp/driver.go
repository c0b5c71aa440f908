package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// driver carries out a Machine's actions.
type driver struct {
	// mu is held by whoever handles an event: Run's loop, or the reader
	// that hands an advert to an idle loop's driver directly (inline).
	mu     sync.Mutex
	in     *Instance
	m      *Machine
	rt     *runtime
	notify *notifier
	timer  *fdTimer

	announceCancel context.CancelFunc
	announceDone   chan struct{}
	// announceLater holds the announcer's start after a leading frame
	// (ActAnnounce.Lead) until handle has carried out every action: a
	// goroutine started between that frame and the first advert wakes
	// another thread, which on a busy host can take this one's CPU for a
	// scheduler slice and split the two by milliseconds.
	announceLater *int // the frames still to send in the first burst

	lastTrack map[trackKey]bool // tracking.snapshot at the last tracked
	// track is Run's tracking; handle sets its keySend item when a send
	// broke the path (sendFault), before anything else happens.
	track     tracking
	sendFault *sendFailure
	// quietOn: the instance's routine adverts go to the quiet socket
	// (followQuiet); lastAt is when the last advert handled came.
	quietOn bool
	lastAt  time.Time
	// holdTimer: readWaiting is handling adverts, and keeps their last
	// ActSetTimer in heldTimer to set the timer once, after them.
	holdTimer bool
	held      bool // heldTimer is set
	heldTimer ActSetTimer
	// advert is the buffer the adverts sent are encoded in.
	advert []byte
	// mineFn is d.mine, which readWaiting hands to the socket.
	mineFn func(Received)
}

// mine handles an advert of this instance that readWaiting read, d.mu
// held.
func (d *driver) mine(r Received) {
	if ev, ok := d.in.decode(r); ok {
		d.handle(ev)
	}
}

func (d *driver) handle(ev Event) {
	in := d.in
	now := time.Now()
	// An advert counts from when it came (one from the quiet socket came
	// up to a Master_Down_Interval ago), never before one handled
	// already: two readers of a link may hand them over out of order.
	at := now
	adv, isAdvert := ev.(EvAdvert)
	if isAdvert && !adv.At.IsZero() {
		at = adv.At
		if at.Before(d.lastAt) {
			at = d.lastAt
		}
		if at.After(now) {
			at = now
		}
		d.lastAt = at
	}
	acts, reason := d.m.Handle(at, ev)
	in.mu.Lock()
	if isAdvert {
		in.status.AdvertsRecv++
		if adv.quiet {
			in.status.AdvertsQuiet++
		}
		in.status.PeerAddr, in.status.PeerPriority, in.status.PeerSeen = adv.Src, adv.Priority, at
	}
	if reason != Handled {
		in.status.Ignored[string(reason)]++
	}
	in.mu.Unlock()
	for _, a := range acts {
		d.do(now, a)
	}
	if n := d.announceLater; n != nil {
		d.announceLater = nil
		if d.sendFault == nil { // else Fault follows, below
			d.startAnnounce(*n)
		}
	}
	in.mu.Lock()
	in.status.State = d.m.State()
	in.status.Priority = d.m.Priority()
	in.status.MasterAddr = d.m.MasterAddr()
	in.status.MasterInterval = d.m.MasterInterval()
	in.status.Yielded = d.m.Yielded()
	in.status.Drill, _ = d.m.Drill()
	in.mu.Unlock()
	d.followQuiet()
	// A send that broke the path puts the instance in Fault now, not when
	// the path watch's report comes round: a master that cannot advertise
	// must not stay one.
	if f := d.sendFault; f != nil {
		d.sendFault = nil
		if it := d.track[keySend]; it != nil && !it.failing {
			it.failing, it.reason = true, f.why
			d.tracked(d.track)
		}
	}
}

func (d *driver) do(now time.Time, a Action) {
	in := d.in
	switch a := a.(type) {
	case ActSendAdvert:
		d.send(a.Priority)
	case ActAddVIPs:
		if err := d.rt.vips.add(); err != nil {
			in.log.Error("adding virtual addresses", "err", err)
		}
	case ActRemoveVIPs:
		d.stopAnnounce()
		if err := d.rt.vips.remove(); err != nil {
			in.log.Error("removing virtual addresses", "err", err)
		}
	case ActAnnounce:
		d.stopAnnounce()
		if d.sendFault != nil {
			// A send before this failed: Fault follows at once;
			// announcing would pull the traffic here first.
			return
		}
		first := in.cfg.GARP.Repeat
		if a.Lead {
			// Before the next action (the first advert), here; the
			// rest once the actions are done (announceLater).
			if err := d.rt.announce.burst(1); err != nil {
				in.log.Warn("announce", "err", err)
			}
			first--
			d.announceLater = &first
			return
		}
		d.startAnnounce(first)
	case ActSetTimer:
		if d.holdTimer {
			d.heldTimer, d.held = a, true
			return
		}
		if a.At.IsZero() {
			d.timer.stop()
		} else {
			d.timer.resetSlack(now, a.At, d.m.TimerSlack())
		}
	case ActNotify:
		argv := map[State][]string{StateMaster: in.cfg.Notify.Master, StateBackup: in.cfg.Notify.Backup, StateFault: in.cfg.Notify.Fault, StateInit: in.cfg.Notify.Stop}[a.State]
		d.notify.enqueue(notifyJob{argv: argv, instance: in.cfg.Name, state: a.State, priority: d.m.Priority()})
	case ActStateChange:
		in.log.Info("vrrp state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason, "priority", d.m.Priority())
		sc := StateChange{Instance: in.cfg.Name, From: a.From, To: a.To, Priority: d.m.Priority(), Cause: a.Cause, Reason: a.Reason, At: now}
		in.mu.Lock()
		in.status.Transitions++
		in.status.LastChange = now
		in.status.LastReason = a.Reason
		in.mu.Unlock()
		if in.opts.OnStateChange != nil {
			in.opts.OnStateChange(sc)
		}
		if in.group != nil {
			in.group.memberChanged(in, sc)
		}
	}
}

func (d *driver) send(prio uint8) {
	in := d.in
	a := in.advert(prio)
	for _, dst := range in.destinations() {
		b, err := a.Append(d.advert[:0], d.rt.src, dst)
		if err == nil {
			d.advert = b
			err = d.rt.xmit.Write(b, dst)
		}
		in.mu.Lock()
		if err != nil {
			in.status.SendErrors++
			if in.status.SendErrorReasons == nil {
				in.status.SendErrorReasons = map[string]uint64{}
			}
			in.status.SendErrorReasons[SendErrorReason(err)]++
		} else {
			in.status.AdvertsSent++
		}
		in.mu.Unlock()
		if err != nil {
			fault, routed := sendFault(err)
			in.log.Warn("sending advert", "dst", dst, "src", d.rt.src, "err", err, "fault", fault)
			if fault {
				f := sendFailure{why: fmt.Sprintf("adverts to %v from %v cannot be sent: %v", dst, d.rt.src, err), routed: routed}
				if d.sendFault == nil {
					d.sendFault = &f
				}
				if d.rt.path != nil {
					d.rt.path.sendFailed(f)
				}
			}
		}
	}
}

// startAnnounce starts the announcer: a burst of first frames per
// address, then the configured repeat and refresh.
func (d *driver) startAnnounce(first int) {
	in := d.in
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.announceCancel, d.announceDone = cancel, done
	g := in.cfg.GARP
	go func() {
		defer close(done)
		d.rt.announce.run(ctx, first, g.Repeat, g.Delay, g.Refresh, func(err error) { in.log.Warn("announce", "err", err) })
	}()
}

func (d *driver) stopAnnounce() {
	d.announceLater = nil
	if d.announceCancel != nil {
		d.announceCancel()
		<-d.announceDone
		d.announceCancel, d.announceDone = nil, nil
	}
}

// tracked hands a tracking change to the machine and the sync group.
func (d *driver) tracked(t tracking) {
	d.applyTracking(t, false)
}

// applyTracking is tracked; it also logs and counts a change of the
// effective priority with its causes. At startup (initial) a machine with
// nothing failing is left alone.
func (d *driver) applyTracking(t tracking, initial bool) {
	causes := t.changes(d.lastTrack)
	d.lastTrack = t.snapshot()
	old := d.m.Priority()
	d.in.mu.Lock()
	d.in.status.Failing = t.failing()
	d.in.mu.Unlock()
	ev := t.event()
	if !initial || ev != (EvTracking{}) {
		d.handle(ev)
	}
	if d.in.group != nil {
		d.in.group.memberFault(d.in, ev.Fault)
	}
	d.priorityChanged(old, causes)
}

// priorityChanged logs and counts a change of the effective priority from
// old, once, with what caused it.
func (d *driver) priorityChanged(old uint8, causes []priorityCause) {
	now := d.m.Priority()
	if now == old {
		return
	}
	if len(causes) == 0 {
		causes = []priorityCause{{label: "unknown", text: "unknown"}}
	}
	texts := make([]string, len(causes))
	d.in.mu.Lock()
	if d.in.status.PriorityChanges == nil {
		d.in.status.PriorityChanges = map[string]uint64{}
	}
	for i, c := range causes {
		texts[i] = c.text
		d.in.status.PriorityChanges[c.label]++
	}
	base := d.in.status.BasePriority
	d.in.mu.Unlock()
	d.in.log.Info("priority change", "from", old, "to", now, "base", base,
		"cause", strings.Join(texts, "; "), "state", d.m.State().String())
}

// setSource makes src the advert source: the address picked from the
// interface was replaced (pathWatch). Adverts leave from it from now on,
// and a master names it as its own address.
func (d *driver) setSource(src netip.Addr) {
	old := d.rt.src
	if src == old {
		return
	}
	d.rt.src = src
	d.rt.conn.setSource(src)
	if d.rt.xmit != d.rt.conn {
		d.rt.xmit.setSource(src)
	}
	d.m.SetPrimary(src)
	d.in.mu.Lock()
	d.in.status.Source = src
	d.in.mu.Unlock()
	d.in.log.Warn("advert source replaced: the address it was picked from is gone from the interface", "old", old, "new", src)
}

// quietConn is an advertConn whose routine adverts can wait in a quiet
// socket (routineFilter).
type quietConn interface {
	setRoutine(on bool)
}

// followQuiet sends the instance's routine adverts to the quiet socket
// while its Machine is quiet, and back to the prompt one when not.
func (d *driver) followQuiet() {
	want := d.m.Quiet()
	if want == d.quietOn || d.rt == nil {
		return
	}
	q, ok := d.rt.conn.(quietConn)
	if !ok {
		return
	}
	q.setRoutine(want)
	d.quietOn = want
}
