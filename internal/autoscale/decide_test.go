package autoscale

import (
	"testing"
	"time"

	"shoal/internal/config"
)

func ptr[T any](v T) *T { return &v }

// cfgWith returns Ray's defaults (SPEC §8) changed by edit.
func cfgWith(edit func(*config.AutoscalingConfig)) *config.AutoscalingConfig {
	c := &config.AutoscalingConfig{
		MinReplicas:           1,
		MaxReplicas:           10,
		TargetOngoingRequests: 2,
		LookBackPeriodS:       30,
		UpscaleDelayS:         30,
		DownscaleDelayS:       600,
		SmoothingFactor:       1,
		MetricsIntervalS:      10,
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// step is one tick of a step table: at t seconds, with this load and this many running
// replicas, the target must become want.
type step struct {
	t       float64
	ongoing float64
	queued  int
	running int // -1: as many as the current target (replicas start at once)
	want    int
}

func runSteps(t *testing.T, cfg *config.AutoscalingConfig, target int, steps []step) {
	t.Helper()
	t0 := time.Unix(1_700_000_000, 0)
	var st State
	for i, s := range steps {
		running := s.running
		if running < 0 {
			running = target
		}
		now := t0.Add(config.Seconds(s.t))
		d := Decide(cfg, st, Input{Target: target, Running: running, Ongoing: s.ongoing, Queued: s.queued}, now)
		if d.Target != s.want {
			t.Fatalf("step %d (t=%gs ongoing=%g queued=%d running=%d target=%d): target %d, want %d (desired %d)",
				i, s.t, s.ongoing, s.queued, running, target, d.Target, s.want, d.Desired)
		}
		target, st = d.Target, d.State
	}
}

func TestDecideStepTables(t *testing.T) {
	cases := []struct {
		name   string
		cfg    *config.AutoscalingConfig
		target int
		steps  []step
	}{
		{
			name:   "an increase waits for the upscale delay and then goes to the ideal count",
			cfg:    cfgWith(nil),
			target: 1,
			steps: []step{
				{t: 0, ongoing: 8, running: -1, want: 1},
				{t: 15, ongoing: 8, running: -1, want: 1},
				{t: 29.9, ongoing: 8, running: -1, want: 1},
				{t: 30, ongoing: 8, running: -1, want: 4},
			},
		},
		{
			name:   "an increase that stops being wanted restarts its delay",
			cfg:    cfgWith(nil),
			target: 1,
			steps: []step{
				{t: 0, ongoing: 8, running: -1, want: 1},
				{t: 20, ongoing: 2, running: -1, want: 1},
				{t: 25, ongoing: 8, running: -1, want: 1},
				{t: 50, ongoing: 8, running: -1, want: 1},
				{t: 55, ongoing: 8, running: -1, want: 4},
			},
		},
		{
			name:   "a 600 s downscale delay holds the replicas for ten minutes of low load",
			cfg:    cfgWith(nil),
			target: 5,
			steps: []step{
				{t: 0, ongoing: 2, running: -1, want: 5},
				{t: 300, ongoing: 2, running: -1, want: 5},
				{t: 599, ongoing: 2, running: -1, want: 5},
				{t: 600, ongoing: 2, running: -1, want: 1},
			},
		},
		{
			name:   "a burst inside the downscale delay restarts it",
			cfg:    cfgWith(nil),
			target: 5,
			steps: []step{
				{t: 0, ongoing: 2, running: -1, want: 5},
				{t: 500, ongoing: 10, running: -1, want: 5},
				{t: 501, ongoing: 2, running: -1, want: 5},
				{t: 1000, ongoing: 2, running: -1, want: 5},
				{t: 1101, ongoing: 2, running: -1, want: 1},
			},
		},
		{
			name:   "to zero waits downscale_to_zero_delay_s from one replica",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.MinReplicas = 0; c.DownscaleToZeroDelayS = ptr(120.0) }),
			target: 1,
			steps: []step{
				{t: 0, ongoing: 0, running: -1, want: 1},
				{t: 119, ongoing: 0, running: -1, want: 1},
				{t: 120, ongoing: 0, running: -1, want: 0},
			},
		},
		{
			name:   "to zero without its own delay uses the downscale delay",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.MinReplicas = 0; c.DownscaleDelayS = 60 }),
			target: 1,
			steps: []step{
				{t: 0, ongoing: 0, running: -1, want: 1},
				{t: 59, ongoing: 0, running: -1, want: 1},
				{t: 60, ongoing: 0, running: -1, want: 0},
			},
		},
		{
			name: "from three replicas to zero stops at one first",
			cfg: cfgWith(func(c *config.AutoscalingConfig) {
				c.MinReplicas = 0
				c.DownscaleDelayS = 60
				c.DownscaleToZeroDelayS = ptr(10.0)
			}),
			target: 3,
			steps: []step{
				{t: 0, ongoing: 0, running: -1, want: 3},
				{t: 60, ongoing: 0, running: -1, want: 1},
				{t: 61, ongoing: 0, running: -1, want: 1},
				{t: 71, ongoing: 0, running: -1, want: 0},
			},
		},
		{
			name:   "from zero a queued request scales up at once whatever the delay",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.MinReplicas = 0; c.UpscaleDelayS = 3600 }),
			target: 0,
			steps: []step{
				{t: 0, queued: 0, running: 0, want: 0},
				{t: 1, queued: 1, running: 0, want: 1},
			},
		},
		{
			name:   "from zero an upscaling factor of 3 starts three replicas",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.MinReplicas = 0; c.UpscalingFactor = ptr(3.0) }),
			target: 0,
			steps:  []step{{t: 0, queued: 1, running: 0, want: 3}},
		},
		{
			name:   "replicas still starting are not scaled down",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.DownscaleDelayS = 0 }),
			target: 4,
			steps:  []step{{t: 0, running: 0, want: 4}, {t: 100, running: 0, want: 4}},
		},
		{
			name: "zero traffic never scales up, whatever the factors",
			cfg: cfgWith(func(c *config.AutoscalingConfig) {
				c.UpscaleDelayS = 0
				c.UpscalingFactor = ptr(5.0)
				c.DownscalingFactor = ptr(3.0)
			}),
			target: 2,
			steps: []step{
				{t: 0, ongoing: 0, running: -1, want: 2},
				{t: 700, ongoing: 0, running: -1, want: 1},
				{t: 701, ongoing: 0, running: 0, want: 1},
			},
		},
		{
			name:   "the decision is clamped to max_replicas",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.UpscaleDelayS = 0; c.MaxReplicas = 3 }),
			target: 1,
			steps:  []step{{t: 0, ongoing: 100, running: -1, want: 3}},
		},
		{
			name:   "the decision is clamped to min_replicas",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.DownscaleDelayS = 0; c.MinReplicas = 2 }),
			target: 6,
			steps:  []step{{t: 0, ongoing: 0, running: -1, want: 2}},
		},
		{
			name:   "an upscaling factor below one moves part of the way",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.UpscaleDelayS = 0; c.UpscalingFactor = ptr(0.5) }),
			target: 2,
			steps: []step{
				// ideal 10/2 = 5 replicas: 2 + 0.5×3 = 3.5 → 4, then 4 + 0.5 = 4.5 → 5.
				{t: 0, ongoing: 10, running: -1, want: 4},
				{t: 1, ongoing: 10, running: -1, want: 5},
				{t: 2, ongoing: 10, running: -1, want: 5},
			},
		},
		{
			name:   "an upscaling factor above one overshoots the ideal count",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.UpscaleDelayS = 0; c.UpscalingFactor = ptr(2.0) }),
			target: 2,
			// ideal 6/2 = 3: 2 + 2×1 = 4.
			steps: []step{{t: 0, ongoing: 6, running: -1, want: 4}},
		},
		{
			name:   "a downscaling factor below one steps down gradually",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.DownscaleDelayS = 0; c.DownscalingFactor = ptr(0.5) }),
			target: 9,
			steps: []step{
				// ideal 2/2 = 1: 9 - 0.5×8 = 5, 5 - 0.5×4 = 3, 3 - 1 = 2, then the
				// stuck rule: ceil(2 - 0.5) = 2 = running although 1 would do → 1.
				{t: 0, ongoing: 2, running: -1, want: 5},
				{t: 1, ongoing: 2, running: -1, want: 3},
				{t: 2, ongoing: 2, running: -1, want: 2},
				{t: 3, ongoing: 2, running: -1, want: 1},
			},
		},
		{
			name: "steady load with a factor above one settles instead of oscillating",
			cfg: cfgWith(func(c *config.AutoscalingConfig) {
				c.UpscaleDelayS = 0
				c.DownscaleDelayS = 0
				c.SmoothingFactor = 2
				c.TargetOngoingRequests = 1
			}),
			target: 3,
			// Ray: 3 → 7 → 3 → 7 … with total 5. shoal: 3 → 7 → 5 → 5.
			steps: []step{
				{t: 0, ongoing: 5, running: -1, want: 7},
				{t: 1, ongoing: 5, running: -1, want: 5},
				{t: 2, ongoing: 5, running: -1, want: 5},
				{t: 3, ongoing: 5, running: -1, want: 5},
			},
		},
		{
			name:   "queued requests count as load",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.UpscaleDelayS = 0 }),
			target: 2,
			steps:  []step{{t: 0, ongoing: 4, queued: 6, running: -1, want: 5}},
		},
		{
			name:   "load exactly at target keeps the count",
			cfg:    cfgWith(func(c *config.AutoscalingConfig) { c.UpscaleDelayS = 0; c.DownscaleDelayS = 0 }),
			target: 3,
			steps:  []step{{t: 0, ongoing: 6, running: -1, want: 3}, {t: 1, ongoing: 6, running: -1, want: 3}},
		},
		{
			name:   "the delay is wall-clock time however rarely the loop ticks",
			cfg:    cfgWith(nil),
			target: 1,
			// Two ticks 30 s apart are enough; Ray would need 300 ticks of its loop.
			steps: []step{{t: 0, ongoing: 8, running: -1, want: 1}, {t: 30, ongoing: 8, running: -1, want: 4}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runSteps(t, tc.cfg, tc.target, tc.steps) })
	}
}

func TestDecideReportsThePendingChange(t *testing.T) {
	cfg := cfgWith(nil)
	t0 := time.Unix(1_700_000_000, 0)
	d := Decide(cfg, State{}, Input{Target: 1, Running: 1, Ongoing: 8}, t0)
	d = Decide(cfg, d.State, Input{Target: 1, Running: 1, Ongoing: 8}, t0.Add(10*time.Second))
	if d.Target != 1 || d.Desired != 4 {
		t.Fatalf("target %d desired %d, want 1 and 4", d.Target, d.Desired)
	}
	if !d.PendingSince.Equal(t0) || d.PendingDelay != 30*time.Second {
		t.Fatalf("pending since %v for %v, want %v for 30s", d.PendingSince, d.PendingDelay, t0)
	}
}
