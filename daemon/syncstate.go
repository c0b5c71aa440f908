package daemon

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/haldir-lb/haldir/cluster"
	"github.com/haldir-lb/haldir/ipvs"
)

// The conn-sync picture the cluster view carries: each director gossips
// its kernel sync daemon's role and how many connections its kernel holds,
// so that a backup holding none while the master holds some shows as not
// receiving (control.Status.ConnSync). Counting reads the whole IPVS
// table, so it runs on its own goroutine every ConnSyncRefresh and hands
// the count to the loop, which owns the rest and gossips only a change.

// countConns is how many connections k holds, active and inactive, over
// every service.
func countConns(k ipvs.Kernel) (uint64, error) {
	n, _, err := countServiceConns(k)
	return n, err
}

// countServiceConns is countConns, and the count of each service that
// holds any (by ipvs.ServiceKey's string).
func countServiceConns(k ipvs.Kernel) (uint64, map[string]uint64, error) {
	svcs, dests, err := ipvs.ReadTable(k)
	if err != nil {
		return 0, nil, err
	}
	var n uint64
	per := map[string]uint64{}
	for i, s := range svcs {
		var c uint64
		for _, d := range dests[i] {
			c += uint64(d.ActiveConns) + uint64(d.InactiveConns)
		}
		if c > 0 {
			per[s.Key.String()] = c
		}
		n += c
	}
	return n, per, nil
}

// startConnSyncRefresh counts the kernel's connections every interval and
// hands each count to the loop (connsCounted). It runs while a cluster
// and the kernel do.
func (d *Daemon) startConnSyncRefresh() {
	if d.cluster == nil || d.kernel == nil {
		return
	}
	every := d.opts.ConnSyncRefresh
	if every <= 0 {
		every = cluster.ConnSyncRefresh
	}
	k := d.kernel
	d.goRun("conn-sync refresh", func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n, per, err := countServiceConns(k)
			at := time.Now()
			select {
			case d.reqs <- func() { d.connsCounted(n, per, at, err) }:
			case <-ctx.Done():
				return nil
			case <-d.done:
				return nil
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil
			}
		}
	})
}

// connsCounted takes a count on the loop and gossips this director's
// conn-sync side when its role or count changed.
func (d *Daemon) connsCounted(n uint64, per map[string]uint64, at time.Time, err error) {
	if err != nil {
		d.log.Debug("counting the kernel's connections for the cluster", "error", err)
		return
	}
	var cs *cluster.ConnSync
	if d.follower != nil {
		var roles []string
		for _, sd := range d.follower.Status().Running {
			roles = append(roles, sd.State.String())
		}
		slices.Sort(roles)
		role := "none"
		if len(roles) > 0 {
			role = strings.Join(roles, "+")
		}
		cs = &cluster.ConnSync{Role: role, Conns: n, Services: per, At: at}
	}
	old := d.connSync
	if old == nil && cs == nil || old != nil && cs != nil && old.Role == cs.Role && old.Conns == cs.Conns && maps.Equal(old.Services, cs.Services) {
		return
	}
	d.connSync = cs
	d.cluster.Update(func(s *cluster.NodeState) { s.Sync = cs })
}
