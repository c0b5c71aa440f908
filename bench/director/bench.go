package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	mobyipvs "github.com/moby/ipvs"

	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/ipvs"
	"github.com/haldir-lb/haldir/lab"
)

// Measured steps. haldir's run in one fresh namespace per round (cold
// apply, then the reload on that table, then the restart adopting it);
// ipvsadm's in another.
const (
	hCold    = "haldir cold apply"
	hReload  = "haldir one-change reload"
	hFull    = "haldir one-change reload, full pass"
	hRestart = "haldir restart (adopt)"
	iRestore = "ipvsadm-restore"
	iR       = "ipvsadm -R"
	iEdit    = "ipvsadm -e"
	iReapply = "ipvsadm-restore (full re-apply)"
	iSave    = "ipvsadm -Sn"
)

type options struct {
	table
	rounds  int  // timed rounds, after one counted (and warm-up) round
	ipvsadm bool // run ipvsadm's side
	// progress receives one line per round.
	progress io.Writer
	// profile, when set, receives a CPU profile of the timed rounds (the
	// ipvsadm processes are children, not in it).
	profile io.Writer
	// hostCPU is cpuReload's median on the host, when the host measured it.
	hostCPU time.Duration
}

// step is one measured step across rounds.
type step struct {
	times  []time.Duration // timed rounds only
	writes []int           // haldir: the reconciler's Result.Writes, every round
	msgs   *msgCount       // what the kernel received in the counted round
}

type report struct {
	opts     options
	steps    map[string]*step
	cpu      []time.Duration // cpuReload here
	problems []string        // promises broken: write counts, table contents
}

func (r *report) step(name string) *step {
	if r.steps[name] == nil {
		r.steps[name] = &step{}
	}
	return r.steps[name]
}

func (r *report) problem(format string, a ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, a...))
}

