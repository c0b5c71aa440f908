package vrrp

import (
	"fmt"
	"strconv"
	"time"

	"github.com/haldir-lb/haldir/internal/script"
)

// notifyJob is one notify command to run.
type notifyJob struct {
	argv     []string
	instance string
	state    State
	priority uint8
}

// notifier runs an instance's (or a sync group's) notify commands one at
// a time, in order, off the state machine's goroutine, so a slow or hung
// command never blocks it. Each command is an argv (no shell) and is
// killed, with its process group, after timeout.
type notifier struct {
	q *script.Queue
}

// maxNotifyQueue bounds the backlog when commands are slower than state
// changes; the oldest pending job is dropped first since only the latest
// state matters to a notify script.
const maxNotifyQueue = 32

func newNotifier(timeout time.Duration, report func(error)) *notifier {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &notifier{q: script.NewQueue(script.QueueOptions{Timeout: timeout, Backlog: maxNotifyQueue,
		Done: func(j script.Job, err error) {
			if err != nil {
				report(fmt.Errorf("vrrp: notify %s: %w", j.What, err))
			}
		}})}
}

func (n *notifier) enqueue(j notifyJob) {
	if len(j.argv) == 0 {
		return
	}
	state := notifyStateName(j.state)
	n.q.Enqueue("", script.Job{Argv: j.argv, What: fmt.Sprintf("for %s state %s", j.instance, state), Env: []string{
		"HALDIR_INSTANCE=" + j.instance,
		"HALDIR_STATE=" + state,
		"HALDIR_PRIORITY=" + strconv.Itoa(int(j.priority)),
	}})
}

// close runs what is queued (the stop notification is usually last) and
// waits for it.
func (n *notifier) close() { n.q.Close() }

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
