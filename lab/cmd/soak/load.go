package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/lab"
	"github.com/haldir-lb/haldir/lab/pair"
)

// The client load: a new connection every newEvery, and longLived
// connections each asking again every longEvery.
const (
	newEvery    = 100 * time.Millisecond
	newTimeout  = 2 * time.Second
	longLived   = 6
	longEvery   = 250 * time.Millisecond
	longTimeout = 4 * time.Second
)

// connCounts are the client's numbers.
type connCounts struct {
	NewOK     int            `json:"new_ok"`
	NewFailed int            `json:"new_failed"`
	NewByReal map[string]int `json:"new_by_real"`
	// LongLivedOpened connections, LongLivedAnswers checked answers on
	// them; each break is attributed: to its real server's fault, to conn
	// sync not having reached the peer yet (a connection younger than
	// syncLimit neither director's table held at once), or to nothing (a
	// violation).
	LongLivedOpened      int `json:"long_lived_opened"`
	LongLivedAnswers     int `json:"long_lived_answers"`
	BrokeWithRealServer  int `json:"broke_with_real_server"`
	BrokeUnsynced        int `json:"broke_unsynced"`
	BrokeSplitHandshake  int `json:"broke_split_handshake"`
	BrokeUnexplained     int `json:"broke_unexplained"`
	AnsweredByOtherReal  int `json:"answered_by_other_real"`
	LongestNewFailureRun int `json:"longest_new_failure_run_ms"`
	// LongestNewFailureRunWhen says when it began and the fault before it.
	LongestNewFailureRunWhen string `json:"longest_new_failure_run_when,omitempty"`
}

var vipAddr = net.JoinHostPort(pair.VIP.Addr().String(), "80")

// loadNew opens a new connection to the VIP every newEvery, each on its
// own goroutine so a lost SYN does not hold up the next: an HTTP request
// (the pair) or the echo service's greeting (BGP), each answer naming its
// real server.
func (s *soak) loadNew(ctx context.Context) {
	get := s.greet
	if s.bgp == nil {
		hc := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return s.s.Client.Dial(ctx, network, addr)
			},
			DisableKeepAlives: true,
		}}
		get = func(ctx context.Context) (string, error) { return lab.GetName(ctx, hc, "http://"+vipAddr+"/") }
	}
	var (
		wg   sync.WaitGroup
		runs failureRuns
	)
	defer wg.Wait()
	every(ctx, newEvery, func() {
		wg.Go(func() {
			t0 := time.Now()
			rctx, cancel := context.WithTimeout(ctx, newTimeout)
			defer cancel()
			who, err := get(rctx)
			if ctx.Err() != nil {
				return
			}
			var runFrom time.Time // a run of failures that this answer ended
			defer func() {
				// The BGP mode bounds the runs (after the unlock below).
				if s.bgp != nil {
					s.checked(invNewConns)
					if !runFrom.IsZero() {
						s.judgeFailureRun(runFrom, t0)
					}
				}
			}()
			s.mu.Lock()
			defer s.mu.Unlock()
			runFrom = runs.record(t0, err == nil)
			if err != nil {
				s.conns.NewFailed++
				return
			}
			s.conns.NewOK++
			if s.conns.NewByReal == nil {
				s.conns.NewByReal = map[string]int{}
			}
			s.conns.NewByReal[who]++
			if !runFrom.IsZero() {
				if ms := int(t0.Sub(runFrom).Milliseconds()); ms > s.conns.LongestNewFailureRun {
					s.conns.LongestNewFailureRun = ms
					s.conns.LongestNewFailureRunWhen = fmt.Sprintf("at %.1fs", runFrom.Sub(s.start).Seconds())
					for _, f := range slices.Backward(s.faults) {
						if !runFrom.Before(f.Start) {
							s.conns.LongestNewFailureRunWhen += fmt.Sprintf(", fault %d (%s) began %.1fs before", f.N, f.Fault, runFrom.Sub(f.Start).Seconds())
							break
						}
					}
				}
			}
		})
	})
}

// failureRuns finds runs of failed new connections: from a failure's
// start to the start of the first connection started after it that
// succeeded. Connections end out of order (a slow answer after a quick
// failure), so both are kept by when a connection started, not when it
// ended.
type failureRuns struct {
	from   time.Time // first failure of the current run, if any
	lastOK time.Time // the latest start of a success
}

// record takes a connection that started at t0 and returns the start of the
// run of failures its success ended, or zero.
func (r *failureRuns) record(t0 time.Time, ok bool) time.Time {
	if !ok {
		if t0.After(r.lastOK) && (r.from.IsZero() || r.from.Before(r.lastOK) || t0.Before(r.from)) {
			r.from = t0
		}
		return time.Time{}
	}
	var ended time.Time
	if !r.from.IsZero() && r.from.After(r.lastOK) && t0.After(r.from) {
		ended = r.from
		r.from = time.Time{}
	}
	if t0.After(r.lastOK) {
		r.lastOK = t0
	}
	return ended
}

// loadLongLived keeps longLived keep-alive connections busy and judges
// every break.
func (s *soak) loadLongLived(ctx context.Context) {
	var wg sync.WaitGroup
	for range longLived {
		wg.Go(func() { s.longLived(ctx) })
	}
	wg.Wait()
}