// run measures every step: round 0 with the netlink tap on (its times are
// not used: the tap copies every message), then opts.rounds timed rounds,
// alternating which tool goes first. It returns an error only when the
// benchmark itself cannot go on; broken promises go to report.problems.
func run(ctx context.Context, o options) (*report, error) {
	rep := &report{opts: o, steps: map[string]*step{}}
	l, err := lab.New("dirbench")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "dirbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &bencher{o: o, rep: rep, lab: l, dir: dir}
	for round := 0; round <= o.rounds; round++ {
		if round == 1 && o.profile != nil {
			if err := pprof.StartCPUProfile(o.profile); err != nil {
				return nil, err
			}
			defer pprof.StopCPUProfile()
		}
		sides := []func(int) error{b.haldirRound}
		if o.ipvsadm {
			sides = append(sides, b.ipvsadmRound)
			if round%2 == 1 {
				slices.Reverse(sides)
			}
		}
		t0 := time.Now()
		for _, side := range sides {
			if err := side(round); err != nil {
				return rep, err
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
		if o.progress != nil {
			what := "timed"
			if round == 0 {
				what = "counted (netlink tap on, not timed)"
			}
			fmt.Fprintf(o.progress, "round %d/%d %s done in %s\n", round, o.rounds, what, time.Since(t0).Round(time.Millisecond))
		}
	}
	// After the rounds, in the state they leave the process in (its heap
	// and the kernel's), like the rounds' own reloads.
	if rep.cpu, err = cpuReload(o.table, max(o.rounds, 5)); err != nil {
		return rep, err
	}
	return rep, nil
}

type bencher struct {
	o   options
	rep *report
	lab *lab.Lab
	dir string
}

// measure times f and files the result under name. f returns the writes it
// counted itself, or -1. With a tap, the messages f sent are counted too.
func (b *bencher) measure(name string, round int, tp *tap, f func() (int, error)) error {
	if tp != nil {
		if _, err := tp.drain(); err != nil { // verification reads in between
			return err
		}
	}
	t0 := time.Now()
	writes, err := f()
	d := time.Since(t0)
	if err != nil {
		return fmt.Errorf("%s (round %d): %w", name, round, err)
	}
	st := b.rep.step(name)
	if tp == nil {
		st.times = append(st.times, d)
	}
	if writes >= 0 {
		st.writes = append(st.writes, writes)
	}
	if tp != nil {
		c, err := tp.drain()
		if err != nil {
			return fmt.Errorf("%s (round %d): %w", name, round, err)
		}
		st.msgs = &c
	}
	return nil
}

// host makes a fresh namespace for one side of one round, with the tap in
// the counted round.
func (b *bencher) host(name string, round int) (*lab.Host, *tap, error) {
	h, err := b.lab.AddHost(fmt.Sprintf("%s%d", name, round))
	if err != nil {
		return nil, nil, err
	}
	if round != 0 {
		return h, nil, nil
	}
	tp, err := openTap(h)
	return h, tp, err
}

// flush empties the namespace's table synchronously, so the kernel does
// not spend the next measurements tearing down (or estimating the rates
// of) 11,000 entries nobody uses any more.
func flush(h *lab.Host) error {
	ih, err := mobyipvs.New(h.NetNSPath())
	if err != nil {
		return err
	}
	defer ih.Close()
	return ih.Flush()
}

var quiet = slog.New(slog.DiscardHandler)

func (b *bencher) haldirRound(round int) error {
	h, tp, err := b.host("h", round)
	if err != nil {
		return err
	}
	if tp != nil {
		defer tp.close()
	}
	ctx := context.Background()
	t := b.o.table
	// The configurations are built before the clock starts: a daemon has
	// parsed its file by then.
	cfg := t.config(nil)
	ch := t.changeFor(round)
	cfg2 := t.config(&ch)

	// Cold apply: from a configuration in memory to the table programmed,
	// opening the kernel handle included (ipvsadm's time includes its
	// start-up too).
	var k *ipvs.Client
	var r *director.Reconciler
	err = b.measure(hCold, round, tp, func() (int, error) {
		var err error
		if k, err = ipvs.Open(h.NetNSPath()); err != nil {
			return 0, err
		}
		r = director.New(k, director.Options{Logger: quiet})
		if err := r.SetConfig(cfg); err != nil {
			return 0, err
		}
		res, err := r.Reconcile(ctx)
		return res.Writes, err
	})
	if k != nil {
		defer k.Close()
	}
	if err != nil {
		return err
	}
	b.check(hCold, round, t.lines(), tp)
	b.verify(hCold, round, k, nil)

	// One-change reload on the running reconciler, the way Run applies it
	// (SetConfig wakes Run, which calls ReconcileChanges).
	err = b.measure(hReload, round, tp, func() (int, error) {
		if err := r.SetConfig(cfg2); err != nil {
			return 0, err
		}
		res, err := r.ReconcileChanges(ctx)
		return res.Writes, err
	})
	if err != nil {
		return err
	}
	b.check(hReload, round, 1, tp)
	b.verify(hReload, round, k, &ch)

	// The same change back, by a full pass reading the whole table (what
	// Run's periodic resync costs).
	err = b.measure(hFull, round, tp, func() (int, error) {
		if err := r.SetConfig(cfg); err != nil {
			return 0, err
		}
		res, err := r.Reconcile(ctx)
		return res.Writes, err
	})
	if err != nil {
		return err
	}
	b.check(hFull, round, 1, tp)
	b.verify(hFull, round, k, nil)

	// Restart: a new process would open its own handle and adopt the table.
	err = b.measure(hRestart, round, tp, func() (int, error) {
		k2, err := ipvs.Open(h.NetNSPath())
		if err != nil {
			return 0, err
		}
		defer k2.Close()
		r2 := director.New(k2, director.Options{Logger: quiet})
		if err := r2.SetConfig(cfg); err != nil {
			return 0, err
		}
		res, err := r2.Reconcile(ctx)
		return res.Writes, err
	})
	if err != nil {
		return err
	}
	b.check(hRestart, round, 0, tp)
	return flush(h)
}

// check compares haldir's own write count of the latest round, and the
// kernel's count in the counted round, with what the step must write.
func (b *bencher) check(name string, round, want int, tp *tap) {
	st := b.rep.step(name)
	if got := st.writes[len(st.writes)-1]; got != want {
		b.rep.problem("%s round %d: the reconciler issued %d writes, want %d", name, round, got, want)
	}
	if tp != nil && st.msgs.IPVSWrites != want {
		b.rep.problem("%s round %d: the kernel received %d IPVS writes, want %d (%s)", name, round, st.msgs.IPVSWrites, want, st.msgs)
	}
}

func (b *bencher) ipvsadmRound(round int) error {
	h, tp, err := b.host("i", round)
	if err != nil {
		return err
	}
	if tp != nil {
		defer tp.close()
	}
	t := b.o.table
	ch := t.changeFor(round)
	rules, err := b.file(fmt.Sprintf("rules-%d", round), t.rules(nil))
	if err != nil {
		return err
	}
	rules2, err := b.file(fmt.Sprintf("rules2-%d", round), t.rules(&ch))
	if err != nil {
		return err
	}
	k, err := ipvs.Open(h.NetNSPath()) // for verification only
	if err != nil {
		return err
	}
	defer k.Close()
	verify := func(name string, ch *change) { b.verify(name, round, k, ch) }

	if err := b.measure(iRestore, round, tp, b.exec(h, rules, "ipvsadm-restore")); err != nil {
		return err
	}
	verify(iRestore, nil)
	if err := b.measure(iEdit, round, tp, b.exec(h, "", append([]string{"ipvsadm"}, t.editArgs(ch)...)...)); err != nil {
		return err
	}
	verify(iEdit, &ch)
	if err := b.measure(iSave, round, tp, b.exec(h, "", "ipvsadm", "-Sn")); err != nil {
		return err
	}
	if err := b.measure(iReapply, round, tp, b.exec(h, rules2, "ipvsadm-restore")); err != nil {
		return err
	}
	verify(iReapply, &ch)
	if err := flush(h); err != nil {
		return err
	}

	// ipvsadm -R gets a namespace of its own: in the one just flushed the
	// kernel keeps the 10,000 deleted destinations in its trash for a
	// minute or two, and ip_vs_add_dest searches that list for every new
	// destination, which would make this cold apply several times slower.
	hr, tpr, err := b.host("r", round)
	if err != nil {
		return err
	}
	if tpr != nil {
		defer tpr.close()
	}
	kr, err := ipvs.Open(hr.NetNSPath())
	if err != nil {
		return err
	}
	defer kr.Close()
	if err := b.measure(iR, round, tpr, b.exec(hr, rules, "ipvsadm", "-R")); err != nil {
		return err
	}
	b.verify(iR, round, kr, nil)
	return flush(hr)
}

// verify checks the table after a step. When profiling, only the counted
// round verifies: the reads would otherwise fill haldir's profile.
func (b *bencher) verify(name string, round int, k ipvs.Kernel, ch *change) {
	if b.o.profile != nil && round > 0 {
		return
	}
	if err := b.o.table.verify(k, ch); err != nil {
		b.rep.problem("%s round %d: table differs: %v", name, round, err)
	}
}

func (b *bencher) file(name string, content []byte) (string, error) {
	p := filepath.Join(b.dir, name)
	return p, os.WriteFile(p, content, 0o644)
}

// exec returns a step running argv in h, stdin from the file at stdin (if
// any), stdout discarded. The fork happens on a thread inside h's
// namespace, so the command and its children run there.
func (b *bencher) exec(h *lab.Host, stdin string, argv ...string) func() (int, error) {
	return func() (int, error) {
		cmd := exec.Command(argv[0], argv[1:]...)
		if stdin != "" {
			f, err := os.Open(stdin)
			if err != nil {
				return -1, err
			}
			defer f.Close()
			cmd.Stdin = f
		}
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return -1, err
		}
		defer null.Close()
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = null, &stderr
		if err := h.Do(cmd.Run); err != nil {
			return -1, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
		return -1, nil
	}
}
