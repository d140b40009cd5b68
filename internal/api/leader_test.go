package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"shoal/internal/config"
	"shoal/internal/store"
)

// followerIntents is a controller on a shoal replica that does not lead: every change
// is refused with store.ErrNotLeader.
type followerIntents struct{ *fakeIntents }

func (followerIntents) Deploy(context.Context, *config.Config) error {
	return fmt.Errorf("save state: %w", store.ErrNotLeader)
}

func TestAnIntentRefusedByAFollowerIs503NamingTheLeader(t *testing.T) {
	const deploy = `{"applications": [{"name": "a", "deployments": [{"name": "d", "command": ["./s"]}]}]}`
	for _, tc := range []struct {
		name   string
		leader string
		q      req
		want   string
	}{
		{"a deploy names the leader", "shoal-7d9f-abcde",
			req{method: "PUT", path: "/api/serve/applications/", token: adminToken, ctype: "application/json", body: deploy},
			"this shoal replica is not the leader (shoal-7d9f-abcde is): only the leader makes changes; retry in a second"},
		{"a scale says so when no leader is known", "",
			scaleReq(adminToken, "application/json", `{"target_num_replicas": 2}`),
			"this shoal replica is not the leader and no leader is known yet: only the leader makes changes; retry in a second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeIntents()
			f.setErr = fmt.Errorf("save state: %w", store.ErrNotLeader)
			e := &testEnv{f: f}
			e.api = New(Options{
				Intents: followerIntents{f}, AdminToken: adminToken, BaseDir: t.TempDir(),
				Leader: func() string { return tc.leader },
			})
			w := e.call(t, tc.q)
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
			}
			if ra := w.Header().Get("Retry-After"); ra != "1" {
				t.Errorf("Retry-After = %q, want 1", ra)
			}
			if got := errorText(t, w); got != tc.want {
				t.Errorf("error = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestADeployIsCheckedForTheConfiguredBackend(t *testing.T) {
	e := &testEnv{f: newFakeIntents()}
	e.api = New(Options{Intents: e.f, AdminToken: adminToken, BaseDir: t.TempDir(), ConfigBackend: config.BackendKubernetes})
	body := "applications:\n  - name: a\n    deployments:\n      - name: d\n        command: [./s]\n"
	w := e.call(t, req{method: "PUT", path: "/api/serve/applications/", token: adminToken, ctype: "application/yaml", body: body})
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
	}
	if got, want := errorText(t, w), "request body:4: applications[0].deployments[0].image: required on the kubernetes backend"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}
