package controller

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"shoal/internal/backend"
)

// Ray's DeploymentStatusTrigger values (python/ray/serve/_private/common.py).
const (
	TriggerUnspecified           = "UNSPECIFIED"
	TriggerConfigUpdateStarted   = "CONFIG_UPDATE_STARTED"
	TriggerConfigUpdateCompleted = "CONFIG_UPDATE_COMPLETED"
	TriggerUpscaleCompleted      = "UPSCALE_COMPLETED"
	TriggerDownscaleCompleted    = "DOWNSCALE_COMPLETED"
	TriggerAutoscaling           = "AUTOSCALING"
	TriggerReplicaStartupFailed  = "REPLICA_STARTUP_FAILED"
	TriggerHealthCheckFailed     = "HEALTH_CHECK_FAILED"
	TriggerInternalError         = "INTERNAL_ERROR"
	TriggerDeleting              = "DELETING"
)

// Phase is the change a deployment is going through (or went through last).
type Phase string

const (
	// PhaseDeploy: a first deploy, a new version or another change of the spec.
	PhaseDeploy Phase = "deploy"
	// PhaseUpscale and PhaseDownscale: only the target changed.
	PhaseUpscale   Phase = "upscale"
	PhaseDownscale Phase = "downscale"
)

// Track is what the plan remembers of a deployment between passes, to tell a new
// deploy from a scale and a failed deploy from a deployment that fell ill later. The
// controller keeps it and hands it back on the next pass.
type Track struct {
	Phase Phase
	// Autoscaling is true when the current scale phase came from the webhook or the
	// autoscaler rather than from the config (Ray's AUTOSCALING trigger).
	Autoscaling bool
	// From is the target before the current phase (for "Upscaling from 1 to 3 replicas.").
	From int
	// Done is true once the current phase reached its target.
	Done bool
	// Reached is true once the deployment ran its full target of the current version
	// since that version was deployed. A deployment that fails before that failed to
	// deploy (the application is DEPLOY_FAILED); one that fails after is UNHEALTHY.
	Reached bool
}

// Desired is one deployment as the controller wants it, with what the controller
// remembers of it from earlier passes.
type Desired struct {
	App    string
	Spec   backend.Spec // Spec.Key names the deployment; Spec.Replicas is the target
	Source Source
	// Deleting is true when the deployment is to be removed: its application is being
	// deleted (AppDeleting) or a redeploy dropped it from an application that stays.
	Deleting    bool
	AppDeleting bool

	// Applied is the last spec the backend accepted for this deployment; nil when none
	// (a new deployment, or after a restart of shoal).
	Applied *backend.Spec
	// RemoveSent is true once the backend accepted Remove for this deployment.
	RemoveSent bool
	Track      Track
}

// Result is what one pass of Plan decided.
type Result struct {
	// Apply holds the specs to hand to the backend: those that differ from what it was
	// last given.
	Apply []backend.Spec
	// Remove holds the deployments to remove from the backend.
	Remove []backend.Key
	// Forget holds deleted deployments that are fully stopped: the controller drops them
	// (and an application with no deployment left).
	Forget []backend.Key
	// Deployments holds every desired deployment's status.
	Deployments map[backend.Key]DeploymentResult
	// Apps holds every application's status.
	Apps map[string]AppResult
}

// DeploymentResult is one deployment's status after a pass.
type DeploymentResult struct {
	Status  DeploymentStatus
	Trigger string
	Message string
	// Track is the memory to pass back in Desired.Track on the next pass.
	Track Track
}

// AppResult is one application's status after a pass.
type AppResult struct {
	Status  AppStatus
	Message string
}

