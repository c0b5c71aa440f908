package lab

import (
	"errors"
	"runtime"
)

// forkThread runs every fork of a lab's processes on one OS thread that
// stays locked to its goroutine until the lab closes. PR_SET_PDEATHSIG
// (Start's Pdeathsig) signals a child when the thread that forked it
// exits, not the process; a thread handed back to Go's pool can later be
// taken by a goroutine that locks it and ends still locked
// (createNamedNS does so on purpose, to discard a thread it moved into a
// new namespace), and the runtime then destroys the thread and the kernel
// SIGKILLs every child it forked.
type forkThread struct {
	reqs chan func()
	quit chan struct{}
	done chan struct{}
}

func newForkThread() *forkThread {
	t := &forkThread{reqs: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		// Never unlocked: the thread ends with this goroutine, when the
		// lab has closed and its processes are gone.
		runtime.LockOSThread()
		defer close(t.done)
		for {
			select {
			case f := <-t.reqs:
				f()
			case <-t.quit:
				return
			}
		}
	}()
	return t
}

var errForkThreadStopped = errors.New("lab closed")

// do runs f on the thread and waits for it.
func (t *forkThread) do(f func()) error {
	ran := make(chan struct{})
	select {
	case t.reqs <- func() { defer close(ran); f() }:
	case <-t.quit:
		return errForkThreadStopped
	}
	<-ran
	return nil
}

// stop ends the thread once the lab's processes are gone.
func (t *forkThread) stop() {
	close(t.quit)
	<-t.done
}
