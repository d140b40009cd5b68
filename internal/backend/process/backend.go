package process

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"shoal/internal/backend"
)

// Errors of Apply and Remove.
var (
	// ErrClosed is returned after Shutdown.
	ErrClosed = errors.New("backend is shut down")
	// ErrInvalidSpec is returned by Apply for a spec it cannot run.
	ErrInvalidSpec = errors.New("invalid spec")
)

var _ backend.Backend = (*Backend)(nil)

// Backend runs deployments as local processes. Every event (Apply, Remove, a process
// exit, a readiness or health change, a back-off timer, the safety tick) plans the
// affected deployment again with Plan and applies the actions at once.
type Backend struct {
	opts    Options
	policy  Policy
	now     func() time.Time
	forker  *forker
	client  *http.Client
	changes chan struct{} // size 1: a pending signal covers any number of changes

	supervisorStartWait time.Duration // supervisorStartWait; shorter in tests

	replicas sync.WaitGroup // one per replica goroutine
	kill     chan struct{}  // closed when Shutdown's context ends: stops kill at once
	killOnce sync.Once
	stopTick chan struct{} // closed by the first Shutdown: ends the safety tick
	doneOnce sync.Once     // closes the forker once every replica is reaped

	mu     sync.Mutex // guards the fields below and the mutable fields of deployments and replicas
	deps   map[backend.Key]*deployment
	ports  map[int]bool    // ports handed to live (unreaped) replicas
	ids    map[string]bool // ids of live replicas
	closed bool
}

type deployment struct {
	spec     backend.Spec
	removing bool
	replicas map[string]*replica
	crashes  Crashes
	failing  bool
	message  string // the last crash of the current version
	timer    *time.Timer
	wakeAt   time.Time
}

// replica is one replica, from the moment the plan creates it until its process is
// reaped. Its goroutine (run) owns the process.
type replica struct {
	id      string
	key     backend.Key
	version string
	port    int
	addr    string
	created time.Time
	spec    backend.Spec  // as applied when the replica was created: command, env, dir
	stopCh  chan struct{} // closed when a stop is requested

	// Guarded by Backend.mu.
	state        backend.State
	pid          int
	runningSince time.Time
	stopping     bool
	stopAt       time.Time
	message      string
}

