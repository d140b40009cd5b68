package controller

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/backend/fake"
	"shoal/internal/config"
	"shoal/internal/store"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingStore counts Saves and fails them on demand.
type countingStore struct {
	store.Store
	mu    sync.Mutex // guards fail, saves
	fail  error
	saves int
}

func (s *countingStore) Save(st *store.State) error {
	s.mu.Lock()
	s.saves++
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.Store.Save(st)
}

func (s *countingStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *countingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

type harness struct {
	t     *testing.T
	c     *Controller
	be    *fake.Backend
	store *countingStore
	clock *clock
}

// start makes a controller on st (a fresh memory store when nil) and runs its loop
// until the test ends.
func start(t *testing.T, st *countingStore, be *fake.Backend) *harness {
	t.Helper()
	if st == nil {
		st = &countingStore{Store: store.NewMemory()}
	}
	if be == nil {
		be = fake.New()
	}
	clk := &clock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	c, err := New(Options{
		Store:     st,
		Backend:   be,
		HandleURL: func(app string) string { return "http://127.0.0.1:8000/-/handle/" + app },
		Now:       clk.Now,
		Resync:    time.Hour, // the tests must pass on backend changes alone
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{t: t, c: c, be: be, store: st, clock: clk}
}

// waitFor waits, boundedly, for a snapshot that satisfies cond.
func (h *harness) waitFor(what string, cond func(*Snapshot) bool) *Snapshot {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := h.c.Snapshot()
	for !cond(s) {
		next, err := h.c.Wait(ctx, s.Generation)
		if err != nil {
			h.t.Fatalf("waiting for %s: %v; last snapshot:\n%s", what, err, dump(s))
		}
		s = next
	}
	return s
}

func (h *harness) deploy(cfg *config.Config) {
	h.t.Helper()
	if err := h.c.Deploy(context.Background(), cfg); err != nil {
		h.t.Fatalf("Deploy: %v", err)
	}
}

func (h *harness) setTarget(app, dep string, n int, src Source) int {
	h.t.Helper()
	prev, err := h.c.SetTarget(context.Background(), app, dep, n, src)
	if err != nil {
		h.t.Fatalf("SetTarget(%s, %s, %d): %v", app, dep, n, err)
	}
	return prev
}

func (h *harness) dep(app, dep string) *Deployment {
	h.t.Helper()
	a := h.c.Snapshot().App(app)
	if a == nil || a.Deployment(dep) == nil {
		h.t.Fatalf("no deployment %s/%s in the snapshot:\n%s", app, dep, dump(h.c.Snapshot()))
	}
	return a.Deployment(dep)
}

func (h *harness) backendReplicas(app, dep string) int {
	h.t.Helper()
	sp, ok := h.be.Spec(backend.Key{App: app, Deployment: dep})
	if !ok {
		h.t.Fatalf("backend has no %s/%s", app, dep)
	}
	return sp.Replicas
}

func dump(s *Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d\n", s.Generation)
	for _, a := range s.Applications {
		fmt.Fprintf(&b, "  %s %s %q deleting=%v\n", a.Name, a.Status, a.Message, a.Deleting)
		for _, d := range a.Deployments {
			fmt.Fprintf(&b, "    %s %s/%s %q target=%d(%s) replicas=%d\n", d.Name, d.Status, d.StatusTrigger, d.Message, d.Target, d.TargetSource, len(d.Replicas))
		}
	}
	return b.String()
}

func dep(name string, n int) config.Deployment {
	return config.Deployment{
		Name:                      name,
		NumReplicas:               config.NumReplicas{Value: n, Set: true},
		Command:                   []string{"srv", "--port", "${PORT}"},
		WorkingDir:                "/srv",
		MaxOngoingRequests:        5,
		MaxQueuedRequests:         -1,
		GracefulShutdownWaitLoopS: 2,
		GracefulShutdownTimeoutS:  20,
		HealthCheckPeriodS:        10,
		HealthCheckTimeoutS:       30,
		ReplicaLimit:              1000,
	}
}

func app(name string, scaler bool, deps ...config.Deployment) config.Application {
	return config.Application{Name: name, RoutePrefix: "/" + name, ExternalScalerEnabled: scaler, Deployments: deps}
}

func cfgOf(apps ...config.Application) *config.Config {
	return &config.Config{
		HTTPOptions:  config.HTTPOptions{Host: "127.0.0.1", Port: 8000, RequestTimeoutS: 60, KeepAliveTimeoutS: 5},
		Applications: apps,
	}
}

func TestDeployHandsTheBackendCompleteSpecs(t *testing.T) {
	h := start(t, nil, nil)
	front := dep("front", 2)
	front.Env = map[string]string{"MODEL": "small"}
	front.UserConfig = map[string]any{"threshold": 0.5}
	front.HealthCheckPath = "/healthz"
	front.Image = "registry.example/front:2"
	front.Resources = config.Resources{Requests: map[string]string{"cpu": "500m"}, Limits: map[string]string{"memory": "1Gi"}}
	front.NodeSelector = map[string]string{"pool": "serving"}
	front.ServiceAccount = "front"
	back := dep("back", 1)
	a := app("shop", true, front, back)
	a.Args = map[string]any{"size": "large"}
	a.RuntimeEnv = config.RuntimeEnv{EnvVars: map[string]string{"REGION": "eu", "MODEL": "overridden"}}
	cfg := cfgOf(a)
	h.deploy(cfg)

	sp, ok := h.be.Spec(backend.Key{App: "shop", Deployment: "front"})
	if !ok {
		t.Fatal("front was not applied")
	}
	wantEnv := map[string]string{
		"MODEL":             "small",
		"REGION":            "eu",
		"SHOAL_APP":         "shop",
		"SHOAL_DEPLOYMENT":  "front",
		"SHOAL_USER_CONFIG": `{"threshold":0.5}`,
		"SHOAL_APP_ARGS":    `{"size":"large"}`,
		"SHOAL_HANDLE_URL":  "http://127.0.0.1:8000/-/handle/shop",
	}
	for k, v := range wantEnv {
		if sp.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, sp.Env[k], v)
		}
	}
	if len(sp.Env) != len(wantEnv) {
		t.Errorf("env = %v, want exactly %v", sp.Env, wantEnv)
	}
	if sp.Replicas != 2 || sp.Version != config.Version(&cfg.Applications[0], &cfg.Applications[0].Deployments[0]) {
		t.Errorf("replicas %d version %q, want 2 and config.Version", sp.Replicas, sp.Version)
	}
	if sp.WorkingDir != "/srv" || sp.HealthCheckPath != "/healthz" || strings.Join(sp.Command, " ") != "srv --port ${PORT}" {
		t.Errorf("spec = %+v", sp)
	}
	if sp.HealthCheckPeriod != 10*time.Second || sp.HealthCheckTimeout != 30*time.Second ||
		sp.DrainPollInterval != 2*time.Second || sp.GracefulStopTimeout != 20*time.Second || sp.MaxOngoingRequests != 5 {
		t.Errorf("durations and limits = %+v", sp)
	}
	// The pod's shape, for the Kubernetes backend; copies, so the backend cannot change
	// the deployed config.
	wantRes := backend.Resources{Requests: map[string]string{"cpu": "500m"}, Limits: map[string]string{"memory": "1Gi"}}
	if sp.Image != "registry.example/front:2" || !reflect.DeepEqual(sp.Resources, wantRes) ||
		!reflect.DeepEqual(sp.NodeSelector, map[string]string{"pool": "serving"}) || sp.ServiceAccount != "front" {
		t.Errorf("image %q resources %+v node selector %v service account %q", sp.Image, sp.Resources, sp.NodeSelector, sp.ServiceAccount)
	}
	same := func(a, b map[string]string) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	if d := cfg.Applications[0].Deployments[0]; same(sp.Resources.Requests, d.Resources.Requests) ||
		same(sp.Resources.Limits, d.Resources.Limits) || same(sp.NodeSelector, d.NodeSelector) {
		t.Error("the spec shares maps with the deployed config")
	}
	bs, _ := h.be.Spec(backend.Key{App: "shop", Deployment: "back"})
	if bs.Env["SHOAL_USER_CONFIG"] != "null" || bs.Env["SHOAL_DEPLOYMENT"] != "back" {
		t.Errorf("back env = %v, want SHOAL_USER_CONFIG null", bs.Env)
	}

	s := h.c.Snapshot()
	sa := s.App("shop")
	if sa == nil || sa.Ingress != "front" || sa.RoutePrefix != "/shop" || !sa.ExternalScalerEnabled ||
		!sa.LastDeployed.Equal(h.clock.Now()) || s.Config != cfg {
		t.Fatalf("snapshot app = %+v", sa)
	}
	d := sa.Deployment("front")
	if d.Mode != ModeExternal || d.Target != 2 || d.TargetSource != SourceConfig || len(d.Replicas) != 2 || d.Version != sp.Version {
		t.Errorf("snapshot deployment = %+v", d)
	}
}

func TestStatusesFollowTheReplicas(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", false, dep("front", 2))))
	key := backend.Key{App: "shop", Deployment: "front"}

	s := h.c.Snapshot()
	if a := s.App("shop"); a.Status != AppDeploying || a.Deployments[0].Status != DeploymentUpdating ||
		a.Deployments[0].StatusTrigger != TriggerConfigUpdateStarted {
		t.Fatalf("right after deploy:\n%s", dump(s))
	}

	h.be.Advance()
	h.waitFor("RUNNING", func(s *Snapshot) bool {
		a := s.App("shop")
		return a.Status == AppRunning && a.Deployments[0].Status == DeploymentHealthy &&
			a.Deployments[0].StatusTrigger == TriggerConfigUpdateCompleted && a.Deployments[0].Running() == 2
	})

	h.setTarget("shop", "front", 3, SourceAutoscaler)
	s = h.c.Snapshot()
	if d := s.App("shop").Deployments[0]; d.Status != DeploymentUpscaling || d.StatusTrigger != TriggerAutoscaling || s.App("shop").Status != AppRunning {
		t.Fatalf("after a scale-up:\n%s", dump(s))
	}
	h.be.Advance()
	h.waitFor("upscale completed", func(s *Snapshot) bool {
		d := s.App("shop").Deployments[0]
		return d.Status == DeploymentHealthy && d.StatusTrigger == TriggerUpscaleCompleted && d.Running() == 3
	})

	h.be.SetFailing(key, "exit status 1: out of memory")
	h.waitFor("UNHEALTHY", func(s *Snapshot) bool {
		a := s.App("shop")
		d := a.Deployments[0]
		return a.Status == AppUnhealthy && d.Status == DeploymentUnhealthy &&
			d.StatusTrigger == TriggerHealthCheckFailed && d.Message == "exit status 1: out of memory"
	})
	h.be.SetFailing(key, "")
	h.waitFor("recovered", func(s *Snapshot) bool { return s.App("shop").Status == AppRunning })
}

func TestAFirstDeployThatCannotStartFails(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", false, dep("front", 1))))
	h.be.SetFailing(backend.Key{App: "shop", Deployment: "front"}, "exit status 2")
	h.waitFor("DEPLOY_FAILED", func(s *Snapshot) bool {
		a := s.App("shop")
		return a.Status == AppDeployFailed && a.Message == "The deployments ['front'] are UNHEALTHY." &&
			a.Deployments[0].StatusTrigger == TriggerReplicaStartupFailed
	})
}

func TestRedeployTargets(t *testing.T) {
	base := func() config.Deployment { return dep("front", 2) }
	cases := []struct {
		name       string
		change     func(a *config.Application)
		wantTarget int
		wantSource Source
	}{
		{"the same config redeployed keeps the webhook's target", func(*config.Application) {}, 5, SourceWebhook},
		{"a change of only external_scaler_enabled keeps it",
			func(a *config.Application) { a.ExternalScalerEnabled = false }, 5, SourceWebhook},
		{"a change outside the runtime fields keeps it",
			func(a *config.Application) { a.Deployments[0].MaxOngoingRequests = 9 }, 5, SourceWebhook},
		{"a new version resets it to num_replicas",
			func(a *config.Application) { a.Deployments[0].Env = map[string]string{"MODEL": "big"} }, 2, SourceConfig},
		{"a new user_config resets it",
			func(a *config.Application) { a.Deployments[0].UserConfig = "x" }, 2, SourceConfig},
		{"a changed num_replicas resets it to the new value",
			func(a *config.Application) { a.Deployments[0].NumReplicas.Value = 3 }, 3, SourceConfig},
		{"a lowered replica_limit caps it",
			func(a *config.Application) { a.Deployments[0].ReplicaLimit = 4 }, 4, SourceConfig},
		{"a replica_limit that still holds it keeps it and its source",
			func(a *config.Application) { a.Deployments[0].ReplicaLimit = 5 }, 5, SourceWebhook},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, nil)
			h.deploy(cfgOf(app("shop", true, base())))
			if prev := h.setTarget("shop", "front", 5, SourceWebhook); prev != 2 {
				t.Fatalf("prev = %d, want 2", prev)
			}
			a := app("shop", true, base())
			tc.change(&a)
			h.deploy(cfgOf(a))
			d := h.dep("shop", "front")
			if d.Target != tc.wantTarget || d.TargetSource != tc.wantSource {
				t.Errorf("target %d (%s), want %d (%s)", d.Target, d.TargetSource, tc.wantTarget, tc.wantSource)
			}
			if got := h.backendReplicas("shop", "front"); got != tc.wantTarget {
				t.Errorf("backend runs %d, want %d", got, tc.wantTarget)
			}
		})
	}
}

