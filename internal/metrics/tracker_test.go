package metrics

import (
	"testing"
	"time"

	"shoal/internal/controller"
)

func TestTrackerStepTables(t *testing.T) {
	type step struct {
		at   time.Duration
		deps []dep
		// cumulative counts for a/d after this step
		starts, crashes int
		latencies       []time.Duration
	}
	d := func(target int, replicas ...string) []dep { return []dep{{"a", "d", target, replicas}} }
	cases := []struct {
		name  string
		steps []step
	}{
		{"replicas present at the baseline are not starts", []step{
			{0, d(2, "r1:RUNNING", "r2:RUNNING"), 0, 0, nil},
			{time.Second, d(2, "r1:RUNNING", "r2:RUNNING"), 0, 0, nil},
		}},
		{"a scale-up counts each new replica once and times the way to RUNNING", []step{
			{0, d(1, "r1:RUNNING"), 0, 0, nil},
			{1 * time.Second, d(3, "r1:RUNNING"), 0, 0, nil},
			{2 * time.Second, d(3, "r1:RUNNING", "r2:STARTING", "r3:STARTING"), 2, 0, nil},
			{3 * time.Second, d(3, "r1:RUNNING", "r2:RUNNING", "r3:STARTING"), 2, 0, nil},
			{5 * time.Second, d(3, "r1:RUNNING", "r2:RUNNING", "r3:RUNNING"), 2, 0, []time.Duration{4 * time.Second}},
			{6 * time.Second, d(3, "r1:RUNNING", "r2:RUNNING", "r3:RUNNING"), 2, 0, []time.Duration{4 * time.Second}},
		}},
		{"a replica that exits while RUNNING is a crash and its replacement a start", []step{
			{0, d(2, "r1:RUNNING", "r2:RUNNING"), 0, 0, nil},
			{time.Second, d(2, "r1:RUNNING"), 0, 1, nil},
			{2 * time.Second, d(2, "r1:RUNNING", "r3:STARTING"), 1, 1, nil},
		}},
		{"turning UNHEALTHY is one crash, leaving afterwards is none", []step{
			{0, d(1, "r1:RUNNING"), 0, 0, nil},
			{time.Second, d(1, "r1:UNHEALTHY"), 0, 1, nil},
			{2 * time.Second, d(1, "r1:UNHEALTHY"), 0, 1, nil},
			{3 * time.Second, d(1), 0, 1, nil},
		}},
		{"a replica that leaves through STOPPING is no crash", []step{
			{0, d(2, "r1:RUNNING", "r2:RUNNING"), 0, 0, nil},
			{time.Second, d(1, "r1:RUNNING", "r2:STOPPING"), 0, 0, []time.Duration{0}},
			{2 * time.Second, d(1, "r1:RUNNING"), 0, 0, []time.Duration{0}},
		}},
		{"a scale-down that stops a replica before a snapshot shows it STOPPING is no crash", []step{
			{0, d(3, "r1:RUNNING", "r2:RUNNING", "r3:STARTING"), 0, 0, nil},
			{time.Second, d(1, "r1:RUNNING", "r2:RUNNING"), 0, 0, nil},
			{2 * time.Second, d(1, "r1:RUNNING"), 0, 0, []time.Duration{time.Second}},
		}},
		{"a crash during a scale-down beyond the surplus is still a crash", []step{
			{0, d(3, "r1:RUNNING", "r2:RUNNING", "r3:RUNNING"), 0, 0, nil},
			{time.Second, d(2, "r1:RUNNING"), 0, 1, nil},
		}},
		{"a second target change restarts the clock", []step{
			{0, d(1, "r1:RUNNING"), 0, 0, nil},
			{1 * time.Second, d(2, "r1:RUNNING"), 0, 0, nil},
			{2 * time.Second, d(3, "r1:RUNNING", "r2:STARTING"), 1, 0, nil},
			{5 * time.Second, d(3, "r1:RUNNING", "r2:RUNNING", "r3:RUNNING"), 2, 0, []time.Duration{3 * time.Second}},
		}},
		{"a deployment that appears after the baseline is timed from its first snapshot", []step{
			{0, nil, 0, 0, nil},
			{1 * time.Second, d(2), 0, 0, nil},
			{2 * time.Second, d(2, "r1:RUNNING", "r2:RUNNING"), 2, 0, []time.Duration{time.Second}},
		}},
		{"the baseline with too few RUNNING is timed from the baseline", []step{
			{0, d(2, "r1:STARTING"), 0, 0, nil},
			{3 * time.Second, d(2, "r1:RUNNING", "r2:RUNNING"), 1, 0, []time.Duration{3 * time.Second}},
		}},
		{"a deleted and redeployed deployment starts over", []step{
			{0, d(1, "r1:RUNNING"), 0, 0, nil},
			{1 * time.Second, nil, 0, 0, nil},
			{2 * time.Second, d(1, "r2:RUNNING"), 1, 0, []time.Duration{0}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr tracker
			starts, crashes := 0, 0
			var lat []time.Duration
			for i, s := range c.steps {
				for _, e := range tr.observe(snap(s.at, s.deps...), t0) {
					starts += e.starts
					crashes += e.crashes
					if e.reached {
						lat = append(lat, e.scaleLatency)
					}
				}
				if starts != s.starts || crashes != s.crashes || !equalDurations(lat, s.latencies) {
					t.Fatalf("after step %d (t=%s): starts %d, crashes %d, latencies %v; want %d, %d, %v",
						i, s.at, starts, crashes, lat, s.starts, s.crashes, s.latencies)
				}
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sourced sets the target source of every deployment of s.
func sourced(s *controller.Snapshot, src controller.Source) *controller.Snapshot {
	for _, a := range s.Applications {
		for _, d := range a.Deployments {
			d.TargetSource = src
		}
	}
	return s
}

func TestTrackerCountsTargetChangesOfTheAutoscalerAndTheConfig(t *testing.T) {
	type step struct {
		target int
		src    controller.Source
		want   controller.Source // the scale request counted at this step, "" for none
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"the baseline is no request", []step{{3, controller.SourceAutoscaler, ""}}},
		{"an autoscaler decision that changes the target is one", []step{
			{1, controller.SourceConfig, ""},
			{3, controller.SourceAutoscaler, controller.SourceAutoscaler},
			{3, controller.SourceAutoscaler, ""},
			{2, controller.SourceAutoscaler, controller.SourceAutoscaler},
		}},
		{"a deploy that changes the target is one of the config", []step{
			{5, controller.SourceWebhook, ""},
			{2, controller.SourceConfig, controller.SourceConfig},
		}},
		{"a deploy that keeps the target is none", []step{
			{2, controller.SourceWebhook, ""},
			{2, controller.SourceConfig, ""},
		}},
		{"a webhook change is counted by the API, not here", []step{
			{1, controller.SourceConfig, ""},
			{4, controller.SourceWebhook, ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr tracker
			for i, s := range c.steps {
				var got controller.Source
				for _, e := range tr.observe(sourced(snap(time.Duration(i)*time.Second, dep{"a", "d", s.target, nil}), s.src), t0) {
					got = e.retargetedBy
				}
				if got != s.want {
					t.Fatalf("step %d (target %d by %s): counted %q, want %q", i, s.target, s.src, got, s.want)
				}
			}
		})
	}

	t.Run("a deployment that appears after the baseline is no request", func(t *testing.T) {
		var tr tracker
		tr.observe(snap(0), t0)
		for _, e := range tr.observe(sourced(snap(time.Second, dep{"a", "d", 2, nil}), controller.SourceConfig), t0) {
			if e.retargetedBy != "" {
				t.Fatalf("a new deployment counted as a scale request of %s", e.retargetedBy)
			}
		}
	})
}
