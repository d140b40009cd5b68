package controller

import (
	"reflect"
	"testing"
	"time"

	"shoal/internal/backend"
)

var (
	t0   = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	keyA = backend.Key{App: "app", Deployment: "a"}
	keyB = backend.Key{App: "app", Deployment: "b"}
)

func spec(key backend.Key, version string, n int) backend.Spec {
	return backend.Spec{Key: key, Version: version, Replicas: n, Command: []string{"srv"}}
}

func ptr[T any](v T) *T { return &v }

func replicas(key backend.Key, version string, states ...backend.State) []backend.Replica {
	out := make([]backend.Replica, len(states))
	for i, s := range states {
		out[i] = backend.Replica{ID: version + "-" + string(rune('a'+i)), Key: key, Version: version, State: s,
			StartTime: t0.Add(time.Duration(i) * time.Second)}
	}
	return out
}

func status(key backend.Key, version string, rs ...[]backend.Replica) backend.Status {
	st := backend.Status{Key: key, Version: version}
	for _, r := range rs {
		st.Replicas = append(st.Replicas, r...)
	}
	return st
}

const (
	run      = backend.Running
	starting = backend.Starting
	stop     = backend.Stopping
	sick     = backend.Unhealthy
)

var (
	done      = Track{Phase: PhaseDeploy, Done: true, Reached: true}
	deploying = Track{Phase: PhaseDeploy}
)

