package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeApplicationsHasRayShape checks GET /api/serve/applications/ against the
// fields of Ray's ServeInstanceDetails that SPEC §6 lists, with their JSON types.
func TestServeApplicationsHasRayShape(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)

	eventually(t, 10*time.Second, "the application RUNNING", func() (bool, string) {
		a := s.status().Applications["echo"]
		return a.Status == "RUNNING", a.Status
	})
	code, body := s.do(http.MethodGet, "/api/serve/applications/", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/serve/applications/: %d %s", code, body)
	}
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	c := shapeChecker{t: t}
	c.has(top, "", map[string]string{"applications": "object", "http_options": "object", "controller_info": "object"})
	apps, _ := top["applications"].(map[string]any)
	app, _ := apps["echo"].(map[string]any)
	if app == nil {
		t.Fatalf("applications has no \"echo\": %s", body)
	}
	c.has(app, "applications.echo", map[string]string{
		"name": "string", "route_prefix": "string", "status": "string", "message": "string",
		"last_deployed_time_s": "number", "deployed_app_config": "object",
		"external_scaler_enabled": "bool", "deployments": "object",
	})
	c.equal(app, "applications.echo", "name", "echo")
	c.equal(app, "applications.echo", "route_prefix", "/")
	c.equal(app, "applications.echo", "status", "RUNNING")
	c.equal(app, "applications.echo", "external_scaler_enabled", false)
	if ts, _ := app["last_deployed_time_s"].(float64); ts < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("applications.echo.last_deployed_time_s = %v; want seconds since the epoch, of the deploy", app["last_deployed_time_s"])
	}
	deps, _ := app["deployments"].(map[string]any)
	dep, _ := deps["model"].(map[string]any)
	if dep == nil {
		t.Fatalf("applications.echo.deployments has no \"model\": %s", body)
	}
	c.has(dep, "deployments.model", map[string]string{
		"name": "string", "status": "string", "status_trigger": "string", "message": "string",
		"deployment_config": "object", "target_num_replicas": "number", "replicas": "array",
	})
	c.equal(dep, "deployments.model", "status", "HEALTHY")
	c.equal(dep, "deployments.model", "target_num_replicas", float64(2))
	replicas, _ := dep["replicas"].([]any)
	if len(replicas) != 2 {
		t.Fatalf("deployments.model.replicas has %d entries; want 2: %s", len(replicas), body)
	}
	for i, r := range replicas {
		r, _ := r.(map[string]any)
		where := fmt.Sprintf("replicas[%d]", i)
		c.has(r, where, map[string]string{
			"replica_id": "string", "state": "string", "pid": "number",
			"start_time_s": "number", "ongoing_requests": "number",
		})
		c.equal(r, where, "state", "RUNNING")
		if pid, _ := r["pid"].(float64); !slices.Contains(pids, int(pid)) {
			t.Errorf("%s.pid = %v; want one of the live replica pids %v", where, r["pid"], pids)
		}
	}
}

type shapeChecker struct{ t *testing.T }

// has checks that obj has each field with the JSON type given.
func (c shapeChecker) has(obj map[string]any, where string, fields map[string]string) {
	c.t.Helper()
	for name, want := range fields {
		v, ok := obj[name]
		if !ok {
			c.t.Errorf("%s: field %q is missing", where, name)
			continue
		}
		if got := jsonType(v); got != want {
			c.t.Errorf("%s.%s is a JSON %s (%v); want a %s", where, name, got, v, want)
		}
	}
}

func (c shapeChecker) equal(obj map[string]any, where, name string, want any) {
	c.t.Helper()
	if got := obj[name]; got != want {
		c.t.Errorf("%s.%s = %v; want %v", where, name, got, want)
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func TestRedeployingAnInvalidConfigAnswers400WithEveryErrorAndChangesNothing(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)

	// Two independent mistakes: both must be reported.
	bad := fmt.Sprintf(`{"applications": [{"name": "echo", "route_prefix": "/", "deployments": [
		{"name": "model", "num_replicas": 0, "max_ongoing_requests": 0, "command": [%q]}]}]}`, bin.replica)
	code, body := s.do(http.MethodPut, "/api/serve/applications/", []byte(bad))
	if code != http.StatusBadRequest {
		t.Fatalf("PUT of an invalid config answered %d %s; want 400", code, body)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("the 400's body is not {\"error\": ...}: %s", body)
	}
	for _, field := range []string{"num_replicas", "max_ongoing_requests"} {
		if !strings.Contains(e.Error, field) {
			t.Errorf("the 400's error does not name %s: %q", field, e.Error)
		}
	}

	// The CLI refuses the same mistakes before sending anything.
	dir := t.TempDir()
	badFile := writeFile(t, dir, "bad.yaml", fmt.Sprintf(`applications:
  - name: echo
    deployments:
      - name: model
        num_replicas: 0
        max_ongoing_requests: 0
        command: [%q]
`, bin.replica))
	out, errOut, exit := s.cli("deploy", badFile)
	if exit != 1 {
		t.Errorf("shoal deploy of an invalid file exited %d; want 1 (stdout %q)", exit, out)
	}
	for _, field := range []string{"num_replicas", "max_ongoing_requests"} {
		if !strings.Contains(errOut, field) {
			t.Errorf("shoal deploy's errors do not name %s:\n%s", field, errOut)
		}
	}

	// Nothing changed: the same replicas serve, RUNNING.
	now := s.running("echo", "model", 2)
	slices.Sort(now)
	slices.Sort(pids)
	if !slices.Equal(now, pids) {
		t.Errorf("replica pids changed from %v to %v after a refused deploy", pids, now)
	}
	if st := s.status().Applications["echo"].Status; st != "RUNNING" {
		t.Errorf("application status after a refused deploy = %s; want RUNNING", st)
	}
	if code, body, err := get(&http.Client{Timeout: 5 * time.Second}, s.proxyURL()+"/"); err != nil || code != http.StatusOK {
		t.Errorf("the proxy answers %d %s %v after a refused deploy; want 200", code, body, err)
	}
}

func TestTheControlAPIRefusesAMissingOrWrongAdminToken(t *testing.T) {
	t.Parallel()
	cfg, port := emptyConfig(t)
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	tests := []struct {
		name   string
		header string
		want   int
	}{
		{"a request without a token gets 401", "", http.StatusUnauthorized},
		{"a request with a wrong token gets 403", "Bearer not-the-token", http.StatusForbidden},
		{"a request with the admin token gets 200", "Bearer " + s.token(), http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.controlURL()+"/api/serve/applications/", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got %d; want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
