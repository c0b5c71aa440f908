// Package fifo is an unbounded first-in-first-out queue between
// goroutines: the producer never blocks, and the consumer takes what is
// queued in order. haldir's components report to the daemon's loop through
// it (a VRRP instance must never wait on a slow consumer; a bounded channel
// with a goroutine per overflowing item loses the order).
package fifo

import "sync"

// Queue is an unbounded FIFO. The zero value is not usable; call New.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
	kick  chan struct{} // one pending wake-up
}

// New returns an empty queue.
func New[T any]() *Queue[T] { return &Queue[T]{kick: make(chan struct{}, 1)} }

// Put appends v and wakes the consumer. It never blocks.
func (q *Queue[T]) Put(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default: // a wake-up is pending; it takes v too
	}
}

// Ready receives once after one or more Puts.
func (q *Queue[T]) Ready() <-chan struct{} { return q.kick }

// Take removes and returns everything queued, oldest first.
func (q *Queue[T]) Take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}