// Plan decides, without side effects, what to tell the backend and what every status
// is, from the desired deployments and the backend's observation.
//
// Deployment statuses follow Ray's state machine:
//
//	being removed                                  → DELETING            (DELETING)
//	backend says Failing, before reaching target   → UNHEALTHY           (REPLICA_STARTUP_FAILED)
//	backend says Failing, after reaching target    → UNHEALTHY           (HEALTH_CHECK_FAILED)
//	a replica UNHEALTHY after reaching target      → UNHEALTHY           (HEALTH_CHECK_FAILED)
//	running == target, all of the current version,
//	  nothing else live                            → HEALTHY             (CONFIG_UPDATE_COMPLETED,
//	                                                                      UPSCALE_COMPLETED or
//	                                                                      DOWNSCALE_COMPLETED)
//	deploy or new version not yet complete         → UPDATING            (CONFIG_UPDATE_STARTED)
//	only the target changed, not yet complete      → UPSCALING/DOWNSCALING (AUTOSCALING from the
//	                                                 webhook or autoscaler, else CONFIG_UPDATE_STARTED)
//	the current phase completed earlier and a
//	  replica is being replaced                    → unchanged (Ray keeps the status too)
//
// A target change during an unfinished deploy keeps UPDATING, as Ray does.
//
// A deployment's message is its failure (UNHEALTHY), else the scale in progress, followed
// by the backend's report when it has one that is no failure.
//
// Application statuses: DELETING while deleting; DEPLOY_FAILED when a deployment is
// UNHEALTHY before it ever reached its target since its version was deployed; UNHEALTHY
// when one is UNHEALTHY after that; DEPLOYING while one is UPDATING; else RUNNING
// (UPSCALING and DOWNSCALING count as running, as in Ray). Deployments being removed from
// an application that stays do not count.
func Plan(desired []Desired, observed []backend.Status, now time.Time) Result {
	_ = now // statuses depend on no duration yet; kept so time-based rules stay pure
	obs := make(map[backend.Key]*backend.Status, len(observed))
	for i := range observed {
		obs[observed[i].Key] = &observed[i]
	}
	res := Result{
		Deployments: make(map[backend.Key]DeploymentResult, len(desired)),
		Apps:        map[string]AppResult{},
	}
	type appAcc struct {
		deleting         bool
		updating         bool
		failed, unhealth []string
	}
	apps := map[string]*appAcc{}
	var appOrder []string

	for i := range desired {
		d := &desired[i]
		key := d.Spec.Key
		o := obs[key]
		acc := apps[d.App]
		if acc == nil {
			acc = &appAcc{}
			apps[d.App] = acc
			appOrder = append(appOrder, d.App)
		}
		if d.AppDeleting {
			acc.deleting = true
		}

		if d.Deleting || d.AppDeleting {
			switch {
			case !d.RemoveSent:
				res.Remove = append(res.Remove, key)
			case o == nil:
				res.Forget = append(res.Forget, key)
			}
			res.Deployments[key] = DeploymentResult{Status: DeploymentDeleting, Trigger: TriggerDeleting, Track: d.Track}
			continue
		}

		dr := planDeployment(d, o)
		if o != nil && !o.Removing && !o.Failing && o.Message != "" && dr.Status != DeploymentUnhealthy {
			// A report of the backend that is no failure (on Kubernetes: the replica count
			// changed outside shoal and is being restored, or a write failed and is
			// retried) is shown as Ray shows an informational message: in the message,
			// with the status unchanged. A failure's own message is left alone.
			dr.Message = joinMessage(dr.Message, o.Message)
		}
		switch {
		case o != nil && o.Removing:
			// The replicas of an earlier incarnation (a deployment deleted and deployed
			// again before it had stopped) are still stopping: start afresh once they are
			// gone, so the backend never mixes the two.
			dr.Status, dr.Trigger = DeploymentUpdating, TriggerConfigUpdateStarted
			dr.Message = "waiting for the replicas of the previous deployment to stop"
		case d.Applied == nil || !specEqual(*d.Applied, d.Spec) || o == nil:
			// New, changed, or unknown to the backend (lost by it): apply. Applying the same
			// spec twice is harmless.
			res.Apply = append(res.Apply, d.Spec)
		}
		res.Deployments[key] = dr

		switch dr.Status {
		case DeploymentUnhealthy:
			if dr.Track.Reached {
				acc.unhealth = append(acc.unhealth, key.Deployment)
			} else {
				acc.failed = append(acc.failed, key.Deployment)
			}
		case DeploymentUpdating:
			acc.updating = true
		}
	}

	for _, name := range appOrder {
		acc := apps[name]
		var ar AppResult
		switch {
		case acc.deleting:
			ar.Status = AppDeleting
		case len(acc.failed) > 0:
			ar.Status = AppDeployFailed
			ar.Message = fmt.Sprintf("The deployments %s are UNHEALTHY.", pyList(append(acc.failed, acc.unhealth...)))
		case len(acc.unhealth) > 0:
			ar.Status = AppUnhealthy
			ar.Message = fmt.Sprintf("The deployments %s are UNHEALTHY.", pyList(acc.unhealth))
		case acc.updating:
			ar.Status = AppDeploying
		default:
			ar.Status = AppRunning
		}
		res.Apps[name] = ar
	}
	return res
}

