package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/store"
)

// DefaultResync is how often the loop runs a pass with nothing to wake it. It is only a
// safety net (a lost backend notification, a failed Apply to retry): every backend
// change and every intent runs a pass at once.
const DefaultResync = 5 * time.Second

// maxPasses bounds the plan → apply rounds of one reconcile: a round that acted (applied,
// removed, forgot) is followed by another so the published statuses see its effect.
const maxPasses = 3

// Options configures a Controller.
type Options struct {
	Store   store.Store
	Backend backend.Backend
	Logger  *slog.Logger // default: discard
	// HandleURL returns the SHOAL_HANDLE_URL of an application's replicas; nil leaves
	// the variable unset.
	HandleURL func(app string) string
	Now       func() time.Time // default time.Now
	Resync    time.Duration    // default DefaultResync
}

// Controller owns the desired state: the deployed config, every deployment's target and
// the application tokens. It saves every change in the store before acknowledging it,
// hands specs to the backend, and publishes a Snapshot after every change.
type Controller struct {
	store     store.Store
	backend   backend.Backend
	log       *slog.Logger
	handleURL func(app string) string
	now       func() time.Time
	resync    time.Duration

	mu sync.Mutex // guards st, cfg, gone, goneDeps, mem; held across Save and backend calls
	// st is the durable state exactly as last saved.
	st *store.State
	// cfg is the deployed config (nil before the first deploy); deleted applications are
	// not in it.
	cfg *config.Config
	// gone holds the config of applications being deleted, by name. After a restart only
	// names are known (the store keeps the deployed config alone).
	gone map[string]*config.Application
	// goneDeps holds the config of deployments removed from an application that stays,
	// until they have stopped.
	goneDeps map[backend.Key]*config.Deployment
	// mem is what the loop remembers of each deployment between passes.
	mem map[backend.Key]*memory

	snap atomic.Pointer[Snapshot]

	notifyMu sync.Mutex // guards notify
	// notify is closed and replaced on every publish, waking every Wait at once.
	notify chan struct{}
}

// memory is the per-deployment state of the loop; none of it is durable.
type memory struct {
	applied    *backend.Spec
	removeSent bool
	track      Track
}

var _ Intents = (*Controller)(nil)

// New loads the saved state, re-applies every saved deployment to the backend with its
// saved target, and resumes deleting the applications that were being deleted.
func New(opts Options) (*Controller, error) {
	if opts.Store == nil || opts.Backend == nil {
		return nil, errors.New("controller: a store and a backend are required")
	}
	c := &Controller{
		store:     opts.Store,
		backend:   opts.Backend,
		log:       opts.Logger,
		handleURL: opts.HandleURL,
		now:       opts.Now,
		resync:    opts.Resync,
		gone:      map[string]*config.Application{},
		goneDeps:  map[backend.Key]*config.Deployment{},
		mem:       map[backend.Key]*memory{},
		notify:    make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.resync <= 0 {
		c.resync = DefaultResync
	}

	st, err := c.store.Load()
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	st = cloneState(st)
	if st.Config != nil {
		cfg, err := parseStored(st.Config)
		if err != nil {
			return nil, fmt.Errorf("parse stored config: %w", err)
		}
		c.cfg = cfg
	}
	c.restore(st)
	c.st = st

	c.snap.Store(&Snapshot{Time: c.now(), Config: c.cfg, HTTPOptions: c.httpOptions()})
	c.mu.Lock()
	c.reconcileLocked()
	c.mu.Unlock()
	return c, nil
}

// restore rebuilds the in-memory view of a loaded state. A deployment of the config
// without a saved target (a state written by hand, or cut short) starts from its
// config; a saved deployment that the config no longer has is being removed.
func (c *Controller) restore(st *store.State) {
	now := c.now()
	live := map[string]bool{}
	if c.cfg != nil {
		for i := range c.cfg.Applications {
			a := &c.cfg.Applications[i]
			live[a.Name] = true
			as := st.Apps[a.Name]
			if as == nil || as.Deleting {
				as = &store.AppState{LastDeployed: now}
				st.Apps[a.Name] = as
			}
			if as.Deployments == nil {
				as.Deployments = map[string]*store.DeploymentState{}
			}
			for j := range a.Deployments {
				d := &a.Deployments[j]
				if as.Deployments[d.Name] == nil {
					as.Deployments[d.Name] = nextTarget(nil, nil, d, version(a, d), configNum(d), now)
				}
			}
			for name := range as.Deployments {
				if a.Deployment(name) == nil {
					c.goneDeps[backend.Key{App: a.Name, Deployment: name}] = &config.Deployment{Name: name}
				}
			}
		}
	}
	for name, as := range st.Apps {
		if live[name] {
			continue
		}
		// Not in the config: it was being deleted (or the state was cut short between the
		// two; deleting is the safe reading either way).
		as.Deleting = true
		ga := &config.Application{Name: name, ExternalScalerEnabled: st.Tokens[name] != nil}
		for _, dn := range sortedKeys(as.Deployments) {
			ga.Deployments = append(ga.Deployments, config.Deployment{Name: dn})
		}
		c.gone[name] = ga
	}
}

// Run is the loop: it runs a pass on every backend change and every Resync tick, until
// ctx is done, and then returns nil. Intents need no wake-up: each runs a pass itself,
// under the same lock, as soon as its change is durable, so the snapshot published
// before it returns already shows the change.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.resync)
	defer t.Stop()
	changes := c.backend.Changes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-t.C:
		}
		c.mu.Lock()
		c.reconcileLocked()
		c.mu.Unlock()
	}
}

