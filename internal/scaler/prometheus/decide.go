package prometheus

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// State is what a target's decisions remember between two evaluations.
type State struct {
	// Target is the last target set (or read from shoal); meaningful when Known.
	Target int
	Known  bool
	// LastChange is when the target last changed: set by this scaler, or seen changed
	// outside it (see Observe); zero if never.
	LastChange time.Time
	// FailingSince is when the current run of failed queries began; zero while queries
	// succeed.
	FailingSince time.Time
	// Fallback is true while the fallback replica count is in force.
	Fallback bool
}

// Decision is the outcome of one evaluation.
type Decision struct {
	// Target is what the deployment's target should be (the current one when Change
	// is false and the target is known).
	Target int
	// Change says to call the webhook with Target.
	Change bool
	// Value is the query's value and OK whether the query worked.
	Value float64
	OK    bool
	// Desired is ceil(Value / per_replica) clamped to [min, max], before the cooldowns
	// and max_step; 0 when the query failed.
	Desired int
	// Fallback is true while the fallback replica count is in force.
	Fallback bool
	// Reason says why, in one line for the log.
	Reason string
}

// Observe folds the deployment's current target, as read from shoal before a decision,
// into the state, and reports whether it was changed outside the scaler. The first read
// (the state does not know the target yet) is not a change.
//
// A target that differs from the known one was set by someone else: a hand `shoal
// scale`, the dashboard, a redeploy that reset it to num_replicas. It becomes the target
// the decision starts from, and it counts as a change: the cooldowns restart from now.
// The scaler then corrects it as it would correct its own last change:
//
//	outside change            → scaler's answer
//	below the desired count   → raised after scale_up_cooldown (default 0: at the next
//	                            evaluation; from 0 always at once)
//	above the desired count   → lowered after scale_down_cooldown (default 5m)
//	to the desired count      → nothing to do
//
// KEDA's scalers remember nothing and undo an outside change at their next poll. Here a
// human who scales up for an incident keeps the replicas for scale_down_cooldown, and the
// scaler never fights a human (or another scaler) faster than its cooldowns allow, while
// a target left below the demand is still raised at once by default.
func Observe(st State, current int, now time.Time) (State, bool) {
	switch {
	case !st.Known:
		st.Target, st.Known = current, true
		return st, false
	case st.Target == current:
		return st, false
	}
	st.Target, st.LastChange = current, now
	return st, true
}

