package config

// Defaults (Ray Serve's, except where a comment says otherwise).
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 8000
	// DefaultRequestTimeoutS is shoal's: Ray's request_timeout_s defaults to none (no
	// timeout). shoal bounds how long a request may wait, so that a deployment left at 0
	// replicas cannot hold its clients forever.
	DefaultRequestTimeoutS   = 60.0
	DefaultKeepAliveTimeoutS = 5.0

	DefaultAppName     = "default" // Ray's SERVE_DEFAULT_APP_NAME
	DefaultRoutePrefix = "/"

	DefaultNumReplicas               = 1
	DefaultMaxOngoingRequests        = 5
	DefaultMaxQueuedRequests         = -1 // unbounded (bounded in time by request_timeout_s)
	DefaultGracefulShutdownWaitLoopS = 2.0
	DefaultGracefulShutdownTimeoutS  = 20.0
	DefaultHealthCheckPeriodS        = 10.0
	DefaultHealthCheckTimeoutS       = 30.0
	// DefaultReplicaLimit is shoal's hard cap on any target of a deployment (config,
	// webhook or autoscaler), so that one bad scale request cannot fork-bomb the machine.
	DefaultReplicaLimit = 1000

	// Autoscaling (SPEC §8, Ray's AutoscalingConfig).
	DefaultMinReplicas           = 1
	DefaultMaxReplicas           = 1
	DefaultTargetOngoingRequests = 2.0
	DefaultLookBackPeriodS       = 30.0
	DefaultUpscaleDelayS         = 30.0
	DefaultDownscaleDelayS       = 600.0
	DefaultSmoothingFactor       = 1.0
	DefaultMetricsIntervalS      = 10.0
	// AutoMaxReplicas is max_replicas for num_replicas: "auto" (Ray's
	// AutoscalingConfig.default()).
	AutoMaxReplicas = 100
)

// DefaultHTTPOptions returns http_options with every default filled in.
func DefaultHTTPOptions() HTTPOptions {
	return HTTPOptions{
		Host:              DefaultHost,
		Port:              DefaultPort,
		RequestTimeoutS:   DefaultRequestTimeoutS,
		KeepAliveTimeoutS: DefaultKeepAliveTimeoutS,
	}
}

// DefaultAutoscalingConfig returns autoscaling_config's defaults (SPEC §8).
func DefaultAutoscalingConfig() AutoscalingConfig {
	return AutoscalingConfig{
		MinReplicas:           DefaultMinReplicas,
		MaxReplicas:           DefaultMaxReplicas,
		TargetOngoingRequests: DefaultTargetOngoingRequests,
		LookBackPeriodS:       DefaultLookBackPeriodS,
		UpscaleDelayS:         DefaultUpscaleDelayS,
		DownscaleDelayS:       DefaultDownscaleDelayS,
		SmoothingFactor:       DefaultSmoothingFactor,
		MetricsIntervalS:      DefaultMetricsIntervalS,
	}
}

// AutoAutoscalingConfig returns what num_replicas: "auto" means: the defaults with
// min 1, max 100, target 2 (Ray's). An autoscaling_config given alongside overrides
// these field by field.
func AutoAutoscalingConfig() AutoscalingConfig {
	a := DefaultAutoscalingConfig()
	a.MinReplicas = 1
	a.MaxReplicas = AutoMaxReplicas
	a.TargetOngoingRequests = 2
	return a
}

func defaultDeployment() Deployment {
	return Deployment{
		MaxOngoingRequests:        DefaultMaxOngoingRequests,
		MaxQueuedRequests:         DefaultMaxQueuedRequests,
		GracefulShutdownWaitLoopS: DefaultGracefulShutdownWaitLoopS,
		GracefulShutdownTimeoutS:  DefaultGracefulShutdownTimeoutS,
		HealthCheckPeriodS:        DefaultHealthCheckPeriodS,
		HealthCheckTimeoutS:       DefaultHealthCheckTimeoutS,
		ReplicaLimit:              DefaultReplicaLimit,
	}
}
