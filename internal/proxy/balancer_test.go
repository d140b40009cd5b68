package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"shoal/internal/backend"
)

func testBalancer(maxOngoing, maxQueued int64, ids ...string) (*balancer, []*replica) {
	start := time.Now()
	b := newBalancer(backend.Key{App: "a", Deployment: "d"}, func() int64 { return int64(time.Since(start)) })
	b.maxOngoing.Store(maxOngoing)
	b.maxQueued.Store(maxQueued)
	var set []*replica
	for _, id := range ids {
		set = append(set, &replica{id: id, addr: id, bal: b})
	}
	b.setReplicas(set)
	return b, set
}

func TestFreedSlotsGoToWaitersInArrivalOrder(t *testing.T) {
	b, set := testBalancer(1, -1, "r1")
	first, err := b.acquire(context.Background(), 0, nil)
	if err != nil || first != set[0] {
		t.Fatalf("first acquire: %v %v", first, err)
	}
	const n = 5
	order := make(chan int, n)
	for i := range n {
		go func() {
			r, err := b.acquire(context.Background(), 0, nil)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			b.release(r)
		}()
		// Each waiter is queued before the next one arrives.
		eventually(t, 5*time.Second, func() bool { return b.queued.Load() == int64(i+1) })
	}
	b.release(first)
	for want := range n {
		if got := <-order; got != want {
			t.Fatalf("waiter %d was served in position %d", got, want)
		}
	}
	eventually(t, 5*time.Second, func() bool { return set[0].ongoing.Load() == 0 })
}

func TestPickNeverExceedsTheCapAndSkipsDownReplicas(t *testing.T) {
	b, set := testBalancer(2, -1, "r1", "r2", "r3")
	b.markDown(set[1])
	var got []*replica
	for {
		r := b.pick(nil)
		if r == nil {
			break
		}
		got = append(got, r)
	}
	if len(got) != 4 {
		t.Errorf("picked %d slots, want 4 (two healthy replicas with max 2)", len(got))
	}
	for _, r := range set {
		if n := r.ongoing.Load(); n > 2 || (r == set[1] && n != 0) {
			t.Errorf("replica %s holds %d", r.id, n)
		}
	}
}

func TestPickSkipsReplicasAlreadyTried(t *testing.T) {
	b, set := testBalancer(5, -1, "r1", "r2")
	for range 20 {
		r := b.pick(set[:1])
		if r != set[1] {
			t.Fatalf("picked %v, want r2", r)
		}
		b.release(r)
	}
}

func TestAWaiterWhoseContextEndsLeavesTheQueue(t *testing.T) {
	b, _ := testBalancer(1, -1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.acquire(ctx, 0, nil)
		done <- err
	}()
	eventually(t, 5*time.Second, func() bool { return b.queued.Load() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	if q := b.queued.Load(); q != 0 || b.head != nil {
		t.Errorf("queue not empty: %d", q)
	}
}

func TestTheOverloadErrorIsASentinel(t *testing.T) {
	b, set := testBalancer(1, 1, "r1")
	r, _ := b.acquire(context.Background(), 0, nil)
	go func() { _, _ = b.acquire(context.Background(), time.Second, nil) }()
	eventually(t, 5*time.Second, func() bool { return b.queued.Load() == 1 })
	_, err := b.acquire(context.Background(), 0, nil)
	if !errors.Is(err, ErrOverloaded) {
		t.Errorf("got %v, want ErrOverloaded", err)
	}
	b.release(r)
	eventually(t, 5*time.Second, func() bool { return b.queued.Load() == 0 && set[0].ongoing.Load() == 1 })
}