// TestAutoscaledRedeployTargets checks Ray's AutoscalingState.register: a redeploy keeps
// the autoscaler's target, clamped to the new bounds at once, unless it changes the
// deployment (config or version) and sets initial_replicas.
func TestAutoscaledRedeployTargets(t *testing.T) {
	auto := func(initial *int) config.Deployment {
		d := dep("front", 0)
		d.NumReplicas = config.NumReplicas{}
		d.AutoscalingConfig = &config.AutoscalingConfig{MinReplicas: 1, MaxReplicas: 10, InitialReplicas: initial, TargetOngoingRequests: 2}
		return d
	}
	two := 2
	bounds := func(lo, hi int) func(*config.Deployment) {
		return func(d *config.Deployment) { d.AutoscalingConfig.MinReplicas, d.AutoscalingConfig.MaxReplicas = lo, hi }
	}
	newEnv := func(d *config.Deployment) { d.Env = map[string]string{"MODEL": "big"} }
	cases := []struct {
		name       string
		initial    *int // initial_replicas of both deploys
		change     func(d *config.Deployment)
		wantTarget int
		wantSource Source
	}{
		{"the same config redeployed keeps the autoscaler's target", nil, func(*config.Deployment) {}, 6, SourceAutoscaler},
		{"a new version alone keeps it", nil, newEnv, 6, SourceAutoscaler},
		{"a new command keeps it", nil, func(d *config.Deployment) { d.Command = []string{"srv2"} }, 6, SourceAutoscaler},
		{"a new autoscaling_config without initial_replicas keeps it", nil,
			func(d *config.Deployment) { d.AutoscalingConfig.UpscaleDelayS = 5 }, 6, SourceAutoscaler},
		{"with initial_replicas, the same config redeployed keeps it", &two, func(*config.Deployment) {}, 6, SourceAutoscaler},
		{"with initial_replicas, a new autoscaling_config goes to initial_replicas", &two,
			func(d *config.Deployment) { d.AutoscalingConfig.UpscaleDelayS = 5 }, 2, SourceConfig},
		{"with initial_replicas, a new max_ongoing_requests goes to initial_replicas", &two,
			func(d *config.Deployment) { d.MaxOngoingRequests = 9 }, 2, SourceConfig},
		// Ray's DeploymentInfo.config_changed counts a new version as a change.
		{"with initial_replicas, a new version goes to initial_replicas", &two, newEnv, 2, SourceConfig},
		// A clamp is the deploy's change: its source is config.
		{"a lower max_replicas clamps it down at once", nil, bounds(1, 4), 4, SourceConfig},
		{"a higher min_replicas clamps it up at once", nil, bounds(8, 9), 8, SourceConfig},
		{"a new version with bounds that exclude it clamps it", nil,
			func(d *config.Deployment) { newEnv(d); bounds(1, 4)(d) }, 4, SourceConfig},
		{"a replica_limit below it clamps it", nil, func(d *config.Deployment) { d.ReplicaLimit = 5 }, 5, SourceConfig},
		{"bounds that still hold it keep it", nil, bounds(1, 20), 6, SourceAutoscaler},
		{"num_replicas in place of autoscaling resets it to num_replicas", nil,
			func(d *config.Deployment) {
				d.AutoscalingConfig = nil
				d.NumReplicas = config.NumReplicas{Value: 3, Set: true}
			}, 3, SourceConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, nil)
			h.deploy(cfgOf(app("shop", false, auto(tc.initial))))
			want := 1
			if tc.initial != nil {
				want = *tc.initial
			}
			if d := h.dep("shop", "front"); d.Target != want || d.Mode != ModeAutoscaling {
				t.Fatalf("first deploy: target %d mode %s, want %d autoscaling", d.Target, d.Mode, want)
			}
			h.setTarget("shop", "front", 6, SourceAutoscaler)

			d := auto(tc.initial)
			tc.change(&d)
			h.deploy(cfgOf(app("shop", false, d)))
			got := h.dep("shop", "front")
			if got.Target != tc.wantTarget || got.TargetSource != tc.wantSource {
				t.Errorf("target %d (%s), want %d (%s)", got.Target, got.TargetSource, tc.wantTarget, tc.wantSource)
			}
			if n := h.backendReplicas("shop", "front"); n != tc.wantTarget {
				t.Errorf("backend runs %d, want %d", n, tc.wantTarget)
			}
		})
	}
}

