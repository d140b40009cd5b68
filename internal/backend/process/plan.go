package process

import (
	"sort"
	"time"

	"shoal/internal/backend"
)

// Policy holds the numbers of the restart policy that Plan applies.
type Policy struct {
	// BackoffBase is the delay before the first restart after a crash; it doubles
	// with every further consecutive crash, up to BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// BackoffReset: once a replica of the current version has been RUNNING this long
	// with no crash in between, the crash count starts again from zero.
	BackoffReset time.Duration
	// FailAfter consecutive crashes of the current version mark the deployment failing.
	FailAfter int
}

// Backoff returns the delay before a start after n consecutive crashes: none for 0,
// then BackoffBase, doubling, capped at BackoffMax.
func (p Policy) Backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := p.BackoffBase
	for i := 1; i < n && d < p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.BackoffMax)
}

// Crashes is the restart state of one deployment's current version.
type Crashes struct {
	Count int       // consecutive crashes of the current version
	Last  time.Time // when the last one happened
}

// Record returns the state after one more crash at now.
func (c Crashes) Record(now time.Time) Crashes {
	return Crashes{Count: c.Count + 1, Last: now}
}

// Observed is what Plan knows of one live replica.
type Observed struct {
	ID      string
	Version string
	State   backend.State
	// Stopping is true once a stop is under way (the state is then STOPPING, or
	// UNHEALTHY for a replica replaced after failing its health checks).
	Stopping bool
	// Created orders replicas by age ("newest" in the scale-down order).
	Created time.Time
	// RunningSince is when the replica became RUNNING; zero if it never did.
	RunningSince time.Time
}

// Input is everything Plan needs to decide for one deployment.
type Input struct {
	// Target is the wanted number of replicas of Version; 0 while the deployment is
	// being removed.
	Target   int
	Version  string
	Replicas []Observed
	// Ongoing holds the requests in flight per replica id (absent = 0).
	Ongoing map[string]int
	Crashes Crashes
	Now     time.Time
}

// Actions is what the reconciler must do for one deployment.
type Actions struct {
	// Start is the number of replicas of the current version to start.
	Start int
	// Stop lists the replicas to drain and stop, in the order chosen.
	Stop []string
	// ResetCrashes clears the crash count (a replica has run healthy long enough, or
	// nothing is left to restart).
	ResetCrashes bool
	// Failing is true while the current version keeps crashing.
	Failing bool
	// Wake is when to plan again even if nothing happens (a back-off ends, or a
	// replica will have run long enough to reset the crash count); zero for never.
	Wake time.Time
}

