package director

import (
	"slices"

	"github.com/haldir-lb/haldir/ipvs"
)

// Hashing schedulers build their lookup table walking the service's
// destination list, whose order is the order the destinations were added
// in (__ip_vs_update_dest puts a new one at the head): ip_vs_mh.c fills
// Maglev's table in turns along the list, a contested slot going to the
// destination whose turn comes first; ip_vs_sh.c and ip_vs_dh.c deal their
// buckets out along it. Two directors holding the same real servers added
// in another order send some flows to different real servers, which breaks
// each such connection that moves between them (BGP ECMP, a VRRP failover
// of connections the backup did not get by conn sync yet). For mh it is a
// few flows in a thousand with equal weights and some 5 % with unequal
// ones (TestVMMHOrderAgrees: 47 of 1000 at weights 60..63); for sh and dh
// most of them.
//
// So for these schedulers every director adds the destinations of a service
// in one canonical order, sorted by address and port: not the order of the
// configuration file, so that two files listing the same real servers
// differently still give equal tables. A destination that comes back (a
// health check up again, a reload adding it) is added at the end of the
// kernel's list, so every destination that sorts after it is deleted and
// added again behind it: a deleted destination's connections keep it (the
// kernel parks it in its trash and revives it on the re-add), and the table
// is the same as on a director that never lost it.
//
// ip_vs_mh keeps a destination set to weight 0 in the table at its last
// non-zero weight (__ip_vs_update_dest's last_weight) while one added at
// weight 0 gets no slot: whether a drained or inhibited real server holds
// slots would depend on its history. For mh, a destination going to weight
// 0 is therefore deleted and added again at 0 like any other out of place,
// so that it has no slot on every director.

// orderSensitive reports whether scheduler sched builds its table from the
// order of the destinations.
func orderSensitive(sched string) bool {
	return sched == "mh" || sched == "sh" || sched == "dh"
}

// canonical sorts ds into the order the destinations of an
// order-sensitive service are added in.
func canonical(ds []ipvs.Destination) {
	slices.SortFunc(ds, func(a, b ipvs.Destination) int { return a.Addr.Compare(b.Addr) })
}

// planOrdered appends the writes bringing the destinations of an
// order-sensitive service from have (in the kernel's order of addition) to
// want (canonical order), leaving them in want's order: the longest prefix
// of want that have holds in order stays (updated in place where its
// settings differ), every other wanted destination is (re)added after it in
// want's order, a present one deleted just before its re-add so that the
// service is never emptier than it must be; unwanted ones go last, as in
// planDests. Adds only append to the kernel's list, so nothing shorter
// reaches want's order.
func planOrdered(ops []ipvs.Op, svc ipvs.Service, have []ipvs.DestInfo, want []ipvs.Destination) []ipvs.Op {
	mh := svc.Scheduler == "mh"
	key := ipvs.Service{Key: svc.Key}
	kept := 0 // want[:kept] stay where they are
	var upd []ipvs.Destination
	for _, h := range have {
		if kept < len(want) && h.Addr == want[kept].Addr && !(mh && h.Weight != 0 && want[kept].Weight == 0) {
			if h.Destination != want[kept] {
				upd = append(upd, want[kept])
			}
			kept++
		}
	}
	find := destLookup(have)
	for _, d := range want[kept:] {
		if _, ok := find(d.Addr); ok {
			ops = append(ops, ipvs.Op{Kind: ipvs.OpDelDest, Service: key, Dest: ipvs.Destination{Addr: d.Addr}})
		}
		ops = append(ops, ipvs.Op{Kind: ipvs.OpNewDest, Service: key, Dest: d})
	}
	for _, d := range upd {
		ops = append(ops, ipvs.Op{Kind: ipvs.OpUpdDest, Service: key, Dest: d})
	}
	return appendUnwanted(ops, key, have, want)
}