func TestAnAutoscaledTargetSurvivesARestartAndARedeployOfTheSameConfig(t *testing.T) {
	// After a restart the previous config is the stored JSON, where user_config's 5 is
	// a float64; the redeployed config has the int YAML gives. That is no change.
	st := &countingStore{Store: store.NewMemory()}
	two := 2
	d := dep("front", 0)
	d.NumReplicas = config.NumReplicas{}
	d.UserConfig = map[string]any{"batch": 5}
	d.AutoscalingConfig = &config.AutoscalingConfig{MinReplicas: 1, MaxReplicas: 10, InitialReplicas: &two, TargetOngoingRequests: 2,
		LookBackPeriodS: 30, UpscaleDelayS: 30, DownscaleDelayS: 600, SmoothingFactor: 1, MetricsIntervalS: 10}
	h := start(t, st, nil)
	h.deploy(cfgOf(app("shop", false, d)))
	h.setTarget("shop", "front", 6, SourceAutoscaler)

	h2 := start(t, st, nil)
	h2.deploy(cfgOf(app("shop", false, d)))
	if got := h2.dep("shop", "front"); got.Target != 6 || got.TargetSource != SourceAutoscaler {
		t.Errorf("target after a restart and a redeploy of the same config: %d (%s), want 6 (autoscaler)", got.Target, got.TargetSource)
	}
}

