package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidatePrintsOkForTheExampleConfigs(t *testing.T) {
	t.Parallel()
	for _, cfg := range []string{"examples/quickstart/serve.yaml", "examples/seed/serve.yaml"} {
		t.Run(cfg, func(t *testing.T) {
			out, errOut, code := runCLI(t, cleanEnv(), "validate", filepath.Join(bin.root, cfg))
			if code != 0 || strings.TrimSpace(out) != "ok" {
				t.Errorf("shoal validate %s: exit %d, stdout %q, stderr %q; want exit 0 and ok", cfg, code, out, errOut)
			}
		})
	}
}

func TestValidatePrintsEveryErrorWithItsLineAndExits1(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := writeFile(t, dir, "bad.yaml", `applications:
  - name: a
    deployments:
      - name: d
        num_replicas: 0
        command: ["true"]
        max_ongoing_requests: 0
`)
	out, errOut, code := runCLI(t, cleanEnv(), "validate", p)
	if code != 1 {
		t.Errorf("exit %d; want 1 (stderr %q)", code, errOut)
	}
	got := lines(out)
	if len(got) != 2 {
		t.Fatalf("want two errors, one per line; got:\n%s", out)
	}
	for i, want := range []string{"bad.yaml:5: ", "bad.yaml:7: "} {
		if !strings.Contains(got[i], want) {
			t.Errorf("error %d = %q; want it located at %q", i, got[i], want)
		}
	}
}

func TestASecondStartOnTheSameStateDirFailsWithTheLockMessage(t *testing.T) {
	t.Parallel()
	cfg, port := emptyConfig(t)
	first := startShoal(t, startOptions{config: cfg, proxyPort: port})

	// The second has a port of its own, so only the lock can stop it.
	other, otherPort := emptyConfig(t)
	second := launch(t, startOptions{stateDir: first.stateDir, config: other, proxyPort: otherPort})
	second.waitExit(20 * time.Second)
	if second.exitErr == nil {
		t.Fatalf("the second shoal exited 0; want an error\n%s", second.out)
	}
	out := second.out.String()
	if !strings.Contains(out, "state directory") || !strings.Contains(out, "another shoal") {
		t.Errorf("the second shoal's error does not say the state directory is in use:\n%s", out)
	}
	first.waitHealthy()
}

func TestCLIReportsAnUnreachableShoalInOneLine(t *testing.T) {
	t.Parallel()
	env := append(cleanEnv(), "SHOAL_STATE_DIR="+t.TempDir(), "SHOAL_ADDRESS=http://127.0.0.1:"+itoa(freePort(t)))
	_, errOut, code := runCLI(t, env, "status")
	if code != 1 {
		t.Errorf("exit %d; want 1", code)
	}
	if l := lines(errOut); len(l) != 1 || !strings.Contains(l[0], "cannot reach shoal") || !strings.Contains(l[0], "shoal start") {
		t.Errorf("stderr = %q; want one line saying shoal cannot be reached and how to start it", errOut)
	}
}

func TestStatusPrintsATableAndTheAPIShapeAsJSON(t *testing.T) {
	t.Parallel()
	s, _ := startEcho(t, 1)

	out, errOut, code := s.cli("status")
	if code != 0 {
		t.Fatalf("shoal status exited %d: %s", code, errOut)
	}
	for _, want := range []string{"echo", "RUNNING", "model", "HEALTHY"} {
		if !strings.Contains(out, want) {
			t.Errorf("shoal status does not show %q:\n%s", want, out)
		}
	}

	out, errOut, code = s.cli("status", "-o", "json")
	if code != 0 {
		t.Fatalf("shoal status -o json exited %d: %s", code, errOut)
	}
	var d details
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("shoal status -o json is not JSON: %v\n%s", err, out)
	}
	if len(d.Applications["echo"].Deployments["model"].Replicas) != 1 {
		t.Errorf("shoal status -o json does not list the replica:\n%s", out)
	}
}

func TestLogsShowsWhatReplicasPrinted(t *testing.T) {
	t.Parallel()
	s, _ := startEcho(t, 1)
	var out string
	eventually(t, 10*time.Second, "the replica's start line in shoal logs", func() (bool, string) {
		var errOut string
		var code int
		out, errOut, code = s.cli("logs", "echo", "model")
		return code == 0 && strings.Contains(out, "listening on"), out + errOut
	})
	if _, err := os.Stat(filepath.Join(s.stateDir, "logs", "echo", "model")); err != nil {
		t.Errorf("no log directory where SPEC §3 puts it: %v", err)
	}
}

func TestScaleWaitReturnsOnceTheCountIsRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	cfg := strings.Replace(echoConfig(port, 1, "small"), "    route_prefix: /\n", "    route_prefix: /\n    external_scaler_enabled: true\n", 1)
	s := startShoal(t, startOptions{config: writeFile(t, dir, "serve.yaml", cfg), proxyPort: port})
	s.running("echo", "model", 1)

	out, errOut, code := s.cli("scale", "echo", "model", "3", "--wait", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("shoal scale --wait exited %d: %s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "echo/model: target 3 (was 1)") || !strings.HasSuffix(out, "echo/model: 3/3 running\n") {
		t.Errorf("stdout:\n%s", out)
	}
	if pids := s.running("echo", "model", 3); len(liveOf(pids)) != 3 {
		t.Errorf("after --wait returned, live replicas are %v", liveOf(pids))
	}
}

func TestDeletingOneApplicationByNameKeepsTheOthersRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	cfg := echoConfig(port, 1, "small") + fmt.Sprintf(`  - name: other
    route_prefix: /other
    deployments:
      - name: dep
        command: [%q]
        health_check_path: /healthz
        graceful_shutdown_wait_loop_s: 0.05
`, bin.replica)
	s := startShoal(t, startOptions{config: writeFile(t, dir, "serve.yaml", cfg), proxyPort: port})
	keep := s.running("echo", "model", 1)
	gone := s.running("other", "dep", 1)

	if out, errOut, code := s.cli("delete", "other"); code != 0 {
		t.Fatalf("shoal delete other exited %d: %s %s", code, out, errOut)
	}
	eventually(t, 30*time.Second, "other gone, with its replica", func() (bool, string) {
		d := s.status()
		_, still := d.Applications["other"]
		return !still && len(liveOf(gone)) == 0, fmt.Sprintf("other listed: %v, live: %v", still, liveOf(gone))
	})
	if now := s.running("echo", "model", 1); now[0] != keep[0] {
		t.Errorf("echo's replica changed from pid %d to %d; deleting another application must not touch it", keep[0], now[0])
	}
}
