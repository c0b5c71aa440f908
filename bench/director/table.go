package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Goals from the Director issue.
const (
	goalColdRatio = 1.2
	goalReload    = 20 * time.Millisecond
)

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func (s *step) medMax() string {
	if s == nil || len(s.times) == 0 {
		return "n/a"
	}
	return ms(median(s.times)) + " / " + ms(slices.Max(s.times))
}

// writes is the write count as the kernel saw it in the counted round, and
// for haldir the reconciler's own count when it differs in any round.
func (s *step) writesText() string {
	if s == nil {
		return "n/a"
	}
	kernel := "?"
	if s.msgs != nil {
		kernel = fmt.Sprint(s.msgs.IPVSWrites)
	}
	if len(s.writes) == 0 {
		return kernel
	}
	lo, hi := slices.Min(s.writes), slices.Max(s.writes)
	if s.msgs != nil && lo == hi && lo == s.msgs.IPVSWrites {
		return kernel
	}
	return fmt.Sprintf("%s (reconciler: %d..%d)", kernel, lo, hi)
}

func ratio(a, b *step) (float64, string) {
	if a == nil || b == nil || len(a.times) == 0 || len(b.times) == 0 {
		return 0, "n/a"
	}
	r := float64(median(a.times)) / float64(median(b.times))
	return r, fmt.Sprintf("%.2f", r)
}

// print writes the report as Markdown tables.
func (r *report) print(w io.Writer) {
	o := r.opts
	s := r.steps
	fmt.Fprintf(w, "director benchmark: %d services × %d real servers (IPv4 TCP NAT, %s), %d timed rounds (median / max) after one counted round, fresh namespace per round, same VM\n\n",
		o.services, o.reals, o.scheduler, o.rounds)
	fmt.Fprintln(w, "| case | haldir median / max | ipvsadm way | ipvsadm median / max | ratio haldir/ipvsadm | netlink writes haldir / ipvsadm |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	row := func(c, h, i, how string) {
		_, rt := ratio(s[h], s[i])
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s / %s |\n", c, s[h].medMax(), how, s[i].medMax(), rt, s[h].writesText(), s[i].writesText())
	}
	cold := fmt.Sprintf("cold apply %d×%d", o.services, o.reals)
	row(cold, hCold, iRestore, "ipvsadm-restore < rules (the packaged script: bash, grep, ipvsadm -C, ipvsadm -R)")
	row(cold, hCold, iR, "ipvsadm -R < rules (the restore itself, no wrapper)")
	row("one-change reload (one weight)", hReload, iEdit, "ipvsadm -e (one command, knowing the change)")
	row("one-change reload (one weight)", hReload, iReapply, "ipvsadm-restore of the changed rules (clear and re-add all)")
	row("one-change reload by a full pass (haldir's periodic resync: reads the whole table)", hFull, iEdit, "ipvsadm -e")
	row("restart (adopt the table)", hRestart, iSave, "ipvsadm -Sn (read the whole table; ipvsadm has no restart)")

	fmt.Fprintln(w)
	fmt.Fprintln(w, "netlink messages sent to the kernel in the counted round (kernel nlmon tap; a dump request counts once):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| step | sent | IPVS writes | IPVS reads | genl ctrl | other | IPVS commands |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, name := range []string{hCold, hReload, hFull, hRestart, iRestore, iR, iEdit, iReapply, iSave} {
		st := s[name]
		if st == nil || st.msgs == nil {
			continue
		}
		m := st.msgs
		var cmds []string
		for _, k := range slices.Sorted(maps.Keys(m.ByCmd)) {
			cmds = append(cmds, fmt.Sprintf("%s %d", k, m.ByCmd[k]))
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %s |\n", name, m.Sent, m.IPVSWrites, m.IPVSReads, m.Ctrl, m.Other, strings.Join(cmds, ", "))
	}

	if len(r.cpu) > 0 {
		fmt.Fprintln(w)
		here := median(r.cpu)
		fmt.Fprintf(w, "CPU side of the one-change reload (SetConfig + ReconcileChanges against the in-memory fake kernel): %s here", ms(here))
		if o.hostCPU > 0 {
			fmt.Fprintf(w, ", %s on the host: the emulated CPUs are %.1f× slower", ms(o.hostCPU), float64(here)/float64(o.hostCPU))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "goals (Director issue):")
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	if rt, txt := ratio(s[hCold], s[iRestore]); txt != "n/a" {
		fmt.Fprintf(w, "- cold apply within %.1f× of ipvsadm-restore: %s× — %s\n", goalColdRatio, txt, yes(rt <= goalColdRatio))
	}
	if st := s[hReload]; st != nil && len(st.times) > 0 {
		fmt.Fprintf(w, "- one-change reload under %s: median %s, max %s — %s\n", ms(goalReload), ms(median(st.times)), ms(slices.Max(st.times)), yes(slices.Max(st.times) < goalReload))
	}
	for _, g := range []struct {
		name string
		want int
	}{{hReload, 1}, {hFull, 1}, {hRestart, 0}} {
		st := s[g.name]
		if st == nil {
			continue
		}
		ok := st.msgs != nil && st.msgs.IPVSWrites == g.want
		for _, n := range st.writes {
			ok = ok && n == g.want
		}
		fmt.Fprintf(w, "- %s: exactly %d netlink writes in every round (reconciler count) and in the kernel's count: %v / %s — %s\n",
			g.name, g.want, st.writes, st.writesText(), yes(ok))
	}
	for _, p := range r.problems {
		fmt.Fprintf(w, "- PROBLEM: %s\n", p)
	}
}