func TestSwitchingTheExternalScalerOffKeepsItsTargetButRefusesIt(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1))))
	h.setTarget("shop", "front", 3, SourceWebhook)

	h.deploy(cfgOf(app("shop", false, dep("front", 1))))
	if d := h.dep("shop", "front"); d.Target != 3 || d.Mode != ModeFixed {
		t.Errorf("target %d mode %s, want 3 fixed", d.Target, d.Mode)
	}
	if _, err := h.c.SetTarget(context.Background(), "shop", "front", 4, SourceWebhook); !errors.Is(err, ErrScalerDisabled) {
		t.Errorf("webhook after switching off: %v, want ErrScalerDisabled", err)
	}
	if h.dep("shop", "front").Target != 3 {
		t.Error("a refused call changed the target")
	}
}

func TestSetTargetChecksInTheWebhookTableOrder(t *testing.T) {
	h := start(t, nil, nil)
	limited := dep("front", 1)
	limited.ReplicaLimit = 1000
	h.deploy(cfgOf(
		app("open", true, limited),
		app("closed", false, dep("front", 1)),
		app("gone-open", true, dep("front", 1)),
		app("gone-closed", false, dep("front", 1)),
	))
	// Delete two of them, leaving their replicas stopping.
	h.deploy(cfgOf(app("open", true, limited), app("closed", false, dep("front", 1))))

	cases := []struct {
		name    string
		app     string
		dep     string
		n       int
		want    error
		wantMsg string
	}{
		{"an unknown application is not found", "nope", "front", 1, ErrNotFound, ""},
		{"an unknown deployment is not found", "open", "nope", 1, ErrNotFound, ""},
		{"a disabled scaler is refused", "closed", "front", 1, ErrScalerDisabled, ""},
		{"a disabled scaler is refused before deletion is", "gone-closed", "front", 1, ErrScalerDisabled, ""},
		{"an application being deleted is refused", "gone-open", "front", 1, ErrDeleting, ""},
		{"a deleted application is refused before a bad value", "gone-open", "front", -1, ErrDeleting, ""},
		{"a negative target is refused", "open", "front", -1, ErrNegative, ""},
		{"a target above replica_limit names the limit", "open", "front", 1200, ErrOverLimit,
			"target_num_replicas 1200 is above replica_limit 1000 of deployment 'front'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.c.SetTarget(context.Background(), tc.app, tc.dep, tc.n, SourceWebhook)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("message %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}

	t.Run("the limit itself and zero are accepted", func(t *testing.T) {
		if prev := h.setTarget("open", "front", 1000, SourceWebhook); prev != 1 {
			t.Errorf("prev = %d, want 1", prev)
		}
		if prev := h.setTarget("open", "front", 0, SourceWebhook); prev != 1000 {
			t.Errorf("prev = %d, want 1000", prev)
		}
		if got := h.backendReplicas("open", "front"); got != 0 {
			t.Errorf("backend runs %d, want 0", got)
		}
	})
	t.Run("the same target again is accepted without a write", func(t *testing.T) {
		before := h.store.count()
		gen := h.c.Snapshot().Generation
		if prev := h.setTarget("open", "front", 0, SourceWebhook); prev != 0 {
			t.Errorf("prev = %d, want 0", prev)
		}
		if h.store.count() != before || h.c.Snapshot().Generation != gen {
			t.Error("an unchanged target was saved or published")
		}
	})
}

func TestTargetIsDurableBeforeSetTargetReturns(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1))))
	h.setTarget("shop", "front", 7, SourceWebhook)
	st, err := h.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	ds := st.Apps["shop"].Deployments["front"]
	if ds.Target != 7 || ds.Source != string(SourceWebhook) || !ds.UpdatedAt.Equal(h.clock.Now()) {
		t.Errorf("saved %+v, want target 7 from the webhook", ds)
	}
	if got := h.backendReplicas("shop", "front"); got != 7 {
		t.Errorf("backend runs %d, want 7", got)
	}
}

