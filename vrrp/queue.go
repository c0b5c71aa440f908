package vrrp

import "sync"

// queue is an unbounded FIFO between goroutines: put never blocks (a VRRP
// event loop must never wait on its consumer), and the consumer takes
// everything queued, in order, after a wake-up on ready. A bounded channel
// with a goroutine per overflowing item, as before, lost the order.
type queue[T any] struct {
	mu    sync.Mutex
	items []T
	kick  chan struct{} // one pending wake-up
}

func newQueue[T any]() *queue[T] { return &queue[T]{kick: make(chan struct{}, 1)} }

// put appends v and wakes the consumer.
func (q *queue[T]) put(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default: // a wake-up is pending; it takes v too
	}
}

// ready receives once after one or more puts.
func (q *queue[T]) ready() <-chan struct{} { return q.kick }

// take removes and returns everything queued, oldest first.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}
