package main

import (
	"context"
	"fmt"
	"time"

	"github.com/haldir-lb/haldir/director"
	"github.com/haldir-lb/haldir/ipvs/ipvstest"
)

// cpuReload times the CPU side of the one-change reload: SetConfig and
// ReconcileChanges of the same table against ipvstest.Kernel, which
// answers from memory. Run on the host and in the guest, it tells how much
// the emulated CPUs (TCG) inflate the guest's times, so the absolute
// numbers of the table can be read for real hardware.
func cpuReload(t table, rounds int) ([]time.Duration, error) {
	k := ipvstest.New()
	r := director.New(k, director.Options{Logger: quiet})
	if err := r.SetConfig(t.config(nil)); err != nil {
		return nil, err
	}
	if _, err := r.Reconcile(context.Background()); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := range rounds + 1 {
		ch := t.changeFor(i)
		cfg := t.config(&ch)
		t0 := time.Now()
		if err := r.SetConfig(cfg); err != nil {
			return nil, err
		}
		res, err := r.ReconcileChanges(context.Background())
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		if res.Writes != 1 {
			return nil, fmt.Errorf("fake kernel reload: %d writes, want 1", res.Writes)
		}
		if i > 0 { // the first warms up
			out = append(out, d)
		}
	}
	return out, nil
}
