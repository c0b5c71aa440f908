package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/haldir-lb/haldir/ipvs"
)

// kstate is one service of the kernel table as read, then kept up to date
// with every successful write of the pass.
type kstate struct {
	svc   ipvs.ServiceInfo
	dests []ipvs.DestInfo
	read  bool // destinations were read successfully
}

// plan is the minimal ordered list of writes that turns the services of
// cur into want (in want's order) and deletes the services gone, without
// touching the kernel. Per service: create it or update its settings,
// then its destinations (syncDests's order); then every gone service's
// destinations and the service. blind counts the destination writes it
// could not plan because the destinations of an existing service are
// unknown (their read failed): the pass reports them as skipped.
func plan(cur map[ipvs.ServiceKey]*kstate, want []*desiredSvc, gone []ipvs.ServiceKey) (ops []ipvs.Op, blind int) {
	for _, d := range want {
		st := cur[d.svc.Key]
		if st == nil {
			ops = append(ops, ipvs.Op{Kind: ipvs.OpNewService, Service: d.svc})
			ops = planDests(ops, d.svc.Key, nil, d.dests) // in d.dests's order
			continue
		}
		if st.svc.Service != d.svc {
			ops = append(ops, ipvs.Op{Kind: ipvs.OpUpdService, Service: d.svc})
		}
		if !st.read {
			blind += len(d.dests)
			continue
		}
		if orderSensitive(d.svc.Scheduler) {
			ops = planOrdered(ops, d.svc, st.dests, d.dests)
		} else {
			ops = planDests(ops, d.svc.Key, st.dests, d.dests)
		}
	}
	for _, key := range gone {
		svc := ipvs.Service{Key: key}
		if st := cur[key]; st != nil {
			for _, kd := range st.dests {
				ops = append(ops, ipvs.Op{Kind: ipvs.OpDelDest, Service: svc, Dest: ipvs.Destination{Addr: kd.Addr}})
			}
		}
		ops = append(ops, ipvs.Op{Kind: ipvs.OpDelService, Service: svc})
	}
	return ops, blind
}

// planDests appends the writes bringing one service's destinations from
// have to want: additions first, then in-place updates, then removals, so
// that swapping the pool for the sorry server (or back) never leaves the
// service empty.
func planDests(ops []ipvs.Op, key ipvs.ServiceKey, have []ipvs.DestInfo, want []ipvs.Destination) []ipvs.Op {
	svc := ipvs.Service{Key: key}
	find := destLookup(have)
	var upd []ipvs.Destination
	present := 0 // wanted destinations in have
	for _, d := range want {
		i, ok := find(d.Addr)
		if !ok {
			ops = append(ops, ipvs.Op{Kind: ipvs.OpNewDest, Service: svc, Dest: d})
			continue
		}
		present++
		if have[i].Destination != d {
			upd = append(upd, d)
		}
	}
	for _, d := range upd {
		ops = append(ops, ipvs.Op{Kind: ipvs.OpUpdDest, Service: svc, Dest: d})
	}
	if present == len(have) {
		return ops // nothing unwanted: the common case, worth no map
	}
	return appendUnwanted(ops, svc, have, want)
}

// appendUnwanted appends the removal of every destination of have that
// want does not hold, in have's order.
func appendUnwanted(ops []ipvs.Op, svc ipvs.Service, have []ipvs.DestInfo, want []ipvs.Destination) []ipvs.Op {
	wanted := make(map[netip.AddrPort]bool, len(want))
	for _, d := range want {
		wanted[d.Addr] = true
	}
	for _, kd := range have {
		if !wanted[kd.Addr] {
			ops = append(ops, ipvs.Op{Kind: ipvs.OpDelDest, Service: svc, Dest: ipvs.Destination{Addr: kd.Addr}})
		}
	}
	return ops
}

// planTimeouts is the write setting the configured timeouts want over the
// kernel's have, if one differs. Zero fields mean "leave alone": only the
// configured ones are compared.
func planTimeouts(have, want ipvs.Timeouts) []ipvs.Op {
	if (want.TCP == 0 || want.TCP == have.TCP) && (want.TCPFin == 0 || want.TCPFin == have.TCPFin) &&
		(want.UDP == 0 || want.UDP == have.UDP) {
		return nil
	}
	return []ipvs.Op{{Kind: ipvs.OpSetTimeouts, Timeouts: want}}
}

