package proxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/backend"
)

// downFor is how long a replica that refused a connection is left out of picks. The
// backend notices a dead process within milliseconds and publishes a snapshot without
// it; this only covers that gap, so it is short.
const downFor = time.Second

// replica is one routable (or draining) replica. Its counter lives across snapshots for
// as long as the replica keeps its ID and address.
type replica struct {
	id   string
	addr string
	bal  *balancer

	_ [64]byte // keep ongoing on its own cache line: replicas are allocated side by side
	// ongoing counts the requests this proxy holds on the replica. It only grows by a
	// compare-and-swap below the deployment's max_ongoing_requests (tryAcquire), so it
	// never exceeds the limit in force when the slot was claimed.
	ongoing atomic.Int64
	// downUntil is a monotonic deadline (nanoseconds since the proxy started) before
	// which the replica is not picked; 0 = healthy.
	downUntil atomic.Int64
	// routable is false once the replica left the routing set (draining).
	routable atomic.Bool
	_        [64]byte
	conns    connPool // idle connections of the own HTTP/1.1 client
}

func (r *replica) tryAcquire(max int64) bool {
	for {
		n := r.ongoing.Load()
		if n >= max {
			return false
		}
		if r.ongoing.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (r *replica) isDown(now func() int64) bool {
	d := r.downUntil.Load()
	return d != 0 && now() < d
}

// waiter is one request queued for a slot. ch has room for one value so that dispatch,
// which sends while holding the balancer's mutex, never blocks; a nil value means the
// deployment is gone.
type waiter struct {
	ch         chan *replica
	prev, next *waiter
	queued     bool // in the list; guarded by balancer.mu
}

// balancer spreads one deployment's requests over its RUNNING replicas: power of two
// choices on ongoing requests, a hard per-replica cap, and a FIFO queue when every
// replica is at the cap.
type balancer struct {
	key  backend.Key
	name string // "app/deployment", for messages
	// handleHdr is the X-Forwarded-Prefix of handle calls, shared read-only.
	handleHdr []string
	now       func() int64

	set        atomic.Pointer[[]*replica] // routable replicas; replaced, never mutated
	maxOngoing atomic.Int64
	maxQueued  atomic.Int64 // -1 = unbounded
	// queued mirrors the list length so the fast path and Queued() read it without the
	// lock. It is incremented before a new waiter looks for a free slot and read by
	// release after freeing one (both sequentially consistent atomics), so of a waiter
	// and a concurrent release at least one sees the other: no waiter is stranded next
	// to a free slot.
	queued atomic.Int64

	mu         sync.Mutex // guards head, tail, closed and every waiter's links
	head, tail *waiter
	closed     bool

	waiters sync.Pool // of *waiter
}

func newBalancer(key backend.Key, now func() int64) *balancer {
	b := &balancer{key: key, name: key.String(), now: now,
		handleHdr: []string{"/-/handle/" + key.App + "/" + key.Deployment}}
	b.maxOngoing.Store(defaultMaxOngoing)
	b.maxQueued.Store(-1)
	empty := []*replica{}
	b.set.Store(&empty)
	b.waiters.New = func() any { return &waiter{ch: make(chan *replica, 1)} }
	return b
}

const defaultMaxOngoing = 5 // Ray's default max_ongoing_requests

func (b *balancer) replicas() []*replica { return *b.set.Load() }

// pick claims a slot on a routable replica, or returns nil when none has one. tried
// lists replicas this request already failed to reach; they and replicas marked down
// are skipped.
func (b *balancer) pick(tried []*replica) *replica {
	set := b.replicas()
	n := len(set)
	if n == 0 {
		return nil
	}
	max := b.maxOngoing.Load()
	usable := func(r *replica) bool {
		for _, t := range tried {
			if t == r {
				return false
			}
		}
		return !r.isDown(b.now)
	}
	if n == 1 {
		if r := set[0]; usable(r) && r.tryAcquire(max) {
			return r
		}
		return nil
	}
	// Power of two choices: two distinct random replicas, the less loaded first.
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, c := set[i], set[j]
	if c.ongoing.Load() < a.ongoing.Load() {
		a, c = c, a
	}
	if usable(a) && a.tryAcquire(max) {
		return a
	}
	if usable(c) && c.tryAcquire(max) {
		return c
	}
	// Both were full (or just filled up): any replica with a free slot beats queueing.
	for k := 1; k < n; k++ {
		if r := set[(i+k)%n]; r != c && usable(r) && r.tryAcquire(max) {
			return r
		}
	}
	return nil
}

// acquire returns a replica with a slot claimed for the caller, waiting in the FIFO
// queue when every replica is full (or there are none). timeout 0 waits without bound.
func (b *balancer) acquire(ctx context.Context, timeout time.Duration, tried []*replica) (*replica, error) {
	// Fast path only when nobody waits: a newcomer never overtakes a queued request.
	if b.queued.Load() == 0 {
		if r := b.pick(tried); r != nil {
			return r, nil
		}
	}
	return b.wait(ctx, timeout, tried)
}

func (b *balancer) wait(ctx context.Context, timeout time.Duration, tried []*replica) (*replica, error) {
	w := b.waiters.Get().(*waiter)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.waiters.Put(w)
		return nil, b.goneError()
	}
	if max := b.maxQueued.Load(); max >= 0 && b.queued.Load() >= max {
		// Slots freed by releases that have not reached the lock yet go to the queue
		// first; only a queue that is still full turns the request away.
		b.dispatchLocked()
		if b.queued.Load() >= max {
			queued := b.queued.Load()
			b.mu.Unlock()
			b.waiters.Put(w)
			return nil, b.overloadedError(queued, max)
		}
	}
	b.pushLocked(w)
	b.queued.Add(1)
	if len(tried) > 0 && b.head == w {
		// A retry at the head of the queue avoids the replicas it already failed on.
		if r := b.pick(tried); r != nil {
			b.removeLocked(w)
			b.queued.Add(-1)
			b.mu.Unlock()
			b.waiters.Put(w)
			return r, nil
		}
	}
	b.dispatchLocked()
	b.mu.Unlock()

	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	var err error
	select {
	case r := <-w.ch:
		b.waiters.Put(w)
		if r == nil {
			return nil, b.goneError()
		}
		return r, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer:
		err = b.timeoutError(timeout)
	}
	b.mu.Lock()
	if w.queued {
		b.removeLocked(w)
		b.queued.Add(-1)
		b.mu.Unlock()
		b.waiters.Put(w)
		return nil, err
	}
	b.mu.Unlock()
	// Dispatch handed us a slot as we gave up; it was sent under the lock, so it is in
	// the channel now.
	r := <-w.ch
	b.waiters.Put(w)
	if r == nil {
		return nil, b.goneError()
	}
	if ctx.Err() != nil {
		b.release(r)
		return nil, err
	}
	return r, nil // the timer lost the race by a hair: serve it
}

// release frees a slot and hands free capacity to the oldest waiters.
func (b *balancer) release(r *replica) {
	r.ongoing.Add(-1)
	if b.queued.Load() > 0 {
		b.mu.Lock()
		b.dispatchLocked()
		b.mu.Unlock()
	}
}

// kick hands free capacity to waiters; called when the replica set changes or a down
// mark expires.
func (b *balancer) kick() {
	if b.queued.Load() > 0 {
		b.mu.Lock()
		b.dispatchLocked()
		b.mu.Unlock()
	}
}

// dispatchLocked gives each free slot to the oldest waiter, one waiter per slot, so a
// freed slot wakes exactly one request.
func (b *balancer) dispatchLocked() {
	for b.head != nil {
		r := b.pick(nil)
		if r == nil {
			return
		}
		w := b.head
		b.removeLocked(w)
		b.queued.Add(-1)
		w.ch <- r
	}
}

func (b *balancer) pushLocked(w *waiter) {
	w.queued = true
	w.prev = b.tail
	w.next = nil
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
}

func (b *balancer) removeLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
}

// setReplicas installs a new routing set. Replicas that left it stop getting requests
// (those in flight finish); new ones take queued requests at once.
func (b *balancer) setReplicas(set []*replica) {
	in := make(map[*replica]bool, len(set))
	for _, r := range set {
		in[r] = true
		r.routable.Store(true)
	}
	for _, r := range b.replicas() {
		if !in[r] {
			r.routable.Store(false)
		}
	}
	b.set.Store(&set)
	b.kick()
}

// close fails every waiter: the deployment left the snapshot.
func (b *balancer) close() {
	empty := []*replica{}
	for _, r := range b.replicas() {
		r.routable.Store(false)
	}
	b.set.Store(&empty)
	b.mu.Lock()
	b.closed = true
	for b.head != nil {
		w := b.head
		b.removeLocked(w)
		b.queued.Add(-1)
		w.ch <- nil
	}
	b.mu.Unlock()
}

// markDown keeps r out of picks for downFor and wakes waiters when the mark expires.
func (b *balancer) markDown(r *replica) {
	r.downUntil.Store(b.now() + int64(downFor))
	time.AfterFunc(downFor+time.Millisecond, b.kick)
}
