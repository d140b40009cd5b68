package prometheus

import (
	"math"
	"strings"
	"testing"
	"time"

	"shoal/internal/scaler"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func intp(n int) *int { return &n }

func durp(d time.Duration) *scaler.Duration { x := scaler.Duration(d); return &x }

// base is the target of the example.
func base() Target {
	return Target{
		Application: "app", Deployment: "dep", Query: "q",
		PerReplica: 10, Min: intp(1), Max: 20,
		ScaleUpCooldown:   scaler.Duration(30 * time.Second),
		ScaleDownCooldown: durp(5 * time.Minute),
		MaxStep:           4,
		Fallback:          &Fallback{After: scaler.Duration(2 * time.Minute), Replicas: 3},
	}
}

// evaluation is one step: at t0+at the query gave value (or failed); the decision
// must set target (change) or leave it (no change), with reason containing why.
type evaluation struct {
	at     time.Duration
	value  float64
	failed bool
	target int
	change bool
	why    string
}

func TestDecideStepTables(t *testing.T) {
	known := func(n int) State { return State{Target: n, Known: true} }
	cases := []struct {
		name  string
		cfg   func(*Target)
		start State
		steps []evaluation
	}{
		{"the value per replica, rounded up, is the target", nil, known(1), []evaluation{
			{0, 25, false, 3, true, "value 25 / per_replica 10 = 3; scaling up 1 → 3"},
		}},
		{"a value that asks for less than min is raised to min", nil, known(2), []evaluation{
			{0, 0, false, 1, true, "raised to min 1"},
		}},
		{"a negative value counts as zero", nil, known(1), []evaluation{
			{0, -50, false, 1, false, "target stays 1"},
		}},
		{"a huge value is clamped to max without overflowing", func(c *Target) { c.MaxStep = 0 }, known(1), []evaluation{
			{0, 1e300, false, 20, true, "> max, so 20"},
		}},
		{"max_step limits each change and the cooldown spaces them", nil, known(2), []evaluation{
			{0, 95, false, 6, true, "scaling up 2 → 6 (max_step 4)"},
			{15 * time.Second, 95, false, 6, false, "held by scale_up_cooldown 30s until 09:00:30"},
			{30 * time.Second, 95, false, 10, true, "scaling up 6 → 10"},
		}},
		{"no scale-down within scale_down_cooldown of the last change", nil, known(2), []evaluation{
			{0, 60, false, 6, true, "scaling up"},
			{1 * time.Minute, 10, false, 6, false, "scale-down from 6 held by scale_down_cooldown 5m0s until 09:05:00"},
			{4*time.Minute + 59*time.Second, 10, false, 6, false, "held"},
			{5 * time.Minute, 10, false, 2, true, "scaling down 6 → 2 (max_step 4)"},
			{10 * time.Minute, 10, false, 1, true, "scaling down 2 → 1"},
		}},
		{"a scale-up right after a scale-down waits for the scale-up cooldown only", nil, known(10), []evaluation{
			{0, 80, false, 8, true, "scaling down 10 → 8"},
			{10 * time.Second, 200, false, 8, false, "held by scale_up_cooldown"},
			{30 * time.Second, 200, false, 12, true, "scaling up 8 → 12"},
		}},
		{"without a known target the first decision sets it outright", nil, State{}, []evaluation{
			{0, 150, false, 15, true, "current target unknown, setting 15"},
			{10 * time.Second, 150, false, 15, false, "target stays 15"},
		}},
		{"a failed query keeps the target until fallback.after, then falls back", nil, known(8), []evaluation{
			{0, 0, true, 8, false, "keeping 8; fallback to 3 in 2m0s"},
			{1 * time.Minute, 0, true, 8, false, "query failing for 1m0s; keeping 8; fallback to 3 in 1m0s"},
			{2 * time.Minute, 0, true, 3, true, "query failing for 2m0s (fallback.after 2m0s); fallback to 3 replicas"},
			{3 * time.Minute, 0, true, 3, false, "fallback 3 replicas in force"},
		}},
		{"a working query ends the fallback; cooldowns count from the switch to it", nil, known(8), []evaluation{
			{0, 0, true, 8, false, "keeping 8"},
			{2 * time.Minute, 0, true, 3, true, "fallback to 3"},
			{2*time.Minute + 10*time.Second, 70, false, 3, false, "query works again; value 70 / per_replica 10 = 7; scale-up from 3 held"},
			{2*time.Minute + 30*time.Second, 70, false, 7, true, "scaling up 3 → 7"},
		}},
		{"a success in between restarts the failure clock", nil, known(5), []evaluation{
			{0, 0, true, 5, false, "keeping 5"},
			{90 * time.Second, 50, false, 5, false, "target stays 5"},
			{100 * time.Second, 0, true, 5, false, "fallback to 3 in 2m0s"},
			{3 * time.Minute, 0, true, 5, false, "fallback to 3 in 40s"},
			{220 * time.Second, 0, true, 3, true, "fallback to 3 replicas"},
		}},
		{"without a fallback a failing query keeps the target forever", func(c *Target) { c.Fallback = nil }, known(4), []evaluation{
			{0, 0, true, 4, false, "no fallback configured"},
			{time.Hour, 0, true, 4, false, "query failing for 1h0m0s; keeping 4"},
		}},
		{"NaN counts as a failed query", nil, known(4), []evaluation{
			{0, math.NaN(), false, 4, false, "keeping 4"},
			{2 * time.Minute, math.Inf(1), false, 3, true, "fallback to 3"},
		}},
		{"a failed query with no known target keeps nothing and then falls back", nil, State{}, []evaluation{
			{0, 0, true, 0, false, "target unknown, nothing to keep"},
			{2 * time.Minute, 0, true, 3, true, "fallback to 3"},
		}},
		{"min 0 allows scale to zero, and the way up from zero is not held", func(c *Target) { c.Min = intp(0); c.ScaleDownCooldown = durp(0) }, known(2), []evaluation{
			{0, 0, false, 0, true, "scaling down 2 → 0"},
			{time.Second, 0.5, false, 1, true, "value 0.5 / per_replica 10 = 1; scaling up 0 → 1"},
			{2 * time.Second, 30, false, 1, false, "held by scale_up_cooldown"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			st := c.start
			for i, e := range c.steps {
				var d Decision
				d, st = Decide(&cfg, st, e.value, !e.failed, t0.Add(e.at))
				if d.Target != e.target || d.Change != e.change || !strings.Contains(d.Reason, e.why) {
					t.Fatalf("step %d (t0+%s): target %d, change %v, reason %q;\nwant target %d, change %v, reason containing %q",
						i, e.at, d.Target, d.Change, d.Reason, e.target, e.change, e.why)
				}
				if d.Fallback != st.Fallback {
					t.Fatalf("step %d: decision says fallback %v, state %v", i, d.Fallback, st.Fallback)
				}
			}
		})
	}
}

func TestDecideKeepsTheTargetWithinMinAndMax(t *testing.T) {
	cfg := base()
	cfg.ScaleUpCooldown, cfg.ScaleDownCooldown, cfg.MaxStep = 0, durp(0), 0
	st := State{Target: 5, Known: true}
	for i, v := range []float64{0, 3, 1e9, -1, 199.9, 200.1, 10, 0.0001} {
		var d Decision
		d, st = Decide(&cfg, st, v, true, t0.Add(time.Duration(i)*time.Minute))
		if d.Target < 1 || d.Target > 20 || d.Desired < 1 || d.Desired > 20 {
			t.Errorf("value %v: target %d, desired %d, want within [1, 20]", v, d.Target, d.Desired)
		}
	}
}
