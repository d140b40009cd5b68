package fake

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"shoal/internal/backend"
)

// Backend is an in-memory backend.Backend for unit tests. Nothing happens on its own:
// the test drives every replica.
//
// Scaling is synchronous. Apply (and every call that changes replicas) reconciles at
// once: missing replicas of the spec's version are added as STARTING, surplus ones are
// dropped (STARTING first, then the newest), and replicas of an older version are dropped
// as soon as the current version has its full count RUNNING (a rolling update that ends
// the moment the test makes the new replicas RUNNING). Remove marks the deployment
// Removing and its replicas STOPPING; FinishRemove drops it, unless SetRemoveImmediately
// made Remove drop it at once.
type Backend struct {
	changes chan struct{}

	mu sync.Mutex // guards everything below
	// deps holds every known deployment by key.
	deps map[backend.Key]*deployment
	// applied records every spec passed to Apply, in order.
	applied []backend.Spec
	// removed records every key passed to Remove (known or not), in order.
	removed []backend.Key
	// removeImmediately makes Remove drop a deployment at once.
	removeImmediately bool
	// applyErr, when set, is returned by Apply instead of doing anything.
	applyErr error
	nextID   int
	// start is the StartTime of the first replica; each next one starts a millisecond later,
	// so replicas sort by start time in creation order.
	start time.Time
}

type deployment struct {
	spec     backend.Spec
	replicas []backend.Replica
	failing  bool
	message  string
	removing bool
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty fake backend.
func New() *Backend {
	return &Backend{
		changes: make(chan struct{}, 1),
		deps:    map[backend.Key]*deployment{},
		start:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// Apply records spec and reconciles the deployment's replicas to it. Applying to a
// deployment that is being removed brings it back.
func (b *Backend) Apply(spec backend.Spec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applyErr != nil {
		return b.applyErr
	}
	spec.Env = maps.Clone(spec.Env)
	spec.Command = slices.Clone(spec.Command)
	b.applied = append(b.applied, spec)
	d := b.deps[spec.Key]
	if d == nil {
		d = &deployment{}
		b.deps[spec.Key] = d
	}
	if d.spec.Version != spec.Version {
		// A new version starts with a clean slate of health.
		d.failing, d.message = false, ""
	}
	d.spec = spec
	d.removing = false
	b.reconcile(d)
	b.notify()
	return nil
}

// Remove marks a deployment Removing and its replicas STOPPING.
func (b *Backend) Remove(key backend.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removed = append(b.removed, key)
	d := b.deps[key]
	if d == nil {
		return fmt.Errorf("remove %s: %w", key, backend.ErrUnknownDeployment)
	}
	if b.removeImmediately {
		delete(b.deps, key)
	} else {
		d.removing = true
		for i := range d.replicas {
			d.replicas[i].State = backend.Stopping
		}
	}
	b.notify()
	return nil
}

// Observe returns every deployment, sorted by key.
func (b *Backend) Observe() []backend.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.Status, 0, len(b.deps))
	for k, d := range b.deps {
		out = append(out, backend.Status{
			Key:      k,
			Version:  d.spec.Version,
			Replicas: slices.Clone(d.replicas),
			Failing:  d.failing,
			Message:  d.message,
			Removing: d.removing,
		})
	}
	slices.SortFunc(out, func(a, b backend.Status) int { return compareKeys(a.Key, b.Key) })
	return out
}

// Changes fires after every change.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

// Shutdown drops every deployment.
func (b *Backend) Shutdown(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.deps)
	b.notify()
	return nil
}

// SetState sets one replica's state. A replica set RUNNING gets an address if it had
// none. It panics on an unknown replica: that is a bug in the test.
func (b *Backend) SetState(key backend.Key, id string, state backend.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, i := b.find(key, id)
	d.replicas[i].State = state
	b.reconcile(d)
	b.notify()
}

// Crash makes a replica exit with msg: it leaves the list and, unless the deployment is
// being removed, a STARTING replacement is added.
func (b *Backend) Crash(key backend.Key, id, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, i := b.find(key, id)
	d.replicas = slices.Delete(d.replicas, i, i+1)
	d.message = msg
	if !d.removing {
		b.reconcile(d)
	}
	b.notify()
}

// Advance makes every STARTING replica RUNNING, then reconciles (old versions leave).
func (b *Backend) Advance() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range b.deps {
		for i := range d.replicas {
			if d.replicas[i].State == backend.Starting {
				d.replicas[i].State = backend.Running
			}
		}
		b.reconcile(d)
	}
	b.notify()
}

