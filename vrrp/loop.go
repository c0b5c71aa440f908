package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Run starts the instance and runs it until ctx is done; then it shuts
// down as on SIGTERM: a master sends priority 0 and removes its VIPs. It
// returns an error only when setup fails. An Instance runs once.
func (in *Instance) Run(ctx context.Context) error {
	if in.ran.Swap(true) {
		return fmt.Errorf("vrrp instance %q: Run called twice", in.cfg.Name)
	}
	defer close(in.stopped)
	trackCh := make(chan trackUpdate, 16)
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Adverts reach the loop through pkts, decoded by sink on the reading
	// goroutine: readLoop's below, or the link's shared reader, which
	// openHost hands the sink.
	pkts := make(chan EvAdvert, advertQueue)
	var inline atomic.Pointer[driver]
	in.decode = in.advertDecoder()
	in.sink = in.advertSink(in.decode, pkts, &inline)
	rt, err := in.host(runCtx, in, trackCh)
	if err != nil {
		return err
	}
	m, err := NewMachine(in.machineConfig(rt.src))
	if err != nil {
		rt.close()
		return err
	}
	in.mu.Lock()
	in.status.Source = rt.src
	in.status.VMACInterface = rt.vmacName
	in.mu.Unlock()

	// A VIP left over from a crash must not stay up while we are backup.
	if err := rt.vips.remove(); err != nil {
		in.log.Warn("removing stale virtual addresses", "err", err)
	}

	notify := newNotifier(in.opts.NotifyTimeout, func(err error) { in.log.Warn("notify", "err", err) })
	var wg sync.WaitGroup
	var d *driver
	defer func() {
		// Order matters: the reader only returns once its socket is
		// closed, and the stop notification must be queued before the
		// notifier drains.
		if d != nil {
			d.stopAnnounce()
		}
		cancel()
		rt.close()
		wg.Wait()
		notify.close()
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		in.readLoop(runCtx, rt.conn)
	}()
	track := tracking{
		keySource: {desc: "advert source", down: "unusable"},
		keySend:   {desc: "advert sending", down: "failing"},
	}
	for _, t := range rt.initial {
		if it := track[t.key]; it != nil {
			it.failing, it.reason = t.failing, t.reason
			continue
		}
		track[t.key] = &trackItem{failing: t.failing, desc: "interface " + t.key.name, down: "down"}
	}
	for _, t := range in.cfg.TrackInterfaces {
		if it := track[ifaceKey(t.Name)]; it != nil {
			it.weight, it.desc = t.Weight, "track_interface "+t.Name
		}
	}
	for i, s := range in.cfg.TrackScripts {
		key := trackKey{kind: trackScript, name: s.Name, index: i}
		track[key] = &trackItem{weight: s.Weight, desc: "track_script " + s.Name, down: "failing"}
		st := scriptTracker{key: key, argv: s.Command, interval: s.Interval, timeout: s.Timeout, rise: s.Rise, fall: s.Fall}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.run(runCtx, trackCh)
		}()
	}
	rt.path.start(runCtx, &wg, track[keySource].failing, trackCh)

	for _, v := range in.cfg.TrackVirtualServers {
		track[trackKey{kind: trackVS, name: v.Name}] = &trackItem{weight: v.Weight, desc: "track_virtual_server " + v.Name, down: "down"}
	}
	in.vs.apply(track)
	in.maint.apply(track)

	timers := in.opts.timers
	if timers == nil {
		timers = newTimerSet()
	}
	timer, err := timers.newTimer()
	if err != nil {
		return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, err)
	}
	defer timer.close()
	d = &driver{in: in, m: m, rt: rt, notify: notify, timer: timer, track: track}
	d.mu.Lock()
	d.applyTracking(track, true)
	d.handle(EvStartup{})
	d.mu.Unlock()
	inline.Store(d)
	defer inline.Store(nil)
	// The timer too is handled on its own goroutine when the loop is
	// idle and no advert waits: a master's Adver_Timer fires every
	// interval, and waking the loop for it cost more than the work.
	fired := func() bool {
		d := idleDriver(&inline, pkts)
		if d == nil {
			return false
		}
		defer d.mu.Unlock()
		return d.timerFired(pkts, true)
	}
	timer.fired.Store(&fired)
	defer timer.fired.Store(nil)
	for {
		var ev any
		select {
		case <-ctx.Done():
			inline.Store(nil)
			d.mu.Lock()
			d.handle(EvShutdown{})
			d.mu.Unlock()
			return nil
		case ev = <-pkts:
		case ev = <-d.timer.C:
		case ev = <-trackCh:
		case <-in.vs.kick:
			ev = vsKick{}
		case <-in.inbox.Ready():
			ev = inboxReady{}
		case reply := <-in.ping:
			close(reply)
			continue
		case <-in.reconf:
			ev = reconfKick{}
		}
		d.mu.Lock()
		d.loopEvent(ev, pkts)
		if _, ok := ev.(EvAdvert); ok {
			in.queued.Add(-1)
		}
		d.mu.Unlock()
	}
}