// Snapshot returns the current snapshot.
func (c *Controller) Snapshot() *Snapshot { return c.snap.Load() }

// Wait returns the first snapshot with a Generation above gen, or ctx's error.
func (c *Controller) Wait(ctx context.Context, gen uint64) (*Snapshot, error) {
	for {
		// Take the channel before reading the snapshot: a publish in between closes it.
		c.notifyMu.Lock()
		ch := c.notify
		c.notifyMu.Unlock()
		if s := c.snap.Load(); s.Generation > gen {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Deploy makes cfg the deployed config. See Intents.
func (c *Controller) Deploy(ctx context.Context, cfg *config.Config) error {
	if cfg == nil {
		return errors.New("deploy: no config")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deployLocked(cfg)
}

// DeleteAll deletes every application, keeping http_options.
func (c *Controller) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deployLocked(&config.Config{HTTPOptions: c.httpOptions(), Applications: []config.Application{}})
}

// deployLocked computes the state cfg leads to, saves it, then applies it.
//
// Targets follow Ray's rules (see nextTarget): a deployment new to its application
// starts at InitialTarget (source config); a redeploy of a fixed or webhook-scaled
// deployment that changes its version or num_replicas resets the target likewise, and
// any other keeps it (a webhook's target survives a redeploy of the same config or a
// change of only external_scaler_enabled); a redeploy of an autoscaled deployment keeps
// its target, within the new bounds, unless it changes the deployment and sets
// initial_replicas.
//
// An application that is still being deleted and comes back in cfg is a new deploy, as
// in Ray: fresh targets, and its deployments start once the old replicas have stopped
// (Plan waits for the backend to finish removing them). Its token, never deleted, stays.
func (c *Controller) deployLocked(cfg *config.Config) error {
	now := c.now()
	data, err := jsonMarshal(cfg)
	if err != nil {
		return fmt.Errorf("deploy: encode config: %w", err)
	}
	next := cloneState(c.st)
	next.Config = data

	newNames := map[string]bool{}
	for i := range cfg.Applications {
		a := &cfg.Applications[i]
		newNames[a.Name] = true
		prevCfg := c.liveApp(a.Name)
		oldState := next.Apps[a.Name] // deleting or not
		prevState := oldState
		if prevCfg == nil {
			prevState = nil // new, or deleting: a fresh deploy
		}
		as := &store.AppState{LastDeployed: now, Deployments: map[string]*store.DeploymentState{}}
		if prevState != nil && reflect.DeepEqual(*prevCfg, *a) {
			as.LastDeployed = prevState.LastDeployed
		}
		for j := range a.Deployments {
			d := &a.Deployments[j]
			var prev *store.DeploymentState
			var prevDep *config.Deployment
			if prevState != nil {
				if prevDep = prevCfg.Deployment(d.Name); prevDep != nil {
					prev = prevState.Deployments[d.Name]
				}
			}
			as.Deployments[d.Name] = nextTarget(prev, prevDep, d, version(a, d), configNum(d), now)
		}
		if oldState != nil {
			// Deployments dropped from the application stay until they have stopped.
			for name, ds := range oldState.Deployments {
				if a.Deployment(name) == nil {
					as.Deployments[name] = ds
				}
			}
		}
		next.Apps[a.Name] = as
		if a.ExternalScalerEnabled && next.Tokens[a.Name] == nil {
			next.Tokens[a.Name] = newToken(a.Name, 1, now)
		}
	}
	var nowDeleting []string
	for name, as := range next.Apps {
		if !newNames[name] && !as.Deleting {
			as.Deleting = true
			nowDeleting = append(nowDeleting, name)
		}
	}

	if err := c.store.Save(next); err != nil {
		return fmt.Errorf("deploy: save state: %w", err)
	}

	// Durable: now change memory to match.
	for _, name := range nowDeleting {
		if a := c.liveApp(name); a != nil {
			c.gone[name] = a
		}
	}
	for i := range cfg.Applications {
		a := &cfg.Applications[i]
		prevCfg := c.liveApp(a.Name)
		if prevCfg == nil {
			prevCfg = c.gone[a.Name]
		}
		delete(c.gone, a.Name)
		if prevCfg != nil {
			for j := range prevCfg.Deployments {
				if d := &prevCfg.Deployments[j]; a.Deployment(d.Name) == nil {
					c.goneDeps[backend.Key{App: a.Name, Deployment: d.Name}] = d
				}
			}
		}
		for j := range a.Deployments {
			key := backend.Key{App: a.Name, Deployment: a.Deployments[j].Name}
			delete(c.goneDeps, key)
			if m := c.mem[key]; m != nil && m.removeSent {
				// Deployed again after its removal began: it starts over.
				delete(c.mem, key)
			}
		}
	}
	c.st = next
	c.cfg = cfg
	c.log.Info("config deployed", "applications", len(cfg.Applications), "deleting", nowDeleting)
	c.reconcileLocked()
	return nil
}

// nextTarget is a deployment's target after a deploy; prev is its saved state and
// prevDep its config as deployed until now, both nil when the deployment is new (or its
// application was being deleted).
//
// A fixed deployment, or one the scale webhook sets, keeps its target unless its version
// or num_replicas changes, which resets it to num_replicas (Ray's rule for
// target_num_replicas).
//
// An autoscaled deployment follows Ray's AutoscalingState.register: when the redeploy
// changes the deployment (its config or its version, DeploymentInfo.config_changed) and
// initial_replicas is set, the target goes to initial_replicas; otherwise the current
// target is kept. Either way it is then clamped to [min_replicas, max_replicas] at once
// (apply_bounds), not after the autoscaler's delays. So a code update under load keeps
// the replicas the load asked for, instead of falling to min_replicas for the upscale
// delay.
//
// The target's source is config whenever the deploy changes the target (a reset or a
// clamp), and stays the webhook's or the autoscaler's when it keeps it.
func nextTarget(prev *store.DeploymentState, prevDep, d *config.Deployment, ver string, num int, now time.Time) *store.DeploymentState {
	fresh := &store.DeploymentState{
		Target: d.InitialTarget(), Source: string(SourceConfig),
		Version: ver, NumReplicas: num, UpdatedAt: now,
	}
	if prev == nil {
		return fresh
	}
	a := d.AutoscalingConfig
	if a == nil && (prev.Version != ver || prev.NumReplicas != num) {
		return fresh
	}
	if a != nil && a.InitialReplicas != nil && (prev.Version != ver || deploymentChanged(prevDep, d)) {
		return fresh
	}
	ds := *prev
	ds.Version, ds.NumReplicas = ver, num
	// A clamp is this deploy's change of the target, so its source becomes config (the
	// status says CONFIG_UPDATE, the metrics count a config scale request); a target
	// kept as it was keeps its source.
	if a != nil {
		if n := min(max(ds.Target, a.MinReplicas), a.MaxReplicas); n != ds.Target {
			ds.Target, ds.Source, ds.UpdatedAt = n, string(SourceConfig), now
		}
	}
	if d.ReplicaLimit > 0 && ds.Target > d.ReplicaLimit {
		// replica_limit is a hard cap on every target, a kept one included.
		ds.Target, ds.Source, ds.UpdatedAt = d.ReplicaLimit, string(SourceConfig), now
	}
	return &ds
}

// deploymentChanged reports whether a redeploy changes any field of a deployment's
// config (nil prev: it does). The fields are compared as JSON, as the config is stored:
// after a restart the previous config comes from the store, and a number in user_config
// decodes there as float64 where YAML gave an int.
func deploymentChanged(prev, d *config.Deployment) bool {
	if prev == nil {
		return true
	}
	a, errA := json.Marshal(prev)
	b, errB := json.Marshal(d)
	return errA != nil || errB != nil || !bytes.Equal(a, b)
}

// configNum is num_replicas as the reset rule compares it: 0 for an autoscaled
// deployment, else the configured count (1 when unset).
func configNum(d *config.Deployment) int {
	if d.Autoscaled() {
		return 0
	}
	return d.InitialTarget()
}

// SetTarget sets a deployment's target. See Intents. The checks run in the order of the
// scale webhook's table (SPEC §6): unknown, scaler disabled, being deleted, then the
// value itself.
func (c *Controller) SetTarget(ctx context.Context, app, dep string, n int, src Source) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	as := c.st.Apps[app]
	if as == nil || as.Deployments[dep] == nil {
		return 0, fmt.Errorf("application %q deployment %q: %w", app, dep, ErrNotFound)
	}
	key := backend.Key{App: app, Deployment: dep}
	var appCfg *config.Application
	var depCfg *config.Deployment
	if as.Deleting {
		appCfg = c.gone[app]
	} else {
		appCfg = c.liveApp(app)
		depCfg = appCfg.Deployment(dep)
	}
	// An application deleted before a restart is known by name only; it had the scaler
	// enabled if it has a token.
	scaler := c.st.Tokens[app] != nil
	if appCfg != nil {
		scaler = appCfg.ExternalScalerEnabled
	}
	if src == SourceWebhook && !scaler {
		return 0, fmt.Errorf("application %q: %w", app, ErrScalerDisabled)
	}
	if as.Deleting || depCfg == nil || c.goneDeps[key] != nil {
		return 0, fmt.Errorf("application %q deployment %q: %w", app, dep, ErrDeleting)
	}
	if n < 0 {
		return 0, fmt.Errorf("target_num_replicas %d: %w", n, ErrNegative)
	}
	if depCfg.ReplicaLimit > 0 && n > depCfg.ReplicaLimit {
		return 0, &LimitError{Target: n, Limit: depCfg.ReplicaLimit, Deployment: dep}
	}
	prev := as.Deployments[dep].Target
	if n == prev {
		return prev, nil
	}
	next := cloneState(c.st)
	ds := next.Apps[app].Deployments[dep]
	ds.Target, ds.Source, ds.UpdatedAt = n, string(src), c.now()
	if err := c.store.Save(next); err != nil {
		return 0, fmt.Errorf("set target: save state: %w", err)
	}
	c.st = next
	c.log.Info("target set", "application", app, "deployment", dep, "from", prev, "to", n, "source", src)
	c.reconcileLocked()
	return prev, nil
}

// LimitError is SetTarget's error for a target above replica_limit; errors.Is matches
// ErrOverLimit.
type LimitError struct {
	Target, Limit int
	Deployment    string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("target_num_replicas %d is above replica_limit %d of deployment '%s'", e.Target, e.Limit, e.Deployment)
}

func (e *LimitError) Unwrap() error { return ErrOverLimit }

// AppToken returns an application's token.
func (c *Controller) AppToken(app string) (store.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.st.Tokens[app]; t != nil {
		return *t, true
	}
	return store.Token{}, false
}

// Tokens returns every application's token, by application name.
func (c *Controller) Tokens() map[string]store.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]store.Token, len(c.st.Tokens))
	for name, t := range c.st.Tokens {
		out[name] = *t
	}
	return out
}

