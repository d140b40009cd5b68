package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debianPython is the interpreter that Debian's python3-fastapi and python3-uvicorn
// belong to; another python3 may come first on PATH (pyenv), so the seed runs with
// /usr/bin first.
const debianPython = "/usr/bin/python3"

// TestTheSeedConfigRunsAsWrittenAndScalesThroughTheWebhook runs examples/seed (Ray's
// external-scaling config and its FastAPI module) and scales it from outside through
// the proxy port with the application's own token.
func TestTheSeedConfigRunsAsWrittenAndScalesThroughTheWebhook(t *testing.T) {
	t.Parallel()
	err := exec.Command(debianPython, "-c", "import fastapi, uvicorn").Run()
	needTool(t, "Debian's python3 with fastapi and uvicorn (python3-fastapi, python3-uvicorn)", err == nil)

	// The seed as written listens on Ray's default port 8000; the test adds only
	// http_options with a free port, next to a copy of the module.
	dir := t.TempDir()
	seed, err := os.ReadFile(filepath.Join(bin.root, "examples/seed/serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	module, err := os.ReadFile(filepath.Join(bin.root, "examples/seed/my_module.py"))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := writeFile(t, dir, "serve.yaml", fmt.Sprintf("%s\nhttp_options: {host: 127.0.0.1, port: %d}\n", seed, port))
	writeFile(t, dir, "my_module.py", string(module))

	s := startShoal(t, startOptions{config: cfg, proxyPort: port, env: []string{"PATH=/usr/bin:" + os.Getenv("PATH")}})
	s.running("my-app", "my-deployment", 1)

	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.proxyURL()+"/")
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), "hello from my-app") {
		t.Fatalf("GET / through the proxy: %d %s %v; want the FastAPI app's JSON", code, body, err)
	}

	token, errOut, exit := s.cli("token", "my-app")
	token = strings.TrimSpace(token)
	if exit != 0 || token == "" {
		t.Fatalf("shoal token my-app: exit %d, stderr %s", exit, errOut)
	}
	req, _ := http.NewRequest(http.MethodPost,
		s.proxyURL()+"/api/v1/applications/my-app/deployments/my-deployment/scale",
		bytes.NewReader([]byte(`{"target_num_replicas": 2}`)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || answer["target_num_replicas"] != float64(2) {
		t.Fatalf("scale webhook on the proxy port answered %d %v; want 200 with target_num_replicas 2", resp.StatusCode, answer)
	}
	s.running("my-app", "my-deployment", 2)
}