func (s *soak) longLived(ctx context.Context) {
	for ctx.Err() == nil {
		// A connection's life starts with its first SYN: one whose
		// handshake spans a failover is known from its start.
		opened := time.Now()
		dctx, cancel := context.WithTimeout(ctx, longTimeout)
		k, who, err := s.s.Client.DialKeepAlive(dctx, vipAddr, longTimeout)
		cancel()
		if err != nil {
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		id := netip.MustParseAddrPort(k.LocalAddr().String())
		s.mu.Lock()
		s.conns.LongLivedOpened++
		s.tracked[id] = &tracked{opened: opened}
		s.mu.Unlock()
		lastOK := opened
		for ctx.Err() == nil {
			sleep(ctx, longEvery)
			got, err := k.Get(longTimeout)
			if ctx.Err() != nil {
				break
			}
			now := time.Now()
			if err == nil && got == who {
				s.mu.Lock()
				s.conns.LongLivedAnswers++
				s.mu.Unlock()
				s.checked(invConnSurvive)
				lastOK = now
				continue
			}
			s.judgeBreak(k, who, got, err, opened, lastOK, now)
			break
		}
		k.Close()
		s.mu.Lock()
		delete(s.tracked, id)
		s.mu.Unlock()
	}
}

// tracked is what the soak knows of one long-lived connection: when it
// opened and when both directors' tables first held it (conn sync).
type tracked struct {
	opened, synced time.Time
	last           string // the tables' entries for it at the last scan
	syncedEntries  string // and when both first held it
	// split: the directors' entries named different real servers.
	split bool
}

// realOf is the real server (hex address and port) of a conn-table entry.
func realOf(entry string) string {
	f := strings.Fields(entry)
	if len(f) < 7 {
		return ""
	}
	return f[5] + ":" + f[6]
}

// syncLimit is how long conn sync may take to reach the peer: the
// kernel's master thread flushes every 2 s, and a connection whose first
// sync message was lost is sent again after 50 more incoming packets
// (sync_threshold 3 50), about 6 s of this load.
const syncLimit = 10 * time.Second

// watchConns scans both directors' connection tables for the long-lived
// connections.
func (s *soak) watchConns(ctx context.Context) {
	every(ctx, 500*time.Millisecond, func() {
		t1, err1 := pair.ReadConns(s.s.Director1)
		t2, err2 := pair.ReadConns(s.s.Director2)
		if err1 != nil || err2 != nil {
			return
		}
		now := time.Now()
		s.mu.Lock()
		for id, c := range s.tracked {
			e1, e2 := t1.Entry(id), t2.Entry(id)
			c.last = fmt.Sprintf("director1 %q, director2 %q", e1, e2)
			if e1 != "" && e2 != "" && realOf(e1) != realOf(e2) {
				// Each director scheduled the connection itself: its
				// handshake straddled a failover (a SYN the old master
				// forwarded, retransmitted to the new one), and conn sync
				// does not move an entry the peer already has.
				c.split = true
			}
			if e1 != "" && e2 != "" && realOf(e1) == realOf(e2) && c.synced.IsZero() {
				c.syncedEntries = c.last
				c.synced = now
				s.syncLat = append(s.syncLat, now.Sub(c.opened))
			}
		}
		s.mu.Unlock()
	})
}

// judgeBreak attributes a long-lived connection's break.
func (s *soak) judgeBreak(k *lab.KeepAlive, who, got string, err error, opened, lastOK, now time.Time) {
	s.checked(invConnSurvive)
	id := netip.MustParseAddrPort(k.LocalAddr().String())
	s.mu.Lock()
	var c tracked
	if t := s.tracked[id]; t != nil {
		c = *t
	}
	s.mu.Unlock()
	switch {
	case err == nil:
		s.mu.Lock()
		s.conns.AnsweredByOtherReal++
		s.mu.Unlock()
		s.violate(invConnSurvive, 0, fmt.Sprintf("connection %s to %s answered by %s", k.LocalAddr(), who, got))
	case s.real(who).faultyIn(lastOK, now):
		s.mu.Lock()
		s.conns.BrokeWithRealServer++
		s.mu.Unlock()
	case c.split:
		s.mu.Lock()
		s.conns.BrokeSplitHandshake++
		s.mu.Unlock()
		s.printf("connection %s to %s broke: the directors scheduled it to different real servers (its handshake straddled a failover): %s", k.LocalAddr(), who, c.last)
	case c.synced.IsZero() && now.Sub(opened) < syncLimit:
		s.mu.Lock()
		s.conns.BrokeUnsynced++
		s.mu.Unlock()
	default:
		s.mu.Lock()
		s.conns.BrokeUnexplained++
		s.mu.Unlock()
		synced := "never in both tables"
		if !c.synced.IsZero() {
			synced = fmt.Sprintf("in both tables %v after it opened: %s", c.synced.Sub(opened).Round(time.Millisecond), c.syncedEntries)
		}
		s.violate(invConnSurvive, now.Sub(lastOK), fmt.Sprintf("connection %s to %s (open %v, %s; last scan: %s) broke with its real server up: %v; last answer %v before%s",
			k.LocalAddr(), who, now.Sub(opened).Round(time.Millisecond), synced, c.last, err, now.Sub(lastOK).Round(time.Millisecond), s.during(lastOK)))
	}
}