// RotateToken replaces an application's token with a new secret and the next id
// ("app:NAME#N+1"). An application without a token gets its first.
func (c *Controller) RotateToken(ctx context.Context, app string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	as := c.st.Apps[app]
	if as == nil {
		return store.Token{}, fmt.Errorf("application %q: %w", app, ErrNotFound)
	}
	if as.Deleting {
		return store.Token{}, fmt.Errorf("application %q: %w", app, ErrDeleting)
	}
	seq := 1
	if old := c.st.Tokens[app]; old != nil {
		seq = tokenSeq(old.ID) + 1
	}
	tok := newToken(app, seq, c.now())
	next := cloneState(c.st)
	next.Tokens[app] = tok
	if err := c.store.Save(next); err != nil {
		return store.Token{}, fmt.Errorf("rotate token: save state: %w", err)
	}
	c.st = next
	c.log.Info("token rotated", "application", app, "token", tok.ID)
	return *tok, nil
}

// RecordAudit appends an entry to the audit log.
func (c *Controller) RecordAudit(e store.AuditEntry) error { return c.store.AppendAudit(e) }

// Audit returns the newest audit entries of app (and dep when not "").
func (c *Controller) Audit(app, dep string, limit int) ([]store.AuditEntry, error) {
	return c.store.Audit(app, dep, limit)
}

