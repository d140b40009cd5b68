package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
)

// fakeIntents is an in-memory controller.Intents with the SetTarget rules of the real
// one, enough to drive every answer of the API.
type fakeIntents struct {
	mu       sync.Mutex // guards every field below
	snap     *controller.Snapshot
	tokens   map[string]store.Token
	audit    []store.AuditEntry
	deployed []*config.Config
	deletes  int
	setErr   error // returned by SetTarget when set
	auditErr error // returned by Audit when set
}

var _ controller.Intents = (*fakeIntents)(nil)

var fakeStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fakeDeployment(app, name string, target, limit int, mode controller.Mode, replicas ...backend.Replica) *controller.Deployment {
	return &controller.Deployment{
		Key:           backend.Key{App: app, Deployment: name},
		Name:          name,
		Status:        controller.DeploymentHealthy,
		StatusTrigger: "CONFIG_UPDATE_COMPLETED",
		Config: config.Deployment{
			Name: name, NumReplicas: config.NumReplicas{Value: target, Set: true},
			Command: []string{"python3", "-m", "http.server", "${PORT}"}, MaxOngoingRequests: 5,
			MaxQueuedRequests: -1, GracefulShutdownWaitLoopS: 2, GracefulShutdownTimeoutS: 20,
			HealthCheckPeriodS: 10, HealthCheckTimeoutS: 30, ReplicaLimit: limit,
		},
		Version:      "v1",
		Mode:         mode,
		Target:       target,
		TargetSource: controller.SourceConfig,
		Replicas:     replicas,
	}
}

func fakeApp(name string, external, deleting bool, deps ...*controller.Deployment) *controller.Application {
	a := &controller.Application{
		Name: name, RoutePrefix: "/" + name, Status: controller.AppRunning,
		LastDeployed: fakeStart, ExternalScalerEnabled: external, Deleting: deleting,
		Ingress: deps[0].Name, Deployments: deps,
	}
	if deleting {
		a.Status = controller.AppDeleting
	}
	a.Config = config.Application{Name: name, RoutePrefix: a.RoutePrefix, ExternalScalerEnabled: external}
	for _, d := range deps {
		a.Config.Deployments = append(a.Config.Deployments, d.Config)
	}
	return a
}

// newFakeIntents has four applications:
//   - my-app: external scaler on, deployment my-deployment (target 1, replica_limit 10,
//     one RUNNING and one STARTING replica), token "my-app-secret";
//   - other: external scaler on, deployment d, token "other-secret";
//   - fixed: external scaler off, deployment d, no token;
//   - going: being deleted, deployment d, token "going-secret".
func newFakeIntents() *fakeIntents {
	myDep := fakeDeployment("my-app", "my-deployment", 1, 10, controller.ModeExternal,
		backend.Replica{ID: "r1", Key: backend.Key{App: "my-app", Deployment: "my-deployment"}, State: backend.Running, PID: 4242, StartTime: fakeStart, Address: "127.0.0.1:40001"},
		backend.Replica{ID: "r2", Key: backend.Key{App: "my-app", Deployment: "my-deployment"}, State: backend.Starting, PID: 4243, StartTime: fakeStart.Add(time.Second)},
	)
	auto := fakeDeployment("other", "auto", 2, 100, controller.ModeAutoscaling)
	auto.Autoscaling = &controller.AutoscalingDetail{Decision: 3, WindowAverage: 5.5, PendingTarget: 3}
	snap := &controller.Snapshot{
		Generation:  7,
		Time:        fakeStart,
		HTTPOptions: config.HTTPOptions{Host: "127.0.0.1", Port: 8000, RequestTimeoutS: 60, KeepAliveTimeoutS: 5},
		Applications: []*controller.Application{
			fakeApp("fixed", false, false, fakeDeployment("fixed", "d", 1, 1000, controller.ModeFixed)),
			fakeApp("going", true, true, fakeDeployment("going", "d", 1, 1000, controller.ModeExternal)),
			fakeApp("my-app", true, false, myDep),
			fakeApp("other", true, false, fakeDeployment("other", "d", 1, 1000, controller.ModeExternal), auto),
		},
	}
	return &fakeIntents{
		snap: snap,
		tokens: map[string]store.Token{
			"my-app": {ID: "app:my-app#1", Secret: "my-app-secret", Created: fakeStart},
			"other":  {ID: "app:other#1", Secret: "other-secret", Created: fakeStart},
			"going":  {ID: "app:going#1", Secret: "going-secret", Created: fakeStart},
		},
	}
}

func (f *fakeIntents) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeIntents) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	return f.Snapshot(), nil
}

func (f *fakeIntents) Deploy(ctx context.Context, cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployed = append(f.deployed, cfg)
	return nil
}

func (f *fakeIntents) DeleteAll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return nil
}

// SetTarget follows the controller's contract and publishes a new snapshot with the
// changed target, so readers see it as they would in shoal.
func (f *fakeIntents) SetTarget(ctx context.Context, app, dep string, n int, src controller.Source) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return 0, f.setErr
	}
	a := f.snap.App(app)
	if a == nil || a.Deployment(dep) == nil {
		return 0, fmt.Errorf("%s/%s: %w", app, dep, controller.ErrNotFound)
	}
	d := a.Deployment(dep)
	switch {
	case src == controller.SourceWebhook && !a.ExternalScalerEnabled:
		return 0, controller.ErrScalerDisabled
	case a.Deleting:
		return 0, controller.ErrDeleting
	case n < 0:
		return 0, controller.ErrNegative
	case n > d.Config.ReplicaLimit:
		return 0, fmt.Errorf("%d > %d: %w", n, d.Config.ReplicaLimit, controller.ErrOverLimit)
	}
	prev := d.Target
	nd := *d
	nd.Target, nd.TargetSource = n, src
	na := *a
	na.Deployments = nil
	for _, x := range a.Deployments {
		if x.Name == dep {
			x = &nd
		}
		na.Deployments = append(na.Deployments, x)
	}
	ns := *f.snap
	ns.Generation++
	ns.Applications = nil
	for _, x := range f.snap.Applications {
		if x.Name == app {
			x = &na
		}
		ns.Applications = append(ns.Applications, x)
	}
	f.snap = &ns
	return prev, nil
}

func (f *fakeIntents) AppToken(app string) (store.Token, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tokens[app]
	return t, ok
}

func (f *fakeIntents) Tokens() map[string]store.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]store.Token, len(f.tokens))
	for k, v := range f.tokens {
		out[k] = v
	}
	return out
}

func (f *fakeIntents) RotateToken(ctx context.Context, app string) (store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.tokens[app]
	if !ok {
		return store.Token{}, controller.ErrNotFound
	}
	var n int
	fmt.Sscanf(old.ID, "app:"+app+"#%d", &n)
	t := store.Token{ID: fmt.Sprintf("app:%s#%d", app, n+1), Secret: fmt.Sprintf("%s-secret-%d", app, n+1), Created: fakeStart}
	f.tokens[app] = t
	return t, nil
}

func (f *fakeIntents) RecordAudit(e store.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, e)
	return nil
}

func (f *fakeIntents) Audit(app, dep string, limit int) ([]store.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.auditErr != nil {
		return nil, f.auditErr
	}
	var out []store.AuditEntry
	for i := len(f.audit) - 1; i >= 0 && len(out) < limit; i-- {
		if e := f.audit[i]; e.App == app && (dep == "" || e.Deployment == dep) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeIntents) audits() []store.AuditEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.AuditEntry(nil), f.audit...)
}
