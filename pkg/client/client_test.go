package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/api"
	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
	"shoal/pkg/client"
)

const admin = "admin-token-for-tests"

// intents is a small controller.Intents: one application "app" with one deployment
// "dep" whose replicas follow its target once step() is called.
type intents struct {
	mu       sync.Mutex // guards every field below
	target   int
	running  int
	deployed int
	deleted  bool
	token    store.Token
	audit    []store.AuditEntry
}

func (f *intents) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleted {
		return &controller.Snapshot{}
	}
	key := backend.Key{App: "app", Deployment: "dep"}
	d := &controller.Deployment{
		Key: key, Name: "dep", Status: controller.DeploymentHealthy, Mode: controller.ModeExternal,
		Target: f.target, TargetSource: controller.SourceWebhook,
		Config: config.Deployment{Name: "dep", ReplicaLimit: 10, MaxOngoingRequests: 5, Command: []string{"srv"}},
	}
	if f.running != f.target {
		d.Status = controller.DeploymentUpscaling
	}
	for i := range f.running {
		d.Replicas = append(d.Replicas, backend.Replica{ID: fmt.Sprintf("r%d", i), Key: key, State: backend.Running, PID: 100 + i})
	}
	return &controller.Snapshot{Applications: []*controller.Application{{
		Name: "app", RoutePrefix: "/", Status: controller.AppRunning, ExternalScalerEnabled: true,
		Ingress: "dep", Deployments: []*controller.Deployment{d},
	}}}
}

// step moves the running count one replica toward the target.
func (f *intents) step() {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.running < f.target:
		f.running++
	case f.running > f.target:
		f.running--
	}
}

func (f *intents) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	return f.Snapshot(), nil
}

func (f *intents) Deploy(ctx context.Context, cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployed++
	return nil
}

func (f *intents) DeleteAll(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = true
	return nil
}

func (f *intents) SetTarget(ctx context.Context, app, dep string, n int, src controller.Source) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if app != "app" || dep != "dep" {
		return 0, controller.ErrNotFound
	}
	if n > 10 {
		return 0, controller.ErrOverLimit
	}
	prev := f.target
	f.target = n
	return prev, nil
}

func (f *intents) AppToken(app string) (store.Token, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.token, app == "app"
}

func (f *intents) Tokens() map[string]store.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]store.Token{"app": f.token}
}

func (f *intents) RotateToken(ctx context.Context, app string) (store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = store.Token{ID: "app:app#2", Secret: "second-secret"}
	return f.token, nil
}

func (f *intents) RecordAudit(e store.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append([]store.AuditEntry{e}, f.audit...)
	return nil
}

func (f *intents) Audit(app, dep string, limit int) ([]store.AuditEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.audit[:min(limit, len(f.audit))], nil
}

type env struct {
	f        *intents
	srv      *httptest.Server
	logDir   string
	shutdown chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		f:        &intents{target: 1, running: 1, token: store.Token{ID: "app:app#1", Secret: "first-secret"}},
		logDir:   t.TempDir(),
		shutdown: make(chan struct{}, 1),
	}
	a := api.New(api.Options{
		Intents: e.f, AdminToken: admin, LogDir: e.logDir,
		Shutdown: func() { e.shutdown <- struct{}{} },
	})
	e.srv = httptest.NewServer(a)
	t.Cleanup(e.srv.Close)
	return e
}

func TestClientCallsEveryRoute(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := client.New(e.srv.URL, admin, client.WithTimeout(5*time.Second))

	res, err := c.Scale(ctx, "app", "dep", 3)
	if err != nil || res.TargetNumReplicas != 3 || res.PreviousTargetNumReplicas != 1 || res.Application != "app" {
		t.Fatalf("Scale = %+v, %v", res, err)
	}
	info, err := c.GetScale(ctx, "app", "dep")
	if err != nil || info.TargetNumReplicas != 3 || info.RunningReplicas != 1 || info.Mode != "external" ||
		info.ReplicaLimit != 10 || len(info.Audit) != 1 || info.Audit[0].Token != "admin" || info.Audit[0].To != 3 {
		t.Fatalf("GetScale = %+v, %v", info, err)
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := st.Applications["app"].Deployments["dep"]
	if st.DeployMode != "MULTI_APP" || d.TargetNumReplicas != 3 || d.Running() != 1 || d.Replicas[0].PID == nil ||
		d.DeploymentConfig.ReplicaLimit != 10 || !strings.Contains(string(d.DeploymentConfig.Raw), `"replica_limit":10`) {
		t.Errorf("Status = %+v, deployment %+v", st, d)
	}

	tok, err := c.Token(ctx, "app")
	if err != nil || tok != "first-secret" {
		t.Errorf("Token = %q, %v", tok, err)
	}
	tok, err = c.RotateToken(ctx, "app")
	if err != nil || tok != "second-secret" {
		t.Errorf("RotateToken = %q, %v", tok, err)
	}
	appClient := client.New(strings.TrimPrefix(e.srv.URL, "http://"), tok)
	if _, err := appClient.Scale(ctx, "app", "dep", 2); err != nil {
		t.Errorf("scaling with the application token: %v", err)
	}

	cfg := `{"applications": [{"name": "app", "deployments": [{"name": "dep", "command": ["srv"]}]}]}`
	if err := c.Deploy(ctx, []byte(cfg)); err != nil || e.f.deployed != 1 {
		t.Errorf("Deploy = %v (deployed %d)", err, e.f.deployed)
	}
	if err := c.Deploy(ctx, map[string]any{"applications": []any{}}); err != nil || e.f.deployed != 2 {
		t.Errorf("Deploy of a value = %v (deployed %d)", err, e.f.deployed)
	}

	dir := filepath.Join(e.logDir, "app", "dep")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "r0.log"), []byte("one\ntwo\nthree\n"), 0o644)
	logs, err := c.Logs(ctx, "app", "dep", "r0", 2)
	if err != nil || logs != "two\nthree\n" {
		t.Errorf("Logs = %q, %v", logs, err)
	}

	if err := c.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	select {
	case <-e.shutdown:
	case <-time.After(5 * time.Second):
		t.Error("the server's Shutdown was not called")
	}

	if err := c.DeleteAll(ctx); err != nil {
		t.Errorf("DeleteAll = %v", err)
	}
	if st, err := c.Status(ctx); err != nil || len(st.Applications) != 0 {
		t.Errorf("Status after DeleteAll = %+v, %v", st, err)
	}
}

