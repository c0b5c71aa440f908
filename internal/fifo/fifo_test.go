package fifo

import (
	"sync"
	"testing"
	"time"
)

// TestQueueOrderAndWakeUp: Put never blocks however much is queued, one
// wake-up covers every Put before the Take, and Take returns the items in
// the order they were put, across concurrent Take rounds.
func TestQueueOrderAndWakeUp(t *testing.T) {
	q := New[int]()
	const n = 10000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			q.Put(i) // no consumer yet for most: must not block
		}
	}()
	var got []int
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-q.Ready():
			got = append(got, q.Take()...)
		case <-deadline:
			t.Fatalf("took %d of %d", len(got), n)
		}
	}
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d is %d: out of order", i, v)
		}
	}
	if rest := q.Take(); len(rest) != 0 {
		t.Fatalf("left over %v", rest)
	}
}