func TestDeletingAnApplication(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("keep", false, dep("front", 1)), app("drop", true, dep("front", 1), dep("worker", 2))))
	h.be.Advance()
	h.waitFor("both running", func(s *Snapshot) bool {
		return s.App("keep").Status == AppRunning && s.App("drop").Status == AppRunning
	})

	h.deploy(cfgOf(app("keep", false, dep("front", 1))))
	// DELETING is published before Deploy returns.
	s := h.c.Snapshot()
	drop := s.App("drop")
	if drop == nil || drop.Status != AppDeleting || !drop.Deleting {
		t.Fatalf("right after Deploy:\n%s", dump(s))
	}
	for _, d := range drop.Deployments {
		if d.Status != DeploymentDeleting || d.StatusTrigger != TriggerDeleting {
			t.Errorf("%s is %s/%s, want DELETING", d.Name, d.Status, d.StatusTrigger)
		}
	}
	if s.Config.Applications[0].Name != "keep" || len(s.Config.Applications) != 1 {
		t.Errorf("snapshot config still holds the deleted application")
	}
	if got := h.be.Removed(); len(got) != 2 {
		t.Errorf("removed %v, want both deployments of drop", got)
	}
	st, _ := h.store.Load()
	if !st.Apps["drop"].Deleting {
		t.Error("the store does not say drop is deleting")
	}
	if _, ok := h.c.AppToken("drop"); !ok {
		t.Error("the token went away before the application did")
	}
	if _, err := h.c.SetTarget(context.Background(), "drop", "front", 2, SourceWebhook); !errors.Is(err, ErrDeleting) {
		t.Errorf("scaling a deleting application: %v, want ErrDeleting", err)
	}

	h.be.FinishRemove(backend.Key{App: "drop", Deployment: "front"})
	h.waitFor("front gone", func(s *Snapshot) bool { return len(s.App("drop").Deployments) == 2 && s.App("drop") != nil })
	h.be.FinishRemove(backend.Key{App: "drop", Deployment: "worker"})
	h.waitFor("drop gone", func(s *Snapshot) bool { return s.App("drop") == nil })
	st, _ = h.store.Load()
	if st.Apps["drop"] != nil || st.Tokens["drop"] != nil {
		t.Errorf("the store still holds drop: %+v %+v", st.Apps["drop"], st.Tokens["drop"])
	}
	if _, ok := h.c.AppToken("drop"); ok {
		t.Error("the token outlived the application")
	}
	if a := h.c.Snapshot().App("keep"); a == nil || a.Status != AppRunning {
		t.Error("the other application was disturbed")
	}
}

