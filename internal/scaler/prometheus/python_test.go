package prometheus

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestThePythonExamplesCallTheWebhook runs examples/scalers/*.py once each against a
// fake Prometheus and a fake shoal, so the examples stay runnable.
func TestThePythonExamplesCallTheWebhook(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import requests").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 with requests is missing (apt-get install python3-requests); under CI=true this test must run")
		}
		t.Skip("python3 with requests is missing (apt-get install python3-requests); skipping on a developer machine")
	}
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"42"]}]}}`))
	}))
	defer prom.Close()
	var (
		mu     sync.Mutex // guards posted
		posted []int
	)
	shoal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/api/v1/applications/a/deployments/d/scale" {
			http.Error(w, `{"error":"no"}`, http.StatusForbidden)
			return
		}
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"target_num_replicas": 2}`))
			return
		}
		var b struct {
			N int `json:"target_num_replicas"`
		}
		json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		posted = append(posted, b.N)
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer shoal.Close()

	dir := filepath.Join("..", "..", "..", "examples", "scalers")
	run := func(script string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), py, append([]string{filepath.Join(dir, script), "--shoal", shoal.URL, "--app", "a", "--deployment", "d", "--once"}, args...)...)
		cmd.Env = append(os.Environ(), "SHOAL_TOKEN=tok")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	run("prometheus_scaler.py", "--prometheus", prom.URL, "--query", "sum(x)", "--per-replica", "10", "--max", "20", "--max-step", "2")
	run("schedule_scaler.py")
	mu.Lock()
	defer mu.Unlock()
	if len(posted) != 2 || posted[0] != 4 || !slices.Contains([]int{1, 4, 8, 20}, posted[1]) {
		t.Errorf("posted %v, want 4 (2 + max_step 2 toward ceil(42/10) = 5) and a scheduled count", posted)
	}
}
