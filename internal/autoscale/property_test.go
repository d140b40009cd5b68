package autoscale

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"shoal/internal/config"
)

func genConfig(t *rapid.T) *config.AutoscalingConfig {
	minR := rapid.IntRange(0, 5).Draw(t, "min")
	c := &config.AutoscalingConfig{
		MinReplicas:           minR,
		MaxReplicas:           rapid.IntRange(max(minR, 1), 20).Draw(t, "max"),
		TargetOngoingRequests: rapid.Float64Range(0.5, 10).Draw(t, "target_ongoing"),
		UpscaleDelayS:         float64(rapid.IntRange(0, 60).Draw(t, "up_delay")),
		DownscaleDelayS:       float64(rapid.IntRange(0, 600).Draw(t, "down_delay")),
		SmoothingFactor:       rapid.Float64Range(0.1, 3).Draw(t, "smoothing"),
	}
	if rapid.Bool().Draw(t, "has_up_factor") {
		c.UpscalingFactor = ptr(rapid.Float64Range(0.1, 3).Draw(t, "up_factor"))
	}
	if rapid.Bool().Draw(t, "has_down_factor") {
		c.DownscalingFactor = ptr(rapid.Float64Range(0.1, 3).Draw(t, "down_factor"))
	}
	if rapid.Bool().Draw(t, "has_zero_delay") {
		c.DownscaleToZeroDelayS = ptr(float64(rapid.IntRange(0, 600).Draw(t, "zero_delay")))
	}
	return c
}

// TestDecideProperties drives random loads through random configs, tick after tick, and
// checks the promises of the policy at every tick.
func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := genConfig(t)
		target := rapid.IntRange(cfg.MinReplicas, cfg.MaxReplicas).Draw(t, "initial")
		now := time.Unix(1_700_000_000, 0)
		var st State
		// Since when the policy has wanted more (or fewer) replicas than the target,
		// as an outside observer sees it from Desired.
		var upSince, downSince time.Time
		ticks := rapid.IntRange(1, 60).Draw(t, "ticks")
		for i := 0; i < ticks; i++ {
			now = now.Add(time.Duration(rapid.IntRange(0, 120_000).Draw(t, "dt_ms")) * time.Millisecond)
			running := target
			if rapid.Bool().Draw(t, "not_all_running") {
				running = rapid.IntRange(0, target).Draw(t, "running")
			}
			in := Input{
				Target:  target,
				Running: running,
				Ongoing: rapid.Float64Range(0, 200).Draw(t, "ongoing"),
				Queued:  rapid.IntRange(0, 50).Draw(t, "queued"),
			}
			if rapid.IntRange(0, 3).Draw(t, "idle") == 0 {
				in.Ongoing, in.Queued = 0, 0
			}
			d := Decide(cfg, st, in, now)

			if d.Target < cfg.MinReplicas || d.Target > cfg.MaxReplicas {
				t.Fatalf("target %d outside [%d, %d]", d.Target, cfg.MinReplicas, cfg.MaxReplicas)
			}
			if d.Desired < cfg.MinReplicas || d.Desired > cfg.MaxReplicas {
				t.Fatalf("desired %d outside [%d, %d]", d.Desired, cfg.MinReplicas, cfg.MaxReplicas)
			}
			if in.Ongoing == 0 && in.Queued == 0 && d.Target > target {
				t.Fatalf("scaled up from %d to %d with no traffic", target, d.Target)
			}

			if d.Desired > target {
				if upSince.IsZero() {
					upSince = now
				}
			} else {
				upSince = time.Time{}
			}
			if d.Desired < target {
				if downSince.IsZero() {
					downSince = now
				}
			} else {
				downSince = time.Time{}
			}

			if d.Target > target && running > 0 {
				if held := now.Sub(upSince); held < config.Seconds(cfg.UpscaleDelayS) {
					t.Fatalf("scaled up %d → %d after the increase held %v, before the upscale delay %gs",
						target, d.Target, held, cfg.UpscaleDelayS)
				}
			}
			if d.Target < target {
				delay := cfg.DownscaleDelayS
				if target == 1 && d.Target == 0 && cfg.DownscaleToZeroDelayS != nil {
					delay = *cfg.DownscaleToZeroDelayS
				}
				if held := now.Sub(downSince); held < config.Seconds(delay) {
					t.Fatalf("scaled down %d → %d after the decrease held %v, before the delay %gs", target, d.Target, held, delay)
				}
				if d.Target == 0 && target != 1 {
					t.Fatalf("scaled to zero from %d; zero is reached only from one", target)
				}
			}
			if d.Target != target {
				upSince, downSince = time.Time{}, time.Time{}
			}
			target, st = d.Target, d.State
		}
	})
}
