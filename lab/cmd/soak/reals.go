package main

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/haldir-lb/haldir/lab"
)

// realMode is what a real server does.
type realMode int

const (
	modeUp      realMode = iota
	modeDead             // its HTTP server is closed: connections refused and reset
	modeHung             // it accepts and reads requests and never answers
	modeTrickle          // it answers after trickleDelay, the body a byte at a time
)

// trickleDelay is past the check timeout: a trickling server is down for
// haldir's checks, yet a patient client gets its answer.
const trickleDelay = time.Second

// realServer is one real server's HTTP server with its fault modes.
type realServer struct {
	host *lab.Host
	mu   sync.Mutex
	mode realMode
	srv  *lab.HTTPServer
	// wake ends the hangs of the current hung spell.
	wake chan struct{}
	// faulty are the spells it was not up, for attributing broken
	// connections.
	faulty spells
}

func startReal(h *lab.Host) (*realServer, error) {
	r := &realServer{host: h, wake: make(chan struct{})}
	return r, r.serve()
}

func (r *realServer) serve() error {
	srv, err := r.host.ServeHTTP(":80", http.HandlerFunc(r.handle))
	if err != nil {
		return err
	}
	r.srv = srv
	return nil
}

func (r *realServer) handle(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	mode, wake := r.mode, r.wake
	r.mu.Unlock()
	name := r.host.Name() + "\n"
	switch mode {
	case modeHung:
		select {
		case <-wake:
		case <-req.Context().Done():
		}
		// No answer ever: the connection is dropped.
		panic(http.ErrAbortHandler)
	case modeTrickle:
		select {
		case <-time.After(trickleDelay):
		case <-req.Context().Done():
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(name)))
		for i := range len(name) {
			_, _ = w.Write([]byte{name[i]})
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			time.Sleep(50 * time.Millisecond)
		}
		return
	}
	_, _ = fmt.Fprint(w, name)
}

// set switches the server's mode.
func (r *realServer) set(m realMode) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m == r.mode {
		return nil
	}
	if r.mode == modeUp {
		r.faulty.begin()
	} else if m == modeUp {
		r.faulty.end()
	}
	if r.mode == modeHung {
		close(r.wake)
		r.wake = make(chan struct{})
	}
	var err error
	switch {
	case m == modeDead:
		err = r.srv.Close()
	case r.mode == modeDead:
		err = r.serve()
	}
	r.mode = m
	return err
}

// up says whether the server should pass haldir's checks.
func (r *realServer) up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mode == modeUp
}

// faultyIn says whether the server was not up at any time in [from, to].
func (r *realServer) faultyIn(from, to time.Time) bool { return r.faulty.in(from, to) }

// real is the real server called name.
func (s *soak) real(name string) *realServer {
	for i, r := range s.s.Real {
		if r.Name() == name {
			return s.reals[i]
		}
	}
	panic("no real server " + name)
}

// spells are the times something was down, the last maybe still open.
type spells struct {
	mu sync.Mutex
	s  [][2]time.Time
}

func (sp *spells) begin() {
	sp.mu.Lock()
	sp.s = append(sp.s, [2]time.Time{time.Now(), {}})
	sp.mu.Unlock()
}

func (sp *spells) end() {
	sp.mu.Lock()
	if n := len(sp.s); n > 0 && sp.s[n-1][1].IsZero() {
		sp.s[n-1][1] = time.Now()
	}
	sp.mu.Unlock()
}

// in says whether a spell overlaps [from, to].
func (sp *spells) in(from, to time.Time) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for _, s := range sp.s {
		if !s[0].After(to) && (s[1].IsZero() || !s[1].Before(from)) {
			return true
		}
	}
	return false
}
