package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/scaler/schedule"
)

// runScaler runs `shoal scaler ARGS` and returns its stdout, stderr and error.
func runScaler(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newScalerCmd()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

func TestScalerPrometheusOnceQueriesAndCallsTheWebhookWithTheToken(t *testing.T) {
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") != "sum(load)" {
			http.Error(w, "unexpected "+r.URL.String(), 400)
			return
		}
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}`))
	}))
	defer prom.Close()

	var (
		mu     sync.Mutex // guards posted and auth
		posted []int
		auth   []string
	)
	shoal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth = append(auth, r.Header.Get("Authorization"))
		if r.URL.Path != "/api/v1/applications/my-app/deployments/my-dep/scale" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"application":"my-app","deployment":"my-dep","target_num_replicas":1}`))
			return
		}
		var body struct {
			N int `json:"target_num_replicas"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		posted = append(posted, body.N)
		w.Write([]byte(`{"message":"ok","target_num_replicas":5,"previous_target_num_replicas":1}`))
	}))
	defer shoal.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("app-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "p.yaml")
	os.WriteFile(conf, []byte(`
shoal: {address: `+shoal.URL+`, token_file: token}
prometheus: {url: `+prom.URL+`}
targets:
  - {application: my-app, deployment: my-dep, query: sum(load), per_replica: 10, max: 20}
`), 0o600)

	_, stderr, err := runScaler(t, "prometheus", "--config", conf, "--once")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 1 || posted[0] != 5 {
		t.Errorf("posted %v, want one scale to 5 (ceil(42/10))", posted)
	}
	for _, a := range auth {
		if a != "Bearer app-token" {
			t.Errorf("Authorization %q, want the token file's token", a)
		}
	}
	if !strings.Contains(stderr, "decision applied") || !strings.Contains(stderr, "value=42") {
		t.Errorf("log lacks the decision:\n%s", stderr)
	}
}

func TestScalerWithABadConfigPrintsEveryErrorAndExits1(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(conf, []byte("targets:\n  - {application: a, deployment: d, query: q, per_replica: 0, max: 0}\n"), 0o600)
	_, stderr, err := runScaler(t, "prometheus", "--config", conf)
	var ex *exitCodeError
	if !errors.As(err, &ex) || ex.code != exitError {
		t.Fatalf("error %v, want exit status 1", err)
	}
	for _, want := range []string{conf + ":2: targets[0].per_replica: must be a number > 0", conf + ":2: targets[0].max: must be >= 1"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestScalerNeedsAConfigAndATokenOutsideADryRun(t *testing.T) {
	_, _, err := runScaler(t, "schedule")
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Errorf("without --config: %v, want a usage error", err)
	}
	conf := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(conf, []byte("shoal: {token_env: SHOAL_TEST_TOKEN_UNSET}\ntargets: [{application: a, deployment: d}]\n"), 0o600)
	_, _, err = runScaler(t, "schedule", "--config", conf)
	if err == nil || !strings.Contains(err.Error(), "SHOAL_TEST_TOKEN_UNSET") {
		t.Errorf("without a token: %v, want an error naming the variable", err)
	}
}

func TestScalerSchedulePrintShowsNowAndTheNextChanges(t *testing.T) {
	out, stderr, err := runScaler(t, "schedule", "--config", filepath.Join("..", "..", "examples", "scalers", "schedule.yaml"), "--print", "5")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+1+5 || !strings.HasPrefix(lines[0], "TIME") || !strings.HasPrefix(lines[1], "now (") {
		t.Errorf("want a header, a now line and 5 changes, got:\n%s", out)
	}
}

func TestPrintScheduleTable(t *testing.T) {
	cfg, err := schedule.Load(filepath.Join("..", "..", "examples", "scalers", "schedule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	now, _ := time.ParseInLocation("2006-01-02 15:04", "2026-11-30 20:00", cfg.Location)
	var b bytes.Buffer
	if err := printSchedule(&b, cfg, now, 3); err != nil {
		t.Fatal(err)
	}
	want := `TIME                            APPLICATION  DEPLOYMENT     REPLICAS  REASON
now (Mon 2026-11-30 20:00 CET)  my-app       my-deployment  8         profile "evening-peak" (mon-sun 18:00–22:00)
Mon 2026-11-30 22:00 CET        my-app       my-deployment  8 → 1     default (no profile or window applies)
Tue 2026-12-01 09:00 CET        my-app       my-deployment  1 → 4     profile "business-hours" (mon-fri 09:00–18:00)
Tue 2026-12-01 10:00 CET        my-app       my-deployment  4 → 20    window "launch" (Tue 2026-12-01 10:00 CET – Tue 2026-12-01 14:00 CET)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestScalerScheduleDryRunServesItsMetricsUntilInterrupted(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(conf, []byte("shoal: {token_env: SHOAL_TEST_TOKEN_UNSET}\ntimezone: UTC\ntargets: [{application: a, deployment: d, default: 3}]\n"), 0o600)
	cmd := newScalerCmd()
	var errb syncBuffer
	cmd.SetArgs([]string{"schedule", "--config", conf, "--dry-run", "--metrics-address", "127.0.0.1:0"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&errb)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	urlRe := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/metrics)`)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(body, `shoal_scaler_target_replicas{application="a",deployment="d"} 3`) {
		if time.Now().After(deadline) {
			t.Fatalf("no target metric within 10s; body:\n%s\nlog:\n%s", body, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
		m := urlRe.FindStringSubmatch(errb.String())
		if m == nil {
			continue
		}
		resp, err := http.Get(m[1])
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	if !strings.Contains(errb.String(), "dry run: webhook not called") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("log:\n%s\nmetrics:\n%s", errb.String(), body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("interrupted scaler returned %v, want nil", err)
	}
}