// reconcileLocked runs plan → apply rounds and publishes the outcome. c.mu is held.
func (c *Controller) reconcileLocked() {
	var res Result
	var observed []backend.Status
	for range maxPasses {
		observed = c.backend.Observe()
		res = Plan(c.desiredLocked(), observed, c.now())
		for key, dr := range res.Deployments {
			c.memFor(key).track = dr.Track
		}
		acted := false
		for _, spec := range res.Apply {
			if err := c.backend.Apply(spec); err != nil {
				c.log.Warn("apply failed; will retry", "deployment", spec.Key.String(), "error", err)
				continue
			}
			c.memFor(spec.Key).applied = &spec
			acted = true
		}
		for _, key := range res.Remove {
			// An unknown deployment is already gone (e.g. after a restart, the new
			// backend never ran it): the next round forgets it.
			if err := c.backend.Remove(key); err != nil && !errors.Is(err, backend.ErrUnknownDeployment) {
				c.log.Warn("remove failed; will retry", "deployment", key.String(), "error", err)
				continue
			}
			c.memFor(key).removeSent = true
			acted = true
		}
		if len(res.Forget) > 0 && c.forgetLocked(res.Forget) {
			acted = true
		}
		if !acted {
			break
		}
	}
	c.publishLocked(res, observed)
}

