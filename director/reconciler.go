package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
)

// Verdict is one health transition of a real server, as the health checker
// reports it. Service is Key(virtual server) and Real is RealAddr(virtual
// server, real server). WeightSet carries a dynamic weight (from an exec
// check): while set it replaces the configured weight; a negative Weight
// (healthcheck.WeightConfigured) counts as unset.
type Verdict struct {
	Service   ipvs.ServiceKey
	Real      netip.AddrPort
	Up        bool
	Weight    int
	WeightSet bool
}

type healthKey struct {
	svc  ipvs.ServiceKey
	real netip.AddrPort
}

// Options tune a Reconciler. Zero values get defaults.
type Options struct {
	Logger *slog.Logger
	// Resync is the period of the drift-repairing pass (default 30s).
	Resync time.Duration
	// RetryMin is the first delay before retrying a pass that had errors;
	// it doubles up to Resync (default 1s).
	RetryMin time.Duration
	// OnQuorum, when set, is called after a pass with the quorum of every
	// configured virtual server whose quorum was not reported yet or has
	// changed since (see QuorumState). It runs on the reconciling
	// goroutine and must return quickly.
	OnQuorum func(QuorumState)
}

// Reconciler keeps the kernel IPVS table equal to the configured virtual
// servers and the health verdicts.
//
// Ownership: a service is managed when it is configured. A managed service
// found in the kernel is adopted as it is (no write when it already
// matches), and every destination inside a managed service is the
// reconciler's: unknown ones are removed. A service that is neither
// configured nor was managed by this process is foreign: left alone and
// reported by Foreign. A service dropped from the configuration by a reload
// is deleted; one dropped while haldir was stopped becomes foreign.
type Reconciler struct {
	k        ipvs.Kernel
	log      *slog.Logger
	resync   time.Duration
	retryMin time.Duration
	kick     chan struct{}

	pass sync.Mutex // serialises passes
	// known is the kernel table as the last pass left it (read, then kept
	// up to date with its successful writes), which ReconcileChanges
	// trusts instead of reading the kernel again; nil after a pass with
	// any error, or before the first. knownTimeouts are the timeouts that
	// pass found or set. Both are guarded by pass.
	known         map[ipvs.ServiceKey]*kstate
	knownTimeouts ipvs.Timeouts
	// unread are the services of known whose destinations were not read
	// (foreign ones), sorted. want is the desired state of every
	// configured service as the last pass computed it, and wantKeys its
	// keys in order: a changes pass recomputes only the services marked
	// dirty since. owned are the services this process manages. diffAll
	// makes the next pass diff every service (the last one skipped
	// writes). diffed counts the services the last pass diffed. All
	// guarded by pass.
	unread   []ipvs.ServiceKey
	want     map[ipvs.ServiceKey]*desiredSvc
	wantKeys []ipvs.ServiceKey
	owned    map[ipvs.ServiceKey]bool
	diffAll  bool
	diffed   int

	cfgMu sync.Mutex // serialises SetConfig

	mu       sync.Mutex
	model    []vsModel
	timeouts ipvs.Timeouts
	health   map[healthKey]Verdict
	// overrides are the operator's weights (SetOverrides), per configured
	// real server of a service.
	overrides map[healthKey]int
	quorumUp  quorumMemory
	// index is each configured service's position in model (replaced,
	// never edited). dirty are the services a SetConfig or SetHealth
	// changed since the last pass took them; structural says a SetConfig
	// added, removed, reordered or renamed virtual servers since. stray
	// are verdicts for targets not configured when they came, which the
	// next SetConfig drops unless it configures them.
	index      map[ipvs.ServiceKey]int
	dirty      map[ipvs.ServiceKey]bool
	structural bool
	stray      map[healthKey]bool
	// sharedNames: virtual servers share a name (conf rejects that; the
	// quorum reports, keyed by name, then depend on every service).
	sharedNames bool
	foreign     []ipvs.ServiceKey
	snap        []ServiceStatus
	cnt         Counters

	onQuorum func(QuorumState)
	reported map[string]bool // virtual server name -> quorum last given to onQuorum
}

// New returns a Reconciler writing to k. It manages nothing until SetConfig.
func New(k ipvs.Kernel, opt Options) *Reconciler {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Resync <= 0 {
		opt.Resync = 30 * time.Second
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = time.Second
	}
	return &Reconciler{
		k: k, log: opt.Logger, resync: opt.Resync, retryMin: opt.RetryMin,
		kick:      make(chan struct{}, 1),
		health:    map[healthKey]Verdict{},
		overrides: map[healthKey]int{},
		quorumUp:  quorumMemory{},
		owned:     map[ipvs.ServiceKey]bool{},
		dirty:     map[ipvs.ServiceKey]bool{},
		stray:     map[healthKey]bool{},
		cnt:       Counters{Writes: map[ipvs.OpKind]uint64{}, Errors: map[ErrorKey]uint64{}},
		onQuorum:  opt.OnQuorum,
		reported:  map[string]bool{},
	}
}

