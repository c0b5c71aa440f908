package vrrp_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/vrrp"
)

// vipWatch samples which routers hold the VIP, every millisecond, and
// counts the samples where none did.
type vipWatch struct {
	stop    chan struct{}
	done    sync.WaitGroup
	samples atomic.Int64
	none    atomic.Int64
	both    atomic.Int64
}

func watchVIP(t *testing.T, rs ...*router) *vipWatch {
	w := &vipWatch{stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
			n := 0
			for _, r := range rs {
				if r.hasVIP() {
					n++
				}
			}
			w.samples.Add(1)
			switch n {
			case 0:
				w.none.Add(1)
			case len(rs):
				w.both.Add(1)
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *vipWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.done.Wait()
}

// TestE2EHandoff: a planned handoff from a higher-priority master to a
// backup leaves the VIP held at every moment (make-before-break), the old
// master stays backup under the lower one, and a handoff whose target
// never takes over leaves the old master as it was.
func TestE2EHandoff(t *testing.T) {
	lab.SkipIfNotRoot(t)
	l := buildLAN(t, 2)
	obs := observe(t, l)
	r1 := startRouter(t, l.Host("r1"), instanceConfig("vi", 150, v4))
	waitMaster(t, r1, []*router{r1})
	r2 := startRouter(t, l.Host("r2"), instanceConfig("vi", 100, v4))
	all := []*router{r1, r2}
	waitMaster(t, r1, all)

	t.Run("target never takes over", func(t *testing.T) {
		w := watchVIP(t, r1, r2)
		r1.in.Yield(r2.in.Status().Source, time.Now().Add(500*time.Millisecond))
		assertSteady(t, r1, all, time.Second)
		w.end()
		if n := w.none.Load(); n != 0 {
			t.Errorf("the VIP was held by nobody in %d of %d samples", n, w.samples.Load())
		}
	})

	t.Run("make-before-break", func(t *testing.T) {
		w := watchVIP(t, r1, r2)
		mark := obs.LastSeq()
		until := time.Now().Add(2 * time.Second)
		r1.in.Yield(r2.in.Status().Source, until)
		r2.in.TakeOver(until, "test")
		waitMaster(t, r2, all)
		// Well past Master_Down_Interval: r1 (150) does not preempt r2 (100).
		assertSteady(t, r2, all, 1500*time.Millisecond)
		w.end()
		if n := w.none.Load(); n != 0 {
			t.Errorf("the VIP was held by nobody in %d of %d samples", n, w.samples.Load())
		}
		st := r1.in.Status()
		if !st.Yielded || st.State != vrrp.StateBackup || st.LastReason == "" {
			t.Errorf("r1 status %+v: want backup, yielded, with the handoff's reason", st)
		}
		t.Logf("handoff: %d samples at 1 ms, both holding the VIP in %d, nobody in %d", w.samples.Load(), w.both.Load(), w.none.Load())
		// The target announced before its first advert, which the old
		// master releases on: hosts had the new MAC before the old
		// master let go.
		src, vip := r2.in.Status().Source, v4.vip.Addr()
		var garpSeq, advertSeq uint64
		for _, rec := range obs.Records() {
			switch {
			case rec.Seq <= mark:
			case garpSeq == 0 && rec.ARP != nil && rec.ARP.Gratuitous && rec.ARP.SenderIP == vip:
				garpSeq = rec.Seq
			case advertSeq == 0 && rec.VRRP != nil && rec.VRRP.Src == src && rec.VRRP.Priority > 0:
				advertSeq = rec.Seq
			}
		}
		if garpSeq == 0 || advertSeq == 0 || garpSeq > advertSeq {
			t.Errorf("the target's first gratuitous ARP (frame %d) and first advert (frame %d): want the ARP first", garpSeq, advertSeq)
		}
	})

	t.Run("the new master gone, the old one takes over", func(t *testing.T) {
		r2.stop()
		waitMaster(t, r1, []*router{r1})
		if r1.in.Status().Yielded {
			t.Error("r1 still holds back preemption after taking over")
		}
	})
}
