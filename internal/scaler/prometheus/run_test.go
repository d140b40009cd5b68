package prometheus

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/scaler"
)

// fakeWebhook records Scale calls and answers Target from them.
type fakeWebhook struct {
	mu      sync.Mutex // guards the fields below
	targets map[string]int
	calls   []int
	fail    error // returned by Scale while set
	getFail error // returned by Target while set
}

func newFakeWebhook() *fakeWebhook { return &fakeWebhook{targets: map[string]int{}} }

func (f *fakeWebhook) Scale(_ context.Context, app, dep string, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.targets[app+"/"+dep] = n
	f.calls = append(f.calls, n)
	return nil
}

func (f *fakeWebhook) Target(_ context.Context, app, dep string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getFail != nil {
		return 0, f.getFail
	}
	n, ok := f.targets[app+"/"+dep]
	if !ok {
		return 0, errors.New("not found")
	}
	return n, nil
}

func (f *fakeWebhook) target(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.targets[key]
}

// setByHand changes a target as someone other than the scaler would.
func (f *fakeWebhook) setByHand(key string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[key] = n
}

func (f *fakeWebhook) setGetFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getFail = err
}

func (f *fakeWebhook) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeWebhook) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// fakeQuerier returns a value or an error the test sets.
type fakeQuerier struct {
	mu    sync.Mutex // guards value and err
	value float64
	err   error
}

func (f *fakeQuerier) Query(context.Context, string, time.Time) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.value, f.err
}

func (f *fakeQuerier) set(v float64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value, f.err = v, err
}

// clock is a virtual clock.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testConfig() *Config {
	tg := base()
	return &Config{Interval: scaler.Duration(15 * time.Second), Prometheus: Source{URL: "http://unused", Timeout: scaler.Duration(time.Second)}, Targets: []Target{tg}}
}

func TestStepReadsTheCurrentTargetQueriesDecidesAndCallsTheWebhook(t *testing.T) {
	wh := newFakeWebhook()
	wh.targets["app/dep"] = 2
	q := &fakeQuerier{value: 95}
	clk := &clock{t: t0}
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	s, err := New(testConfig(), Options{Webhook: wh, Querier: q, Metrics: scaler.NewMetrics(reg), Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		advance time.Duration
		value   float64
		err     error
		target  int
	}{
		{0, 95, nil, 6},                 // 2 → 6, max_step 4
		{15 * time.Second, 95, nil, 6},  // scale-up cooldown
		{15 * time.Second, 95, nil, 10}, // 30s after the change
		{15 * time.Second, 0, errors.New("connection refused"), 10},
		{2 * time.Minute, 0, errors.New("connection refused"), 3}, // fallback
		{15 * time.Second, 0, errors.New("connection refused"), 3},
	}
	for i, st := range steps {
		clk.advance(st.advance)
		q.set(st.value, st.err)
		s.Step(t.Context())
		if got := wh.target("app/dep"); got != st.target {
			t.Fatalf("step %d: target %d, want %d; log:\n%s", i, got, st.target, logs.String())
		}
	}
	if n := wh.callCount(); n != 3 {
		t.Errorf("%d webhook calls, want 3 (6, 10, fallback 3)", n)
	}
	for name, want := range map[string]float64{
		"shoal_scaler_fallback_active":      1,
		"shoal_scaler_query_failures_total": 3,
		"shoal_scaler_target_replicas":      3,
		"shoal_scaler_query_value":          95,
	} {
		got, err := gatherOne(reg, name)
		if err != nil || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, err, want)
		}
	}
	if got := testutil.ToFloat64(s.o.Metrics.WebhookCalls.WithLabelValues("app", "dep", "ok")); got != 3 {
		t.Errorf("webhook ok calls = %v, want 3", got)
	}
	for _, want := range []string{"fallback to 3 replicas", "value=95", "query_err=\"connection refused\""} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	// The query works again: the fallback ends and the gauge says so.
	clk.advance(time.Minute)
	q.set(45, nil)
	s.Step(t.Context())
	if got := wh.target("app/dep"); got != 5 {
		t.Errorf("after recovery target %d, want 5", got)
	}
	if got, _ := gatherOne(reg, "shoal_scaler_fallback_active"); got != 0 {
		t.Errorf("fallback_active = %v after recovery, want 0", got)
	}
}

func gatherOne(reg *prometheus.Registry, name string) (float64, error) {
	fams, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), nil
		case m.Counter != nil:
			return m.GetCounter().GetValue(), nil
		}
	}
	return 0, errors.New("not found")
}