func TestClientErrorsAreAPIErrorsOnOneLine(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		call   func() error
		status int
		text   string
	}{
		{"a wrong token is 403", func() error { _, err := client.New(e.srv.URL, "nope").Status(ctx); return err }, 403, "invalid token"},
		{"no token is 401", func() error { _, err := client.New(e.srv.URL, "").Status(ctx); return err }, 401, "missing bearer token"},
		{"a target over the limit is 400", func() error { _, err := client.New(e.srv.URL, admin).Scale(ctx, "app", "dep", 11); return err }, 400, "replica_limit"},
		{"an unknown deployment is 404", func() error { _, err := client.New(e.srv.URL, admin).Scale(ctx, "app", "x", 1); return err }, 404, "Application or Deployment not found"},
		{"missing logs are 404", func() error { _, err := client.New(e.srv.URL, admin).Logs(ctx, "app", "dep", "zz", 0); return err }, 404, "no logs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.text) {
				t.Fatalf("err = %v, want an APIError %d containing %q", err, tc.status, tc.text)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
				t.Errorf("Error() = %q, want one line with the status", err.Error())
			}
		})
	}
}

func TestAPIErrorJoinsAMultiLineMessage(t *testing.T) {
	err := &client.APIError{Status: 400, Message: "request body:3: a: bad\nrequest body:9: b: worse\n"}
	want := "shoal: 400 Bad Request: request body:3: a: bad; request body:9: b: worse"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestWaitRunningReportsProgressUntilTheCountMatches(t *testing.T) {
	e := newEnv(t)
	// An application token is enough to wait.
	c := client.New(e.srv.URL, "first-secret", client.WithPollInterval(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Scale(ctx, "app", "dep", 4); err != nil {
		t.Fatal(err)
	}
	var seen []int
	err := c.WaitRunning(ctx, "app", "dep", 4, func(running, target int) {
		seen = append(seen, running)
		if target != 4 {
			t.Errorf("progress target = %d, want 4", target)
		}
		e.f.step() // the replicas come up one per poll
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 || seen[0] != 1 || seen[3] != 4 {
		t.Errorf("progress saw running counts %v, want 1..4", seen)
	}
}

func TestWaitRunningGivesUpWithTheContext(t *testing.T) {
	e := newEnv(t)
	c := client.New(e.srv.URL, admin, client.WithPollInterval(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Scale(context.Background(), "app", "dep", 5) // nothing steps the replicas up
	if err := c.WaitRunning(ctx, "app", "dep", 5, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	var ae *client.APIError
	if err := c.WaitRunning(context.Background(), "app", "nope", 1, nil); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("err = %v, want a 404 APIError", err)
	}
}

func TestWithHTTPClientIsUsed(t *testing.T) {
	e := newEnv(t)
	var calls int
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		calls++
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := client.New(e.srv.URL, admin, client.WithHTTPClient(hc)).Status(context.Background()); err != nil || calls != 1 {
		t.Errorf("Status = %v with %d calls through the given client", err, calls)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTheClientSendsItsUserAgentAndShoalLabelsTheCLIsCallsByIt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var agents []string
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		agents = append(agents, r.UserAgent())
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := client.New(e.srv.URL, admin, client.WithHTTPClient(hc)).Scale(ctx, "app", "dep", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(e.srv.URL, admin, client.WithHTTPClient(hc), client.WithUserAgent("shoal-cli/1")).Scale(ctx, "app", "dep", 3); err != nil {
		t.Fatal(err)
	}
	if want := []string{client.UserAgent, "shoal-cli/1"}; !slices.Equal(agents, want) {
		t.Errorf("User-Agents sent: %q, want %q", agents, want)
	}
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	var sources []string
	for _, a := range e.f.audit { // newest first
		sources = append(sources, a.Source)
	}
	if want := []string{"cli", "webhook"}; !slices.Equal(sources, want) {
		t.Errorf("audited sources (newest first) %q, want %q", sources, want)
	}
}
