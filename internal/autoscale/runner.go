package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
)

// Load is the proxy's view of a deployment's traffic right now.
type Load interface {
	// DeploymentLoad returns the requests in flight on the deployment's replicas and the
	// requests waiting for one.
	DeploymentLoad(key backend.Key) (ongoing, queued int)
}

// Targets is what the runner needs of the controller.
type Targets interface {
	Snapshot() *controller.Snapshot
	SetTarget(ctx context.Context, app, dep string, n int, src controller.Source) (int, error)
}

// Runner samples the load of every autoscaled deployment, feeds Decide, and sets the
// targets it decides. Its clock is injected: Step is what a tick does at a given time.
type Runner struct {
	load    Load
	targets Targets
	logger  *slog.Logger
	tick    time.Duration
	now     func() time.Time

	mu sync.Mutex // guards deps
	// deps holds the decision memory of each autoscaled deployment.
	deps map[backend.Key]*tracked
}

type tracked struct {
	window Window
	state  State
	// cfgKey identifies the deployment's version and config: when it changes the
	// decision state starts over (Ray resets its policy state when a redeploy changes the
	// deployment's config or version, DeploymentInfo.config_changed).
	cfgKey string
	detail controller.AutoscalingDetail
}

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Load    Load
	Targets Targets
	Logger  *slog.Logger
	// Tick is how often load is sampled and decisions taken; default 100ms. Delays do
	// not depend on it: they are measured on the clock.
	Tick time.Duration
	Now  func() time.Time // default time.Now
}

// NewRunner returns a Runner; call Run to start it.
func NewRunner(o RunnerOptions) *Runner {
	r := &Runner{load: o.Load, targets: o.Targets, logger: o.Logger, tick: o.Tick, now: o.Now, deps: map[backend.Key]*tracked{}}
	if r.tick <= 0 {
		r.tick = 100 * time.Millisecond
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Run ticks until ctx is done.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Step(ctx, r.now())
		}
	}
}

// Detail returns the autoscaler's view of a deployment, or nil when it does not
// autoscale.
func (r *Runner) Detail(key backend.Key) *controller.AutoscalingDetail {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.deps[key]
	if !ok {
		return nil
	}
	d := t.detail
	return &d
}

// Step samples every autoscaled deployment once at now and applies the decisions.
func (r *Runner) Step(ctx context.Context, now time.Time) {
	snap := r.targets.Snapshot()
	seen := map[backend.Key]bool{}
	type change struct {
		key  backend.Key
		from int
		to   int
	}
	var changes []change

	r.mu.Lock()
	for _, app := range snap.Applications {
		if app.Deleting {
			continue
		}
		for _, dep := range app.Deployments {
			cfg := dep.Config.AutoscalingConfig
			if dep.Mode != controller.ModeAutoscaling || cfg == nil {
				continue
			}
			seen[dep.Key] = true
			key := cfgKey(dep)
			t := r.deps[dep.Key]
			if t == nil || t.cfgKey != key {
				if t == nil {
					t = &tracked{}
					r.deps[dep.Key] = t
				}
				t.cfgKey = key
				t.state = State{}
			}
			ongoing, queued := r.load.DeploymentLoad(dep.Key)
			t.window.Add(now, float64(ongoing))
			avg := t.window.Average(now, config.Seconds(cfg.LookBackPeriodS))
			d := Decide(cfg, t.state, Input{Target: dep.Target, Running: dep.Running(), Ongoing: avg, Queued: queued}, now)
			t.state = d.State
			t.detail = controller.AutoscalingDetail{
				Decision:      d.Desired,
				WindowAverage: avg,
				Queued:        queued,
				PendingSince:  d.PendingSince,
				PendingTarget: d.Target,
			}
			if !d.PendingSince.IsZero() {
				t.detail.PendingTarget = d.Desired
				t.detail.PendingDelayS = d.PendingDelay.Seconds()
			}
			if d.Target != dep.Target {
				changes = append(changes, change{dep.Key, dep.Target, d.Target})
			}
		}
	}
	for k := range r.deps {
		if !seen[k] {
			delete(r.deps, k)
		}
	}
	r.mu.Unlock()

	for _, c := range changes {
		_, err := r.targets.SetTarget(ctx, c.key.App, c.key.Deployment, c.to, controller.SourceAutoscaler)
		switch {
		case err == nil:
			r.logger.Info("autoscaling", "deployment", c.key.String(), "from", c.from, "to", c.to)
		case errors.Is(err, controller.ErrNotFound), errors.Is(err, controller.ErrDeleting):
			// Redeployed or deleted since the snapshot: the next tick sees it.
		default:
			r.logger.Warn("autoscaling: cannot set target", "deployment", c.key.String(), "to", c.to, "err", err)
		}
	}
}

func cfgKey(d *controller.Deployment) string {
	// The whole deployment config, as Ray compares deployment_config as a whole: a new
	// max_ongoing_requests restarts the delays as a new autoscaling_config does.
	b, _ := json.Marshal(d.Config)
	return d.Version + "|" + string(b)
}
