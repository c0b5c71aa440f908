package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/haldir-lb/haldir/conf"
	"github.com/haldir-lb/haldir/ipvs"
)

// table is the benchmark's IPVS table: IPv4 TCP NAT services, each on a VIP
// of its own, each with its own real servers. The same table is given to
// haldir as configuration and to ipvsadm as rules.
type table struct {
	services, reals int
	scheduler       conf.Scheduler
}

const (
	vipPort  = 80
	realPort = 8080
)

// vip of service i: 10.10.0.1, 10.10.0.2, ...
func (t table) vip(i int) netip.AddrPort {
	return netip.AddrPortFrom(addrPlus(netip.AddrFrom4([4]byte{10, 10, 0, 1}), i), vipPort)
}

// real server j of service i: 10.20.0.1 onwards, never shared.
func (t table) real(i, j int) netip.AddrPort {
	return netip.AddrPortFrom(addrPlus(netip.AddrFrom4([4]byte{10, 20, 0, 1}), i*t.reals+j), realPort)
}

func (t table) weight(j int) int { return j + 1 }

func addrPlus(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// change is the one-change reload: one real server's new weight.
type change struct {
	svc, real, weight int
}

// changeFor picks the real server in the middle of the table and a weight
// that differs from the configured one (and from the previous round's).
func (t table) changeFor(round int) change {
	return change{svc: t.services / 2, real: t.reals / 2, weight: 100 + round}
}

// config is the table as haldir's configuration, with ch applied when set.
func (t table) config(ch *change) *conf.Spec {
	vss := make([]conf.VirtualServerSpec, t.services)
	for i := range vss {
		rs := make([]conf.RealServerSpec, t.reals)
		for j := range rs {
			rs[j] = conf.RealServerSpec{Addr: t.real(i, j), Weight: t.weight(j), Forwarding: conf.ForwardNAT}
			if ch != nil && ch.svc == i && ch.real == j {
				rs[j].Weight = ch.weight
			}
		}
		vss[i] = conf.VirtualServerSpec{
			Family: conf.FamilyInet, Protocol: conf.ProtoTCP, Addr: t.vip(i), Scheduler: t.scheduler,
			Forwarding: conf.ForwardNAT, PersistenceGranularity: 32, Quorum: 1, RealServers: rs,
		}
	}
	return &conf.Spec{VirtualServers: vss}
}

// rules is the table as ipvsadm-restore input, the format ipvsadm-save -n
// writes: one -A line per service, one -a line per real server.
func (t table) rules(ch *change) []byte {
	var b strings.Builder
	b.Grow(t.services * (1 + t.reals) * 48)
	for i := range t.services {
		v := t.vip(i)
		fmt.Fprintf(&b, "-A -t %s -s %s\n", v, t.scheduler)
		for j := range t.reals {
			w := t.weight(j)
			if ch != nil && ch.svc == i && ch.real == j {
				w = ch.weight
			}
			fmt.Fprintf(&b, "-a -t %s -r %s -m -w %d\n", v, t.real(i, j), w)
		}
	}
	return []byte(b.String())
}

// editArgs is the minimal ipvsadm way to make the change: one -e.
func (t table) editArgs(ch change) []string {
	return []string{"-e", "-t", t.vip(ch.svc).String(), "-r", t.real(ch.svc, ch.real).String(), "-m", "-w", fmt.Sprint(ch.weight)}
}

// lines is the number of rules (-A and -a lines) in the table.
func (t table) lines() int { return t.services * (1 + t.reals) }

// verify reads the whole table back from k and compares it with the
// expected one: every service with its scheduler, every real server with
// its weight and NAT forwarding, nothing else.
func (t table) verify(k ipvs.Kernel, ch *change) error {
	svcs, err := k.GetServices()
	if err != nil {
		return fmt.Errorf("reading services: %w", err)
	}
	if len(svcs) != t.services {
		return fmt.Errorf("kernel has %d services, want %d", len(svcs), t.services)
	}
	want := map[netip.AddrPort]int{}
	for i := range t.services {
		want[t.vip(i)] = i
	}
	for _, s := range svcs {
		i, ok := want[s.Key.Addr]
		if !ok || s.Key.Protocol != ipvs.TCP || s.Scheduler != t.scheduler.String() {
			return fmt.Errorf("unexpected service %s scheduler %s", s.Key, s.Scheduler)
		}
		ds, err := k.GetDestinations(s.Key)
		if err != nil {
			return fmt.Errorf("reading destinations of %s: %w", s.Key, err)
		}
		if len(ds) != t.reals {
			return fmt.Errorf("service %s has %d real servers, want %d", s.Key, len(ds), t.reals)
		}
		for j := range t.reals {
			w := t.weight(j)
			if ch != nil && ch.svc == i && ch.real == j {
				w = ch.weight
			}
			r := t.real(i, j)
			found := false
			for _, d := range ds {
				if d.Addr == r {
					if d.Weight != w || d.Forwarding != ipvs.ForwardNAT {
						return fmt.Errorf("service %s real %s: weight %d forwarding %s, want %d nat", s.Key, r, d.Weight, d.Forwarding, w)
					}
					found = true
				}
			}
			if !found {
				return fmt.Errorf("service %s: real server %s missing", s.Key, r)
			}
		}
	}
	return nil
}
