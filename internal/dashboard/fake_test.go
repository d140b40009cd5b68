package dashboard

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

// fakeIntents is a controller.Intents whose snapshot the test edits.
type fakeIntents struct {
	mu      sync.Mutex // guards every field below
	snap    *controller.Snapshot
	changed chan struct{} // closed and replaced on every publish
	tokens  map[string]store.Token
	audit   []store.AuditEntry // oldest first
	sets    []setCall
	rotated int
}

type setCall struct {
	app, dep string
	n        int
	src      controller.Source
}

var _ controller.Intents = (*fakeIntents)(nil)

var fakeStart = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// newFake returns two applications like the quickstart's: echo with the external scaler
// (model: two RUNNING replicas) and files with a fixed count (static: one).
func newFake() *fakeIntents { return newFakeAt(fakeStart) }

// newFakeAt is newFake with its snapshot taken at start.
func newFakeAt(start time.Time) *fakeIntents {
	f := &fakeIntents{changed: make(chan struct{}), tokens: map[string]store.Token{
		"echo": {ID: "app:echo#1", Secret: "shoal_app_first_secret_0001", Created: start},
	}}
	replica := func(app, dep, id string, pid int, state backend.State) backend.Replica {
		return backend.Replica{
			ID: id, Key: backend.Key{App: app, Deployment: dep}, State: state, PID: pid,
			StartTime: start.Add(-90 * time.Second), Address: "127.0.0.1:1",
		}
	}
	f.snap = &controller.Snapshot{
		Generation:  1,
		Time:        start,
		HTTPOptions: config.HTTPOptions{Host: "127.0.0.1", Port: 8000},
		Applications: []*controller.Application{
			{
				Name: "echo", RoutePrefix: "/echo", Status: controller.AppRunning, ExternalScalerEnabled: true, Ingress: "model",
				Deployments: []*controller.Deployment{{
					Key: backend.Key{App: "echo", Deployment: "model"}, Name: "model",
					Status: controller.DeploymentHealthy, StatusTrigger: "CONFIG_UPDATE_COMPLETED",
					Config: config.Deployment{ReplicaLimit: 10}, Mode: controller.ModeExternal,
					Target: 2, TargetSource: controller.SourceConfig,
					Replicas: []backend.Replica{
						replica("echo", "model", "r-echo-1", 4101, backend.Running),
						replica("echo", "model", "r-echo-2", 4102, backend.Running),
					},
				}},
			},
			{
				Name: "files", RoutePrefix: "/files", Status: controller.AppRunning, Ingress: "static",
				Deployments: []*controller.Deployment{{
					Key: backend.Key{App: "files", Deployment: "static"}, Name: "static",
					Status: controller.DeploymentHealthy, StatusTrigger: "CONFIG_UPDATE_COMPLETED",
					Config: config.Deployment{ReplicaLimit: 1000}, Mode: controller.ModeFixed,
					Target: 1, TargetSource: controller.SourceConfig,
					Replicas: []backend.Replica{replica("files", "static", "r-files-1", 4201, backend.Running)},
				}},
			},
		},
	}
	return f
}

// update publishes a copy of the snapshot changed by edit, one generation later.
func (f *fakeIntents) update(edit func(s *controller.Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(edit)
}

// publish does update's work; f.mu is held.
func (f *fakeIntents) publish(edit func(s *controller.Snapshot)) {
	s := *f.snap
	s.Applications = nil
	for _, a := range f.snap.Applications {
		ac := *a
		ac.Deployments = nil
		for _, d := range a.Deployments {
			dc := *d
			dc.Replicas = append([]backend.Replica(nil), d.Replicas...)
			ac.Deployments = append(ac.Deployments, &dc)
		}
		s.Applications = append(s.Applications, &ac)
	}
	edit(&s)
	s.Generation++
	f.snap = &s
	close(f.changed)
	f.changed = make(chan struct{})
}

// setRunning makes a deployment run n RUNNING replicas.
func (f *fakeIntents) setRunning(app, dep string, n int, now time.Time) {
	f.update(func(s *controller.Snapshot) {
		s.Time = now
		d := s.App(app).Deployment(dep)
		d.Replicas = nil
		for i := range n {
			d.Replicas = append(d.Replicas, backend.Replica{
				ID: fmt.Sprintf("r-%s-%d", app, i+1), Key: d.Key, State: backend.Running,
				PID: 5000 + i, StartTime: now.Add(-time.Minute),
			})
		}
	})
}

func (f *fakeIntents) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeIntents) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	for {
		f.mu.Lock()
		s, ch := f.snap, f.changed
		f.mu.Unlock()
		if s.Generation > gen {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *fakeIntents) Deploy(context.Context, *config.Config) error { return nil }
func (f *fakeIntents) DeleteAll(context.Context) error              { return nil }

func (f *fakeIntents) SetTarget(_ context.Context, app, dep string, n int, src controller.Source) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.snap.App(app)
	if a == nil || a.Deployment(dep) == nil {
		return 0, controller.ErrNotFound
	}
	d := a.Deployment(dep)
	switch {
	case src == controller.SourceWebhook && !a.ExternalScalerEnabled:
		return 0, controller.ErrScalerDisabled
	case n < 0:
		return 0, controller.ErrNegative
	case n > d.Config.ReplicaLimit:
		return 0, controller.ErrOverLimit
	}
	prev := d.Target
	f.sets = append(f.sets, setCall{app, dep, n, src})
	f.publish(func(s *controller.Snapshot) {
		d := s.App(app).Deployment(dep)
		d.Target, d.TargetSource = n, src
	})
	return prev, nil
}

func (f *fakeIntents) lastSet() (setCall, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sets) == 0 {
		return setCall{}, 0
	}
	return f.sets[len(f.sets)-1], len(f.sets)
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
	m := make(map[string]store.Token, len(f.tokens))
	for k, v := range f.tokens {
		m[k] = v
	}
	return m
}

func (f *fakeIntents) RotateToken(_ context.Context, app string) (store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tokens[app]; !ok {
		return store.Token{}, controller.ErrNotFound
	}
	f.rotated++
	t := store.Token{
		ID:      fmt.Sprintf("app:%s#%d", app, f.rotated+1),
		Secret:  fmt.Sprintf("shoal_app_rotated_secret_%04d", f.rotated),
		Created: f.snap.Time,
	}
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
	var out []store.AuditEntry
	for i := len(f.audit) - 1; i >= 0 && len(out) < limit; i-- {
		if e := f.audit[i]; e.App == app && (dep == "" || e.Deployment == dep) {
			out = append(out, e)
		}
	}
	return out, nil
}
