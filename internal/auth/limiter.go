package auth

import (
	"container/list"
	"sync"
	"time"
)

// SPEC §7: more than MaxFailures failed authentications (401 or 403) from one client
// address within FailureWindow, and every request from it gets 429 until the window is
// over. One Limiter of these counts every failure of an address, the API's and the
// dashboard login's alike (shoal builds one and gives it to both).
const (
	MaxFailures   = 20
	FailureWindow = time.Minute
)

// NewSpecLimiter returns the Limiter of SPEC §7 on the clock now (time.Now when nil).
func NewSpecLimiter(now func() time.Time) *Limiter {
	return NewLimiter(MaxFailures, FailureWindow, now)
}

// MaxTracked bounds how many client addresses a Limiter remembers, so that failures from
// ever new addresses cannot grow it without bound. Past it, the oldest is forgotten.
const MaxTracked = 10000

// Limiter counts failed authentications per client address and blocks an address that
// failed more than max times within a window.
//
// The window is fixed and starts at an address's first counted failure; it is not
// sliding. That is the spec's wording ("more than 20 failed authentications ... within a
// minute: every request gets 429 ... until the minute is over"): with max 20 and a window
// of a minute, failures at 0 s, 1 s, ..., 20 s (21 of them) block the address until 60 s,
// and Retry-After counts down to it. The first failure after 60 s opens a new window with
// a count of one. Failures while blocked are counted but do not extend the block, so a
// blocked client always knows when it may retry.
type Limiter struct {
	max      int
	window   time.Duration
	now      func() time.Time
	capacity int // addresses remembered at most; MaxTracked unless a test lowers it

	mu      sync.Mutex               // guards clients and order
	clients map[string]*list.Element // address → element of order holding its *failures
	order   *list.List               // *failures by window start, oldest first
}

type failures struct {
	addr  string
	start time.Time // the first failure of the current window
	count int
}

// NewLimiter returns a Limiter that blocks an address after more than maxFailures
// failures within window. now is the clock (time.Now when nil).
func NewLimiter(maxFailures int, window time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		max: maxFailures, window: window, now: now, capacity: MaxTracked,
		clients: map[string]*list.Element{}, order: list.New(),
	}
}

// Fail records a failed authentication (401 or 403) from addr.
func (l *Limiter) Fail(addr string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if el, ok := l.clients[addr]; ok {
		f := el.Value.(*failures)
		if l.over(f, now) {
			// Only when the clock stepped back and the entry was not at the front.
			f.start, f.count = now, 0
			l.order.MoveToBack(el)
		}
		f.count++
		return
	}
	for len(l.clients) >= l.capacity && l.order.Len() > 0 {
		l.remove(l.order.Front())
	}
	l.clients[addr] = l.order.PushBack(&failures{addr: addr, start: now, count: 1})
}

// Blocked reports whether requests from addr are to be refused, and for how long.
func (l *Limiter) Blocked(addr string) (retryAfter time.Duration, blocked bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	el, ok := l.clients[addr]
	if !ok {
		return 0, false
	}
	f := el.Value.(*failures)
	if l.over(f, now) {
		l.remove(el)
		return 0, false
	}
	if f.count <= l.max {
		return 0, false
	}
	return f.start.Add(l.window).Sub(now), true
}

// RetryAfterSeconds turns a Blocked duration into the value of a Retry-After header:
// whole seconds, rounded up so a client that waits that long is no longer blocked.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func (l *Limiter) over(f *failures, now time.Time) bool {
	return !now.Before(f.start.Add(l.window))
}

// expire forgets addresses whose window is over. order is sorted by window start, so it
// stops at the first one still open: amortised O(1) per call.
func (l *Limiter) expire(now time.Time) {
	for el := l.order.Front(); el != nil && l.over(el.Value.(*failures), now); el = l.order.Front() {
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.clients, el.Value.(*failures).addr)
	l.order.Remove(el)
}
