// Package script runs the operator's commands: an argument vector (no
// shell, no PATH lookup) in a process group of its own, so that a timeout
// kills whatever it started too; and a Queue of notify commands that runs
// them in order per key, a bounded number at once, without ever blocking
// the component that fires them.
package script

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Command returns cmd for argv (argv[0] an absolute path) that ctx's end
// kills with its whole process group. It uses the daemon's environment
// unless the caller sets Env.
func Command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Output goes to /dev/null unless the caller sets it, so no pipe keeps
	// Wait after the kill; WaitDelay is a second guard.
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs argv with env added to the daemon's environment, killing it
// (and its process group) after timeout. The error names argv[0] and says
// whether it was killed, exited non-zero or could not start.
func Run(ctx context.Context, argv, env []string, timeout time.Duration) error {
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := Command(ctx, argv)
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%q killed after %v", argv[0], timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%q: %v", argv[0], ee)
	}
	if err != nil {
		return fmt.Errorf("%q: %w", argv[0], err)
	}
	return nil
}

// Job is one command for a Queue.
type Job struct {
	Argv []string
	Env  []string // added to the daemon's environment
	What string   // names the job in reports, e.g. `for "VI_1" state MASTER`
}

// ErrDropped is what Done gets for a job dropped from a full backlog.
var ErrDropped = errors.New("not run: its queue was full (the oldest job is dropped first)")

// QueueOptions configure a Queue.
type QueueOptions struct {
	Timeout time.Duration // each command is killed after this; must be > 0
	// Backlog bounds the jobs waiting per key; when full the oldest is
	// dropped (a notify script cares about the latest state). Default 32.
	Backlog int
	// Running bounds the commands running at once over all keys. Default 1.
	Running int
	// Done is called once per job, from the queue's goroutines: err is
	// nil when the command exited 0, ErrDropped when the job was dropped.
	// It must not block for long.
	Done func(Job, error)
}

// Queue runs jobs one at a time per key, in the order they were queued,
// and at most Running at once. Enqueue never blocks. A key has a goroutine
// only while it has jobs, so a queue of ten thousand quiet keys costs
// nothing.
type Queue struct {
	o   QueueOptions
	sem chan struct{}

	mu      sync.Mutex
	pending map[string][]Job // a key is present while its goroutine runs
	closed  bool
	wg      sync.WaitGroup
}

// NewQueue returns an empty queue.
func NewQueue(o QueueOptions) *Queue {
	if o.Backlog <= 0 {
		o.Backlog = 32
	}
	if o.Running <= 0 {
		o.Running = 1
	}
	if o.Done == nil {
		o.Done = func(Job, error) {}
	}
	return &Queue{o: o, sem: make(chan struct{}, o.Running), pending: map[string][]Job{}}
}

// Enqueue queues j behind the other jobs of key. It reports false, and
// drops j, once the queue is closed.
func (q *Queue) Enqueue(key string, j Job) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	jobs, running := q.pending[key]
	var dropped []Job
	if len(jobs) >= q.o.Backlog {
		n := len(jobs) - q.o.Backlog + 1
		dropped, jobs = jobs[:n:n], jobs[n:]
	}
	q.pending[key] = append(jobs, j)
	if !running {
		q.wg.Add(1)
		go q.drain(key)
	}
	q.mu.Unlock()
	for _, d := range dropped {
		q.o.Done(d, ErrDropped)
	}
	return true
}

// Waiting is the number of jobs of key not yet started; one that has left
// the backlog holds a running slot.
func (q *Queue) Waiting(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending[key])
}

// Close stops taking jobs and waits until the queued ones have run (a
// VRRP instance's stop notification is usually the last).
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wg.Wait()
}

func (q *Queue) drain(key string) {
	defer q.wg.Done()
	for {
		// The slot first: a job that has left the backlog is running (or
		// about to), never waiting behind another key's.
		q.sem <- struct{}{}
		q.mu.Lock()
		jobs := q.pending[key]
		if len(jobs) == 0 {
			delete(q.pending, key)
			q.mu.Unlock()
			<-q.sem
			return
		}
		j := jobs[0]
		jobs[0] = Job{}
		q.pending[key] = jobs[1:]
		q.mu.Unlock()
		err := Run(context.Background(), j.Argv, j.Env, q.o.Timeout)
		<-q.sem
		q.o.Done(j, err)
	}
}