// New returns a Backend. It runs until Shutdown.
func New(opts Options) *Backend {
	opts = opts.withDefaults()
	b := &Backend{
		opts:    opts,
		policy:  opts.policy(),
		now:     time.Now,
		forker:  newForker(),
		changes: make(chan struct{}, 1),
		kill:    make(chan struct{}),

		supervisorStartWait: supervisorStartWait,

		stopTick: make(chan struct{}),
		deps:     make(map[backend.Key]*deployment),
		ports:    make(map[int]bool),
		ids:      make(map[string]bool),
	}
	b.client = &http.Client{
		Transport: &http.Transport{
			// Health checks go to loopback only and must never take a proxy, and
			// must not hold idle connections that keep a stopping replica busy.
			Proxy:             nil,
			DialContext:       (&net.Dialer{}).DialContext,
			DisableKeepAlives: true,
		},
		// A redirect is not a 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	go b.tick()
	return b
}

// Apply sets the desired state of a deployment. See backend.Backend.
func (b *Backend) Apply(spec backend.Spec) error {
	if err := validate(spec); err != nil {
		return err
	}
	spec = cloneSpec(spec)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	d := b.deps[spec.Key]
	if d == nil {
		d = &deployment{replicas: make(map[string]*replica)}
		b.deps[spec.Key] = d
	} else if !d.removing && reflect.DeepEqual(d.spec, spec) {
		return nil
	}
	if d.spec.Version != spec.Version {
		// The crash count is per version: a new version starts with a clean slate.
		d.crashes, d.failing, d.message = Crashes{}, false, ""
	}
	d.spec, d.removing = spec, false
	b.reconcileLocked(d)
	b.notify()
	return nil
}

func validate(s backend.Spec) error {
	switch {
	case s.Key.App == "" || s.Key.Deployment == "":
		return fmt.Errorf("%w: empty application or deployment name", ErrInvalidSpec)
	case !safeName(s.Key.App) || !safeName(s.Key.Deployment):
		// The names become directories of the log path.
		return fmt.Errorf("%w: %q: a name cannot contain \"/\" or be \".\" or \"..\"", ErrInvalidSpec, s.Key.String())
	case s.Replicas < 0:
		return fmt.Errorf("%w: %s: negative replica count %d", ErrInvalidSpec, s.Key, s.Replicas)
	case len(s.Command) == 0 || s.Command[0] == "":
		return fmt.Errorf("%w: %s: empty command", ErrInvalidSpec, s.Key)
	}
	return nil
}

func safeName(n string) bool {
	return n != "." && n != ".." && !strings.ContainsAny(n, "/\x00")
}

func cloneSpec(s backend.Spec) backend.Spec {
	s.Command = slices.Clone(s.Command)
	s.Env = maps.Clone(s.Env)
	return s
}

// Remove drains and stops every replica of a deployment. See backend.Backend.
func (b *Backend) Remove(key backend.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	d := b.deps[key]
	if d == nil {
		return fmt.Errorf("%w: %s", backend.ErrUnknownDeployment, key)
	}
	if d.removing {
		return nil
	}
	d.removing = true
	if !b.forgetIfGoneLocked(d) {
		b.reconcileLocked(d)
	}
	b.notify()
	return nil
}

// forgetIfGoneLocked drops a removed deployment once its last replica is gone.
func (b *Backend) forgetIfGoneLocked(d *deployment) bool {
	if !d.removing || len(d.replicas) > 0 {
		return false
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	delete(b.deps, d.spec.Key)
	return true
}

// Observe returns every deployment's observed state, sorted by key, replicas sorted
// by start time. The result is a copy.
func (b *Backend) Observe() []backend.Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.Status, 0, len(b.deps))
	for _, d := range b.deps {
		s := backend.Status{
			Key:      d.spec.Key,
			Version:  d.spec.Version,
			Replicas: make([]backend.Replica, 0, len(d.replicas)),
			Failing:  d.failing,
			Removing: d.removing,
		}
		if d.failing {
			s.Message = d.message
		}
		for _, r := range d.replicas {
			s.Replicas = append(s.Replicas, backend.Replica{
				ID:        r.id,
				Key:       r.key,
				Version:   r.version,
				Address:   r.addr,
				State:     r.state,
				PID:       r.pid,
				StartTime: r.created,
				Message:   r.message,
			})
		}
		sort.Slice(s.Replicas, func(i, j int) bool {
			a, c := s.Replicas[i], s.Replicas[j]
			if !a.StartTime.Equal(c.StartTime) {
				return a.StartTime.Before(c.StartTime)
			}
			return a.ID < c.ID
		})
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, c := out[i].Key, out[j].Key
		if a.App != c.App {
			return a.App < c.App
		}
		return a.Deployment < c.Deployment
	})
	return out
}

// Changes receives a value whenever Observe may have changed. See backend.Backend.
func (b *Backend) Changes() <-chan struct{} { return b.changes }

func (b *Backend) notify() {
	select {
	case b.changes <- struct{}{}:
	default:
	}
}

// Shutdown stops every replica gracefully and in parallel; when ctx ends first, the
// rest are killed. It returns once every replica has been reaped: nil if all stopped
// before ctx ended, else ctx's error. Apply and Remove fail with ErrClosed afterwards.
func (b *Backend) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stopTick)
	}
	now := b.now()
	for _, d := range b.deps {
		if d.timer != nil {
			d.timer.Stop()
		}
		for _, r := range d.replicas {
			b.requestStopLocked(r, now)
		}
	}
	b.mu.Unlock()
	b.notify()

	done := make(chan struct{})
	go func() {
		b.replicas.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		b.killOnce.Do(func() { close(b.kill) })
		<-done
	}
	// Every replica is reaped, so the forker's thread may end.
	b.doneOnce.Do(b.forker.close)
	return err
}

// tick is the safety net: it plans every deployment again every Resync, in case an
// event was lost or a timer is due.
func (b *Backend) tick() {
	t := time.NewTicker(b.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-b.stopTick:
			return
		case <-t.C:
		}
		b.mu.Lock()
		changed := false
		for _, d := range b.deps {
			if b.reconcileLocked(d) {
				changed = true
			}
		}
		b.mu.Unlock()
		if changed {
			b.notify()
		}
	}
}