// SetFailing marks a deployment Failing with msg (its replicas keep crashing); an empty
// msg clears it.
func (b *Backend) SetFailing(key backend.Key, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.deps[key]
	if d == nil {
		panic("fake: SetFailing of unknown deployment " + key.String())
	}
	d.failing = msg != ""
	d.message = msg
	b.notify()
}

// FinishRemove drops a deployment that is being removed, as when its last replica has
// stopped. It does nothing for a deployment that is not being removed.
func (b *Backend) FinishRemove(key backend.Key) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.deps[key]; d != nil && d.removing {
		delete(b.deps, key)
		b.notify()
	}
}

// SetRemoveImmediately makes Remove drop a deployment at once (no Removing phase).
func (b *Backend) SetRemoveImmediately(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removeImmediately = on
}

// SetApplyError makes every Apply fail with err (nil restores normal behaviour).
func (b *Backend) SetApplyError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applyErr = err
}

// Applied returns every spec passed to Apply, in order.
func (b *Backend) Applied() []backend.Spec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.applied)
}

// Spec returns the last spec applied to key, if the deployment is known.
func (b *Backend) Spec(key backend.Key) (backend.Spec, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.deps[key]
	if d == nil {
		return backend.Spec{}, false
	}
	return d.spec, true
}

// Removed returns every key passed to Remove, in order.
func (b *Backend) Removed() []backend.Key {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.removed)
}

// Replicas returns a deployment's replicas (nil when unknown).
func (b *Backend) Replicas(key backend.Key) []backend.Replica {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.deps[key]; d != nil {
		return slices.Clone(d.replicas)
	}
	return nil
}

func (b *Backend) find(key backend.Key, id string) (*deployment, int) {
	d := b.deps[key]
	if d != nil {
		for i := range d.replicas {
			if d.replicas[i].ID == id {
				return d, i
			}
		}
	}
	panic(fmt.Sprintf("fake: unknown replica %s of %s", id, key))
}

// reconcile brings d's replicas in line with its spec. The caller holds b.mu.
func (b *Backend) reconcile(d *deployment) {
	if d.removing {
		return
	}
	want := d.spec.Replicas
	var current, running []int
	for i, r := range d.replicas {
		if r.Version == d.spec.Version && r.State != backend.Stopping {
			current = append(current, i)
			if r.State == backend.Running {
				running = append(running, i)
			}
		}
	}
	for n := len(current); n < want; n++ {
		b.nextID++
		start := b.start.Add(time.Duration(b.nextID) * time.Millisecond)
		d.replicas = append(d.replicas, backend.Replica{
			ID:        fmt.Sprintf("r%d", b.nextID),
			Key:       d.spec.Key,
			Version:   d.spec.Version,
			Address:   fmt.Sprintf("127.0.0.1:%d", 20000+b.nextID),
			State:     backend.Starting,
			PID:       1000 + b.nextID,
			StartTime: start,
		})
	}
	if surplus := len(current) - want; surplus > 0 {
		// STARTING first, then the newest.
		order := slices.Clone(current)
		slices.SortStableFunc(order, func(x, y int) int {
			sx, sy := d.replicas[x].State == backend.Starting, d.replicas[y].State == backend.Starting
			switch {
			case sx && !sy:
				return -1
			case sy && !sx:
				return 1
			}
			return d.replicas[y].StartTime.Compare(d.replicas[x].StartTime)
		})
		drop := map[int]bool{}
		for _, i := range order[:surplus] {
			drop[i] = true
		}
		d.replicas = deleteIndexes(d.replicas, drop)
	}
	if len(running) >= want {
		// The current version is complete: replicas of other versions leave.
		keep := d.replicas[:0]
		for _, r := range d.replicas {
			if r.Version == d.spec.Version {
				keep = append(keep, r)
			}
		}
		d.replicas = keep
	}
}

func deleteIndexes(rs []backend.Replica, drop map[int]bool) []backend.Replica {
	out := rs[:0]
	for i, r := range rs {
		if !drop[i] {
			out = append(out, r)
		}
	}
	return out
}

// notify signals a change without blocking. The caller holds b.mu.
func (b *Backend) notify() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

func compareKeys(a, b backend.Key) int {
	if a.App != b.App {
		if a.App < b.App {
			return -1
		}
		return 1
	}
	switch {
	case a.Deployment < b.Deployment:
		return -1
	case a.Deployment > b.Deployment:
		return 1
	}
	return 0
}