// pass is one reconcile pass's result and errors as they accumulate: every
// failed kernel call is logged, counted and joined into the pass's error.
type pass struct {
	r    *Reconciler
	res  Result
	errs []error
}

// fail records a failed kernel call (a read or a write).
func (p *pass) fail(op ipvs.Op, err error) {
	r := p.r
	r.mu.Lock()
	r.cnt.Errors[ErrorKey{op.Kind, errReason(err)}]++
	r.mu.Unlock()
	attrs := []any{"op", string(op.Kind), "service", op.Service.Key.String(), "err", err}
	if op.Dest.Addr.IsValid() {
		attrs = append(attrs, "dest", op.Dest.Addr.String())
	}
	r.log.Error("ipvs operation failed; retrying on the next pass", attrs...)
	if op.Kind.IsWrite() {
		p.res.Failed = append(p.res.Failed, FailedOp{op, err})
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %w", op, err))
}

// finish counts the pass and returns its result.
func (p *pass) finish() (Result, error) {
	r := p.r
	r.mu.Lock()
	r.cnt.Passes++
	if len(p.errs) > 0 {
		r.cnt.FailedPasses++
	}
	r.mu.Unlock()
	return p.res, errors.Join(p.errs...)
}

// apply performs ops in order on k, keeping cur (and owned, the services
// this process manages) equal to what the kernel holds after each
// successful write. A failed write is left for the next pass while the
// independent ones go ahead; the writes into a service whose creation
// failed are skipped, as are all writes once ctx is done.
func (p *pass) apply(ctx context.Context, k ipvs.Kernel, ops []ipvs.Op, cur map[ipvs.ServiceKey]*kstate, owned map[ipvs.ServiceKey]bool) {
	var notCreated map[ipvs.ServiceKey]bool
	for _, op := range ops {
		key := op.Service.Key
		if ctx.Err() != nil || notCreated[key] {
			p.res.Skipped++
			if op.Kind == ipvs.OpNewService {
				notCreated = mark(notCreated, key)
			}
			continue
		}
		p.res.Writes++
		p.r.mu.Lock()
		p.r.cnt.Writes[op.Kind]++
		p.r.mu.Unlock()
		if err := ipvs.Do(k, op); err != nil {
			p.fail(op, err)
			if op.Kind == ipvs.OpNewService {
				notCreated = mark(notCreated, key)
			}
			continue
		}
		p.res.Applied = append(p.res.Applied, op)
		st := cur[key]
		switch op.Kind {
		case ipvs.OpNewService:
			owned[key] = true
			cur[key] = &kstate{svc: ipvs.ServiceInfo{Service: op.Service}, read: true}
		case ipvs.OpUpdService:
			st.svc.Service = op.Service
		case ipvs.OpDelService:
			delete(owned, key)
			delete(cur, key)
		case ipvs.OpNewDest:
			st.dests = append(st.dests, ipvs.DestInfo{Destination: op.Dest})
		case ipvs.OpUpdDest:
			i := slices.IndexFunc(st.dests, func(x ipvs.DestInfo) bool { return x.Addr == op.Dest.Addr })
			st.dests[i].Destination = op.Dest
		case ipvs.OpDelDest:
			st.dests = removeDest(st.dests, op.Dest.Addr)
		}
	}
}

func mark(m map[ipvs.ServiceKey]bool, key ipvs.ServiceKey) map[ipvs.ServiceKey]bool {
	if m == nil {
		m = map[ipvs.ServiceKey]bool{}
	}
	m[key] = true
	return m
}

// logQuorumChanges logs the quorum changes a desired-state computation
// found, outside it (it is pure) and outside r.mu.
func logQuorumChanges(log *slog.Logger, changed []*desiredSvc) {
	for _, d := range changed {
		m := d.model
		log.Warn("virtual server quorum changed", "service", m.svc.Key.String(), "name", m.name,
			"quorum_up", d.quorumUp, "alive_weight", d.aliveWeight, "quorum", m.quorum, "hysteresis", m.hysteresis)
	}
}