// SetConfig replaces the desired virtual servers and IPVS timeouts (a
// reload) with those of s (conf.Compile's, validated) and wakes Run. Two
// virtual servers of one service are refused with an error naming them;
// the previous configuration then stays in force.
//
// Only the virtual servers that changed are marked for the next pass (see
// rebuildModel), so a reload of one weight in a large table costs a
// conversion and comparison of the table and the work of one service.
func (r *Reconciler) SetConfig(s *conf.Spec) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	old := r.model // written only under cfgMu
	m, diff, err := rebuildModel(s.VirtualServers, old)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.model = m
	r.timeouts = ipvs.Timeouts{TCP: s.IPVS.TimeoutTCP, TCPFin: s.IPVS.TimeoutTCPFin, UDP: s.IPVS.TimeoutUDP}
	for _, key := range diff.changed {
		r.dirty[key] = true
	}
	// Forget verdicts and quorum states of targets no longer configured.
	if diff.structural {
		r.structural = true
		r.index = make(map[ipvs.ServiceKey]int, len(m))
		names := make(map[string]bool, len(m))
		r.sharedNames = false
		for i := range m {
			r.index[m[i].svc.Key] = i
			r.sharedNames = r.sharedNames || names[m[i].name]
			names[m[i].name] = true
		}
		maps.DeleteFunc(r.health, func(k healthKey, _ Verdict) bool { return !r.configuredLocked(k) })
		maps.DeleteFunc(r.quorumUp, func(k ipvs.ServiceKey, _ bool) bool {
			_, ok := r.index[k]
			return !ok
		})
		clear(r.stray)
	} else {
		// Same services at the same positions: only a changed one can
		// have lost real servers, besides the stray verdicts.
		for _, key := range diff.changed {
			for _, rm := range old[r.index[key]].reals {
				if hk := (healthKey{key, rm.tmpl.Addr}); !r.configuredLocked(hk) {
					delete(r.health, hk)
				}
			}
		}
		for hk := range r.stray {
			if !r.configuredLocked(hk) {
				delete(r.health, hk)
			}
			delete(r.stray, hk)
		}
	}
	r.mu.Unlock()
	r.wake()
	return nil
}

// Override is an operator's weight for one real server of one service
// (haldir drain): while set, the real server gets it instead of its
// configured or dynamic weight (see desired). It is desired state like the
// configuration: a pass keeps the kernel at it, so it is never reverted
// nor drift.
type Override struct {
	Service ipvs.ServiceKey
	Real    netip.AddrPort
	Weight  int // 0..ipvs.MaxWeight
}

// SetOverrides replaces the operator's weight overrides with ovs and wakes
// Run; only the services whose overrides changed are recomputed. An
// override for a real server the configuration does not have changes
// nothing (the caller resolves them against the configuration).
func (r *Reconciler) SetOverrides(ovs []Override) {
	next := make(map[healthKey]int, len(ovs))
	for _, o := range ovs {
		next[healthKey{o.Service, o.Real}] = min(max(o.Weight, 0), ipvs.MaxWeight)
	}
	r.mu.Lock()
	for k, w := range next {
		if old, ok := r.overrides[k]; !ok || old != w {
			r.dirty[k.svc] = true
		}
	}
	for k := range r.overrides {
		if _, ok := next[k]; !ok {
			r.dirty[k.svc] = true
		}
	}
	r.overrides = next
	r.mu.Unlock()
	r.wake()
}

// configuredLocked reports whether k is a configured real server; r.mu
// must be held.
func (r *Reconciler) configuredLocked(k healthKey) bool {
	i, ok := r.index[k.svc]
	return ok && slices.ContainsFunc(r.model[i].reals, func(rs realModel) bool { return rs.tmpl.Addr == k.real })
}

// SetHealth records a health verdict and wakes Run. Verdicts for targets
// not (yet) configured are kept until the next SetConfig drops them.
func (r *Reconciler) SetHealth(v Verdict) {
	r.mu.Lock()
	hk := healthKey{v.Service, v.Real}
	r.health[hk] = v
	r.dirty[v.Service] = true
	if !r.configuredLocked(hk) {
		r.stray[hk] = true
	}
	r.mu.Unlock()
	r.wake()
}