func TestRemovingADeploymentFromAnApplicationThatStays(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", false, dep("front", 1), dep("old", 1))))
	h.be.Advance()
	h.waitFor("running", func(s *Snapshot) bool { return s.App("shop").Status == AppRunning })

	h.deploy(cfgOf(app("shop", false, dep("front", 1))))
	a := h.c.Snapshot().App("shop")
	if a.Status != AppRunning || a.Deployment("old") == nil || a.Deployment("old").Status != DeploymentDeleting {
		t.Fatalf("after dropping old:\n%s", dump(h.c.Snapshot()))
	}
	if _, err := h.c.SetTarget(context.Background(), "shop", "old", 2, SourceConfig); !errors.Is(err, ErrDeleting) {
		t.Errorf("scaling a removed deployment: %v, want ErrDeleting", err)
	}
	h.be.FinishRemove(backend.Key{App: "shop", Deployment: "old"})
	h.waitFor("old gone", func(s *Snapshot) bool { return s.App("shop").Deployment("old") == nil })
	st, _ := h.store.Load()
	if _, ok := st.Apps["shop"].Deployments["old"]; ok {
		t.Error("the store still holds the removed deployment")
	}
}

func TestDeployingAnApplicationAgainWhileItIsDeleting(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1), dep("worker", 1))))
	h.be.Advance()
	h.setTarget("shop", "front", 4, SourceWebhook)
	tok, _ := h.c.AppToken("shop")

	h.deploy(cfgOf())
	h.deploy(cfgOf(app("shop", true, dep("front", 1))))
	a := h.c.Snapshot().App("shop")
	if a.Deleting || a.Status != AppDeploying {
		t.Fatalf("deployed again:\n%s", dump(h.c.Snapshot()))
	}
	if d := a.Deployment("front"); d.Target != 1 || d.TargetSource != SourceConfig {
		t.Errorf("target %d (%s), want a fresh 1 from the config", d.Target, d.TargetSource)
	}
	key := backend.Key{App: "shop", Deployment: "front"}
	if sp, _ := h.be.Spec(key); sp.Replicas != 4 {
		t.Errorf("the stopping deployment was re-applied (%d replicas) before it stopped", sp.Replicas)
	}

	h.be.FinishRemove(key)
	h.waitFor("started afresh", func(s *Snapshot) bool {
		d := s.App("shop").Deployment("front")
		return len(d.Replicas) == 1 && d.Replicas[0].State == backend.Starting
	})
	if got := h.backendReplicas("shop", "front"); got != 1 {
		t.Errorf("backend runs %d, want 1", got)
	}
	if again, _ := h.c.AppToken("shop"); again != tok {
		t.Error("the token changed though the application was never fully deleted")
	}

	// worker, left out of the new deploy, is still being removed, then leaves.
	workerKey := backend.Key{App: "shop", Deployment: "worker"}
	if d := h.c.Snapshot().App("shop").Deployment("worker"); d == nil || d.Status != DeploymentDeleting {
		t.Fatalf("worker:\n%s", dump(h.c.Snapshot()))
	}
	h.be.FinishRemove(workerKey)
	h.waitFor("worker gone", func(s *Snapshot) bool { return s.App("shop").Deployment("worker") == nil })
	st, _ := h.store.Load()
	if _, ok := st.Apps["shop"].Deployments["worker"]; ok || len(st.Apps["shop"].Deployments) != 1 {
		t.Errorf("saved deployments %v, want front alone", st.Apps["shop"].Deployments)
	}
}

func TestDeleteAllKeepsHTTPOptions(t *testing.T) {
	h := start(t, nil, nil)
	h.be.SetRemoveImmediately(true)
	cfg := cfgOf(app("shop", false, dep("front", 1)))
	cfg.HTTPOptions.Port = 9000
	h.deploy(cfg)
	if err := h.c.DeleteAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := h.waitFor("empty", func(s *Snapshot) bool { return len(s.Applications) == 0 })
	if s.HTTPOptions.Port != 9000 || s.Config == nil || s.Config.HTTPOptions.Port != 9000 {
		t.Errorf("http options %+v, want port 9000 kept", s.HTTPOptions)
	}
}

