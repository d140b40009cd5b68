package auth

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter() (*Limiter, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)}
	return NewLimiter(20, time.Minute, c.now), c
}

// The spec's rule as a step table: one address fails once a second (at 0 s … 20 s), and
// is checked at each step.
func TestLimiterBlocksAfterMoreThanMaxFailuresUntilTheMinuteIsOver(t *testing.T) {
	type step struct {
		at        time.Duration // since the first failure
		fail      bool          // record a failure at this time, before checking
		blocked   bool
		retryLeft time.Duration
	}
	var steps []step
	for i := range 20 {
		steps = append(steps, step{at: time.Duration(i) * time.Second, fail: true})
	}
	steps = append(steps,
		step{at: 20 * time.Second, fail: true, blocked: true, retryLeft: 40 * time.Second}, // the 21st
		step{at: 30 * time.Second, blocked: true, retryLeft: 30 * time.Second},
		step{at: 45 * time.Second, fail: true, blocked: true, retryLeft: 15 * time.Second}, // no extension
		step{at: 59*time.Second + 500*time.Millisecond, blocked: true, retryLeft: 500 * time.Millisecond},
		step{at: 60 * time.Second},
		step{at: 61 * time.Second, fail: true}, // a new window, count 1
	)

	l, clock := newTestLimiter()
	start := clock.t
	for _, s := range steps {
		clock.t = start.Add(s.at)
		if s.fail {
			l.Fail("192.0.2.1")
		}
		retry, blocked := l.Blocked("192.0.2.1")
		if blocked != s.blocked || retry != s.retryLeft {
			t.Fatalf("at %v: Blocked = %v, %v; want %v, %v", s.at, retry, blocked, s.retryLeft, s.blocked)
		}
		if _, other := l.Blocked("192.0.2.2"); other {
			t.Fatalf("at %v: another address is blocked", s.at)
		}
	}
}

func TestLimiterStartsAFreshWindowAfterTheOldOneEnds(t *testing.T) {
	l, clock := newTestLimiter()
	for range 20 {
		l.Fail("a")
	}
	clock.advance(time.Minute) // the 20 failures are forgotten
	for range 20 {
		l.Fail("a")
	}
	if _, blocked := l.Blocked("a"); blocked {
		t.Fatal("blocked after 20 failures in the new window, want not yet")
	}
	l.Fail("a")
	if retry, blocked := l.Blocked("a"); !blocked || retry != time.Minute {
		t.Fatalf("Blocked = %v, %v; want a full minute", retry, blocked)
	}
}

func TestLimiterForgetsExpiredAddresses(t *testing.T) {
	l, clock := newTestLimiter()
	for i := range 100 {
		l.Fail(fmt.Sprint(i))
	}
	clock.advance(time.Minute)
	l.Blocked("anyone")
	if n := len(l.clients); n != 0 || l.order.Len() != 0 {
		t.Fatalf("%d addresses remembered after their windows ended, want 0", n)
	}
}

func TestLimiterRemembersAtMostMaxTrackedAddresses(t *testing.T) {
	l, clock := newTestLimiter()
	for range 21 {
		l.Fail("attacker")
	}
	for i := range 2 * MaxTracked {
		clock.advance(time.Millisecond) // all within the minute: nothing expires
		l.Fail(fmt.Sprint("spoof-", i))
	}
	if n := len(l.clients); n != MaxTracked || l.order.Len() != MaxTracked {
		t.Fatalf("%d addresses remembered, want the cap %d", n, MaxTracked)
	}
	// The oldest went first: the attacker, then the earliest spoofed addresses.
	if _, blocked := l.Blocked("attacker"); blocked {
		t.Error("the oldest address is still remembered")
	}
	if _, ok := l.clients["spoof-0"]; ok {
		t.Error("an early address is still remembered")
	}
	if _, ok := l.clients[fmt.Sprint("spoof-", 2*MaxTracked-1)]; !ok {
		t.Error("the newest address was forgotten")
	}
}

func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want int
	}{
		{40 * time.Second, 40},
		{39*time.Second + time.Millisecond, 40},
		{500 * time.Millisecond, 1},
		{0, 1},
	}
	for _, tc := range cases {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestLimiterIsSafeForConcurrentUse(t *testing.T) {
	l := NewLimiter(20, time.Minute, nil)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 300 { // 30 failures per address
				addr := fmt.Sprint(g, "-", i%10)
				l.Fail(addr)
				l.Blocked(addr)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if _, blocked := l.Blocked("0-0"); !blocked {
		t.Fatal("an address with 30 failures in a moment is not blocked")
	}
}

func TestTheSpecLimiterAllows20FailuresAMinute(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewSpecLimiter(func() time.Time { return now })
	for range 20 {
		l.Fail("a")
	}
	if _, blocked := l.Blocked("a"); blocked {
		t.Fatal("blocked after 20 failures, want the 21st to block")
	}
	l.Fail("a")
	wait, blocked := l.Blocked("a")
	if !blocked || wait != time.Minute {
		t.Fatalf("after 21 failures Blocked = %v, %v; want blocked for a minute", wait, blocked)
	}
}
