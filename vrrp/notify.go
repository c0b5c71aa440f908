package vrrp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// notifyJob is one notify command to run.
type notifyJob struct {
	argv     []string
	instance string
	state    State
	priority uint8
}

// notifier runs notify commands one at a time, in order, on its own
// goroutine, so a slow or hung command never blocks the state machine. Each
// command is an argv (no shell) and is killed, with its process group,
// after timeout.
type notifier struct {
	timeout time.Duration
	report  func(error)

	mu      sync.Mutex
	queue   []notifyJob
	wake    chan struct{}
	done    chan struct{}
	closing bool
}

// maxNotifyQueue bounds the backlog when commands are slower than state
// changes; the oldest pending job is dropped first since only the latest
// state matters to a notify script.
const maxNotifyQueue = 32

func newNotifier(timeout time.Duration, report func(error)) *notifier {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	n := &notifier{timeout: timeout, report: report, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go n.loop()
	return n
}

func (n *notifier) enqueue(j notifyJob) {
	if len(j.argv) == 0 {
		return
	}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return
	}
	if len(n.queue) >= maxNotifyQueue {
		n.report(fmt.Errorf("vrrp: notify queue full, dropping %q for state %v", j.argv[0], n.queue[0].state))
		n.queue = n.queue[1:]
	}
	n.queue = append(n.queue, j)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// close runs what is queued (the stop notification is usually last) and
// waits for it.
func (n *notifier) close() {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	<-n.done
}

func (n *notifier) loop() {
	defer close(n.done)
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			closing := n.closing
			n.mu.Unlock()
			if closing {
				return
			}
			<-n.wake
			continue
		}
		j := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		if err := runNotify(j, n.timeout); err != nil {
			n.report(err)
		}
	}
}

func runNotify(j notifyJob, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.argv[0], j.argv[1:]...)
	cmd.Env = append(os.Environ(),
		"HALDIR_INSTANCE="+j.instance,
		"HALDIR_STATE="+notifyStateName(j.state),
		"HALDIR_PRIORITY="+strconv.Itoa(int(j.priority)),
	)
	// Own process group so that the timeout also kills what the command
	// started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("vrrp: notify %q for %s state %s killed after %v", j.argv[0], j.instance, notifyStateName(j.state), timeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("vrrp: notify %q for %s state %s: %v", j.argv[0], j.instance, notifyStateName(j.state), ee)
	}
	if err != nil {
		return fmt.Errorf("vrrp: notify %q for %s: %w", j.argv[0], j.instance, err)
	}
	return nil
}

// notifyStateName is the HALDIR_STATE value: keepalived's names, with
// "stop" for StateInit after shutdown.
func notifyStateName(s State) string {
	switch s {
	case StateMaster:
		return "MASTER"
	case StateBackup:
		return "BACKUP"
	case StateFault:
		return "FAULT"
	}
	return "STOP"
}