func (r *Reconciler) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run reconciles at once, then on every SetConfig/SetHealth (applying the
// change against the table as the last pass left it: ReconcileChanges),
// every Resync period (reading the whole kernel table, which repairs
// drift: Reconcile), and sooner (with backoff, reading everything again)
// after a pass that had errors. It returns nil when ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	tick := time.NewTicker(r.resync)
	defer tick.Stop()
	var retry <-chan time.Time
	delay := r.retryMin
	changes := false
	for {
		var err error
		if changes {
			_, err = r.ReconcileChanges(ctx)
		} else {
			_, err = r.Reconcile(ctx)
		}
		changes = false
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			retry = time.After(delay)
			delay = min(delay*2, r.resync)
		} else {
			retry, delay = nil, r.retryMin
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
			changes = true
		case <-tick.C:
		case <-retry:
		}
	}
}

// Result describes one reconcile pass.
type Result struct {
	Writes  int               // write calls issued (successful or not)
	Applied []ipvs.Op         // writes that succeeded, in order
	Failed  []FailedOp        // writes that failed, in order
	Skipped int               // writes not attempted because an earlier one they depend on failed
	Foreign []ipvs.ServiceKey // kernel services left alone
}

// FailedOp is a write the kernel refused.
type FailedOp struct {
	Op  ipvs.Op
	Err error
}

// ErrorKey indexes the error counters.
type ErrorKey struct {
	Op     ipvs.OpKind
	Reason string // errno name (EEXIST, ESRCH, ...) or "other"
}

// Counters are cumulative since New.
type Counters struct {
	Passes       uint64
	FailedPasses uint64
	Writes       map[ipvs.OpKind]uint64 // write calls issued per operation
	Errors       map[ErrorKey]uint64    // failures per operation and reason (reads included)
}

// Counters returns a copy of the cumulative counters.
func (r *Reconciler) Counters() Counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cnt
	c.Writes = maps.Clone(c.Writes)
	c.Errors = maps.Clone(c.Errors)
	return c
}

// Foreign returns the kernel services found by the last pass that haldir
// does not manage.
func (r *Reconciler) Foreign() []ipvs.ServiceKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.foreign)
}

// Reconcile runs one pass: read the kernel, compute the desired state, apply
// the minimal ordered diff. Failed writes are logged, counted and left for
// the next pass while independent writes still go ahead; the error joins
// them. A failure to read the service list aborts the pass.
func (r *Reconciler) Reconcile(ctx context.Context) (Result, error) {
	return r.reconcile(ctx, false)
}

// ReconcileChanges is Reconcile without reading the kernel again: it diffs
// the desired state against the table as the last pass left it, so a
// reload or a health verdict costs its own writes and no read of the whole
// table (1,000 services take 1,001 netlink dumps). Nor does it recompute
// what did not change: only the services a SetConfig or SetHealth touched
// since the last pass get their desired state, diff, status and quorum
// recomputed (all of them after a pass that skipped writes).
// Destinations are read only for services it has not read yet (a foreign
// service the configuration now claims). When the last pass had an error, or there was
// none, it is Reconcile. A change made behind haldir's back is repaired by
// the next Reconcile (Run's periodic resync); if it makes one of these
// writes fail, the failure makes Run retry with a full pass.
func (r *Reconciler) ReconcileChanges(ctx context.Context) (Result, error) {
	return r.reconcile(ctx, true)
}

