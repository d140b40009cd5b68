package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shoal/test/testbin"
)

// start runs shoal on a fresh echo config with n replicas and waits for them.
func startEcho(t *testing.T, n int) (*shoal, []int) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cfg := writeFile(t, dir, "serve.yaml", echoConfig(port, n, "small"))
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	return s, s.running("echo", "model", n)
}

func TestDeployedReplicasRunAsLiveProcessesAndAnswerThroughTheProxy(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)

	client := &http.Client{Timeout: 5 * time.Second}
	seen := map[int]bool{}
	eventually(t, 10*time.Second, "answers from both replicas through the proxy", func() (bool, string) {
		code, body, err := get(client, s.proxyURL()+"/hello")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%d %s %v", code, body, err)
		}
		var a echoAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("answer is not the replica's JSON: %v: %s", err, body)
		}
		if a.App != "echo" || a.Deployment != "model" || a.Path != "/hello" || a.Model != "small" {
			t.Fatalf("answer does not come from the echo replica with the path unchanged: %+v", a)
		}
		if !slices.Contains(pids, a.PID) {
			t.Fatalf("answered by pid %d, which is not one of the RUNNING replicas %v", a.PID, pids)
		}
		seen[a.PID] = true
		return len(seen) == 2, fmt.Sprintf("answers from %v", seen)
	})
}

func TestAReplicaKilledWithSIGKILLIsReplacedAndRunsAgain(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)

	victim := pids[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a replacement for the killed replica", func() (bool, string) {
		d := s.status().Applications["echo"].Deployments["model"]
		running := 0
		for _, r := range d.Replicas {
			if r.PID == victim {
				return false, fmt.Sprintf("the killed pid %d is still listed: %+v", victim, d.Replicas)
			}
			if r.State == "RUNNING" && testbin.Alive(r.PID) {
				running++
			}
		}
		return running == 2 && len(d.Replicas) == 2, fmt.Sprintf("%+v", d.Replicas)
	})
	if testbin.Alive(pids[1]) == false {
		t.Errorf("the replica that was not killed (pid %d) was stopped too", pids[1])
	}
}

func TestChangingEnvRollsReplicasWithoutAFailedRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	cfg := writeFile(t, dir, "serve.yaml", echoConfig(port, 2, "small"))
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	old := s.running("echo", "model", 2)

	// A client sends requests one after another for the whole update and counts every
	// answer that is not a 200 from a replica.
	var (
		stop            = make(chan struct{})
		wg              sync.WaitGroup
		total, failures atomic.Int64
		mu              sync.Mutex // guards models and lastFailure
		models          = map[string]int{}
		lastFailure     string
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := get(client, s.proxyURL()+"/")
				total.Add(1)
				var a echoAnswer
				if err != nil || code != http.StatusOK || json.Unmarshal(body, &a) != nil {
					failures.Add(1)
					mu.Lock()
					lastFailure = fmt.Sprintf("%d %s %v", code, body, err)
					mu.Unlock()
					continue
				}
				mu.Lock()
				models[a.Model]++
				mu.Unlock()
			}
		})
	}
	stopClient := func() { close(stop); wg.Wait() }

	// Wait for the client to have had some answers from the old version first.
	eventually(t, 10*time.Second, "answers before the update", func() (bool, string) {
		return total.Load() >= 20, fmt.Sprint(total.Load())
	})

	writeFile(t, dir, "serve.yaml", echoConfig(port, 2, "large"))
	if out, errOut, code := s.cli("deploy", cfg); code != 0 {
		stopClient()
		t.Fatalf("shoal deploy exited %d: %s %s", code, out, errOut)
	}

	var fresh []int
	eventually(t, 30*time.Second, "two RUNNING replicas of the new version, the old ones gone", func() (bool, string) {
		d := s.status().Applications["echo"].Deployments["model"]
		fresh = fresh[:0]
		for _, r := range d.Replicas {
			if slices.Contains(old, r.PID) || r.State != "RUNNING" {
				return false, fmt.Sprintf("%+v", d.Replicas)
			}
			fresh = append(fresh, r.PID)
		}
		return len(fresh) == 2 && len(liveOf(old)) == 0, fmt.Sprintf("%+v; old live: %v", d.Replicas, liveOf(old))
	})
	// Let the client run on the new version for a moment too.
	after := total.Load()
	eventually(t, 10*time.Second, "answers after the update", func() (bool, string) {
		return total.Load() >= after+20, fmt.Sprint(total.Load())
	})
	stopClient()

	mu.Lock()
	defer mu.Unlock()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during the rolling update; last: %s", n, total.Load(), lastFailure)
	}
	if models["small"] == 0 || models["large"] == 0 {
		t.Errorf("answers by MODEL: %v; want answers from both the old and the new version", models)
	}
	t.Logf("%d requests, by MODEL: %v", total.Load(), models)
}