func TestTokens(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("open", true, dep("front", 1)), app("closed", false, dep("front", 1))))
	tok, ok := h.c.AppToken("open")
	if !ok || tok.ID != "app:open#1" || !strings.HasPrefix(tok.Secret, auth.SecretPrefix) || len(tok.Secret) != len(auth.NewSecret()) || !tok.Created.Equal(h.clock.Now()) {
		t.Fatalf("token = %+v, %v", tok, ok)
	}
	if _, ok := h.c.AppToken("closed"); ok {
		t.Error("an application without the external scaler got a token")
	}
	h.deploy(cfgOf(app("open", true, dep("front", 1)), app("closed", false, dep("front", 1))))
	if again, _ := h.c.AppToken("open"); again != tok {
		t.Error("a redeploy replaced the token")
	}

	rot, err := h.c.RotateToken(context.Background(), "open")
	if err != nil {
		t.Fatal(err)
	}
	if rot.ID != "app:open#2" || rot.Secret == tok.Secret {
		t.Errorf("rotated = %+v, want id #2 and a new secret", rot)
	}
	if all := h.c.Tokens(); len(all) != 1 || all["open"] != rot {
		t.Errorf("Tokens() = %+v", all)
	}
	st, _ := h.store.Load()
	if *st.Tokens["open"] != rot {
		t.Error("the rotated token is not saved")
	}
	if _, err := h.c.RotateToken(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotating an unknown application: %v", err)
	}
}

func TestAuditPassesThrough(t *testing.T) {
	h := start(t, nil, nil)
	e := store.AuditEntry{Time: h.clock.Now(), App: "shop", Deployment: "front", From: 1, To: 2, TokenID: "admin", Result: "ok", Status: 200}
	if err := h.c.RecordAudit(e); err != nil {
		t.Fatal(err)
	}
	got, err := h.c.Audit("shop", "front", 10)
	if err != nil || len(got) != 1 || got[0].To != 2 {
		t.Errorf("Audit = %+v, %v", got, err)
	}
}

func TestARestartRestoresConfigTargetsAndDeletions(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	h := start(t, st, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1)), app("drop", false, dep("front", 1))))
	h.setTarget("shop", "front", 4, SourceWebhook)
	h.deploy(cfgOf(app("shop", true, dep("front", 1)))) // drop is now deleting
	tok, _ := h.c.AppToken("shop")
	before, _ := h.be.Spec(backend.Key{App: "shop", Deployment: "front"})

	// A second backend still running drop (as Kubernetes would be).
	be2 := fake.New()
	dropKey := backend.Key{App: "drop", Deployment: "front"}
	if err := be2.Apply(backend.Spec{Key: dropKey, Version: "old", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	h2 := start(t, st, be2)

	s := h2.c.Snapshot()
	if s.Config == nil || len(s.Config.Applications) != 1 || s.Config.Applications[0].Name != "shop" {
		t.Fatalf("restored config:\n%s", dump(s))
	}
	if d := h2.dep("shop", "front"); d.Target != 4 || d.TargetSource != SourceWebhook {
		t.Errorf("restored target %d (%s), want 4 (webhook)", d.Target, d.TargetSource)
	}
	if after, _ := be2.Spec(backend.Key{App: "shop", Deployment: "front"}); !reflect.DeepEqual(after, before) {
		t.Errorf("re-applied spec differs from the one before the restart:\n got %+v\nwant %+v", after, before)
	}
	if a := s.App("drop"); a == nil || a.Status != AppDeleting {
		t.Fatalf("drop is not DELETING after the restart:\n%s", dump(s))
	}
	if again, _ := h2.c.AppToken("shop"); again != tok {
		t.Error("the token changed across the restart")
	}
	if removed := be2.Removed(); len(removed) != 1 || removed[0] != dropKey {
		t.Errorf("removed %v, want drop/front", removed)
	}
	be2.FinishRemove(dropKey)
	h2.waitFor("drop gone", func(s *Snapshot) bool { return s.App("drop") == nil })

	// A redeploy of the same config after the restart still keeps the webhook's target.
	h2.deploy(cfgOf(app("shop", true, dep("front", 1))))
	if d := h2.dep("shop", "front"); d.Target != 4 {
		t.Errorf("target after restart and redeploy = %d, want 4", d.Target)
	}
}

func TestARestartFinishesADeletionTheBackendNeverKnew(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	h := start(t, st, nil)
	h.deploy(cfgOf(app("drop", true, dep("front", 1))))
	h.deploy(cfgOf())

	h2 := start(t, st, nil) // a fresh process backend: the old replicas died with shoal
	if a := h2.c.Snapshot().App("drop"); a != nil {
		t.Errorf("drop is still listed: %+v", a)
	}
	saved, _ := st.Load()
	if saved.Apps["drop"] != nil || saved.Tokens["drop"] != nil {
		t.Error("drop is still saved")
	}
}

func TestAFailedSaveChangesNothing(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1))))
	tok, _ := h.c.AppToken("shop")
	gen := h.c.Snapshot().Generation
	applied := len(h.be.Applied())
	boom := errors.New("disk full")
	h.store.setFail(boom)

	if err := h.c.Deploy(context.Background(), cfgOf(app("other", true, dep("x", 1)))); !errors.Is(err, boom) {
		t.Errorf("Deploy: %v, want the store's error", err)
	}
	if _, err := h.c.SetTarget(context.Background(), "shop", "front", 3, SourceWebhook); !errors.Is(err, boom) {
		t.Errorf("SetTarget: %v, want the store's error", err)
	}
	if _, err := h.c.RotateToken(context.Background(), "shop"); !errors.Is(err, boom) {
		t.Errorf("RotateToken: %v, want the store's error", err)
	}
	if err := h.c.DeleteAll(context.Background()); !errors.Is(err, boom) {
		t.Errorf("DeleteAll: %v, want the store's error", err)
	}

	s := h.c.Snapshot()
	if s.Generation != gen || s.App("other") != nil || s.App("shop").Deleting {
		t.Errorf("the snapshot changed:\n%s", dump(s))
	}
	if d := h.dep("shop", "front"); d.Target != 1 {
		t.Errorf("target = %d, want 1", d.Target)
	}
	if now, _ := h.c.AppToken("shop"); now != tok {
		t.Error("the token changed")
	}
	if len(h.be.Applied()) != applied || len(h.be.Removed()) != 0 {
		t.Error("the backend was told about an unsaved change")
	}

	h.store.setFail(nil)
	if _, err := h.c.SetTarget(context.Background(), "shop", "front", 3, SourceWebhook); err != nil {
		t.Errorf("after the store recovered: %v", err)
	}
}