func TestPlanDeploymentStatus(t *testing.T) {
	// The Kubernetes backend's report of a count changed by someone else.
	const outside = "replica count changed outside shoal from 2 to 1; restoring 2"
	cases := []struct {
		name     string
		desired  Desired
		observed []backend.Status

		wantApply   bool
		wantStatus  DeploymentStatus
		wantTrigger string
		wantMessage string
		wantApp     AppStatus
		wantAppMsg  string
		wantTrack   *Track
	}{
		{
			name:        "a first deploy is applied and UPDATING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Source: SourceConfig},
			wantApply:   true,
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
			wantTrack:   &deploying,
		},
		{
			name:        "starting replicas keep a first deploy UPDATING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: deploying},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, starting))},
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
		},
		{
			name:        "all replicas running makes it HEALTHY with the config update completed",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: deploying},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, run))},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerConfigUpdateCompleted,
			wantApp:     AppRunning,
			wantTrack:   &done,
		},
		{
			name:        "a new version is applied and UPDATING while old replicas run",
			desired:     Desired{App: "app", Spec: spec(keyA, "v2", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, run))},
			wantApply:   true,
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
			wantTrack:   &deploying,
		},
		{
			name:    "old-version replicas keep a rolling update UPDATING though the new ones run",
			desired: Desired{App: "app", Spec: spec(keyA, "v2", 2), Applied: ptr(spec(keyA, "v2", 2)), Track: deploying},
			observed: []backend.Status{status(keyA, "v2",
				replicas(keyA, "v1", stop), replicas(keyA, "v2", run, run))},
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
		},
		{
			name:        "a config scale-up is UPSCALING with CONFIG_UPDATE_STARTED and the app stays RUNNING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 4), Source: SourceConfig, Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, run))},
			wantApply:   true,
			wantStatus:  DeploymentUpscaling,
			wantTrigger: TriggerConfigUpdateStarted,
			wantMessage: "Upscaling from 2 to 4 replicas.",
			wantApp:     AppRunning,
			wantTrack:   &Track{Phase: PhaseUpscale, From: 2, Reached: true},
		},
		{
			name:        "a webhook scale-down is DOWNSCALING with AUTOSCALING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 1), Source: SourceWebhook, Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, run))},
			wantApply:   true,
			wantStatus:  DeploymentDownscaling,
			wantTrigger: TriggerAutoscaling,
			wantMessage: "Downscaling from 2 to 1 replicas.",
			wantApp:     AppRunning,
			wantTrack:   &Track{Phase: PhaseDownscale, Autoscaling: true, From: 2, Reached: true},
		},
		{
			name:        "an autoscaler scale-up is UPSCALING with AUTOSCALING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 3), Source: SourceAutoscaler, Applied: ptr(spec(keyA, "v1", 1)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run))},
			wantApply:   true,
			wantStatus:  DeploymentUpscaling,
			wantTrigger: TriggerAutoscaling,
			wantMessage: "Upscaling from 1 to 3 replicas.",
			wantApp:     AppRunning,
		},
		{
			name:        "a stopping replica keeps a scale-down DOWNSCALING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 1), Source: SourceWebhook, Applied: ptr(spec(keyA, "v1", 1)), Track: Track{Phase: PhaseDownscale, Autoscaling: true, From: 2, Reached: true}},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, stop))},
			wantStatus:  DeploymentDownscaling,
			wantTrigger: TriggerAutoscaling,
			wantMessage: "Downscaling from 2 to 1 replicas.",
			wantApp:     AppRunning,
		},
		{
			name:        "a finished scale-down is HEALTHY with DOWNSCALE_COMPLETED",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 1), Source: SourceWebhook, Applied: ptr(spec(keyA, "v1", 1)), Track: Track{Phase: PhaseDownscale, Autoscaling: true, From: 2, Reached: true}},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run))},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerDownscaleCompleted,
			wantApp:     AppRunning,
		},
		{
			name:        "a finished scale-up is HEALTHY with UPSCALE_COMPLETED",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: Track{Phase: PhaseUpscale, From: 1, Reached: true}},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, run))},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerUpscaleCompleted,
			wantApp:     AppRunning,
		},
		{
			name:        "a retarget during an unfinished deploy stays UPDATING",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 5), Source: SourceWebhook, Applied: ptr(spec(keyA, "v1", 2)), Track: deploying},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", starting, starting))},
			wantApply:   true,
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
			wantTrack:   &deploying,
		},
		{
			name:    "failing before ever reaching the target is a failed deploy",
			desired: Desired{App: "app", Spec: spec(keyA, "v1", 1), Applied: ptr(spec(keyA, "v1", 1)), Track: deploying},
			observed: []backend.Status{{Key: keyA, Version: "v1", Failing: true, Message: "exit status 1: boom",
				Replicas: replicas(keyA, "v1", starting)}},
			wantStatus:  DeploymentUnhealthy,
			wantTrigger: TriggerReplicaStartupFailed,
			wantMessage: "exit status 1: boom",
			wantApp:     AppDeployFailed,
			wantAppMsg:  "The deployments ['a'] are UNHEALTHY.",
		},
		{
			name:    "failing after running is UNHEALTHY with HEALTH_CHECK_FAILED",
			desired: Desired{App: "app", Spec: spec(keyA, "v1", 1), Applied: ptr(spec(keyA, "v1", 1)), Track: done},
			observed: []backend.Status{{Key: keyA, Version: "v1", Failing: true, Message: "health check failed",
				Replicas: replicas(keyA, "v1", starting)}},
			wantStatus:  DeploymentUnhealthy,
			wantTrigger: TriggerHealthCheckFailed,
			wantMessage: "health check failed",
			wantApp:     AppUnhealthy,
			wantAppMsg:  "The deployments ['a'] are UNHEALTHY.",
		},
		{
			name:    "an unhealthy replica of a running deployment makes it UNHEALTHY",
			desired: Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed: []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run),
				[]backend.Replica{{ID: "x", Key: keyA, Version: "v1", State: sick, Message: "no answer for 30s"}})},
			wantStatus:  DeploymentUnhealthy,
			wantTrigger: TriggerHealthCheckFailed,
			wantMessage: "no answer for 30s",
			wantApp:     AppUnhealthy,
			wantAppMsg:  "The deployments ['a'] are UNHEALTHY.",
		},
		{
			name:        "a replacement starting after the deployment was healthy keeps it HEALTHY",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run, starting))},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerConfigUpdateCompleted,
			wantApp:     AppRunning,
		},
		{
			name:        "scaled to zero with no replica left is HEALTHY",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 0), Source: SourceWebhook, Applied: ptr(spec(keyA, "v1", 0)), Track: Track{Phase: PhaseDownscale, Autoscaling: true, From: 1, Reached: true}},
			observed:    []backend.Status{status(keyA, "v1")},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerDownscaleCompleted,
			wantApp:     AppRunning,
		},
		{
			name:        "a deployment the backend lost is applied again",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 1), Applied: ptr(spec(keyA, "v1", 1)), Track: done},
			wantApply:   true,
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerConfigUpdateCompleted,
			wantApp:     AppRunning,
		},
		{
			name:        "a deployment deployed again while its old replicas stop waits for them",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 1)},
			observed:    []backend.Status{{Key: keyA, Version: "v0", Removing: true, Replicas: replicas(keyA, "v0", stop)}},
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantMessage: "waiting for the replicas of the previous deployment to stop",
			wantApp:     AppDeploying,
		},
		{
			name:        "a backend's report on a healthy deployment is its message and it stays HEALTHY",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{{Key: keyA, Version: "v1", Message: outside, Replicas: replicas(keyA, "v1", run, run)}},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerConfigUpdateCompleted,
			wantMessage: outside,
			wantApp:     AppRunning,
		},
		{
			name:        "a backend's report while it restores the count is shown and the status is kept",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{{Key: keyA, Version: "v1", Message: outside, Replicas: replicas(keyA, "v1", run, starting)}},
			wantStatus:  DeploymentHealthy,
			wantTrigger: TriggerConfigUpdateCompleted,
			wantMessage: outside,
			wantApp:     AppRunning,
		},
		{
			name:        "a backend's report during a scale follows the scale's message",
			desired:     Desired{App: "app", Spec: spec(keyA, "v1", 4), Source: SourceConfig, Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed:    []backend.Status{{Key: keyA, Version: "v1", Message: outside, Replicas: replicas(keyA, "v1", run, run)}},
			wantApply:   true,
			wantStatus:  DeploymentUpscaling,
			wantTrigger: TriggerConfigUpdateStarted,
			wantMessage: "Upscaling from 2 to 4 replicas. " + outside,
			wantApp:     AppRunning,
		},
		{
			name:    "a backend's report does not override an unhealthy replica's message",
			desired: Desired{App: "app", Spec: spec(keyA, "v1", 2), Applied: ptr(spec(keyA, "v1", 2)), Track: done},
			observed: []backend.Status{{Key: keyA, Version: "v1", Message: outside, Replicas: append(replicas(keyA, "v1", run),
				backend.Replica{ID: "x", Key: keyA, Version: "v1", State: sick, Message: "no answer for 30s"})}},
			wantStatus:  DeploymentUnhealthy,
			wantTrigger: TriggerHealthCheckFailed,
			wantMessage: "no answer for 30s",
			wantApp:     AppUnhealthy,
			wantAppMsg:  "The deployments ['a'] are UNHEALTHY.",
		},
		{
			name:        "a light config change (same version and count) is applied and UPDATING",
			desired:     Desired{App: "app", Spec: backend.Spec{Key: keyA, Version: "v1", Replicas: 1, Command: []string{"srv"}, MaxOngoingRequests: 9}, Applied: ptr(spec(keyA, "v1", 1)), Track: done},
			observed:    []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run))},
			wantApply:   true,
			wantStatus:  DeploymentUpdating,
			wantTrigger: TriggerConfigUpdateStarted,
			wantApp:     AppDeploying,
			wantTrack:   &Track{Phase: PhaseDeploy, Reached: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan([]Desired{tc.desired}, tc.observed, t0)
			if got := len(res.Apply) == 1; got != tc.wantApply {
				t.Errorf("apply = %v, want %v", res.Apply, tc.wantApply)
			}
			if tc.wantApply && !reflect.DeepEqual(res.Apply[0], tc.desired.Spec) {
				t.Errorf("applied %+v, want %+v", res.Apply[0], tc.desired.Spec)
			}
			if len(res.Remove)+len(res.Forget) != 0 {
				t.Errorf("remove %v, forget %v; want none", res.Remove, res.Forget)
			}
			dr := res.Deployments[keyA]
			if dr.Status != tc.wantStatus || dr.Trigger != tc.wantTrigger || dr.Message != tc.wantMessage {
				t.Errorf("deployment = %s/%s %q, want %s/%s %q", dr.Status, dr.Trigger, dr.Message, tc.wantStatus, tc.wantTrigger, tc.wantMessage)
			}
			if ar := res.Apps["app"]; ar.Status != tc.wantApp || ar.Message != tc.wantAppMsg {
				t.Errorf("app = %s %q, want %s %q", ar.Status, ar.Message, tc.wantApp, tc.wantAppMsg)
			}
			if tc.wantTrack != nil && dr.Track != *tc.wantTrack {
				t.Errorf("track = %+v, want %+v", dr.Track, *tc.wantTrack)
			}
		})
	}
}