// forgetLocked drops fully stopped deployments from the state, and applications being
// deleted that have none left (with their tokens). It reports whether the state changed.
func (c *Controller) forgetLocked(keys []backend.Key) bool {
	next := cloneState(c.st)
	for _, key := range keys {
		as := next.Apps[key.App]
		if as == nil {
			continue
		}
		delete(as.Deployments, key.Deployment)
		if as.Deleting && len(as.Deployments) == 0 {
			delete(next.Apps, key.App)
			delete(next.Tokens, key.App)
		}
	}
	if err := c.store.Save(next); err != nil {
		// Nothing is lost: the next pass forgets them again.
		c.log.Warn("save state failed; will retry", "error", err)
		return false
	}
	c.st = next
	for _, key := range keys {
		delete(c.mem, key)
		delete(c.goneDeps, key)
		if c.st.Apps[key.App] == nil {
			delete(c.gone, key.App)
			c.log.Info("application deleted", "application", key.App)
		}
	}
	return true
}

func (c *Controller) memFor(key backend.Key) *memory {
	m := c.mem[key]
	if m == nil {
		m = &memory{}
		c.mem[key] = m
	}
	return m
}

// desiredLocked lists every deployment the controller wants, or wants removed, with its
// memory: live applications in config order, then applications being deleted.
func (c *Controller) desiredLocked() []Desired {
	var out []Desired
	add := func(dd Desired) {
		if m := c.mem[dd.Spec.Key]; m != nil {
			dd.Applied, dd.RemoveSent, dd.Track = m.applied, m.removeSent, m.track
		}
		out = append(out, dd)
	}
	if c.cfg != nil {
		for i := range c.cfg.Applications {
			a := &c.cfg.Applications[i]
			as := c.st.Apps[a.Name]
			for j := range a.Deployments {
				d := &a.Deployments[j]
				ds := as.Deployments[d.Name]
				add(Desired{App: a.Name, Spec: c.buildSpec(a, d, ds.Target), Source: Source(ds.Source)})
			}
			for _, name := range sortedKeys(as.Deployments) {
				if a.Deployment(name) == nil {
					add(Desired{App: a.Name, Spec: backend.Spec{Key: backend.Key{App: a.Name, Deployment: name}}, Deleting: true})
				}
			}
		}
	}
	for _, name := range sortedKeys(c.st.Apps) {
		as := c.st.Apps[name]
		if !as.Deleting {
			continue
		}
		for _, dn := range sortedKeys(as.Deployments) {
			add(Desired{App: name, Spec: backend.Spec{Key: backend.Key{App: name, Deployment: dn}}, Deleting: true, AppDeleting: true})
		}
	}
	return out
}