// replan plans one deployment again (a back-off or reset timer fired).
func (b *Backend) replan(key backend.Key) {
	b.mu.Lock()
	changed := false
	if d := b.deps[key]; d != nil {
		d.timer, d.wakeAt = nil, time.Time{}
		changed = b.reconcileLocked(d)
	}
	b.mu.Unlock()
	if changed {
		b.notify()
	}
}

// reconcileLocked plans d and applies the actions. It reports whether anything
// observable changed.
func (b *Backend) reconcileLocked(d *deployment) bool {
	now := b.now()
	in := Input{
		Target:   d.spec.Replicas,
		Version:  d.spec.Version,
		Replicas: make([]Observed, 0, len(d.replicas)),
		Ongoing:  make(map[string]int, len(d.replicas)),
		Crashes:  d.crashes,
		Now:      now,
	}
	if d.removing || b.closed {
		in.Target = 0
	}
	for _, r := range d.replicas {
		in.Replicas = append(in.Replicas, Observed{
			ID:           r.id,
			Version:      r.version,
			State:        r.state,
			Stopping:     r.stopping,
			Created:      r.created,
			RunningSince: r.runningSince,
		})
		if !r.stopping && r.state == backend.Running {
			if n := b.opts.Load.Ongoing(r.id); n > 0 {
				in.Ongoing[r.id] = n
			}
		}
	}
	a := Plan(b.policy, in)

	changed := false
	if a.ResetCrashes {
		d.crashes, d.message = Crashes{}, ""
		changed = true
	}
	if a.Failing != d.failing {
		d.failing = a.Failing
		changed = true
	}
	for _, id := range a.Stop {
		if r := d.replicas[id]; r != nil && !r.stopping {
			b.requestStopLocked(r, now)
			changed = true
		}
	}
	for range a.Start {
		if err := b.startLocked(d, now); err != nil {
			// Rare (no port): the safety tick tries again.
			b.opts.Logger.Error("cannot start replica", "deployment", d.spec.Key.String(), "err", err)
			break
		}
		changed = true
	}
	b.armLocked(d, a.Wake, now)
	return changed
}

// armLocked makes sure d is planned again at wake.
func (b *Backend) armLocked(d *deployment, wake, now time.Time) {
	if wake.Equal(d.wakeAt) && (d.timer != nil || wake.IsZero()) {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.wakeAt = wake
	if wake.IsZero() {
		return
	}
	key := d.spec.Key
	d.timer = time.AfterFunc(wake.Sub(now), func() { b.replan(key) })
}

// startLocked creates one replica of d's current spec and starts its goroutine.
func (b *Backend) startLocked(d *deployment, now time.Time) error {
	id := newID()
	for b.ids[id] {
		id = newID()
	}
	port, err := freePort(b.ports)
	if err != nil {
		return err
	}
	r := &replica{
		id:      id,
		key:     d.spec.Key,
		version: d.spec.Version,
		port:    port,
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		created: now,
		spec:    d.spec,
		stopCh:  make(chan struct{}),
		state:   backend.Starting,
	}
	d.replicas[id] = r
	b.ports[port] = true
	b.ids[id] = true
	b.replicas.Add(1)
	go b.run(r)
	return nil
}

// requestStopLocked marks r as stopping (STOPPING, or still UNHEALTHY when it is
// replaced for failing) and tells its goroutine. The state change is what takes it
// out of the proxy's routing, so callers publish it at once.
func (b *Backend) requestStopLocked(r *replica, now time.Time) {
	if r.stopping {
		return
	}
	r.stopping, r.stopAt = true, now
	if r.state != backend.Unhealthy {
		r.state = backend.Stopping
	}
	close(r.stopCh)
}

// crashLocked counts a crash of r (an exit it was not asked for, or a failed
// readiness or health check). Only crashes of the current version count.
func (b *Backend) crashLocked(d *deployment, r *replica, msg string, now time.Time) {
	b.opts.Logger.Warn("replica crashed", "deployment", r.key.String(), "replica", r.id, "version", r.version, "message", msg)
	if r.version != d.spec.Version {
		return
	}
	d.crashes = d.crashes.Record(now)
	d.message = msg
}