// Kinds of loopEvent besides the channels' own values.
type (
	vsKick     struct{}
	inboxReady struct{}
	reconfKick struct{}
)

// loopEvent handles one event of Run's loop, d.mu held.
func (d *driver) loopEvent(ev any, pkts <-chan EvAdvert) {
	in, track := d.in, d.track
	switch ev.(type) {
	case EvAdvert, time.Time:
	default:
		// Adverts waiting in the quiet socket came before this.
		d.catchUp(pkts)
	}
	switch ev := ev.(type) {
	case EvAdvert:
		d.handle(ev)
	case time.Time: // the timer
		d.timerFired(pkts, false)
	case trackUpdate:
		u := ev
		if u.source.IsValid() {
			d.setSource(u.source)
		}
		if it := track[u.key]; it != nil {
			it.failing, it.reason = u.failing, u.reason
		}
		d.tracked(track)
	case vsKick:
		in.vs.apply(track)
		d.tracked(track)
	case inboxReady:
		for _, ev := range in.inbox.Take() {
			if _, ok := ev.(evMaintenance); ok {
				in.maint.apply(track)
				d.tracked(track)
				continue
			}
			d.handle(ev)
		}
	case reconfKick:
		in.pendingMu.Lock()
		cfg := in.pending
		in.pending = nil
		in.pendingMu.Unlock()
		if cfg != nil {
			d.reconfigure(*cfg)
		}
	}
}

// timerFired handles the timer after the adverts already queued. Go's
// select picks at random among ready cases, and after a stall (a busy
// host, a paused VM) the timer and the adverts that would have stopped it
// are ready together: handled first, the master's advert re-arms the
// master down timer and the fire is stale (IgnoreStaleTimer), where the
// other order had a backup declare a live master down.
//
// A backup whose Master_Down_Timer is due first reads what waits in its
// socket: after a stall of the whole daemon (CPU starved, throttled by
// its cgroup's memory.high, stopped) the reader has not run yet either,
// and the master's adverts sit unread while the timer says it is gone.
// keepalived's one loop handles a readable socket before a timeout, and
// so does this. A master's Adver_Timer reads nothing: it costs no system
// call per advert sent.
//
// A quiet backup (Machine.Quiet) reads the quiet socket here: its
// master's routine adverts wait there until the timer comes due.
//
// Off the loop's goroutine (inline), an advert the loop has taken from
// pkts but not handled yet (it waits for d.mu) may be the one that stops
// the timer: then the fire is left to the loop, which handles it after
// that advert (false: not handled).
func (d *driver) timerFired(pkts <-chan EvAdvert, inline bool) bool {
	d.drainQueued(pkts)
	if d.rt != nil && d.m.State() == StateBackup && !time.Now().Before(d.m.Deadline()) {
		d.readWaiting()
	}
	d.drainQueued(pkts)
	if inline && d.in.queued.Load() > 0 {
		return false
	}
	if d.timer.due(time.Now()) {
		d.handle(EvTimer{})
	}
	return true
}

// drainQueued handles the adverts queued for the loop.
func (d *driver) drainQueued(pkts <-chan EvAdvert) {
	for {
		select {
		case ev := <-pkts:
			d.handle(ev)
			d.in.queued.Add(-1)
		default:
			return
		}
	}
}

// catchUp handles, before an event of another kind, the adverts that
// came before it: those in the quiet socket (while this instance's go
// there) and those queued.
func (d *driver) catchUp(pkts <-chan EvAdvert) {
	if !d.quietOn {
		return
	}
	d.drainQueued(pkts)
	d.readWaiting()
	d.drainQueued(pkts)
}