func TestPlanDeletion(t *testing.T) {
	removing := backend.Status{Key: keyA, Version: "v1", Removing: true, Replicas: replicas(keyA, "v1", stop)}
	cases := []struct {
		name       string
		desired    Desired
		observed   []backend.Status
		wantRemove bool
		wantForget bool
	}{
		{
			name:       "a deleted deployment not yet removed is removed",
			desired:    Desired{App: "app", Spec: backend.Spec{Key: keyA}, Deleting: true, AppDeleting: true, Applied: ptr(spec(keyA, "v1", 1))},
			observed:   []backend.Status{status(keyA, "v1", replicas(keyA, "v1", run))},
			wantRemove: true,
		},
		{
			name:     "a deleted deployment whose replicas still stop is left alone",
			desired:  Desired{App: "app", Spec: backend.Spec{Key: keyA}, Deleting: true, AppDeleting: true, RemoveSent: true},
			observed: []backend.Status{removing},
		},
		{
			name:       "a deleted deployment gone from the backend is forgotten",
			desired:    Desired{App: "app", Spec: backend.Spec{Key: keyA}, Deleting: true, AppDeleting: true, RemoveSent: true},
			wantForget: true,
		},
		{
			name:       "a deleted deployment the backend never knew is still removed, to be sure",
			desired:    Desired{App: "app", Spec: backend.Spec{Key: keyA}, Deleting: true, AppDeleting: true},
			wantRemove: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan([]Desired{tc.desired}, tc.observed, t0)
			if len(res.Apply) != 0 {
				t.Errorf("apply = %v, want none", res.Apply)
			}
			if got := len(res.Remove) == 1 && res.Remove[0] == keyA; got != tc.wantRemove {
				t.Errorf("remove = %v, want %v", res.Remove, tc.wantRemove)
			}
			if got := len(res.Forget) == 1 && res.Forget[0] == keyA; got != tc.wantForget {
				t.Errorf("forget = %v, want %v", res.Forget, tc.wantForget)
			}
			dr := res.Deployments[keyA]
			if dr.Status != DeploymentDeleting || dr.Trigger != TriggerDeleting {
				t.Errorf("deployment = %s/%s, want DELETING/DELETING", dr.Status, dr.Trigger)
			}
			if got := res.Apps["app"].Status; got != AppDeleting {
				t.Errorf("app = %s, want DELETING", got)
			}
		})
	}
}

