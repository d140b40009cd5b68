package autoscale

import (
	"math"
	"time"

	"shoal/internal/config"
)

// Input is what the decision sees at one tick.
type Input struct {
	Target  int     // the deployment's current target
	Running int     // replicas RUNNING now
	Ongoing float64 // requests in flight on its replicas, averaged over the look-back window
	Queued  int     // requests waiting in the proxy for a free replica
}

// State is the memory of the decision between ticks: since when a change has wanted to
// happen. The zero State is the state after a deploy or a config change.
type State struct {
	UpSince   time.Time // a scale-up has been wanted continuously since then (zero: none)
	DownSince time.Time // a scale-down has been wanted continuously since then (zero: none)
}

// Decision is the result of one tick.
type Decision struct {
	// Target is the count to apply now; it equals Input.Target when nothing changes.
	Target int
	// Desired is what the load asks for this tick, before any delay.
	Desired int
	// State is to be passed to the next tick.
	State State
	// PendingSince is when the change now waiting on its delay started to be wanted,
	// zero when none waits.
	PendingSince time.Time
	// PendingDelay is the delay that change waits on.
	PendingDelay time.Duration
}

// Decide is Ray Serve's default policy (replica_queue_length_autoscaling_policy) with
// two changes:
//
//   - Delays are wall-clock time since the change started to be wanted, measured on
//     now, not counts of loop iterations (Ray counted iterations of a 0.1 s loop, so a
//     slow controller stretched every delay).
//   - A smoothed decision never goes past the count the load asks for. Ray multiplies
//     the distance to the ideal count by the factor, so a factor > 1 overshoots, and the
//     overshoot is then corrected with the same gain in the other direction: with
//     total = 5, target 1 and factor 2, Ray's decision flips between 3 and 7 forever.
//     shoal lets an upscale overshoot (that is what a factor > 1 is for) but a downscale
//     stops at the ideal count, so the same load settles at 5.
//
// The worked rule, per tick:
//
//	total   = Ongoing (window average) + Queued
//	ideal   = total / target_ongoing_requests             e.g. 9 / 2 = 4.5
//	desired = ceil(running + factor × (ideal − running))  factor 1: ceil(4.5) = 5
//	          clamped to [min_replicas, max_replicas]
//
// From 0 running replicas, any request (queued) scales up at once, with no delay, to
// max(ceil(upscaling_factor), target) — the only way a queued request gets served.
// An increase is applied once desired > target has held for upscale_delay_s, a decrease
// once desired < target has held for downscale_delay_s (downscale_to_zero_delay_s for
// 1 → 0; a decrease to 0 from more than 1 stops at 1 first, as in Ray).
func Decide(cfg *config.AutoscalingConfig, st State, in Input, now time.Time) Decision {
	d := Decision{Target: in.Target, State: st}
	total := in.Ongoing + float64(in.Queued)

	if in.Running == 0 {
		// Nothing runs: the window holds no ongoing requests, only the queue can ask.
		// With no request waiting nothing changes (Ray's rule: no upscale with zero
		// traffic, and no downscale of replicas that are still starting).
		d.Desired = in.Target
		d.State = State{}
		if total > 0 {
			up := int(math.Ceil(upscalingFactor(cfg)))
			d.Desired = clamp(max(up, in.Target, 1), cfg)
			d.Target = d.Desired
		}
		return d
	}

	d.Desired = desired(cfg, total, in.Running)
	switch {
	case d.Desired > in.Target:
		d.State.DownSince = time.Time{}
		if d.State.UpSince.IsZero() {
			d.State.UpSince = now
		}
		delay := config.Seconds(cfg.UpscaleDelayS)
		if now.Sub(d.State.UpSince) >= delay {
			d.Target = d.Desired
			d.State.UpSince = time.Time{}
		} else {
			d.PendingSince, d.PendingDelay = d.State.UpSince, delay
		}
	case d.Desired < in.Target:
		d.State.UpSince = time.Time{}
		if d.State.DownSince.IsZero() {
			d.State.DownSince = now
		}
		delay := config.Seconds(cfg.DownscaleDelayS)
		want := d.Desired
		if in.Target == 1 && want == 0 {
			if cfg.DownscaleToZeroDelayS != nil {
				delay = config.Seconds(*cfg.DownscaleToZeroDelayS)
			}
		} else if want == 0 {
			// Ray goes to zero only from one replica.
			want = 1
		}
		if now.Sub(d.State.DownSince) >= delay {
			d.Target = want
			d.State.DownSince = time.Time{}
		} else {
			d.PendingSince, d.PendingDelay = d.State.DownSince, delay
		}
	default:
		d.State = State{}
	}
	return d
}

// desired is the replica count the load asks for, smoothed and clamped.
func desired(cfg *config.AutoscalingConfig, total float64, running int) int {
	ideal := total / cfg.TargetOngoingRequests
	n := float64(running)
	var want float64
	if ideal >= n {
		want = n + upscalingFactor(cfg)*(ideal-n)
	} else {
		want = n + downscalingFactor(cfg)*(ideal-n)
		// Never below what the load asks for (see Decide).
		want = max(want, ideal)
	}
	// Tolerate float noise: 2.0000000001 replicas is 2.
	out := int(math.Ceil(want - 1e-9))
	// Ray's "stuck" rule: a small factor can keep ceil(n - ε) at n forever although the
	// load would allow fewer; then step down by one.
	if out == running && int(math.Ceil(ideal-1e-9)) < running {
		out--
	}
	return clamp(out, cfg)
}

func clamp(n int, cfg *config.AutoscalingConfig) int {
	return min(max(n, cfg.MinReplicas), cfg.MaxReplicas)
}

func upscalingFactor(cfg *config.AutoscalingConfig) float64 {
	if cfg.UpscalingFactor != nil {
		return *cfg.UpscalingFactor
	}
	return cfg.SmoothingFactor
}

func downscalingFactor(cfg *config.AutoscalingConfig) float64 {
	if cfg.DownscalingFactor != nil {
		return *cfg.DownscalingFactor
	}
	return cfg.SmoothingFactor
}