func TestAFailedWebhookCallIsTriedAgainAtTheNextStep(t *testing.T) {
	wh := newFakeWebhook()
	wh.targets["app/dep"] = 1
	wh.setFail(errors.New("503"))
	clk := &clock{t: t0}
	s, _ := New(testConfig(), Options{Webhook: wh, Querier: &fakeQuerier{value: 30}, Now: clk.Now})
	if d := s.Step(t.Context())[0]; d.Change {
		t.Errorf("a failed call is reported as a change: %+v", d)
	}
	if st := s.States()[0]; st.Target != 1 || !st.LastChange.IsZero() {
		t.Errorf("state after a failed call: %+v, want the old target 1 and no change time", st)
	}
	wh.setFail(nil)
	clk.advance(time.Second)
	s.Step(t.Context())
	if got := wh.target("app/dep"); got != 3 {
		t.Errorf("target %d after the retry, want 3", got)
	}
}

func TestDryRunDecidesAndLogsButCallsNothing(t *testing.T) {
	wh := newFakeWebhook()
	wh.targets["app/dep"] = 2
	var logs bytes.Buffer
	clk := &clock{t: t0}
	s, _ := New(testConfig(), Options{Webhook: wh, DryRun: true, Querier: &fakeQuerier{value: 40}, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	d := s.Step(t.Context())[0]
	if !d.Change || d.Target != 4 {
		t.Errorf("decision %+v, want a change to 4", d)
	}
	if wh.callCount() != 0 {
		t.Error("a dry run called the webhook")
	}
	if !strings.Contains(logs.String(), "dry run: webhook not called") {
		t.Errorf("log does not say it is a dry run:\n%s", logs.String())
	}
	// Its state moves on as if applied, so a dry run shows the sequence a real run would.
	clk.advance(time.Second)
	if d := s.Step(t.Context())[0]; d.Change {
		t.Errorf("second dry-run step changes again: %+v", d)
	}
}

func TestNewNeedsAWebhookOutsideADryRun(t *testing.T) {
	if _, err := New(testConfig(), Options{}); !errors.Is(err, ErrNoWebhook) {
		t.Errorf("err %v, want ErrNoWebhook", err)
	}
}

func TestRunStepsAtOnceAndStopsWithItsContext(t *testing.T) {
	wh := newFakeWebhook()
	cfg := testConfig()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Webhook: wh, Querier: &fakeQuerier{value: 20}}) }()
	deadline := time.Now().Add(5 * time.Second)
	for wh.target("app/dep") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("no first decision within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}

// handStep is one evaluation of a run in virtual time: advance the clock, optionally
// change the target by hand (hand > 0) or make the read of the target fail, evaluate,
// and check the deployment's target and the decision's reason.
type handStep struct {
	advance time.Duration
	value   float64
	hand    int
	getFail bool
	target  int
	why     string
}

func TestATargetChangedOutsideTheScalerIsCorrected(t *testing.T) {
	cases := []struct {
		name  string
		cfg   func(*Target)
		steps []handStep
	}{
		{"a target set below the desired count is raised at the next evaluation", func(c *Target) { c.ScaleUpCooldown = 0 }, []handStep{
			{0, 30, 0, false, 3, "target stays 3"},
			{15 * time.Second, 30, 1, false, 3, "target 1 set outside the scaler (it was 3); value 30 / per_replica 10 = 3; scaling up 1 → 3"},
			{15 * time.Second, 30, 0, false, 3, "; target stays 3"},
		}},
		{"a redeploy's reset to num_replicas is corrected though the desired count never moved", func(c *Target) { c.ScaleUpCooldown = 0; c.MaxStep = 0 }, []handStep{
			{0, 120, 0, false, 12, "scaling up 3 → 12"},
			{15 * time.Second, 120, 0, false, 12, "target stays 12"},
			{15 * time.Second, 120, 1, false, 12, "target 1 set outside the scaler (it was 12); value 120 / per_replica 10 = 12; scaling up 1 → 12"},
		}},
		{"a hand scale-up holds for scale_down_cooldown, then the scaler takes over", func(c *Target) { c.MaxStep = 0 }, []handStep{
			{0, 30, 0, false, 3, "target stays 3"},
			{10 * time.Minute, 30, 8, false, 8, "target 8 set outside the scaler (it was 3); value 30 / per_replica 10 = 3; scale-down from 8 held by scale_down_cooldown 5m0s until 09:15:00"},
			{4*time.Minute + 45*time.Second, 30, 0, false, 8, "held by scale_down_cooldown"},
			{15 * time.Second, 30, 0, false, 3, "scaling down 8 → 3"},
		}},
		{"a hand change within a cooldown restarts it", func(c *Target) { c.ScaleUpCooldown = scaler.Duration(time.Minute) }, []handStep{
			{0, 50, 0, false, 5, "scaling up 3 → 5"},
			{45 * time.Second, 50, 2, false, 2, "target 2 set outside the scaler (it was 5); value 50 / per_replica 10 = 5; scale-up from 2 held by scale_up_cooldown 1m0s until 09:01:45"},
			{45 * time.Second, 50, 0, false, 2, "held by scale_up_cooldown"},
			{15 * time.Second, 50, 0, false, 5, "scaling up 2 → 5"},
		}},
		{"the fallback count is set again at once", nil, []handStep{
			{0, -1, 0, false, 3, "keeping 3"},
			{2 * time.Minute, -1, 0, false, 3, "fallback to 3 replicas"},
			{15 * time.Second, -1, 0, false, 3, "fallback 3 replicas in force"},
			{15 * time.Second, -1, 9, false, 3, "target 9 set outside the scaler (it was 3); query failing for 2m30s (fallback.after 2m0s); fallback to 3 replicas"},
		}},
		{"a failed read of the target decides from the last one known", func(c *Target) { c.ScaleUpCooldown = 0 }, []handStep{
			{0, 30, 0, false, 3, "target stays 3"},
			{15 * time.Second, 30, 1, true, 1, "value 30 / per_replica 10 = 3; target stays 3"},
			{15 * time.Second, 30, 0, false, 3, "target 1 set outside the scaler (it was 3); value 30 / per_replica 10 = 3; scaling up 1 → 3"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			if c.cfg != nil {
				c.cfg(&cfg.Targets[0])
			}
			wh := newFakeWebhook()
			wh.targets["app/dep"] = 3
			q := &fakeQuerier{}
			clk := &clock{t: t0}
			var logs bytes.Buffer
			s, err := New(cfg, Options{Webhook: wh, Querier: q, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range c.steps {
				clk.advance(st.advance)
				if st.value < 0 {
					q.set(0, errors.New("connection refused"))
				} else {
					q.set(st.value, nil)
				}
				if st.hand > 0 {
					wh.setByHand("app/dep", st.hand)
				}
				if st.getFail {
					wh.setGetFail(errors.New("connection refused"))
				}
				d := s.Step(t.Context())[0]
				wh.setGetFail(nil)
				if got := wh.target("app/dep"); got != st.target || !strings.Contains(d.Reason, st.why) {
					t.Fatalf("step %d: target %d, reason %q;\nwant target %d, reason containing %q\nlog:\n%s",
						i, got, d.Reason, st.target, st.why, logs.String())
				}
			}
		})
	}
}

func TestAFailedReadOfTheTargetIsLoggedAndTheRunGoesOn(t *testing.T) {
	wh := newFakeWebhook()
	wh.targets["app/dep"] = 2
	wh.setGetFail(errors.New("503 Service Unavailable"))
	var logs bytes.Buffer
	clk := &clock{t: t0}
	s, _ := New(testConfig(), Options{Webhook: wh, Querier: &fakeQuerier{value: 40}, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	// Nothing known yet: the first decision sets its target outright, as before.
	if d := s.Step(t.Context())[0]; !d.Change || d.Target != 4 {
		t.Errorf("first decision with an unreadable target: %+v, want a change to 4", d)
	}
	clk.advance(15 * time.Second)
	if d := s.Step(t.Context())[0]; d.Change || d.Target != 4 {
		t.Errorf("second decision: %+v, want no change from the last known 4", d)
	}
	for _, want := range []string{"cannot read the current target\"", "cannot read the current target; deciding from the last one known\" application=app deployment=dep target=4"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if n := wh.callCount(); n != 1 {
		t.Errorf("%d webhook calls, want 1", n)
	}
}

func TestADryRunReadsTheTargetOnceAndGoesOnFromItsOwnDecisions(t *testing.T) {
	wh := newFakeWebhook()
	wh.targets["app/dep"] = 2
	clk := &clock{t: t0}
	s, _ := New(testConfig(), Options{Webhook: wh, DryRun: true, Querier: &fakeQuerier{value: 40}, Now: clk.Now})
	if d := s.Step(t.Context())[0]; !d.Change || d.Target != 4 || !strings.HasSuffix(d.Reason, "scaling up 2 → 4") {
		t.Errorf("first dry-run decision %+v, want 2 → 4", d)
	}
	wh.setByHand("app/dep", 7)
	clk.advance(15 * time.Second)
	if d := s.Step(t.Context())[0]; d.Change || strings.Contains(d.Reason, "outside") {
		t.Errorf("second dry-run decision %+v: the real target (never changed by a dry run) taken for an outside change", d)
	}
}