// Plan decides what to do with one deployment. It is pure: the same input gives the
// same actions, and time comes in as in.Now.
//
// The rules, in order:
//
//  1. Restart state. The crash count is reset when the target is 0 (nothing to
//     restart), or when a current-version replica has been RUNNING for BackoffReset
//     since both its start of RUNNING and the last crash. The deployment is failing
//     while the count is at least FailAfter.
//  2. UNHEALTHY replicas that are not yet being stopped are stopped. Replicas being
//     stopped are leaving: they are neither counted nor stopped again.
//  3. Starts: the missing current-version replicas (target minus current-version
//     STARTING and RUNNING) are started all at once, but not before the back-off
//     after the last crash has passed (Backoff(count) after it).
//  4. Stops keep the RUNNING count at or above min(target, RUNNING now): only
//     RUNNING - target RUNNING replicas may be stopped (the "budget"). Old-version
//     STARTING replicas always stop; old-version RUNNING ones stop within the budget,
//     so during a rolling update an old replica stops only once a new one is RUNNING
//     (or the target went down). Current-version replicas above the target stop last.
//     Within each group the order is: STARTING first, then the fewest ongoing
//     requests, then the newest.
//
// Worked example, a rolling update of 3 replicas from v1 to v2:
//
//	v1 RUNNING ×3                      → start 3 (v2)
//	v1 RUNNING ×3, v2 STARTING ×3      → nothing (budget 3-3 = 0)
//	v1 RUNNING ×3, v2 RUNNING ×1 + ×2  → stop 1 v1 (budget 4-3 = 1)
//	v1 RUNNING ×2, v2 RUNNING ×3       → stop 2 v1 (budget 5-3 = 2)
func Plan(p Policy, in Input) Actions {
	var a Actions
	wake := func(t time.Time) {
		if a.Wake.IsZero() || t.Before(a.Wake) {
			a.Wake = t
		}
	}

	// 1. Restart state.
	crashes := in.Crashes
	if crashes.Count > 0 {
		reset := in.Target == 0
		var resetAt time.Time
		for _, r := range in.Replicas {
			if reset {
				break
			}
			if r.Version != in.Version || r.State != backend.Running || r.Stopping || r.RunningSince.IsZero() {
				continue
			}
			since := r.RunningSince
			if crashes.Last.After(since) {
				since = crashes.Last
			}
			at := since.Add(p.BackoffReset)
			if !in.Now.Before(at) {
				reset = true
			} else if resetAt.IsZero() || at.Before(resetAt) {
				resetAt = at
			}
		}
		if reset {
			a.ResetCrashes = true
			crashes = Crashes{}
		} else if !resetAt.IsZero() {
			wake(resetAt)
		}
	}
	a.Failing = p.FailAfter > 0 && crashes.Count >= p.FailAfter

	// 2. Classify.
	var cur, old []Observed
	running := 0
	for _, r := range in.Replicas {
		if r.Stopping {
			continue
		}
		switch r.State {
		case backend.Unhealthy:
			a.Stop = append(a.Stop, r.ID)
			continue
		case backend.Running:
			running++
		case backend.Starting:
		default:
			// STOPPING without Stopping set cannot happen; treat it as leaving.
			continue
		}
		if r.Version == in.Version {
			cur = append(cur, r)
		} else {
			old = append(old, r)
		}
	}

	// A deployment back at its target with replicas of the current version RUNNING is
	// not failing, although its crash count stays until a replica has run a minute (it
	// still sets the back-off of the next restart). Without this the deployment would
	// show UNHEALTHY for a minute after it recovered.
	curRunning := 0
	for _, r := range cur {
		if r.State == backend.Running {
			curRunning++
		}
	}
	if in.Target > 0 && curRunning >= in.Target {
		a.Failing = false
	}

	// 3. Starts.
	if need := in.Target - len(cur); need > 0 {
		if next := crashes.Last.Add(p.Backoff(crashes.Count)); crashes.Count > 0 && in.Now.Before(next) {
			wake(next)
		} else {
			a.Start = need
		}
	}

	// 4. Stops.
	budget := running - in.Target
	stopOrder(old, in.Ongoing)
	for _, r := range old {
		switch {
		case r.State == backend.Starting:
			a.Stop = append(a.Stop, r.ID)
		case budget > 0:
			a.Stop = append(a.Stop, r.ID)
			budget--
		}
	}
	excess := len(cur) - in.Target
	stopOrder(cur, in.Ongoing)
	for _, r := range cur {
		if excess <= 0 {
			break
		}
		switch {
		case r.State == backend.Starting:
			a.Stop = append(a.Stop, r.ID)
			excess--
		case budget > 0:
			a.Stop = append(a.Stop, r.ID)
			excess--
			budget--
		}
	}
	return a
}

// stopOrder sorts replicas in the order they should be stopped: STARTING first, then
// the fewest ongoing requests, then the newest, then by id so the order is total.
func stopOrder(rs []Observed, ongoing map[string]int) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if (a.State == backend.Starting) != (b.State == backend.Starting) {
			return a.State == backend.Starting
		}
		if oa, ob := ongoing[a.ID], ongoing[b.ID]; oa != ob {
			return oa < ob
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.After(b.Created)
		}
		return a.ID < b.ID
	})
}
