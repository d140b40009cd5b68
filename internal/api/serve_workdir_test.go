package api

import (
	"testing"

	"shoal/internal/config"
)

// A config sent without a working_dir keeps the directories of the applications it
// redeploys (which `shoal start FILE` took from the file's directory); only a new
// application runs in shoal's working directory.
func TestDeployKeepsTheWorkingDirOfADeployedApplication(t *testing.T) {
	e := newEnv(t)
	fileDir := t.TempDir()
	deployed, _, err := config.Parse([]byte("applications:\n  - name: a\n    route_prefix: /a\n    deployments:\n      - name: d\n        command: [./serve]\n"), "serve.yaml", fileDir)
	if err != nil {
		t.Fatal(err)
	}
	e.f.mu.Lock()
	snap := *e.f.snap
	snap.Config = deployed
	e.f.snap = &snap
	e.f.mu.Unlock()

	body := `{"applications": [
		{"name": "a", "route_prefix": "/a", "deployments": [{"name": "d", "command": ["./serve"]}]},
		{"name": "b", "route_prefix": "/b", "deployments": [{"name": "d", "command": ["./serve"]}]}]}`
	w := e.call(t, req{method: "PUT", path: servePath, token: adminToken, ctype: "application/json", body: body})
	if w.Code != 200 || len(e.f.deployed) != 1 {
		t.Fatalf("PUT = %d %s", w.Code, w.Body)
	}
	base := e.api.opts.BaseDir // shoal's working directory in a real start
	got := e.f.deployed[0]
	if wd := got.Applications[0].Deployments[0].WorkingDir; wd != fileDir {
		t.Errorf("a/d working_dir = %q, want %q where it runs", wd, fileDir)
	}
	if wd := got.Applications[1].Deployments[0].WorkingDir; wd != base {
		t.Errorf("new b/d working_dir = %q, want the API's base directory %q", wd, base)
	}
	a := &got.Applications[0]
	if config.Version(a, &a.Deployments[0]) != config.Version(&deployed.Applications[0], &deployed.Applications[0].Deployments[0]) {
		t.Error("the same application sent again is a new version")
	}
}