// publishLocked builds a snapshot from the state and the last plan, and publishes it
// when anything but its time differs from the current one.
func (c *Controller) publishLocked(res Result, observed []backend.Status) {
	replicas := map[backend.Key][]backend.Replica{}
	for _, o := range observed {
		rs := slices.Clone(o.Replicas)
		slices.SortStableFunc(rs, func(a, b backend.Replica) int { return a.StartTime.Compare(b.StartTime) })
		replicas[o.Key] = rs
	}
	var apps []*Application
	mkDep := func(a *config.Application, d *config.Deployment, ds *store.DeploymentState) *Deployment {
		key := backend.Key{App: a.Name, Deployment: d.Name}
		dr := res.Deployments[key]
		out := &Deployment{
			Key: key, Name: d.Name, Status: dr.Status, StatusTrigger: dr.Trigger, Message: dr.Message,
			Config: *d, Mode: ModeFixed, Replicas: replicas[key],
		}
		switch {
		case a.ExternalScalerEnabled:
			out.Mode = ModeExternal
		case d.Autoscaled():
			out.Mode = ModeAutoscaling
		}
		if ds != nil {
			out.Version, out.Target, out.TargetSource = ds.Version, ds.Target, Source(ds.Source)
		}
		return out
	}
	mkApp := func(a *config.Application, as *store.AppState) *Application {
		ar := res.Apps[a.Name]
		out := &Application{
			Name: a.Name, RoutePrefix: a.RoutePrefix, Status: ar.Status, Message: ar.Message,
			LastDeployed: as.LastDeployed, ExternalScalerEnabled: a.ExternalScalerEnabled,
			Deleting: as.Deleting, Config: *a, Ingress: ingressName(a),
		}
		for j := range a.Deployments {
			d := &a.Deployments[j]
			out.Deployments = append(out.Deployments, mkDep(a, d, as.Deployments[d.Name]))
		}
		if !as.Deleting {
			for _, name := range sortedKeys(as.Deployments) {
				if a.Deployment(name) != nil {
					continue
				}
				d := c.goneDeps[backend.Key{App: a.Name, Deployment: name}]
				if d == nil {
					d = &config.Deployment{Name: name}
				}
				out.Deployments = append(out.Deployments, mkDep(a, d, as.Deployments[name]))
			}
		}
		return out
	}
	if c.cfg != nil {
		for i := range c.cfg.Applications {
			a := &c.cfg.Applications[i]
			apps = append(apps, mkApp(a, c.st.Apps[a.Name]))
		}
	}
	for name, as := range c.st.Apps {
		if !as.Deleting {
			continue
		}
		a := c.gone[name]
		if a == nil {
			a = &config.Application{Name: name}
		}
		apps = append(apps, mkApp(a, as))
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })

	cur := c.snap.Load()
	s := &Snapshot{Time: c.now(), Config: c.cfg, HTTPOptions: c.httpOptions(), Applications: apps}
	if cur.Generation > 0 && cur.Config == s.Config && cur.HTTPOptions == s.HTTPOptions &&
		reflect.DeepEqual(cur.Applications, s.Applications) {
		return
	}
	s.Generation = cur.Generation + 1
	c.snap.Store(s)
	c.notifyMu.Lock()
	close(c.notify)
	c.notify = make(chan struct{})
	c.notifyMu.Unlock()
}

// liveApp returns the deployed (not deleting) application's config, or nil.
func (c *Controller) liveApp(name string) *config.Application {
	if c.cfg == nil {
		return nil
	}
	for i := range c.cfg.Applications {
		if c.cfg.Applications[i].Name == name {
			return &c.cfg.Applications[i]
		}
	}
	return nil
}

func (c *Controller) httpOptions() config.HTTPOptions {
	if c.cfg != nil {
		return c.cfg.HTTPOptions
	}
	return defaultHTTPOptions()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
