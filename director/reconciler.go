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

	"github.com/haldir-lb/haldir/ipvs"
	"golang.org/x/sys/unix"

	"github.com/haldir-lb/haldir/conf"
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
	quorumUp map[ipvs.ServiceKey]bool
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
		kick:     make(chan struct{}, 1),
		health:   map[healthKey]Verdict{},
		quorumUp: map[ipvs.ServiceKey]bool{},
		owned:    map[ipvs.ServiceKey]bool{},
		dirty:    map[ipvs.ServiceKey]bool{},
		stray:    map[healthKey]bool{},
		cnt:      Counters{Writes: map[ipvs.OpKind]uint64{}, Errors: map[ErrorKey]uint64{}},
		onQuorum: opt.OnQuorum,
		reported: map[string]bool{},
	}
}

// SetConfig replaces the desired virtual servers and IPVS timeouts (a
// reload) and wakes Run. An invalid configuration is rejected as a whole
// with an error naming the entry; the previous one stays in force.
//
// Only the virtual servers that changed are rebuilt and marked for the
// next pass (see rebuildModel), so a reload of one weight in a large table
// costs a comparison of the table and the work of one service.
func (r *Reconciler) SetConfig(c *conf.Config) error {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	old := r.model // written only under cfgMu
	m, diff, err := rebuildModel(c.VirtualServers, old)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.model = m
	r.timeouts = ipvs.Timeouts{TCP: c.IPVS.TimeoutTCP.D(), TCPFin: c.IPVS.TimeoutTCPFin.D(), UDP: c.IPVS.TimeoutUDP.D()}
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

// kstate is the kernel table as read, then kept up to date with every
// successful write of the pass.
type kstate struct {
	svc   ipvs.ServiceInfo
	dests []ipvs.DestInfo
	read  bool // destinations were read successfully
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
	var res Result
	var errs []error

	fail := func(op ipvs.Op, err error) {
		r.mu.Lock()
		r.cnt.Errors[ErrorKey{op.Kind, errReason(err)}]++
		r.mu.Unlock()
		attrs := []any{"op", string(op.Kind), "service", op.Service.Key.String(), "err", err}
		if op.Dest.Addr.IsValid() {
			attrs = append(attrs, "dest", op.Dest.Addr.String())
		}
		r.log.Error("ipvs operation failed; retrying on the next pass", attrs...)
		if op.Kind.IsWrite() {
			res.Failed = append(res.Failed, FailedOp{op, err})
		}
		errs = append(errs, fmt.Errorf("%s: %w", op, err))
	}
	finish := func() (Result, error) {
		r.mu.Lock()
		r.cnt.Passes++
		if len(errs) > 0 {
			r.cnt.FailedPasses++
		}
		r.mu.Unlock()
		return res, errors.Join(errs...)
	}

	var (
		cur   map[ipvs.ServiceKey]*kstate
		order []ipvs.ServiceKey // services whose destinations may need reading
	)
	trusted := changes && r.known != nil
	if trusted {
		cur = r.known
		// Only foreign services are unread (a read failure is an error,
		// after which nothing is trusted).
		order = r.unread
	} else {
		ksvcs, err := r.k.GetServices()
		if err != nil {
			r.known = nil
			fail(ipvs.Op{Kind: ipvs.OpGetServices}, err)
			return finish()
		}
		cur = make(map[ipvs.ServiceKey]*kstate, len(ksvcs))
		for _, s := range ksvcs {
			s.Flags &^= ipvs.FlagHashed
			cur[s.Key] = &kstate{svc: s}
			order = append(order, s.Key)
		}
	}
	// cur is updated in place by the pass; it becomes known again only if
	// the pass ends without error.
	r.known = nil

	// A changes pass after a clean one recomputes and diffs only the
	// services changed since: every other one is as the last pass left it,
	// in the kernel table it trusts as in its desired state.
	incremental := trusted && r.want != nil && !r.diffAll
	var want map[ipvs.ServiceKey]*desiredSvc
	r.mu.Lock()
	model := r.model // SetConfig replaces the slice, never edits it
	index := r.index // likewise
	dirty, structural, sharedNames := r.dirty, r.structural, r.sharedNames
	r.dirty, r.structural = map[ipvs.ServiceKey]bool{}, false
	if incremental {
		want = r.want
		for key := range dirty {
			if i, ok := index[key]; ok {
				want[key] = r.desiredOneLocked(&model[i])
			} else {
				delete(want, key)
			}
		}
	} else {
		want = r.desiredLocked()
	}
	timeouts := r.timeouts
	r.mu.Unlock()
	owned := r.owned
	r.want = want

	for _, key := range order {
		st := cur[key]
		if _, ok := want[key]; !ok && !owned[key] {
			res.Foreign = append(res.Foreign, key)
			continue
		}
		if st.read {
			continue // known from the last pass
		}
		ds, err := r.k.GetDestinations(key)
		if err != nil {
			fail(ipvs.Op{Kind: ipvs.OpGetDests, Service: ipvs.Service{Key: key}}, err)
			continue
		}
		st.dests, st.read = ds, true
	}
	slices.SortFunc(res.Foreign, func(a, b ipvs.ServiceKey) int { return cmpKey(a, b) })

	write := func(op ipvs.Op) bool {
		if ctx.Err() != nil {
			res.Skipped++
			return false
		}
		res.Writes++
		r.mu.Lock()
		r.cnt.Writes[op.Kind]++
		r.mu.Unlock()
		var err error
		switch op.Kind {
		case ipvs.OpNewService:
			err = r.k.NewService(op.Service)
		case ipvs.OpUpdService:
			err = r.k.UpdateService(op.Service)
		case ipvs.OpDelService:
			err = r.k.DelService(op.Service.Key)
		case ipvs.OpNewDest:
			err = r.k.NewDestination(op.Service.Key, op.Dest)
		case ipvs.OpUpdDest:
			err = r.k.UpdateDestination(op.Service.Key, op.Dest)
		case ipvs.OpDelDest:
			err = r.k.DelDestination(op.Service.Key, op.Dest.Addr)
		}
		if err != nil {
			fail(op, err)
			return false
		}
		res.Applied = append(res.Applied, op)
		return true
	}

	if timeouts != (ipvs.Timeouts{}) && !(trusted && timeouts == r.knownTimeouts) {
		r.applyTimeouts(timeouts, &res, fail)
	}

	// Services to diff, and those to delete once that is done. After a
	// clean pass the owned services are the configured ones, so only a
	// dirty one can be owned and no longer configured.
	var keys, gone []ipvs.ServiceKey
	if incremental {
		for _, key := range sortedKeys(dirty) {
			if _, ok := want[key]; ok {
				keys = append(keys, key)
			} else if owned[key] {
				gone = append(gone, key)
			}
		}
	} else {
		keys = sortedKeys(want)
	}
	r.diffed = len(keys)
	for _, key := range keys {
		d := want[key]
		st := cur[key]
		if st == nil {
			if !write(ipvs.Op{Kind: ipvs.OpNewService, Service: d.svc}) {
				res.Skipped += len(d.dests)
				continue
			}
			owned[key] = true
			st = &kstate{svc: ipvs.ServiceInfo{Service: d.svc}, read: true}
			cur[key] = st
		} else {
			owned[key] = true
			if st.svc.Service != d.svc {
				if write(ipvs.Op{Kind: ipvs.OpUpdService, Service: d.svc}) {
					st.svc.Service = d.svc
				}
			}
			if !st.read {
				res.Skipped += len(d.dests)
				continue
			}
		}
		r.syncDests(st, d.dests, write)
	}

	// Services managed earlier and no longer configured: destinations first.
	if !incremental {
		gone = sortedKeys(owned)
	}
	for _, key := range gone {
		if _, ok := want[key]; ok {
			continue
		}
		st := cur[key]
		if st == nil {
			delete(owned, key)
			continue
		}
		for _, kd := range slices.Clone(st.dests) {
			if write(ipvs.Op{Kind: ipvs.OpDelDest, Service: ipvs.Service{Key: key}, Dest: ipvs.Destination{Addr: kd.Addr}}) {
				st.dests = removeDest(st.dests, kd.Addr)
			}
		}
		if write(ipvs.Op{Kind: ipvs.OpDelService, Service: ipvs.Service{Key: key}}) {
			delete(owned, key)
			delete(cur, key)
		}
	}

	if len(errs) == 0 {
		r.known, r.knownTimeouts = cur, timeouts
		var unread []ipvs.ServiceKey // order may be r.unread: not edited in place
		for _, key := range order {
			if st := cur[key]; st != nil && !st.read {
				unread = append(unread, key)
			}
		}
		slices.SortFunc(unread, cmpKey)
		r.unread = unread
	}
	r.diffAll = res.Skipped > 0
	r.owned = owned
	inPlace := incremental && !structural
	switch {
	case !incremental:
		r.wantKeys = keys
	case structural:
		r.wantKeys = sortedKeys(want)
	}
	var quorum []QuorumState
	r.mu.Lock()
	r.foreign = res.Foreign
	if inPlace {
		// The same services at the same positions: only the diffed ones
		// changed.
		for _, key := range keys {
			i := index[key]
			r.snap[i] = snapshotOne(&model[i], want, cur)
		}
	} else {
		r.snap = snapshot(model, want, cur)
	}
	if inPlace && !sharedNames {
		quorum = r.quorumChangesLocked(want, keys, false)
	} else {
		quorum = r.quorumChangesLocked(want, r.wantKeys, true)
	}
	r.mu.Unlock()
	for _, q := range quorum {
		r.onQuorum(q)
	}
	return finish()
}

// syncDests brings one service's destinations to want: additions first,
// then in-place updates, then removals, so that swapping the pool for the
// sorry server (or back) never leaves the service empty.
func (r *Reconciler) syncDests(st *kstate, want []ipvs.Destination, write func(ipvs.Op) bool) {
	key := st.svc.Key
	have := destLookup(st.dests)
	var upd []ipvs.Destination
	present := 0 // wanted destinations in st.dests
	for _, d := range want {
		i, ok := have(d.Addr)
		if !ok {
			if write(ipvs.Op{Kind: ipvs.OpNewDest, Service: ipvs.Service{Key: key}, Dest: d}) {
				st.dests = append(st.dests, ipvs.DestInfo{Destination: d})
				present++
			}
			continue
		}
		present++
		if st.dests[i].Destination != d {
			upd = append(upd, d)
		}
	}
	for _, d := range upd {
		if write(ipvs.Op{Kind: ipvs.OpUpdDest, Service: ipvs.Service{Key: key}, Dest: d}) {
			i := slices.IndexFunc(st.dests, func(x ipvs.DestInfo) bool { return x.Addr == d.Addr })
			st.dests[i].Destination = d
		}
	}
	if present == len(st.dests) {
		return // nothing unwanted: the common case, worth no map
	}
	wanted := make(map[netip.AddrPort]bool, len(want))
	for _, d := range want {
		wanted[d.Addr] = true
	}
	var stale []netip.AddrPort
	for _, kd := range st.dests {
		if !wanted[kd.Addr] {
			stale = append(stale, kd.Addr)
		}
	}
	for _, a := range stale {
		if write(ipvs.Op{Kind: ipvs.OpDelDest, Service: ipvs.Service{Key: key}, Dest: ipvs.Destination{Addr: a}}) {
			st.dests = removeDest(st.dests, a)
		}
	}
}

func (r *Reconciler) applyTimeouts(want ipvs.Timeouts, res *Result, fail func(ipvs.Op, error)) {
	have, err := r.k.Timeouts()
	if err != nil {
		fail(ipvs.Op{Kind: ipvs.OpSetTimeouts}, err)
		return
	}
	// Zero fields mean "leave alone": compare only the configured ones.
	if (want.TCP == 0 || want.TCP == have.TCP) && (want.TCPFin == 0 || want.TCPFin == have.TCPFin) &&
		(want.UDP == 0 || want.UDP == have.UDP) {
		return
	}
	res.Writes++
	r.mu.Lock()
	r.cnt.Writes[ipvs.OpSetTimeouts]++
	r.mu.Unlock()
	if err := r.k.SetTimeouts(want); err != nil {
		fail(ipvs.Op{Kind: ipvs.OpSetTimeouts}, err)
		return
	}
	res.Applied = append(res.Applied, ipvs.Op{Kind: ipvs.OpSetTimeouts})
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
