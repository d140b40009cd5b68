package client

import (
	"encoding/json"
	"time"
)

// ServeDetails is GET /api/serve/applications/: Ray Serve's ServeInstanceDetails.
type ServeDetails struct {
	ControllerInfo ActorDetails                   `json:"controller_info"`
	ProxyLocation  string                         `json:"proxy_location"`
	HTTPOptions    HTTPOptions                    `json:"http_options"`
	GRPCOptions    json.RawMessage                `json:"grpc_options,omitempty"`
	Proxies        map[string]json.RawMessage     `json:"proxies"`
	DeployMode     string                         `json:"deploy_mode"`
	Applications   map[string]*ApplicationDetails `json:"applications"`
	TargetCapacity *float64                       `json:"target_capacity"`
}

// ActorDetails is Ray's ServeActorDetails.
type ActorDetails struct {
	NodeID         *string `json:"node_id"`
	NodeIP         *string `json:"node_ip"`
	NodeInstanceID *string `json:"node_instance_id"`
	ActorID        *string `json:"actor_id"`
	ActorName      *string `json:"actor_name"`
	WorkerID       *string `json:"worker_id"`
	LogFilePath    *string `json:"log_file_path"`
}

// HTTPOptions is Ray's http_options.
type HTTPOptions struct {
	Host              string   `json:"host"`
	Port              int      `json:"port"`
	RootPath          string   `json:"root_path"`
	RequestTimeoutS   *float64 `json:"request_timeout_s"`
	KeepAliveTimeoutS float64  `json:"keep_alive_timeout_s"`
	SSLKeyfile        *string  `json:"ssl_keyfile"`
	SSLCertfile       *string  `json:"ssl_certfile"`
}

// ApplicationDetails is one application of ServeDetails.
type ApplicationDetails struct {
	Name              string  `json:"name"`
	RoutePrefix       string  `json:"route_prefix"`
	DocsPath          *string `json:"docs_path"`
	Status            string  `json:"status"` // DEPLOYING, RUNNING, DEPLOY_FAILED, UNHEALTHY, DELETING
	Message           string  `json:"message"`
	LastDeployedTimeS float64 `json:"last_deployed_time_s"`
	// DeployedAppConfig is the application's config as deployed, in Ray's schema.
	DeployedAppConfig     json.RawMessage               `json:"deployed_app_config"`
	Source                string                        `json:"source"`
	Deployments           map[string]*DeploymentDetails `json:"deployments"`
	ExternalScalerEnabled bool                          `json:"external_scaler_enabled"`
}

// DeploymentDetails is one deployment of an application.
type DeploymentDetails struct {
	Name              string             `json:"name"`
	Status            string             `json:"status"` // UPDATING, HEALTHY, UNHEALTHY, UPSCALING, DOWNSCALING, DELETING
	StatusTrigger     string             `json:"status_trigger"`
	Message           string             `json:"message"`
	DeploymentConfig  DeploymentConfig   `json:"deployment_config"`
	TargetNumReplicas int                `json:"target_num_replicas"`
	RequiredResources map[string]float64 `json:"required_resources"`
	// Replicas are the live replicas: STARTING, RUNNING, STOPPING, UNHEALTHY.
	Replicas          []ReplicaDetails   `json:"replicas"`
	AutoscalingDetail *AutoscalingDetail `json:"autoscaling_detail,omitempty"`
}

// Running counts the RUNNING replicas.
func (d *DeploymentDetails) Running() int {
	n := 0
	for _, r := range d.Replicas {
		if r.State == "RUNNING" {
			n++
		}
	}
	return n
}

