package metrics

import (
	"context"
	"sync"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// fakeSource is a Snapshots whose snapshots the test publishes.
type fakeSource struct {
	mu      sync.Mutex // guards cur, changed and waited
	cur     *controller.Snapshot
	changed chan struct{} // closed and replaced on every publish
	waited  uint64        // the highest generation a Wait call started after
}

func newFakeSource(s *controller.Snapshot) *fakeSource {
	s.Generation = 1 // so that settled is false until a reader waits
	return &fakeSource{cur: s, changed: make(chan struct{})}
}

func (f *fakeSource) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeSource) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	for {
		f.mu.Lock()
		s, ch := f.cur, f.changed
		f.waited = max(f.waited, gen)
		f.mu.Unlock()
		if s.Generation > gen {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// publish makes s the current snapshot with the next generation.
func (f *fakeSource) publish(s *controller.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Generation = f.cur.Generation + 1
	f.cur = s
	close(f.changed)
	f.changed = make(chan struct{})
}

// settled reports whether a reader has seen the current snapshot and waits for the next.
func (f *fakeSource) settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waited == f.cur.Generation
}

// fakeLoad is a LoadReader with fixed numbers.
type fakeLoad map[backend.Key][2]int

func (f fakeLoad) DeploymentLoad(key backend.Key) (int, int) { return f[key][0], f[key][1] }

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// dep describes one deployment for snap: its target and replicas as "id:STATE".
type dep struct {
	app, name string
	target    int
	replicas  []string
}

// snap builds a snapshot at t0+at from deployment descriptions.
func snap(at time.Duration, deps ...dep) *controller.Snapshot {
	s := &controller.Snapshot{Time: t0.Add(at)}
	for _, d := range deps {
		a := s.App(d.app)
		if a == nil {
			a = &controller.Application{Name: d.app}
			s.Applications = append(s.Applications, a)
		}
		cd := &controller.Deployment{Key: backend.Key{App: d.app, Deployment: d.name}, Name: d.name, Target: d.target}
		for _, r := range d.replicas {
			id, st, _ := cut(r)
			cd.Replicas = append(cd.Replicas, backend.Replica{ID: id, Key: cd.Key, State: backend.State(st)})
		}
		a.Deployments = append(a.Deployments, cd)
	}
	return s
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// eventually polls cond every few milliseconds until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