func TestShoalDeleteStopsEveryReplicaProcess(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)

	if out, errOut, code := s.cli("delete"); code != 0 {
		t.Fatalf("shoal delete exited %d: %s %s", code, out, errOut)
	}
	eventually(t, 30*time.Second, "no application listed and no replica process left", func() (bool, string) {
		d := s.status()
		return len(d.Applications) == 0 && len(liveOf(pids)) == 0,
			fmt.Sprintf("applications %v, live pids %v", d.Applications, liveOf(pids))
	})
}

func TestSIGTERMStopsEveryReplicaAndExitsZero(t *testing.T) {
	t.Parallel()
	s, pids := startEcho(t, 2)
	s.stop()
	if live := liveOf(pids); len(live) > 0 {
		t.Errorf("replica processes %v outlived shoal's graceful stop", live)
	}
}

func TestShoalKilledWithSIGKILLLeavesNoReplicaAndComesBackOnStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	cfg := writeFile(t, dir, "serve.yaml", echoConfig(port, 3, "small"))
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	pids := s.running("echo", "model", 3)

	s.kill()
	eventually(t, 10*time.Second, "every replica to die with shoal", func() (bool, string) {
		live := liveOf(pids)
		return len(live) == 0, fmt.Sprintf("live replica pids %v: %s", live, procStat(live))
	})

	// No CONFIG: shoal brings back what the state dir holds.
	again := startShoal(t, startOptions{stateDir: s.stateDir, proxyPort: port})
	fresh := again.running("echo", "model", 3)
	for _, p := range fresh {
		if slices.Contains(pids, p) {
			t.Errorf("pid %d of the killed shoal's replicas is listed again", p)
		}
	}
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, again.proxyURL()+"/")
	if err != nil || code != http.StatusOK {
		t.Errorf("after the restart the proxy answers %d %s %v; want 200", code, body, err)
	}
}

func TestAWebhookTargetSurvivesAKillAndRestartOfShoal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	cfg := strings.Replace(echoConfig(port, 1, "small"), "    route_prefix: /\n", "    route_prefix: /\n    external_scaler_enabled: true\n", 1)
	s := startShoal(t, startOptions{config: writeFile(t, dir, "serve.yaml", cfg), proxyPort: port})
	s.running("echo", "model", 1)

	code, body := s.do(http.MethodPost, "/api/v1/applications/echo/deployments/model/scale", []byte(`{"target_num_replicas": 2}`))
	if code != http.StatusOK {
		t.Fatalf("scale answered %d %s", code, body)
	}
	pids := s.running("echo", "model", 2)
	s.kill()
	eventually(t, 10*time.Second, "every replica to die with shoal", func() (bool, string) {
		live := liveOf(pids)
		return len(live) == 0, fmt.Sprintf("live replica pids %v: %s", live, procStat(live))
	})

	again := startShoal(t, startOptions{stateDir: s.stateDir, proxyPort: port})
	again.running("echo", "model", 2)
	if d := again.status().Applications["echo"].Deployments["model"]; d.Target != 2 {
		t.Errorf("target after the restart = %d; want the webhook's 2", d.Target)
	}
}