func TestPlanApplicationStatus(t *testing.T) {
	healthyA := Desired{App: "app", Spec: spec(keyA, "v1", 1), Applied: ptr(spec(keyA, "v1", 1)), Track: done}
	runningA := status(keyA, "v1", replicas(keyA, "v1", run))
	cases := []struct {
		name     string
		desired  []Desired
		observed []backend.Status
		want     AppStatus
		wantMsg  string
	}{
		{
			name: "one deployment still starting keeps the application DEPLOYING",
			desired: []Desired{healthyA,
				{App: "app", Spec: spec(keyB, "v1", 1), Applied: ptr(spec(keyB, "v1", 1)), Track: deploying}},
			observed: []backend.Status{runningA, status(keyB, "v1", replicas(keyB, "v1", starting))},
			want:     AppDeploying,
		},
		{
			name: "a healthy and an upscaling deployment make a RUNNING application",
			desired: []Desired{healthyA,
				{App: "app", Spec: spec(keyB, "v1", 2), Applied: ptr(spec(keyB, "v1", 2)), Track: Track{Phase: PhaseUpscale, From: 1, Reached: true}}},
			observed: []backend.Status{runningA, status(keyB, "v1", replicas(keyB, "v1", run, starting))},
			want:     AppRunning,
		},
		{
			name: "a deployment being removed from an application that stays does not count",
			desired: []Desired{healthyA,
				{App: "app", Spec: backend.Spec{Key: keyB}, Deleting: true, RemoveSent: true}},
			observed: []backend.Status{runningA, {Key: keyB, Removing: true, Replicas: replicas(keyB, "v1", stop)}},
			want:     AppRunning,
		},
		{
			name: "a failed new deployment beside an unhealthy old one is a failed deploy naming both",
			desired: []Desired{
				{App: "app", Spec: spec(keyA, "v1", 1), Applied: ptr(spec(keyA, "v1", 1)), Track: done},
				{App: "app", Spec: spec(keyB, "v1", 1), Applied: ptr(spec(keyB, "v1", 1)), Track: deploying}},
			observed: []backend.Status{
				{Key: keyA, Version: "v1", Failing: true, Message: "x"},
				{Key: keyB, Version: "v1", Failing: true, Message: "y"}},
			want:    AppDeployFailed,
			wantMsg: "The deployments ['a', 'b'] are UNHEALTHY.",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan(tc.desired, tc.observed, t0)
			if ar := res.Apps["app"]; ar.Status != tc.want || ar.Message != tc.wantMsg {
				t.Errorf("app = %s %q, want %s %q", ar.Status, ar.Message, tc.want, tc.wantMsg)
			}
		})
	}
}