// DeploymentConfig is the part of a deployment's applied config that clients commonly
// read; Raw holds all of it.
type DeploymentConfig struct {
	Name string `json:"name"`
	// NumReplicas is a number, "auto", or nil.
	NumReplicas               any             `json:"num_replicas"`
	MaxOngoingRequests        int             `json:"max_ongoing_requests"`
	MaxQueuedRequests         int             `json:"max_queued_requests"`
	ReplicaLimit              int             `json:"replica_limit"`
	UserConfig                any             `json:"user_config,omitempty"`
	AutoscalingConfig         json.RawMessage `json:"autoscaling_config,omitempty"`
	GracefulShutdownWaitLoopS float64         `json:"graceful_shutdown_wait_loop_s"`
	GracefulShutdownTimeoutS  float64         `json:"graceful_shutdown_timeout_s"`
	HealthCheckPeriodS        float64         `json:"health_check_period_s"`
	HealthCheckTimeoutS       float64         `json:"health_check_timeout_s"`
	HealthCheckPath           string          `json:"health_check_path,omitempty"`
	Command                   []string        `json:"command,omitempty"`
	Raw                       json.RawMessage `json:"-"`
}

// UnmarshalJSON keeps the whole object in Raw besides the typed fields.
func (c *DeploymentConfig) UnmarshalJSON(b []byte) error {
	type plain DeploymentConfig
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*c = DeploymentConfig(p)
	c.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON writes Raw when set, so a decoded config round-trips whole.
func (c DeploymentConfig) MarshalJSON() ([]byte, error) {
	if len(c.Raw) > 0 {
		return c.Raw, nil
	}
	type plain DeploymentConfig
	return json.Marshal(plain(c))
}

// ReplicaDetails is one live replica (Ray's ReplicaDetails plus ongoing_requests).
type ReplicaDetails struct {
	ReplicaID       string  `json:"replica_id"`
	State           string  `json:"state"` // STARTING, RUNNING, STOPPING, UNHEALTHY
	PID             *int    `json:"pid"`
	ActorName       string  `json:"actor_name"`
	NodeID          string  `json:"node_id"`
	NodeIP          string  `json:"node_ip"`
	StartTimeS      float64 `json:"start_time_s"`
	LogFilePath     string  `json:"log_file_path"`
	OngoingRequests int     `json:"ongoing_requests"`
}

// AutoscalingDetail is Ray's DeploymentAutoscalingDetail; Metrics holds shoal's view
// (decision, window_average, queued, pending_target, pending_since).
type AutoscalingDetail struct {
	ScalingStatus string            `json:"scaling_status"` // UPSCALING, DOWNSCALING, STABLE
	Decisions     []json.RawMessage `json:"decisions"`
	Metrics       map[string]any    `json:"metrics"`
	MetricsHealth string            `json:"metrics_health"`
	Errors        []string          `json:"errors"`
}

// ScaleResult is the answer of a scale request.
type ScaleResult struct {
	Message                   string `json:"message"`
	Application               string `json:"application"`
	Deployment                string `json:"deployment"`
	TargetNumReplicas         int    `json:"target_num_replicas"`
	PreviousTargetNumReplicas int    `json:"previous_target_num_replicas"`
}

// ScaleInfo is a deployment's current scale (GET on the scale route).
type ScaleInfo struct {
	Application       string       `json:"application"`
	Deployment        string       `json:"deployment"`
	TargetNumReplicas int          `json:"target_num_replicas"`
	RunningReplicas   int          `json:"running_replicas"`
	Status            string       `json:"status"` // the deployment's status, e.g. HEALTHY
	Message           string       `json:"message"`
	Mode              string       `json:"mode"` // external, autoscaling, fixed
	ReplicaLimit      int          `json:"replica_limit"`
	TargetSource      string       `json:"target_source"` // config, webhook, autoscaler
	Audit             []AuditEntry `json:"audit"`         // newest first, at most 100
	// AuditError is set, with Audit empty, when shoal could not read the audit log; the
	// rest is current all the same.
	AuditError string `json:"audit_error,omitempty"`
}

// AuditEntry is one call of the scale webhook, accepted or refused.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	Application string    `json:"application"`
	Deployment  string    `json:"deployment"`
	From        int       `json:"from"`  // -1 when unknown
	To          int       `json:"to"`    // -1 when the request had no valid target
	Token       string    `json:"token"` // the token's id ("admin", "app:NAME#N"), "" or "invalid"
	Client      string    `json:"client"`
	Source      string    `json:"source"`
	Result      string    `json:"result"`
	Status      int       `json:"status"`
}