func TestWaitWakesOnPublish(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", true, dep("front", 1))))
	gen := h.c.Snapshot().Generation

	const waiters = 5
	got := make(chan uint64, waiters)
	for range waiters {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := h.c.Wait(ctx, gen)
			if err != nil {
				got <- 0
				return
			}
			got <- s.Generation
		}()
	}
	h.setTarget("shop", "front", 2, SourceWebhook)
	for range waiters {
		if g := <-got; g <= gen {
			t.Errorf("a waiter got generation %d, want > %d", g, gen)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.c.Wait(ctx, h.c.Snapshot().Generation); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context: %v", err)
	}
	if s, err := h.c.Wait(context.Background(), 0); err != nil || s.Generation == 0 {
		t.Errorf("Wait for an old generation: %v, %v; want the current snapshot at once", s, err)
	}
}

func TestANewControllerPublishesASnapshotAtOnce(t *testing.T) {
	h := start(t, nil, nil)
	s := h.c.Snapshot()
	if s == nil || s.Generation == 0 || s.Config != nil || len(s.Applications) != 0 || s.HTTPOptions.Port == 0 {
		t.Errorf("initial snapshot = %+v", s)
	}
}

func TestAnApplyFailureIsRetried(t *testing.T) {
	h := start(t, nil, nil)
	h.be.SetApplyError(errors.New("no room"))
	h.deploy(cfgOf(app("shop", false, dep("front", 1))))
	if _, ok := h.be.Spec(backend.Key{App: "shop", Deployment: "front"}); ok {
		t.Fatal("the fake applied despite the error")
	}
	h.be.SetApplyError(nil)
	// The next pass (here one run by an intent) retries.
	if err := h.c.Deploy(context.Background(), cfgOf(app("shop", false, dep("front", 1)))); err != nil {
		t.Fatal(err)
	}
	if got := h.backendReplicas("shop", "front"); got != 1 {
		t.Errorf("backend runs %d, want 1", got)
	}
}

func TestLastDeployedMovesOnlyWhenTheApplicationChanges(t *testing.T) {
	h := start(t, nil, nil)
	h.deploy(cfgOf(app("shop", false, dep("front", 1)), app("blog", false, dep("front", 1))))
	first := h.clock.Now()
	h.clock.Advance(time.Minute)
	changed := dep("front", 2)
	h.deploy(cfgOf(app("shop", false, dep("front", 1)), app("blog", false, changed)))
	s := h.c.Snapshot()
	if got := s.App("shop").LastDeployed; !got.Equal(first) {
		t.Errorf("unchanged shop: last deployed %v, want %v", got, first)
	}
	if got := s.App("blog").LastDeployed; !got.Equal(h.clock.Now()) {
		t.Errorf("changed blog: last deployed %v, want %v", got, h.clock.Now())
	}
}

// silentBackend hides the fake's change notifications, as if one were lost.
type silentBackend struct{ *fake.Backend }

func (silentBackend) Changes() <-chan struct{} { return nil }

func TestTheResyncTickerCatchesALostNotification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		be := fake.New()
		c, err := New(Options{Store: store.NewMemory(), Backend: silentBackend{be}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = c.Run(ctx) }()

		if err := c.Deploy(ctx, cfgOf(app("shop", false, dep("front", 1)))); err != nil {
			t.Fatal(err)
		}
		be.Advance()
		time.Sleep(DefaultResync - time.Millisecond)
		synctest.Wait()
		if got := c.Snapshot().App("shop").Status; got != AppDeploying {
			t.Fatalf("before the tick: %s, want DEPLOYING (no notification came)", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := c.Snapshot().App("shop").Status; got != AppRunning {
			t.Errorf("after the tick: %s, want RUNNING", got)
		}
	})
}