func (r *Reconciler) reconcile(ctx context.Context, changes bool) (Result, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	p := &pass{r: r}

	trusted := changes && r.known != nil
	cur, order, ok := r.current(p, trusted)
	if !ok {
		return p.finish()
	}
	// cur is updated in place by the pass; it becomes known again only if
	// the pass ends without error.
	r.known = nil

	// A changes pass after a clean one recomputes and diffs only the
	// services changed since: every other one is as the last pass left it,
	// in the kernel table it trusts as in its desired state.
	incremental := trusted && r.want != nil && !r.diffAll
	w := r.wanted(incremental)
	want, owned := w.want, r.owned
	r.want = want
	r.readDests(p, cur, order, want, owned)

	var ops []ipvs.Op
	if w.timeouts != (ipvs.Timeouts{}) && !(trusted && w.timeouts == r.knownTimeouts) {
		if have, err := r.k.Timeouts(); err != nil {
			p.fail(ipvs.Op{Kind: ipvs.OpSetTimeouts}, err)
		} else {
			ops = planTimeouts(have, w.timeouts)
		}
	}

	// Services to diff, and those to delete once that is done. After a
	// clean pass the owned services are the configured ones, so only a
	// dirty one can be owned and no longer configured.
	var keys, gone []ipvs.ServiceKey
	if incremental {
		for _, key := range sortedKeys(w.dirty) {
			if _, ok := want[key]; ok {
				keys = append(keys, key)
			} else if owned[key] {
				gone = append(gone, key)
			}
		}
	} else {
		keys = sortedKeys(want)
		gone = sortedKeys(owned)
	}
	r.diffed = len(keys)
	diff := make([]*desiredSvc, len(keys))
	for i, key := range keys {
		diff[i] = want[key]
		if cur[key] != nil {
			owned[key] = true // adopted as it is
		}
	}
	// Services managed earlier and no longer configured; one already gone
	// from the kernel is simply forgotten.
	gone = slices.DeleteFunc(gone, func(key ipvs.ServiceKey) bool {
		if _, ok := want[key]; ok {
			return true
		}
		if cur[key] == nil {
			delete(owned, key)
			return true
		}
		return false
	})
	svcOps, blind := plan(cur, diff, gone)
	p.res.Skipped += blind
	p.apply(ctx, r.k, append(ops, svcOps...), cur, owned)

	if len(p.errs) == 0 {
		r.known, r.knownTimeouts = cur, w.timeouts
		var unread []ipvs.ServiceKey // order may be r.unread: not edited in place
		for _, key := range order {
			if st := cur[key]; st != nil && !st.read {
				unread = append(unread, key)
			}
		}
		slices.SortFunc(unread, cmpKey)
		r.unread = unread
	}
	r.diffAll = p.res.Skipped > 0
	r.owned = owned
	r.report(w, incremental, keys, cur, p.res.Foreign)
	return p.finish()
}

// current is the kernel table the pass starts from: the one the last pass
// left when trusted, else read (destinations are read by readDests). order
// lists the services whose destinations may need reading. ok is false when
// the service list could not be read: the pass can do nothing.
func (r *Reconciler) current(p *pass, trusted bool) (cur map[ipvs.ServiceKey]*kstate, order []ipvs.ServiceKey, ok bool) {
	if trusted {
		// Only foreign services are unread (a read failure is an error,
		// after which nothing is trusted).
		return r.known, r.unread, true
	}
	ksvcs, err := r.k.GetServices()
	if err != nil {
		r.known = nil
		p.fail(ipvs.Op{Kind: ipvs.OpGetServices}, err)
		return nil, nil, false
	}
	cur = make(map[ipvs.ServiceKey]*kstate, len(ksvcs))
	for _, s := range ksvcs {
		s.Flags &^= ipvs.FlagHashed
		cur[s.Key] = &kstate{svc: s}
		order = append(order, s.Key)
	}
	return cur, order, true
}

// wantedState is what a pass takes from the configuration and the health
// verdicts, in one critical section of r.mu.
type wantedState struct {
	want        map[ipvs.ServiceKey]*desiredSvc
	model       []vsModel // SetConfig replaces the slice, never edits it
	index       map[ipvs.ServiceKey]int
	dirty       map[ipvs.ServiceKey]bool
	structural  bool
	sharedNames bool
	timeouts    ipvs.Timeouts
}

// wanted computes the desired state: of every configured service, or
// (incremental) of the services marked dirty since the last pass, on top
// of the last pass's. It records the quorum states desired found and logs
// their changes once r.mu is released.
func (r *Reconciler) wanted(incremental bool) wantedState {
	var changed []*desiredSvc
	r.mu.Lock()
	w := wantedState{model: r.model, index: r.index, dirty: r.dirty, structural: r.structural,
		sharedNames: r.sharedNames, timeouts: r.timeouts}
	r.dirty, r.structural = map[ipvs.ServiceKey]bool{}, false
	compute := func(m *vsModel) {
		d := desired(m, r.health, r.overrides, r.quorumUp)
		if r.quorumUp.record(d) {
			changed = append(changed, d)
		}
		w.want[m.svc.Key] = d
	}
	if incremental {
		w.want = r.want
		for key := range w.dirty {
			if i, ok := w.index[key]; ok {
				compute(&w.model[i])
			} else {
				delete(w.want, key)
			}
		}
	} else {
		w.want = make(map[ipvs.ServiceKey]*desiredSvc, len(w.model))
		for i := range w.model {
			compute(&w.model[i])
		}
	}
	r.mu.Unlock()
	logQuorumChanges(r.log, changed)
	return w
}

