package config

import "time"

// Config is a whole deployed configuration: Ray Serve's schema plus shoal's runtime
// fields. A Config returned by Load or Parse has every default filled in and has passed
// Validate; treat it as read-only.
type Config struct {
	HTTPOptions  HTTPOptions   `json:"http_options"`
	Applications []Application `json:"applications"`
	// Scalers are the ready-made external scalers `shoal start` runs next to the proxy
	// (shoal's field, not Ray's). Empty by default.
	Scalers Scalers `json:"scalers,omitzero"`
}

// Scalers lists the scaler files `shoal start` runs, by kind: each file is the YAML
// that `shoal scaler prometheus` or `shoal scaler schedule` reads.
type Scalers struct {
	Prometheus []ScalerRef `json:"prometheus,omitempty"`
	Schedule   []ScalerRef `json:"schedule,omitempty"`
}

// ScalerRef is one scaler run by `shoal start`.
type ScalerRef struct {
	// Config is the scaler's YAML file, made absolute against the config file's
	// directory. Its "shoal:" section is not used: shoal points the scaler at its own
	// proxy with each application's token.
	Config string `json:"config"`
}

// HTTPOptions configures the proxy listener (Ray's http_options).
type HTTPOptions struct {
	Host string `json:"host"` // default "127.0.0.1"
	Port int    `json:"port"` // default 8000
	// RequestTimeoutS bounds how long a request may wait for a replica and be served,
	// in seconds. Default 60. Ray's default is "no timeout"; shoal bounds the wait so a
	// deployment left at 0 replicas cannot hold clients forever.
	RequestTimeoutS float64 `json:"request_timeout_s"`
	SSLKeyfile      string  `json:"ssl_keyfile,omitempty"`
	SSLCertfile     string  `json:"ssl_certfile,omitempty"`
	// KeepAliveTimeoutS is Ray's keep_alive_timeout_s: idle client connections are closed
	// after it. Default 5 (Ray's).
	KeepAliveTimeoutS float64 `json:"keep_alive_timeout_s"`
}

// RequestTimeout is RequestTimeoutS as a duration.
func (h HTTPOptions) RequestTimeout() time.Duration { return Seconds(h.RequestTimeoutS) }

// Application is one entry of applications[].
type Application struct {
	Name string `json:"name"`
	// RoutePrefix is where the proxy routes the application's HTTP traffic. Default "/".
	RoutePrefix string `json:"route_prefix"`
	// ImportPath is Ray's "module:attr"; when the ingress deployment has no command, it is
	// run as an ASGI app under uvicorn (see Deployment.Command).
	ImportPath            string       `json:"import_path,omitempty"`
	RuntimeEnv            RuntimeEnv   `json:"runtime_env,omitempty"`
	ExternalScalerEnabled bool         `json:"external_scaler_enabled"`
	Args                  any          `json:"args,omitempty"` // Ray's builder args, passed as SHOAL_APP_ARGS (JSON)
	Deployments           []Deployment `json:"deployments"`
}

// RuntimeEnv is the part of Ray's runtime_env that has a meaning for local processes.
type RuntimeEnv struct {
	WorkingDir string            `json:"working_dir,omitempty"`
	EnvVars    map[string]string `json:"env_vars,omitempty"`
}