// readWaiting reads what waits in the link's sockets now. This
// instance's adverts are handled here, d.mu held, in the order they came:
// queued for the loop, the loop's goroutine would be woken to take them
// (a thread hand-off per read) and could hold one while this goroutine
// decides on the timer. The timer is set once, after them.
func (d *driver) readWaiting() {
	w, ok := d.rt.conn.(waitingReader)
	if !ok {
		return
	}
	if d.mineFn == nil {
		// Made once: the method value escapes to the interface
		// call, an allocation per wake-up of a backup.
		d.mineFn = d.mine
	}
	d.holdTimer = true
	w.readWaiting(d.mineFn)
	d.holdTimer = false
	if d.held {
		d.held = false
		d.do(time.Now(), d.heldTimer)
	}
}

// ErrStopped is Ping's answer once Run has returned.
var ErrStopped = errors.New("vrrp instance stopped")

// Ping returns once Run's event loop has answered: it is alive, not stuck
// in a handler. It fails with ctx's error when the loop does not answer in
// time (not started yet, or stalled), and with ErrStopped after Run.
func (in *Instance) Ping(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case in.ping <- reply:
	case <-in.stopped:
		return fmt.Errorf("vrrp instance %q: %w", in.cfg.Name, ErrStopped)
	case <-ctx.Done():
		return fmt.Errorf("vrrp instance %q: its loop does not answer: %w", in.cfg.Name, ctx.Err())
	}
	<-reply // closed at once by the loop that took it
	return nil
}

// advertQueue is how many decoded adverts may wait for Run's loop. The
// reader never waits for the loop (a shared one serves every instance of
// the link): an advert beyond that is dropped as DropQueueFull.
const advertQueue = 256

// advertDecoder returns the function that decodes what the socket
// received into an advert for the instance's Machine, or false when it is
// dropped (counted by reason). One goroutine at a time calls it: the
// link's reader, or a driver reading what waits, under the link's lock.
func (in *Instance) advertDecoder() func(Received) (EvAdvert, bool) {
	vrid := in.cfg.VRID
	dec := Decoder{Routers: map[uint8]Expect{}, Drops: &in.drops}
	var expect *Expect
	return func(r Received) (EvAdvert, bool) {
		if e := in.addrs.Load(); e != expect {
			expect, dec.Routers[vrid] = e, *e
		}
		a, reason := dec.Decode(r)
		if reason != DropNone {
			if in.log.Enabled(context.Background(), slog.LevelDebug) {
				in.log.Debug("advert dropped", "reason", reason.String(), "src", r.Src)
			}
			return EvAdvert{}, false
		}
		return EvAdvert{Src: r.Src, Priority: a.Priority, Interval: a.Interval, At: r.At, quiet: r.quiet}, true
	}
}

// advertSink returns the function that decodes what the socket received
// and hands the advert over. One goroutine at a time calls it: readLoop,
// or the link's shared reader. When Run's loop is idle (its driver's lock
// free) and no advert waits in out, the advert is handled right here:
// waking the loop's goroutine for every advert (a backup hears one per
// interval per instance) cost more than handling it. Otherwise it is
// queued for the loop, so adverts are handled in the order they came.
// The reader never waits for the loop.
func (in *Instance) advertSink(decode func(Received) (EvAdvert, bool), out chan EvAdvert, inline *atomic.Pointer[driver]) func(Received) {
	return func(r Received) {
		ev, ok := decode(r)
		if !ok {
			return
		}
		if d := idleDriver(inline, out); d != nil {
			d.handle(ev)
			d.mu.Unlock()
			return
		}
		in.queued.Add(1)
		select {
		case out <- ev:
		default:
			in.queued.Add(-1)
			in.drops.Add(DropQueueFull)
		}
	}
}

// idleDriver returns the instance's driver, locked, when Run's loop is
// idle (the lock free), the driver is still the running one (live: nil
// once shutdown begins) and no advert waits in pkts, so that an event can
// be handled on the caller's goroutine in order; nil otherwise. It never
// waits for the loop. The caller unlocks.
func idleDriver(live *atomic.Pointer[driver], pkts chan EvAdvert) *driver {
	d := live.Load()
	if d == nil || len(pkts) > 0 || !d.mu.TryLock() {
		return nil
	}
	if live.Load() != d || len(pkts) > 0 {
		d.mu.Unlock()
		return nil
	}
	return d
}

// readLoop reads the instance's own socket into its sink until the socket
// is closed. On a shared link socket Read only waits for the close.
func (in *Instance) readLoop(ctx context.Context, c advertConn) {
	buf := make([]byte, 1500)
	for {
		r, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			in.log.Warn("reading adverts", "err", err)
			continue
		}
		in.sink(r)
	}
}
