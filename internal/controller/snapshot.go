package controller

import (
	"errors"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
)

// Source says where a deployment's target came from.
type Source string

const (
	SourceConfig     Source = "config"
	SourceWebhook    Source = "webhook"
	SourceAutoscaler Source = "autoscaler"
)

// Mode is how a deployment's replica count is decided.
type Mode string

const (
	ModeExternal    Mode = "external"    // the application has external_scaler_enabled
	ModeAutoscaling Mode = "autoscaling" // autoscaling_config or num_replicas: "auto"
	ModeFixed       Mode = "fixed"       // num_replicas
)

// Statuses, in Ray's words.
type (
	AppStatus        string
	DeploymentStatus string
)

const (
	AppDeploying    AppStatus = "DEPLOYING"
	AppRunning      AppStatus = "RUNNING"
	AppDeployFailed AppStatus = "DEPLOY_FAILED"
	AppUnhealthy    AppStatus = "UNHEALTHY"
	AppDeleting     AppStatus = "DELETING"

	DeploymentUpdating    DeploymentStatus = "UPDATING"
	DeploymentHealthy     DeploymentStatus = "HEALTHY"
	DeploymentUnhealthy   DeploymentStatus = "UNHEALTHY"
	DeploymentUpscaling   DeploymentStatus = "UPSCALING"
	DeploymentDownscaling DeploymentStatus = "DOWNSCALING"
	DeploymentDeleting    DeploymentStatus = "DELETING"
)

// Errors of SetTarget. The HTTP edge maps them to status codes.
var (
	ErrNotFound       = errors.New("application or deployment not found")
	ErrScalerDisabled = errors.New("external scaler is disabled for the application")
	ErrDeleting       = errors.New("application is being deleted")
	ErrOverLimit      = errors.New("target is above the deployment's replica_limit")
	ErrNegative       = errors.New("target must be >= 0")
)

// Snapshot is an immutable view of everything the controller knows. A new one is
// published on every change; readers (proxy, API, dashboard, metrics) never modify it.
type Snapshot struct {
	// Generation grows by one with every published snapshot.
	Generation uint64
	Time       time.Time
	// Config is the deployed config (nil before the first deploy). Applications being
	// deleted are not in it.
	Config       *config.Config
	HTTPOptions  config.HTTPOptions
	Applications []*Application // sorted by name; includes applications being deleted
}

// App returns the named application, or nil.
func (s *Snapshot) App(name string) *Application {
	for _, a := range s.Applications {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Application is one application in a Snapshot.
type Application struct {
	Name                  string
	RoutePrefix           string
	Status                AppStatus
	Message               string
	LastDeployed          time.Time
	ExternalScalerEnabled bool
	Deleting              bool
	Config                config.Application // as deployed (defaults filled in)
	Ingress               string             // name of the ingress deployment
	Deployments           []*Deployment      // in config order
}

// Deployment returns the named deployment, or nil.
func (a *Application) Deployment(name string) *Deployment {
	for _, d := range a.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Deployment is one deployment in a Snapshot.
type Deployment struct {
	Key           backend.Key
	Name          string
	Status        DeploymentStatus
	StatusTrigger string // Ray's status_trigger, e.g. "CONFIG_UPDATE_STARTED"
	Message       string
	Config        config.Deployment // as deployed (defaults filled in)
	Version       string
	Mode          Mode
	Target        int
	TargetSource  Source
	// Replicas are the live replicas (STARTING, RUNNING, STOPPING, UNHEALTHY), sorted by
	// start time. The proxy routes to those that are RUNNING.
	Replicas []backend.Replica
	// Autoscaling holds the autoscaler's view; nil unless Mode is ModeAutoscaling.
	Autoscaling *AutoscalingDetail
}

// Running counts the RUNNING replicas.
func (d *Deployment) Running() int {
	n := 0
	for i := range d.Replicas {
		if d.Replicas[i].State == backend.Running {
			n++
		}
	}
	return n
}

// AutoscalingDetail is the autoscaler's current view of a deployment.
type AutoscalingDetail struct {
	Decision      int       `json:"decision"`       // the target it wants
	WindowAverage float64   `json:"window_average"` // ongoing requests averaged over the look-back window
	Queued        int       `json:"queued"`
	PendingSince  time.Time `json:"pending_since,omitzero"` // when a pending change started to hold
	// PendingDelayS is the delay the pending change waits on, in seconds (upscale_delay_s,
	// downscale_delay_s or downscale_to_zero_delay_s): it applies at PendingSince plus
	// this, if the load still asks for it then. Omitted when nothing is pending.
	PendingDelayS float64 `json:"pending_delay_s,omitempty"`
	PendingTarget int     `json:"pending_target"` // the change waiting on its delay, or the current target
}
