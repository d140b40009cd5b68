package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"shoal/internal/testport"
)

// fakeAPI is a control API that answers from a table and records what it was sent.
type fakeAPI struct {
	mu       sync.Mutex          // guards the fields below
	answers  map[string][]string // "METHOD path" → bodies to answer, in turn (the last repeats)
	statuses map[string]int      // "METHOD path" → status (default 200)
	got      map[string][]string // "METHOD path" → request bodies
	auth     []string
}

func newFakeAPI(t *testing.T) (*fakeAPI, string) {
	f := &fakeAPI{answers: map[string][]string{}, statuses: map[string]int{}, got: map[string][]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[key] = append(f.got[key], string(body))
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	answers := f.answers[key]
	if len(answers) == 0 {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "no route in the fake"}`)
		return
	}
	if len(answers) > 1 {
		f.answers[key] = answers[1:]
	}
	if code := f.statuses[key]; code != 0 {
		w.WriteHeader(code)
	}
	io.WriteString(w, answers[0])
}

func (f *fakeAPI) sent(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[key]
}

// stateWithToken is a state dir holding an admin token file.
func stateWithToken(t *testing.T, tok string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth_token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAnUnreachableShoalIsOneLineThatSaysHowToStartIt(t *testing.T) {
	port, err := testport.Free() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://127.0.0.1:" + strconv.Itoa(port)

	_, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": t.TempDir()}, "status")
	want := "shoal: cannot reach shoal at " + addr + ": is it running? start it with 'shoal start CONFIG'\n"
	if code != exitError || stderr != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

func TestARefusedTokenSaysWhereTheTokenComesFrom(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["GET /api/serve/applications/"] = []string{`{"error": "missing bearer token"}`}
	f.statuses["GET /api/serve/applications/"] = http.StatusUnauthorized

	_, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": t.TempDir()}, "status")
	if code != exitError || !strings.Contains(stderr, "auth_token does not exist") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("with no token file: exit %d, stderr %q; want one line naming the missing token file", code, stderr)
	}

	_, stderr, _ = run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "wrong")}, "status")
	if !strings.Contains(stderr, "--state-dir") || !strings.Contains(stderr, "SHOAL_AUTH_TOKEN") {
		t.Errorf("with a wrong token: stderr %q; want the hint about --state-dir and SHOAL_AUTH_TOKEN", stderr)
	}
}

func TestTheAdminTokenIsSentFromTheEnvironmentFirst(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["POST /api/v1/shutdown"] = []string{`{}`}
	run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "from-file"), "SHOAL_AUTH_TOKEN": "from-env"}, "shutdown")
	run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "from-file")}, "shutdown")
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.auth) != 2 || f.auth[0] != "Bearer from-env" || f.auth[1] != "Bearer from-file" {
		t.Errorf("Authorization headers sent: %q", f.auth)
	}
}

func TestDeployPrintsTheAPIsErrorsWhenItRefuses(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["PUT /api/serve/applications/"] = []string{`{"error": "line 3: applications[0].name: must not be empty"}`}
	f.statuses["PUT /api/serve/applications/"] = http.StatusBadRequest
	cfg := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(cfg, []byte("applications:\n  - name: a\n    deployments:\n      - name: d\n        command: [x]\n"), 0o644)

	_, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")}, "deploy", cfg)
	if code != exitError || stderr != "shoal: line 3: applications[0].name: must not be empty\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	sent := f.sent("PUT /api/serve/applications/")
	if len(sent) != 1 || !json.Valid([]byte(sent[0])) || !strings.Contains(sent[0], `"name":"a"`) {
		t.Errorf("deploy sent %q; want the parsed config as JSON", sent)
	}
}

func TestDeleteWithNamesRedeploysTheOtherApplications(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["GET /api/serve/applications/"] = []string{`{
		"http_options": {"host": "127.0.0.1", "port": 8123, "root_path": "", "request_timeout_s": 30, "keep_alive_timeout_s": 5, "ssl_keyfile": null, "ssl_certfile": null},
		"applications": {
			"a": {"name": "a", "status": "RUNNING", "deployed_app_config": {"name": "a", "route_prefix": "/a"}},
			"b": {"name": "b", "status": "RUNNING", "deployed_app_config": {"name": "b", "route_prefix": "/b"}},
			"c": {"name": "c", "status": "RUNNING", "deployed_app_config": {"name": "c", "route_prefix": "/c"}}}}`}
	f.answers["PUT /api/serve/applications/"] = []string{``}

	out, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")}, "delete", "b")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "deleting b") {
		t.Errorf("stdout %q", out)
	}
	sent := f.sent("PUT /api/serve/applications/")
	if len(sent) != 1 {
		t.Fatalf("PUTs sent: %q", sent)
	}
	var cfg struct {
		HTTPOptions  map[string]any   `json:"http_options"`
		Applications []map[string]any `json:"applications"`
	}
	if err := json.Unmarshal([]byte(sent[0]), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Applications) != 2 || cfg.Applications[0]["name"] != "a" || cfg.Applications[1]["name"] != "c" {
		t.Errorf("redeployed applications %v; want a and c", cfg.Applications)
	}
	if cfg.HTTPOptions["port"] != float64(8123) || cfg.HTTPOptions["request_timeout_s"] != float64(30) {
		t.Errorf("http_options %v; want the running ones kept", cfg.HTTPOptions)
	}
	if _, ok := cfg.HTTPOptions["root_path"]; ok {
		t.Errorf("http_options carries root_path, a field the config does not accept: %v", cfg.HTTPOptions)
	}
}

func TestDeleteOfAnUnknownApplicationChangesNothing(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["GET /api/serve/applications/"] = []string{`{"applications": {"a": {"name": "a", "status": "RUNNING", "deployed_app_config": {"name": "a"}}}}`}
	_, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")}, "delete", "zzz")
	if code != exitError || !strings.Contains(stderr, `no application named "zzz"`) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if n := len(f.sent("PUT /api/serve/applications/")) + len(f.sent("DELETE /api/serve/applications/")); n != 0 {
		t.Errorf("%d changes were sent for an unknown application", n)
	}
}

func TestScaleWaitPrintsALinePerChangeUntilTheCountIsReached(t *testing.T) {
	f, addr := newFakeAPI(t)
	path := "/api/v1/applications/app/deployments/dep/scale"
	f.answers["POST "+path] = []string{`{"target_num_replicas": 3, "previous_target_num_replicas": 1}`}
	f.answers["GET "+path] = []string{
		`{"running_replicas": 1, "target_num_replicas": 3, "status": "UPSCALING"}`,
		`{"running_replicas": 1, "target_num_replicas": 3, "status": "UPSCALING"}`,
		`{"running_replicas": 2, "target_num_replicas": 3, "status": "UPSCALING"}`,
		`{"running_replicas": 3, "target_num_replicas": 3, "status": "HEALTHY"}`,
	}
	out, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")},
		"scale", "app", "dep", "3", "--wait")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "app/dep: target 3 (was 1)\napp/dep: 1/3 running\napp/dep: 2/3 running\napp/dep: 3/3 running\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if sent := f.sent("POST " + path); len(sent) != 1 || sent[0] != `{"target_num_replicas":3}` {
		t.Errorf("scale sent %q", sent)
	}
}

func TestScaleWaitGivesUpWithAClearErrorAtItsTimeout(t *testing.T) {
	f, addr := newFakeAPI(t)
	path := "/api/v1/applications/app/deployments/dep/scale"
	f.answers["POST "+path] = []string{`{"target_num_replicas": 3, "previous_target_num_replicas": 1}`}
	f.answers["GET "+path] = []string{`{"running_replicas": 1, "target_num_replicas": 3, "status": "UNHEALTHY", "message": "exit status 1"}`}
	out, stderr, code := run(t, map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")},
		"scale", "app", "dep", "3", "--wait", "--timeout", "300ms")
	if code != exitError || !strings.Contains(stderr, "1 of 3 replicas RUNNING after 300ms") || !strings.Contains(stderr, "shoal logs app dep") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, "app/dep: 1/3 running (UNHEALTHY: exit status 1)") {
		t.Errorf("stdout %q does not show why it is not running", out)
	}
}

func TestTokenPrintsTheTokenAlone(t *testing.T) {
	f, addr := newFakeAPI(t)
	f.answers["GET /api/v1/applications/app/token"] = []string{`{"token": "s3cret", "id": "app:app#1"}`}
	f.answers["POST /api/v1/applications/app/token/rotate"] = []string{`{"token": "n3w", "id": "app:app#2"}`}
	env := map[string]string{"SHOAL_ADDRESS": addr, "SHOAL_STATE_DIR": stateWithToken(t, "t")}
	if out, _, _ := run(t, env, "token", "app"); out != "s3cret\n" {
		t.Errorf("token printed %q", out)
	}
	if out, _, _ := run(t, env, "token", "app", "--rotate"); out != "n3w\n" {
		t.Errorf("token --rotate printed %q", out)
	}
}
