package backend

import (
	"context"
	"errors"
	"time"
)

// State is a replica's state, in Ray's words.
type State string

const (
	Starting  State = "STARTING"
	Running   State = "RUNNING"
	Stopping  State = "STOPPING"
	Unhealthy State = "UNHEALTHY"
)

// Key names one deployment of one application.
type Key struct {
	App        string
	Deployment string
}

func (k Key) String() string { return k.App + "/" + k.Deployment }

// ErrUnknownDeployment is returned for a key the backend does not know.
var ErrUnknownDeployment = errors.New("unknown deployment")

// Spec is the desired state of one deployment as the controller hands it to a backend:
// run Replicas replicas of Version. Everything a replica needs is resolved here; a
// backend reads no config.
type Spec struct {
	Key     Key
	Version string // hash of the runtime fields; a new value means a rolling update
	// Replicas is the target count. 0 is allowed (scale to zero).
	Replicas int

	Command    []string          // argv, "${VAR}" expanded by the backend from Env (PORT included)
	Env        map[string]string // extra variables (SHOAL_* included), unexpanded
	WorkingDir string            // absolute

	HealthCheckPath     string        // "" = TCP connect
	HealthCheckPeriod   time.Duration // liveness interval
	HealthCheckTimeout  time.Duration // failing this long = replaced
	DrainPollInterval   time.Duration // graceful_shutdown_wait_loop_s
	GracefulStopTimeout time.Duration // graceful_shutdown_timeout_s, from the start of the stop

	MaxOngoingRequests int // informational for backends (the proxy enforces it)

	// Image is the container image (Kubernetes backend only).
	Image string
	// Resources, NodeSelector and ServiceAccount shape a replica's pod (Kubernetes
	// backend only; others ignore them).
	Resources      Resources
	NodeSelector   map[string]string
	ServiceAccount string
}

// Resources are a replica's compute requests and limits in Kubernetes quantities, by
// resource name: {"cpu": "500m", "memory": "1Gi"}.
type Resources struct {
	Requests map[string]string
	Limits   map[string]string
}

// Replica is one observed replica.
type Replica struct {
	ID        string // unique for the life of the process; e.g. "a1b2c3d4"
	Key       Key
	Version   string
	Address   string // host:port where it serves HTTP; set once known
	State     State
	PID       int // 0 when not a local process
	StartTime time.Time
	// Message says why a replica is UNHEALTHY or was replaced (exit status, log tail).
	Message string
}

// Status is the observed state of one deployment.
type Status struct {
	Key Key
	// Version is the version of the last applied spec.
	Version string
	// Replicas holds live replicas: STARTING, RUNNING, STOPPING, UNHEALTHY. A replica
	// that has exited and been reaped leaves the list.
	Replicas []Replica
	// Failing is true while replicas of the current version keep crashing or failing
	// health checks (restarts are backing off); Message then carries the last exit
	// status and log lines.
	Failing bool
	Message string
	// Removing is true after Remove, until every replica has stopped; then the
	// deployment leaves Observe's answer.
	Removing bool
}

// Backend runs deployments. Methods are safe for concurrent use and return at once;
// the work happens asynchronously and shows in Observe.
type Backend interface {
	// Apply sets the desired state of a deployment, creating it if new. Applying the same
	// spec twice changes nothing.
	Apply(spec Spec) error
	// Remove drains and stops every replica of a deployment. It returns
	// ErrUnknownDeployment for a key it does not know.
	Remove(key Key) error
	// Observe returns the observed state of every deployment, sorted by key.
	Observe() []Status
	// Changes receives a value (size-1 buffer, never blocks the sender) whenever Observe
	// may have changed. One consumer.
	Changes() <-chan struct{}
	// Shutdown stops every replica gracefully, returning when all have exited or ctx is
	// done (then the rest are killed).
	Shutdown(ctx context.Context) error
}

// Load reports what the proxy knows of a replica's traffic. Backends use it to drain
// (wait until a stopping replica holds no request) and to pick which replicas to stop on
// a scale-down (the fewest ongoing requests first). The proxy implements it.
type Load interface {
	Ongoing(replicaID string) int
}

// NoLoad is a Load that reports no traffic, for a backend running without a proxy.
type NoLoad struct{}

func (NoLoad) Ongoing(string) int { return 0 }