// Deployment is one entry of applications[].deployments[].
type Deployment struct {
	Name string `json:"name"`
	// NumReplicas is a count, "auto", or unset (Ray's default: 1).
	NumReplicas NumReplicas `json:"num_replicas"`
	// Command is the replica's argv; "${VAR}" in it expands from the replica environment.
	// Empty only on an ingress deployment of an application with an import_path: then
	// Load sets it to python3 -m uvicorn <import_path> --host 127.0.0.1 --port ${PORT}
	// and CommandFromImportPath is true.
	Command               []string          `json:"command,omitempty"`
	CommandFromImportPath bool              `json:"-"`
	Env                   map[string]string `json:"env,omitempty"`
	// WorkingDir is where the replica runs; relative paths are resolved against the
	// config file's directory by Load. Default: the application's runtime_env.working_dir,
	// else the config file's directory (ParseOver: else the directory it runs in).
	WorkingDir      string `json:"working_dir,omitempty"`
	HealthCheckPath string `json:"health_check_path,omitempty"` // "" = TCP connect
	Ingress         bool   `json:"ingress,omitempty"`
	// Image is the container image of the replicas; the Kubernetes backend requires it,
	// the process backend ignores it.
	Image string `json:"image,omitempty"`
	// Resources, NodeSelector and ServiceAccount shape a replica's pod on the Kubernetes
	// backend; the process backend ignores them. Empty by default.
	Resources      Resources         `json:"resources,omitzero"`
	NodeSelector   map[string]string `json:"node_selector,omitempty"`
	ServiceAccount string            `json:"service_account,omitempty"`

	MaxOngoingRequests        int     `json:"max_ongoing_requests"`          // default 5
	MaxQueuedRequests         int     `json:"max_queued_requests"`           // default -1 (unbounded)
	GracefulShutdownWaitLoopS float64 `json:"graceful_shutdown_wait_loop_s"` // default 2
	GracefulShutdownTimeoutS  float64 `json:"graceful_shutdown_timeout_s"`   // default 20
	HealthCheckPeriodS        float64 `json:"health_check_period_s"`         // default 10
	HealthCheckTimeoutS       float64 `json:"health_check_timeout_s"`        // default 30
	ReplicaLimit              int     `json:"replica_limit"`                 // default 1000

	UserConfig        any                `json:"user_config,omitempty"`
	AutoscalingConfig *AutoscalingConfig `json:"autoscaling_config,omitempty"`
}

// Resources are a replica's compute requests and limits, in Kubernetes quantities by
// resource name: {"cpu": "500m", "memory": "1Gi"}.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// NumReplicas is num_replicas: an integer, the string "auto", or unset.
type NumReplicas struct {
	Value int  // the count when Set && !Auto; Load sets 1 (the default) when unset
	Auto  bool // "auto": autoscaling with Ray's defaults
	Set   bool // false when the field was absent
}

// Autoscaled reports whether the deployment scales itself (autoscaling_config or "auto").
func (d *Deployment) Autoscaled() bool { return d.AutoscalingConfig != nil }

// InitialTarget is the replica count a deployment starts with on its first deploy:
// num_replicas, or for an autoscaled deployment initial_replicas, else min_replicas.
func (d *Deployment) InitialTarget() int {
	if a := d.AutoscalingConfig; a != nil {
		if a.InitialReplicas != nil {
			return *a.InitialReplicas
		}
		return a.MinReplicas
	}
	if d.NumReplicas.Set && !d.NumReplicas.Auto {
		return d.NumReplicas.Value
	}
	return 1
}

// AutoscalingConfig is Ray's autoscaling_config with its defaults (SPEC §8).
// Load fills it in for num_replicas: "auto" too (min 1, max 100, target 2).
type AutoscalingConfig struct {
	MinReplicas           int      `json:"min_replicas"`              // default 1
	MaxReplicas           int      `json:"max_replicas"`              // default 1
	InitialReplicas       *int     `json:"initial_replicas"`          // default null
	TargetOngoingRequests float64  `json:"target_ongoing_requests"`   // default 2
	LookBackPeriodS       float64  `json:"look_back_period_s"`        // default 30
	UpscaleDelayS         float64  `json:"upscale_delay_s"`           // default 30
	DownscaleDelayS       float64  `json:"downscale_delay_s"`         // default 600
	DownscaleToZeroDelayS *float64 `json:"downscale_to_zero_delay_s"` // default null = DownscaleDelayS
	SmoothingFactor       float64  `json:"smoothing_factor"`          // default 1
	UpscalingFactor       *float64 `json:"upscaling_factor"`          // default null = SmoothingFactor
	DownscalingFactor     *float64 `json:"downscaling_factor"`        // default null = SmoothingFactor
	MetricsIntervalS      float64  `json:"metrics_interval_s"`        // default 10
}

// Seconds turns a config value in seconds into a duration.
func Seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
