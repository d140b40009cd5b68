package autoscale

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
)

type fakeLoad struct{ ongoing, queued int }

func (f *fakeLoad) DeploymentLoad(backend.Key) (int, int) { return f.ongoing, f.queued }

// fakeTargets holds one autoscaled deployment whose replicas start at once.
type fakeTargets struct {
	mu      sync.Mutex
	dep     controller.Deployment
	deleted bool
	calls   []int
}

func (f *fakeTargets) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dep
	d.Replicas = nil
	for i := 0; i < d.Target; i++ {
		d.Replicas = append(d.Replicas, backend.Replica{ID: string(rune('a' + i)), State: backend.Running})
	}
	return &controller.Snapshot{Applications: []*controller.Application{{
		Name: d.Key.App, Deleting: f.deleted, Deployments: []*controller.Deployment{&d},
	}}}
}

func (f *fakeTargets) SetTarget(_ context.Context, _, _ string, n int, src controller.Source) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if src != controller.SourceAutoscaler {
		panic("runner set a target from " + string(src))
	}
	prev := f.dep.Target
	f.dep.Target = n
	f.calls = append(f.calls, n)
	return prev, nil
}

func newFixture(edit func(*config.AutoscalingConfig)) (*Runner, *fakeLoad, *fakeTargets) {
	cfg := cfgWith(func(c *config.AutoscalingConfig) {
		c.UpscaleDelayS, c.DownscaleDelayS, c.LookBackPeriodS = 2, 5, 1
		if edit != nil {
			edit(c)
		}
	})
	tg := &fakeTargets{dep: controller.Deployment{
		Key: backend.Key{App: "a", Deployment: "d"}, Name: "d", Mode: controller.ModeAutoscaling,
		Version: "v1", Target: 1, Config: config.Deployment{AutoscalingConfig: cfg},
	}}
	ld := &fakeLoad{}
	return NewRunner(RunnerOptions{Load: ld, Targets: tg}), ld, tg
}

func TestRunnerScalesAfterTheDelayOnItsClock(t *testing.T) {
	r, ld, tg := newFixture(nil)
	ctx := context.Background()
	t0 := time.Unix(1_700_000_000, 0)
	ld.ongoing = 8 // 8 / 2 = 4 replicas wanted
	for ms := 0; ms <= 1900; ms += 100 {
		r.Step(ctx, t0.Add(time.Duration(ms)*time.Millisecond))
	}
	if len(tg.calls) != 0 {
		t.Fatalf("scaled to %v before the 2 s upscale delay", tg.calls)
	}
	det := r.Detail(tg.dep.Key)
	if det == nil || det.Decision != 4 || det.PendingTarget != 4 || !det.PendingSince.Equal(t0) || det.PendingDelayS != 2 {
		t.Fatalf("detail %+v, want decision 4 pending since %v on the 2 s upscale delay", det, t0)
	}
	r.Step(ctx, t0.Add(2*time.Second))
	if len(tg.calls) != 1 || tg.calls[0] != 4 {
		t.Fatalf("set targets %v, want [4] once the delay held", tg.calls)
	}

	// The load stops: after the look-back window empties and the 5 s downscale delay,
	// back to min_replicas.
	ld.ongoing = 0
	for ms := 2100; ms <= 12000; ms += 100 {
		r.Step(ctx, t0.Add(time.Duration(ms)*time.Millisecond))
	}
	if got := tg.dep.Target; got != 1 {
		t.Fatalf("target %d after the load stopped, want min_replicas 1 (calls %v)", got, tg.calls)
	}
	// Nothing pending: no delay shown.
	if det := r.Detail(tg.dep.Key); det.PendingDelayS != 0 || !det.PendingSince.IsZero() {
		t.Fatalf("detail %+v once settled, want nothing pending and no delay", det)
	}
}

func TestRunnerDetailShowsTheDelayThePendingChangeWaitsOn(t *testing.T) {
	zero := 3.0
	for _, tc := range []struct {
		name    string
		target  int
		ongoing int
		want    float64 // pending_delay_s
	}{
		{"an upscale waits on upscale_delay_s", 1, 8, 2},
		{"a downscale waits on downscale_delay_s", 4, 2, 5},
		{"a downscale from 1 to 0 waits on downscale_to_zero_delay_s", 1, 0, 3},
		{"nothing pending shows no delay", 1, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ld, tg := newFixture(func(c *config.AutoscalingConfig) {
				c.MinReplicas, c.DownscaleToZeroDelayS = 0, &zero
			})
			tg.dep.Target, ld.ongoing = tc.target, tc.ongoing
			r.Step(context.Background(), time.Unix(1_700_000_000, 0))
			det := r.Detail(tg.dep.Key)
			if det.PendingDelayS != tc.want || (tc.want > 0) == det.PendingSince.IsZero() {
				t.Errorf("detail %+v, want pending_delay_s %g", det, tc.want)
			}
			b, err := json.Marshal(det)
			if has := strings.Contains(string(b), `"pending_delay_s"`); err != nil || has != (tc.want > 0) {
				t.Errorf("detail encodes as %s (%v); want pending_delay_s only when a change is pending", b, err)
			}
		})
	}
}

func TestRunnerStartsOverOnAConfigChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(d *controller.Deployment)
	}{
		{"a new version restarts the delay", func(d *controller.Deployment) { d.Version = "v2" }},
		{"a new autoscaling_config restarts the delay", func(d *controller.Deployment) {
			c := *d.Config.AutoscalingConfig
			c.MaxReplicas++
			d.Config.AutoscalingConfig = &c
		}},
		{"another field of the deployment config restarts the delay", func(d *controller.Deployment) {
			d.Config.MaxOngoingRequests = 7
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ld, tg := newFixture(nil)
			ctx := context.Background()
			t0 := time.Unix(1_700_000_000, 0)
			ld.ongoing = 8
			r.Step(ctx, t0)
			r.Step(ctx, t0.Add(1500*time.Millisecond))
			tg.mu.Lock()
			tc.change(&tg.dep)
			tg.mu.Unlock()
			// Without the reset, the increase wanted since t0 would apply at t0+2s.
			r.Step(ctx, t0.Add(2*time.Second))
			if len(tg.calls) != 0 {
				t.Fatalf("scaled to %v although a config change restarted the delay", tg.calls)
			}
			r.Step(ctx, t0.Add(4*time.Second))
			if len(tg.calls) != 1 {
				t.Fatalf("set targets %v, want one change 2 s after the config change", tg.calls)
			}
		})
	}
}

func TestRunnerForgetsDeletedDeployments(t *testing.T) {
	r, _, tg := newFixture(nil)
	r.Step(context.Background(), time.Unix(1_700_000_000, 0))
	if r.Detail(tg.dep.Key) == nil {
		t.Fatal("no detail for an autoscaled deployment")
	}
	tg.deleted = true
	r.Step(context.Background(), time.Unix(1_700_000_001, 0))
	if d := r.Detail(tg.dep.Key); d != nil {
		t.Fatalf("detail %+v kept for a deleted application", d)
	}
}

func TestRunnerScalesFromZeroOnTheFirstQueuedRequest(t *testing.T) {
	r, ld, tg := newFixture(func(c *config.AutoscalingConfig) { c.MinReplicas = 0; c.UpscaleDelayS = 600 })
	tg.dep.Target = 0
	ld.queued = 1
	r.Step(context.Background(), time.Unix(1_700_000_000, 0))
	if len(tg.calls) != 1 || tg.calls[0] != 1 {
		t.Fatalf("set targets %v, want [1] at once", tg.calls)
	}
}
