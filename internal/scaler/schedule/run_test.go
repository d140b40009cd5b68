package schedule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// call is one webhook call at a virtual instant.
type call struct {
	at time.Time
	n  int
}

// fakeWebhook is shoal's scale route: Scale sets target, Target reads it.
type fakeWebhook struct {
	now     func() time.Time
	mu      sync.Mutex // guards the fields below
	calls   []call
	target  int
	fail    int // the next fail calls of Scale return an error
	getFail bool
}

func (f *fakeWebhook) Scale(_ context.Context, _, _ string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("connection refused")
	}
	f.calls = append(f.calls, call{f.now(), n})
	f.target = n
	return nil
}

func (f *fakeWebhook) Target(context.Context, string, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getFail {
		return 0, errors.New("connection refused")
	}
	return f.target, nil
}

// setByHand changes the target as someone other than the scaler would.
func (f *fakeWebhook) setByHand(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = n
}

func (f *fakeWebhook) setGetFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getFail = v
}

func (f *fakeWebhook) log(loc *time.Location) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.calls {
		fmt.Fprintf(&b, "%s %d\n", c.at.In(loc).Format("Mon 15:04:05 MST"), c.n)
	}
	return b.String()
}

// virtualClock maps the bubble's fake time onto start, so a test can begin at any date.
func virtualClock(start time.Time) func() time.Time {
	t0 := time.Now()
	return func() time.Time { return start.Add(time.Since(t0)) }
}

func TestRunSetsTheTargetAtStartAndAtEveryChangeInVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustParse(t, `
timezone: Europe/Berlin
targets:
  - application: a
    deployment: d
    profiles:
      - {name: business-hours, days: [mon-fri], from: "09:00", to: "18:00", replicas: 4}
      - {name: evening, days: [mon-sun], from: "18:00", to: "22:00", replicas: 8}
`)
		now := virtualClock(local(c.Location, "2026-11-27 17:00")) // a Friday
		wh := &fakeWebhook{now: now}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, c, Options{Webhook: wh, Now: now}) }()

		time.Sleep(3 * 24 * time.Hour) // to Monday 17:00
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
		want := `Fri 17:00:00 CET 4
Fri 18:00:00 CET 8
Fri 22:00:00 CET 1
Sat 18:00:00 CET 8
Sat 22:00:00 CET 1
Sun 18:00:00 CET 8
Sun 22:00:00 CET 1
Mon 09:00:00 CET 4
`
		if got := wh.log(c.Location); got != want {
			t.Errorf("calls:\n%s\nwant:\n%s", got, want)
		}
	})
}

func TestRunRetriesAFailedCallAndFollowsTheSpringForward(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustParse(t, `
timezone: Europe/Berlin
targets:
  - application: a
    deployment: d
    profiles:
      - {name: night, days: [mon-sun], from: "01:30", to: "02:30", replicas: 3}
`)
		now := virtualClock(local(c.Location, "2026-03-29 00:00"))
		wh := &fakeWebhook{now: now, fail: 2}
		var logs bytes.Buffer
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, c, Options{Webhook: wh, Now: now, Retry: 10 * time.Second,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		}()
		time.Sleep(4 * time.Hour)
		synctest.Wait()
		cancel()
		<-done
		// Two failed calls at 00:00:00 and 00:00:10, set at 00:00:20. The night profile
		// starts at 01:30 CET and its end, 02:30, does not exist that day: it ends when
		// the clock jumps to 03:00 CEST.
		want := `Sun 00:00:20 CET 1
Sun 01:30:00 CET 3
Sun 03:00:00 CEST 1
`
		if got := wh.log(c.Location); got != want {
			t.Errorf("calls:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(logs.String(), "scheduled target not set; trying again") {
			t.Errorf("log does not report the failed call:\n%s", logs.String())
		}
	})
}

func TestDryRunLogsTheScheduleButCallsNothing(t *testing.T) {
	c := mustParse(t, "timezone: UTC\ntargets: [{application: a, deployment: d, default: 2}]\n")
	var logs bytes.Buffer
	s, err := New(c, Options{DryRun: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.Step(t.Context()); failed {
		t.Error("a dry run failed")
	}
	if !strings.Contains(logs.String(), "dry run: webhook not called") || !strings.Contains(logs.String(), "replicas=2") {
		t.Errorf("log:\n%s", logs.String())
	}
	if _, err := New(c, Options{}); !errors.Is(err, ErrNoWebhook) {
		t.Errorf("New without a webhook: %v, want ErrNoWebhook", err)
	}
}

func TestATargetChangedOutsideTheScalerIsSetBackWithinAnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustParse(t, `
timezone: Europe/Berlin
interval: 30s
targets:
  - application: a
    deployment: d
    profiles:
      - {name: business-hours, days: [mon-fri], from: "09:00", to: "18:00", replicas: 4}
`)
		now := virtualClock(local(c.Location, "2026-11-27 17:00")) // a Friday
		wh := &fakeWebhook{now: now, target: 4}
		var logs bytes.Buffer
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, c, Options{Webhook: wh, Now: now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		}()
		time.Sleep(10*time.Minute + 10*time.Second)
		wh.setByHand(9) // 17:10:10: a hand scale
		time.Sleep(10 * time.Minute)
		wh.setGetFail(true) // 17:20:10: shoal's answers fail, then a redeploy resets the target
		wh.setByHand(1)
		time.Sleep(10 * time.Minute)
		wh.setGetFail(false) // 17:30:10
		time.Sleep(time.Hour)
		synctest.Wait()
		cancel()
		<-done
		// Already 4 at start: no call. The hand-made 9 is undone at the next interval;
		// the reset to 1 is not seen while the reads fail, and undone once they work.
		want := `Fri 17:10:30 CET 4
Fri 17:30:30 CET 4
Fri 18:00:00 CET 1
`
		if got := wh.log(c.Location); got != want {
			t.Errorf("calls:\n%s\nwant:\n%s\nlog:\n%s", got, want, logs.String())
		}
		for _, w := range []string{"scheduled target already set", `msg="target 9 set outside the scaler; setting 4"`,
			`msg="target 1 set outside the scaler; setting 4"`, "cannot read the current target; it is set only when the schedule changes"} {
			if !strings.Contains(logs.String(), w) {
				t.Errorf("log lacks %q:\n%s", w, logs.String())
			}
		}
		if n := strings.Count(logs.String(), `msg="next change"`); n != 2 {
			t.Errorf("%d next-change lines, want 2 (one per change, not one per interval):\n%s", n, logs.String())
		}
	})
}

func TestAPlannedChangeIsSetWhileTheTargetCannotBeRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := mustParse(t, `
timezone: UTC
targets:
  - application: a
    deployment: d
    profiles:
      - {name: evening, days: [mon-sun], from: "18:00", to: "22:00", replicas: 8}
`)
		now := virtualClock(local(c.Location, "2026-11-27 17:00"))
		wh := &fakeWebhook{now: now, getFail: true}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, c, Options{Webhook: wh, Now: now}) }()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		cancel()
		<-done
		want := `Fri 17:00:00 UTC 1
Fri 18:00:00 UTC 8
`
		if got := wh.log(c.Location); got != want {
			t.Errorf("calls:\n%s\nwant:\n%s", got, want)
		}
	})
}
