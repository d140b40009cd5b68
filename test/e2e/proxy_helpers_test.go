package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pxDep is one deployment of a proxy test's config, running the sample replica.
type pxDep struct {
	name       string
	n          int               // num_replicas
	maxOngoing int               // max_ongoing_requests; 0 leaves the default
	maxQueued  int               // max_queued_requests; 0 leaves the default (-1)
	env        map[string]string // MODEL and the like
}

// pxApp is one application of a proxy test's config; the first deployment is the
// ingress and the external scaler is on, so the tests can scale through the webhook.
type pxApp struct {
	name, prefix string
	deps         []pxDep
}

// pxConfig is a config of apps on proxyPort with request_timeout_s timeout. Health
// checks are frequent and graceful stops wait up to 20 s for requests in flight, longer
// than any slow request of these tests.
func pxConfig(proxyPort, timeout int, apps ...pxApp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http_options: {host: 127.0.0.1, port: %d, request_timeout_s: %d}\napplications:\n", proxyPort, timeout)
	for _, a := range apps {
		fmt.Fprintf(&b, "  - name: %s\n    route_prefix: %s\n    external_scaler_enabled: true\n    deployments:\n", a.name, a.prefix)
		for _, d := range a.deps {
			fmt.Fprintf(&b, "      - name: %s\n        num_replicas: %d\n        command: [%q]\n", d.name, d.n, bin.replica)
			if d.maxOngoing > 0 {
				fmt.Fprintf(&b, "        max_ongoing_requests: %d\n", d.maxOngoing)
			}
			if d.maxQueued != 0 {
				fmt.Fprintf(&b, "        max_queued_requests: %d\n", d.maxQueued)
			}
			writeEnv(&b, d.env)
			b.WriteString(`        health_check_path: /healthz
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 20
`)
		}
	}
	return b.String()
}

// pxStart starts shoal on a config of apps and waits until every deployment runs its
// num_replicas.
func pxStart(t *testing.T, timeout int, apps ...pxApp) *shoal {
	t.Helper()
	port := freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", pxConfig(port, timeout, apps...))
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	for _, a := range apps {
		for _, d := range a.deps {
			s.running(a.name, d.name, d.n)
		}
	}
	return s
}

// pxModel is the usual single application: "echo" at "/" with one deployment "model".
func pxModel(n, maxOngoing, maxQueued int) pxApp {
	return pxApp{name: "echo", prefix: "/", deps: []pxDep{{name: "model", n: n, maxOngoing: maxOngoing, maxQueued: maxQueued}}}
}

// pxScale sets app/dep's target through the scale webhook on the control port.
func pxScale(t *testing.T, s *shoal, app, dep string, n int) {
	t.Helper()
	if a := whScale(t, s.controlURL(), s.token(), app, dep, n); a.code != http.StatusOK {
		t.Fatalf("scale %s/%s to %d: %s; want 200", app, dep, n, a)
	}
}

// pxStats is what a sample replica answers on /stats.
type pxStats struct {
	MaxConcurrent int `json:"max_concurrent"`
	Current       int `json:"current"`
	Total         int `json:"total"`
}

// pxReplicaStats asks a replica's /stats directly, bypassing the proxy: the replica
// listens on 127.0.0.1:$PORT, and its PORT is in its process's environment.
func pxReplicaStats(pid int) (pxStats, error) {
	var st pxStats
	port := envOf(pid, "PORT")
	if port == "" {
		return st, fmt.Errorf("replica pid %d is gone or has no PORT", pid)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + port + "/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("replica pid %d /stats: %s", pid, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// pxEachBusy waits until every one of pids holds exactly one request in flight.
func pxEachBusy(t *testing.T, pids []int) {
	t.Helper()
	eventually(t, 15*time.Second, fmt.Sprintf("one request in flight on each replica %v", pids), func() (bool, string) {
		var seen []string
		ok := true
		for _, p := range pids {
			st, err := pxReplicaStats(p)
			if err != nil {
				return false, err.Error()
			}
			seen = append(seen, fmt.Sprintf("pid %d: %+v", p, st))
			ok = ok && st.Current == 1
		}
		return ok, strings.Join(seen, "; ")
	})
}

// pxQueued reads shoal_proxy_queued_requests of app/dep from the control port's
// /metrics; -1 when the series is missing.
func pxQueued(t *testing.T, s *shoal, app, dep string) int {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.controlURL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`application=%q`, app)
	wantDep := fmt.Sprintf(`deployment=%q`, dep)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "shoal_proxy_queued_requests{") || !strings.Contains(line, want) || !strings.Contains(line, wantDep) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		return int(v)
	}
	return -1
}

// pxReplicaIDs maps the PIDs of app/dep's replicas to their replica ids.
func pxReplicaIDs(s *shoal, app, dep string) map[int]string {
	s.t.Helper()
	out := map[int]string{}
	for _, r := range s.status().Applications[app].Deployments[dep].Replicas {
		out[r.PID] = r.ID
	}
	return out
}

// pxResult is one finished request of a test's background clients.
type pxResult struct {
	code    int
	body    []byte
	err     error
	replica string // replica_id of the answer, when it is the replica's JSON
}

func (r pxResult) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.code, strings.TrimSpace(string(r.body)))
}

// pxGet sends one GET on client and reads which replica answered.
func pxGet(client *http.Client, url string) pxResult {
	code, body, err := get(client, url)
	r := pxResult{code: code, body: body, err: err}
	var a struct {
		ReplicaID string `json:"replica_id"`
	}
	if err == nil && json.Unmarshal(body, &a) == nil {
		r.replica = a.ReplicaID
	}
	return r
}

// pxGoGet sends a GET in the background; its result arrives on the channel.
func pxGoGet(url string) <-chan pxResult {
	ch := make(chan pxResult, 1)
	go func() {
		ch <- pxGet(&http.Client{Timeout: 60 * time.Second}, url)
	}()
	return ch
}

// pxWait collects the results of background requests, failing the test when one does
// not arrive in time.
func pxWait(t *testing.T, timeout time.Duration, chs ...<-chan pxResult) []pxResult {
	t.Helper()
	out := make([]pxResult, len(chs))
	deadline := time.After(timeout)
	for i, ch := range chs {
		select {
		case out[i] = <-ch:
		case <-deadline:
			t.Fatalf("after %v, %d of %d requests have not finished", timeout, len(chs)-i, len(chs))
		}
	}
	return out
}

// pxStoreMax raises m to v when v is larger.
func pxStoreMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
