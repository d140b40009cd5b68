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

type fakeWebhook struct {
	now   func() time.Time
	mu    sync.Mutex // guards calls and fail
	calls []call
	fail  int // the next fail calls return an error
}

func (f *fakeWebhook) Scale(_ context.Context, _, _ string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("connection refused")
	}
	f.calls = append(f.calls, call{f.now(), n})
	return nil
}

func (f *fakeWebhook) Target(context.Context, string, string) (int, error) { return 0, nil }

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