// planDeployment computes the status of a deployment that is not being removed.
func planDeployment(d *Desired, o *backend.Status) DeploymentResult {
	t := nextTrack(d)
	target := d.Spec.Replicas

	var live, runningCurrent int
	var unhealthyMsg string
	unhealthy := false
	if o != nil && !o.Removing {
		for _, r := range o.Replicas {
			live++
			switch {
			case r.State == backend.Running && r.Version == d.Spec.Version:
				runningCurrent++
			case r.State == backend.Unhealthy:
				if !unhealthy {
					unhealthyMsg = r.Message
				}
				unhealthy = true
			}
		}
	}
	// The backend only counts for the spec it was given: before Apply took, nothing is done.
	applied := o != nil && !o.Removing && d.Applied != nil && specEqual(*d.Applied, d.Spec)
	done := applied && runningCurrent == target && live == target

	switch {
	case o != nil && !o.Removing && o.Failing:
		trig := TriggerReplicaStartupFailed
		if t.Reached {
			trig = TriggerHealthCheckFailed
		}
		return DeploymentResult{Status: DeploymentUnhealthy, Trigger: trig, Message: o.Message, Track: t}
	case unhealthy && t.Reached && !done:
		return DeploymentResult{Status: DeploymentUnhealthy, Trigger: TriggerHealthCheckFailed, Message: unhealthyMsg, Track: t}
	case done:
		t.Done, t.Reached = true, true
		trig := TriggerConfigUpdateCompleted
		switch t.Phase {
		case PhaseUpscale:
			trig = TriggerUpscaleCompleted
		case PhaseDownscale:
			trig = TriggerDownscaleCompleted
		}
		return DeploymentResult{Status: DeploymentHealthy, Trigger: trig, Track: t}
	case t.Done:
		// The phase completed and a replica is being replaced (it exited, or a
		// replacement is starting): Ray keeps the status as it was.
		trig := TriggerConfigUpdateCompleted
		switch t.Phase {
		case PhaseUpscale:
			trig = TriggerUpscaleCompleted
		case PhaseDownscale:
			trig = TriggerDownscaleCompleted
		}
		return DeploymentResult{Status: DeploymentHealthy, Trigger: trig, Track: t}
	}

	switch t.Phase {
	case PhaseUpscale, PhaseDownscale:
		st, verb := DeploymentUpscaling, "Upscaling"
		if t.Phase == PhaseDownscale {
			st, verb = DeploymentDownscaling, "Downscaling"
		}
		trig := TriggerConfigUpdateStarted
		if t.Autoscaling {
			trig = TriggerAutoscaling
		}
		return DeploymentResult{Status: st, Trigger: trig, Track: t,
			Message: fmt.Sprintf("%s from %d to %d replicas.", verb, t.From, target)}
	default:
		return DeploymentResult{Status: DeploymentUpdating, Trigger: TriggerConfigUpdateStarted, Track: t}
	}
}

// nextTrack starts a new phase when the desired spec differs from the applied one.
func nextTrack(d *Desired) Track {
	t := d.Track
	a := d.Applied
	switch {
	case a == nil || a.Version != d.Spec.Version:
		// A first deploy (or a restart of shoal, or a deployment deployed again) or a new
		// version: everything starts over.
		if t.Phase != PhaseDeploy || t.Done || t.Reached {
			t = Track{Phase: PhaseDeploy}
		}
	case a.Replicas != d.Spec.Replicas:
		if t.Phase == PhaseDeploy && !t.Done {
			// Retargeting an unfinished deploy keeps it UPDATING (Ray).
			break
		}
		t.Phase = PhaseUpscale
		if d.Spec.Replicas < a.Replicas {
			t.Phase = PhaseDownscale
		}
		t.Autoscaling = d.Source == SourceWebhook || d.Source == SourceAutoscaler
		t.From = a.Replicas
		t.Done = false
	case !specEqual(*a, d.Spec):
		// Same version and count, other fields (health check, limits): a light config
		// update. The deployment keeps having reached its target.
		t.Phase, t.Autoscaling, t.Done = PhaseDeploy, false, false
	}
	return t
}

func specEqual(a, b backend.Spec) bool { return reflect.DeepEqual(a, b) }

// joinMessage appends more to a deployment's message.
func joinMessage(msg, more string) string {
	if msg == "" {
		return more
	}
	return msg + " " + more
}

// pyList formats names as Python prints a list of strings, as Ray's messages do.
func pyList(names []string) string {
	sort.Strings(names)
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
