package process

import (
	"io"
	"log/slog"
	"time"

	"shoal/internal/backend"
)

// Options configures a Backend. Zero fields take the defaults given with each field.
type Options struct {
	// LogDir holds the replica logs, as <LogDir>/<app>/<deployment>/<replica>.log.
	// Default: <os.TempDir()>/shoal-logs.
	LogDir string
	// LogMaxBytes caps a replica's log file; past it the file is rotated to
	// <replica>.log.1 (one old file is kept). Default 10 MiB.
	LogMaxBytes int64
	// Load reports the requests in flight per replica (the proxy). Default: no load.
	// It is called with the backend's lock held, so it must be quick and must not call
	// the Backend.
	Load backend.Load
	// Logger receives the backend's own events. Default: discard.
	Logger *slog.Logger

	// RestartBackoffBase is the delay before the first restart after a crash, doubling
	// with each consecutive crash (default 100ms) up to RestartBackoffMax (default 30s).
	RestartBackoffBase time.Duration
	RestartBackoffMax  time.Duration
	// RestartBackoffReset: a replica that has run healthy this long resets the crash
	// count (default 60s).
	RestartBackoffReset time.Duration
	// FailAfter consecutive crashes of the current version mark the deployment
	// failing (default 3).
	FailAfter int

	// StartupTimeout is the least time a starting replica gets to become ready; the
	// deadline is max(StartupTimeout, Spec.HealthCheckTimeout), after which the replica
	// is killed and counted as a crash. The floor exists because health_check_timeout_s
	// is tuned for liveness, and a server that loads a model may need longer to come up
	// than a running one may stay silent. Default 30s.
	StartupTimeout time.Duration
	// ReadyPollMin and ReadyPollMax bound the readiness poll interval, which starts at
	// the minimum and grows ×1.5 per attempt (defaults 5ms and 200ms).
	ReadyPollMin time.Duration
	ReadyPollMax time.Duration
	// Resync is the safety tick: every deployment is planned again this often even if
	// no event arrives (default 1s).
	Resync time.Duration
}

// Defaults of Options.
const (
	DefaultLogMaxBytes         = 10 << 20
	DefaultRestartBackoffBase  = 100 * time.Millisecond
	DefaultRestartBackoffMax   = 30 * time.Second
	DefaultRestartBackoffReset = 60 * time.Second
	DefaultFailAfter           = 3
	DefaultStartupTimeout      = 30 * time.Second
	DefaultReadyPollMin        = 5 * time.Millisecond
	DefaultReadyPollMax        = 200 * time.Millisecond
	DefaultResync              = time.Second

	// Defaults for Spec fields left zero.
	defaultHealthCheckPeriod  = 10 * time.Second
	defaultHealthCheckTimeout = 30 * time.Second
	// minDrainPoll is the floor of the drain poll interval: a
	// graceful_shutdown_wait_loop_s of 0 polls this often rather than spinning.
	minDrainPoll = 10 * time.Millisecond
	// maxFirstDrainTick bounds the wait after a replica is marked STOPPING before its
	// load is first read, so the proxy has seen the change and routes no new request
	// to it.
	maxFirstDrainTick = 100 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.LogDir == "" {
		o.LogDir = defaultLogDir()
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = DefaultLogMaxBytes
	}
	if o.Load == nil {
		o.Load = backend.NoLoad{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.RestartBackoffBase <= 0 {
		o.RestartBackoffBase = DefaultRestartBackoffBase
	}
	if o.RestartBackoffMax <= 0 {
		o.RestartBackoffMax = DefaultRestartBackoffMax
	}
	if o.RestartBackoffReset <= 0 {
		o.RestartBackoffReset = DefaultRestartBackoffReset
	}
	if o.FailAfter <= 0 {
		o.FailAfter = DefaultFailAfter
	}
	if o.StartupTimeout <= 0 {
		o.StartupTimeout = DefaultStartupTimeout
	}
	if o.ReadyPollMin <= 0 {
		o.ReadyPollMin = DefaultReadyPollMin
	}
	if o.ReadyPollMax <= 0 {
		o.ReadyPollMax = DefaultReadyPollMax
	}
	if o.ReadyPollMax < o.ReadyPollMin {
		o.ReadyPollMax = o.ReadyPollMin
	}
	if o.Resync <= 0 {
		o.Resync = DefaultResync
	}
	return o
}

func (o Options) policy() Policy {
	return Policy{
		BackoffBase:  o.RestartBackoffBase,
		BackoffMax:   o.RestartBackoffMax,
		BackoffReset: o.RestartBackoffReset,
		FailAfter:    o.FailAfter,
	}
}