// readDests reads the destinations of the services in order that the
// pass manages and has not read yet; the others are foreign, and listed
// in the result.
func (r *Reconciler) readDests(p *pass, cur map[ipvs.ServiceKey]*kstate, order []ipvs.ServiceKey, want map[ipvs.ServiceKey]*desiredSvc, owned map[ipvs.ServiceKey]bool) {
	for _, key := range order {
		st := cur[key]
		if _, ok := want[key]; !ok && !owned[key] {
			p.res.Foreign = append(p.res.Foreign, key)
			continue
		}
		if st.read {
			continue // known from the last pass
		}
		ds, err := r.k.GetDestinations(key)
		if err != nil {
			p.fail(ipvs.Op{Kind: ipvs.OpGetDests, Service: ipvs.Service{Key: key}}, err)
			continue
		}
		st.dests, st.read = ds, true
	}
	slices.SortFunc(p.res.Foreign, cmpKey)
}

// report updates the status the pass leaves (snapshot, foreign services)
// and gives onQuorum the quorum states that changed. keys are the
// services the pass diffed.
func (r *Reconciler) report(w wantedState, incremental bool, keys []ipvs.ServiceKey, cur map[ipvs.ServiceKey]*kstate, foreign []ipvs.ServiceKey) {
	inPlace := incremental && !w.structural
	switch {
	case !incremental:
		r.wantKeys = keys
	case w.structural:
		r.wantKeys = sortedKeys(w.want)
	}
	var quorum []QuorumState
	r.mu.Lock()
	r.foreign = foreign
	if inPlace {
		// The same services at the same positions: only the diffed ones
		// changed.
		for _, key := range keys {
			i := w.index[key]
			r.snap[i] = snapshotOne(&w.model[i], w.want, cur)
		}
	} else {
		r.snap = snapshot(w.model, w.want, cur)
	}
	if inPlace && !w.sharedNames {
		quorum = r.quorumChangesLocked(w.want, keys, false)
	} else {
		quorum = r.quorumChangesLocked(w.want, r.wantKeys, true)
	}
	r.mu.Unlock()
	for _, q := range quorum {
		r.onQuorum(q)
	}
}

// destLookup returns a function finding an address in ds as it is now: a
// scan for the handful of real servers most services have, which costs
// less than building a map for every service on every pass; a map beyond.
func destLookup(ds []ipvs.DestInfo) func(netip.AddrPort) (int, bool) {
	if len(ds) <= 16 {
		return func(a netip.AddrPort) (int, bool) {
			for i := range ds {
				if ds[i].Addr == a {
					return i, true
				}
			}
			return -1, false
		}
	}
	m := make(map[netip.AddrPort]int, len(ds))
	for i, d := range ds {
		m[d.Addr] = i
	}
	return func(a netip.AddrPort) (int, bool) {
		i, ok := m[a]
		return i, ok
	}
}

func removeDest(ds []ipvs.DestInfo, a netip.AddrPort) []ipvs.DestInfo {
	return slices.DeleteFunc(ds, func(d ipvs.DestInfo) bool { return d.Addr == a })
}

// sortedKeys returns m's keys in cmpKey's order, formatting each key once
// instead of twice per comparison (a thousand services made the sorts a
// noticeable part of a pass).
func sortedKeys[V any](m map[ipvs.ServiceKey]V) []ipvs.ServiceKey {
	type named struct {
		key  ipvs.ServiceKey
		name string
	}
	l := make([]named, 0, len(m))
	for k := range m {
		l = append(l, named{k, k.String()})
	}
	slices.SortFunc(l, func(a, b named) int { return strings.Compare(a.name, b.name) })
	out := make([]ipvs.ServiceKey, len(l))
	for i, n := range l {
		out[i] = n.key
	}
	return out
}

func cmpKey(a, b ipvs.ServiceKey) int {
	switch {
	case a == b:
		return 0
	case a.Less(b):
		return -1
	}
	return 1
}

// MarshalText lets Counters.Errors be encoded as a JSON object
// ("add_destination/EEXIST": 2) for the control socket and scripts.
func (k ErrorKey) MarshalText() ([]byte, error) {
	return []byte(string(k.Op) + "/" + k.Reason), nil
}

// UnmarshalText is MarshalText's inverse.
func (k *ErrorKey) UnmarshalText(b []byte) error {
	op, reason, ok := strings.Cut(string(b), "/")
	if !ok {
		return fmt.Errorf("invalid error key %q (want op/reason)", b)
	}
	k.Op, k.Reason = ipvs.OpKind(op), reason
	return nil
}

// errReason names an error for the per-operation error counters: the errno
// name (EEXIST, ESRCH, ...) when there is one.
func errReason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno-%d", int(errno))
	}
	return "other"
}
