package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/config"
	"shoal/internal/store"
)

func TestAConfigScalerCallsTheWebhookWithItsApplicationsToken(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"target_num_replicas": 3}`))
	}))
	defer srv.Close()
	tokens := map[string]string{"a": "secret-a", "b": "secret-b"}
	wh := &tokenWebhook{
		address: srv.URL,
		token: func(app string) (store.Token, bool) {
			s, ok := tokens[app]
			return store.Token{ID: "app:" + app + "#1", Secret: s}, ok
		},
		hc: &http.Client{Timeout: 5 * time.Second},
	}
	if err := wh.Scale(t.Context(), "a", "d", 3); err != nil {
		t.Fatal(err)
	}
	tokens["b"] = "rotated-b" // read at every call: a rotation applies at once
	if n, err := wh.Target(t.Context(), "b", "d"); err != nil || n != 3 {
		t.Fatalf("Target = %d, %v; want 3", n, err)
	}
	want := []string{
		"POST /api/v1/applications/a/deployments/d/scale Bearer secret-a",
		"GET /api/v1/applications/b/deployments/d/scale Bearer rotated-b",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := wh.Scale(t.Context(), "unknown", "d", 1); !errors.Is(err, ErrNoAppToken) {
		t.Errorf("scale of an application without a token: %v, want ErrNoAppToken", err)
	}
	if len(got) != 2 {
		t.Errorf("an application without a token was called anyway: %v", got)
	}
}

func TestABadScalerFileStopsTheStartWithItsLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "prom.yaml")
	if err := os.WriteFile(bad, []byte("targets:\n  - application: a\n    deployment: d\n    query: up\n    per_replica: 0\n    max: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "sched.yaml")
	if err := os.WriteFile(good, []byte("timezone: UTC\ntargets:\n  - {application: a, deployment: d, default: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Scalers: config.Scalers{
		Prometheus: []config.ScalerRef{{Config: bad}},
		Schedule:   []config.ScalerRef{{Config: good}},
	}}
	_, err := loadScalers(cfg, store.NewMemory())
	want := "scalers.prometheus: " + bad + ":5: targets[0].per_replica: must be a number > 0, got 0"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant  %s", err, want)
	}
	cfg.Scalers.Prometheus = nil
	s, err := loadScalers(cfg, store.NewMemory())
	if err != nil || len(s.schedule) != 1 || s.schedule[0].Targets[0].DefaultReplicas() != 2 {
		t.Fatalf("loadScalers = %+v, %v; want the schedule file", s, err)
	}
}

func TestWithoutAConfigTheScalersOfTheConfigDeployedLastRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sched.yaml")
	if err := os.WriteFile(file, []byte("timezone: UTC\ntargets:\n  - {application: a, deployment: d, default: 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved, err := json.Marshal(&config.Config{
		HTTPOptions:  config.DefaultHTTPOptions(),
		Applications: []config.Application{},
		Scalers:      config.Scalers{Schedule: []config.ScalerRef{{Config: file}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	state, _ := st.Load()
	state.Config = saved
	if err := st.Save(state); err != nil {
		t.Fatal(err)
	}
	s, err := loadScalers(nil, st)
	if err != nil || len(s.schedule) != 1 || len(s.prometheus) != 0 {
		t.Fatalf("loadScalers = %+v, %v; want the stored config's schedule file", s, err)
	}
	if got := s.schedule[0].Targets[0].DefaultReplicas(); got != 3 {
		t.Errorf("default %d, want 3 from %s", got, file)
	}
}