// Decide turns one query result into a target. It reads no clock: now is the time of
// the evaluation. ok is false when the query failed (error, no data); a NaN or
// infinite value counts as failed too. The returned State assumes the decision was
// applied; a caller whose webhook call fails keeps the old one, so the next evaluation
// tries again.
//
// Decision table (cur = the known target, last = time of the last change):
//
//	query   target known   condition                             → target
//	ok      no             -                                     → desired, at once
//	ok      yes            desired == cur                        → cur
//	ok      yes            desired > cur > 0, now-last < up cd.  → cur (held)
//	ok      yes            desired > cur                         → min(desired, cur+max_step)
//	ok      yes            desired < cur, now-last < down cd.    → cur (held)
//	ok      yes            desired < cur                         → max(desired, cur-max_step)
//	failed  -              failing < fallback.after (or none)    → cur (kept; none if unknown)
//	failed  -              failing >= fallback.after             → fallback.replicas, at once
//
// Worked example: per_replica 10, min 1, max 20, max_step 4, target 2. A value of 95
// asks for ceil(9.5) = 10; max_step lets it go to 6 now, and to 10 at the first
// evaluation after the scale-up cooldown.
//
// The fallback is set at once, ignoring cooldowns and max_step, as KEDA does: it is
// the safe count for flying blind. When the query works again, normal decisions resume
// from the fallback count, with the cooldowns counted from the switch to it.
func Decide(cfg *Target, st State, value float64, ok bool, now time.Time) (Decision, State) {
	if ok && (math.IsNaN(value) || math.IsInf(value, 0)) {
		ok = false
	}
	d := Decision{Target: st.Target, Value: value, OK: ok}
	if !ok {
		return decideFailed(cfg, st, d, now)
	}
	st.FailingSince = time.Time{}
	wasFallback := st.Fallback
	st.Fallback = false

	lo, hi := cfg.MinReplicas(), cfg.Max
	raw := math.Ceil(max(value, 0) / cfg.PerReplica)
	desired := hi
	if raw < float64(hi) { // compared as floats: a huge value must not overflow an int
		desired = int(raw)
	}
	why := fmt.Sprintf("value %s / per_replica %s = %d", fmtFloat(value), fmtFloat(cfg.PerReplica), desired)
	if raw > float64(hi) {
		why = fmt.Sprintf("value %s / per_replica %s > max, so %d", fmtFloat(value), fmtFloat(cfg.PerReplica), hi)
	}
	if desired < lo {
		desired = lo
		why += fmt.Sprintf(", raised to min %d", lo)
	}
	d.Desired = desired
	if wasFallback {
		why = "query works again; " + why
	}

	cur := st.Target
	switch {
	case !st.Known:
		d.Target, d.Change = desired, true
		d.Reason = why + fmt.Sprintf("; current target unknown, setting %d", desired)
	case desired == cur:
		d.Reason = why + fmt.Sprintf("; target stays %d", cur)
	case desired > cur:
		// From zero nothing serves and requests queue, so the way up is never held (as
		// Ray's autoscaler goes up from zero at once).
		if cd := cfg.ScaleUpCooldown.D(); cur > 0 && !st.LastChange.IsZero() && now.Sub(st.LastChange) < cd {
			d.Reason = why + fmt.Sprintf("; scale-up from %d held by scale_up_cooldown %s until %s",
				cur, cd, st.LastChange.Add(cd).Format(time.TimeOnly))
			break
		}
		d.Target, d.Change = desired, true
		if cfg.MaxStep > 0 && desired-cur > cfg.MaxStep {
			d.Target = cur + cfg.MaxStep
			d.Reason = why + fmt.Sprintf("; scaling up %d → %d (max_step %d)", cur, d.Target, cfg.MaxStep)
		} else {
			d.Reason = why + fmt.Sprintf("; scaling up %d → %d", cur, d.Target)
		}
	default: // desired < cur
		if cd := cfg.DownCooldown(); !st.LastChange.IsZero() && now.Sub(st.LastChange) < cd {
			d.Reason = why + fmt.Sprintf("; scale-down from %d held by scale_down_cooldown %s until %s",
				cur, cd, st.LastChange.Add(cd).Format(time.TimeOnly))
			break
		}
		d.Target, d.Change = desired, true
		if cfg.MaxStep > 0 && cur-desired > cfg.MaxStep {
			d.Target = cur - cfg.MaxStep
			d.Reason = why + fmt.Sprintf("; scaling down %d → %d (max_step %d)", cur, d.Target, cfg.MaxStep)
		} else {
			d.Reason = why + fmt.Sprintf("; scaling down %d → %d", cur, d.Target)
		}
	}
	if d.Change {
		st.Target, st.Known, st.LastChange = d.Target, true, now
	}
	return d, st
}

func decideFailed(cfg *Target, st State, d Decision, now time.Time) (Decision, State) {
	if st.FailingSince.IsZero() {
		st.FailingSince = now
	}
	failing := now.Sub(st.FailingSince)
	keep := "target unknown, nothing to keep"
	if st.Known {
		keep = fmt.Sprintf("keeping %d", st.Target)
	}
	f := cfg.Fallback
	switch {
	case f == nil:
		d.Reason = fmt.Sprintf("query failing for %s; %s (no fallback configured)", failing, keep)
	case failing < f.After.D():
		d.Reason = fmt.Sprintf("query failing for %s; %s; fallback to %d in %s", failing, keep, f.Replicas, f.After.D()-failing)
	default:
		d.Fallback = true
		d.Target = f.Replicas
		if !st.Fallback || !st.Known || st.Target != f.Replicas {
			d.Change = true
			d.Reason = fmt.Sprintf("query failing for %s (fallback.after %s); fallback to %d replicas", failing, f.After.D(), f.Replicas)
			st.Target, st.Known, st.LastChange = f.Replicas, true, now
		} else {
			d.Reason = fmt.Sprintf("query failing for %s; fallback %d replicas in force", failing, f.Replicas)
		}
		st.Fallback = true
	}
	return d, st
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
