package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The same config sent to PUT /api/serve/applications/ as a plain JSON body (curl,
// Ray's `serve deploy` habits) is the same version as the file `shoal start` read,
// though the body has no file directory to default working_dir to: the webhook's
// target stays and no replica restarts. The replicas keep running in the file's
// directory, across a version change and a restart of shoal too.
func TestTheSameConfigPutAsJSONKeepsTheWebhookTargetAndTheReplicas(t *testing.T) {
	t.Parallel()
	s, cfg := whStart(t, whEcho(1, map[string]string{"MODEL": "small"}))
	dir, err := filepath.EvalSymlinks(filepath.Dir(cfg))
	if err != nil {
		t.Fatal(err)
	}
	// shoal runs in the test's working directory, not the config's: a body resolved
	// against shoal's directory would run the replicas elsewhere.
	if cwd, _ := os.Getwd(); cwd == dir {
		t.Fatalf("shoal's working directory is the config's (%s); the test proves nothing", dir)
	}
	whSettled(s, "echo", "model", 1, "small")
	whMustScale(t, s, 3, 1)
	three := whSettled(s, "echo", "model", 3, "small")
	inDir(t, three, dir)

	// put sends the config of app as JSON with the admin token, as curl would.
	put := func(app whApp) {
		t.Helper()
		var tree any
		if err := yaml.Unmarshal([]byte(whConfig(s.proxyPort, app)), &tree); err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		if code, out := s.do(http.MethodPut, "/api/serve/applications/", body); code != http.StatusOK {
			t.Fatalf("PUT /api/serve/applications/: %d %s", code, out)
		}
	}
	// same waits a second in which the target and the live replicas do not change.
	same := func(target int, pids []int) {
		t.Helper()
		consistently(t, time.Second, fmt.Sprintf("target %d and the same live replicas %v", target, pids), func() (bool, string) {
			_, got, rs := whReplicas(s, "echo", "model")
			var now []int
			for _, r := range rs {
				now = append(now, r.PID)
			}
			slices.Sort(now)
			return got == target && slices.Equal(now, pids) && len(liveOf(pids)) == len(pids), fmt.Sprintf("target %d, %+v", got, rs)
		})
		if info := whGetScale(t, s, "echo", "model"); info.Source != "webhook" {
			t.Errorf("target source = %q; want webhook", info.Source)
		}
	}

	put(whEcho(1, map[string]string{"MODEL": "small"}))
	same(3, three)

	// A changed env is a new version: a rolling update, and the target goes back to
	// num_replicas as in Ray. The new replicas still run in the file's directory.
	put(whEcho(1, map[string]string{"MODEL": "large"}))
	large := whSettled(s, "echo", "model", 1, "large")
	allDead(t, "every small replica to stop after the rolling update", three)
	if info := whGetScale(t, s, "echo", "model"); info.Source != "config" {
		t.Errorf("target source after the version changed = %q; want config", info.Source)
	}
	inDir(t, large, dir)

	// Restarted without a CONFIG, shoal reads the stored config back: the replicas run
	// where they ran, and the same body is still the same version.
	whMustScale(t, s, 2, 1)
	whSettled(s, "echo", "model", 2, "large")
	s.stop()
	s = startShoal(t, startOptions{stateDir: s.stateDir, proxyPort: s.proxyPort})
	two := whSettled(s, "echo", "model", 2, "large")
	inDir(t, two, dir)
	put(whEcho(1, map[string]string{"MODEL": "large"}))
	same(2, two)
}

// inDir checks that every process of pids runs in dir.
func inDir(t *testing.T, pids []int, dir string) {
	t.Helper()
	for _, pid := range pids {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil {
			t.Fatalf("working directory of replica %d: %v", pid, err)
		}
		if cwd != dir {
			t.Errorf("replica %d runs in %s; want the config file's directory %s", pid, cwd, dir)
		}
	}
}