// TestPlanSequence walks one deployment through deploy, scale and rolling update, feeding
// each pass's Track into the next as the controller does.
func TestPlanSequence(t *testing.T) {
	type step struct {
		desired     backend.Spec
		src         Source
		observed    []backend.Replica
		wantStatus  DeploymentStatus
		wantTrigger string
	}
	steps := []step{
		{spec(keyA, "v1", 2), SourceConfig, nil, DeploymentUpdating, TriggerConfigUpdateStarted},
		{spec(keyA, "v1", 2), SourceConfig, replicas(keyA, "v1", starting, starting), DeploymentUpdating, TriggerConfigUpdateStarted},
		{spec(keyA, "v1", 2), SourceConfig, replicas(keyA, "v1", run, run), DeploymentHealthy, TriggerConfigUpdateCompleted},
		{spec(keyA, "v1", 3), SourceWebhook, replicas(keyA, "v1", run, run), DeploymentUpscaling, TriggerAutoscaling},
		{spec(keyA, "v1", 3), SourceWebhook, replicas(keyA, "v1", run, run, starting), DeploymentUpscaling, TriggerAutoscaling},
		{spec(keyA, "v1", 3), SourceWebhook, replicas(keyA, "v1", run, run, run), DeploymentHealthy, TriggerUpscaleCompleted},
		{spec(keyA, "v2", 3), SourceConfig, replicas(keyA, "v1", run, run, run), DeploymentUpdating, TriggerConfigUpdateStarted},
		{spec(keyA, "v2", 3), SourceConfig, append(replicas(keyA, "v1", run), replicas(keyA, "v2", run, run, run)...), DeploymentUpdating, TriggerConfigUpdateStarted},
		{spec(keyA, "v2", 3), SourceConfig, replicas(keyA, "v2", run, run, run), DeploymentHealthy, TriggerConfigUpdateCompleted},
	}
	var applied *backend.Spec
	var track Track
	for i, s := range steps {
		d := Desired{App: "app", Spec: s.desired, Source: s.src, Applied: applied, Track: track}
		res := Plan([]Desired{d}, []backend.Status{status(keyA, s.desired.Version, s.observed)}, t0.Add(time.Duration(i)*time.Second))
		for _, a := range res.Apply {
			applied = ptr(a)
		}
		dr := res.Deployments[keyA]
		track = dr.Track
		if len(res.Apply) > 0 {
			// The controller plans again after applying; so do we.
			d.Applied, d.Track = applied, track
			res = Plan([]Desired{d}, []backend.Status{status(keyA, s.desired.Version, s.observed)}, t0.Add(time.Duration(i)*time.Second))
			dr = res.Deployments[keyA]
			track = dr.Track
		}
		if dr.Status != s.wantStatus || dr.Trigger != s.wantTrigger {
			t.Fatalf("step %d: %s/%s, want %s/%s", i, dr.Status, dr.Trigger, s.wantStatus, s.wantTrigger)
		}
	}
}
