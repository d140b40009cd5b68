package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asDep is one deployment of an autoscaling test's config, running the sample replica.
type asDep struct {
	name        string
	numReplicas string            // "" leaves it out; "auto" or a count
	autoscaling string            // autoscaling_config as a YAML flow mapping; "" leaves it out
	env         map[string]string // e.g. STARTUP_DELAY_MS
}

// asApp is one application of an autoscaling test's config.
type asApp struct {
	name, prefix string
	scaler       bool // external_scaler_enabled
	deps         []asDep
}

// asConfig is a config of apps on proxyPort. Health checks are frequent; a stopped
// replica gets 10 s to finish the requests it holds, longer than any request here.
func asConfig(proxyPort int, apps ...asApp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http_options: {host: 127.0.0.1, port: %d, request_timeout_s: 20}\napplications:\n", proxyPort)
	for _, a := range apps {
		fmt.Fprintf(&b, "  - name: %s\n    route_prefix: %s\n    external_scaler_enabled: %t\n    deployments:\n", a.name, a.prefix, a.scaler)
		for _, d := range a.deps {
			fmt.Fprintf(&b, "      - name: %s\n        command: [%q]\n", d.name, bin.replica)
			if d.numReplicas != "" {
				fmt.Fprintf(&b, "        num_replicas: %s\n", d.numReplicas)
			}
			if d.autoscaling != "" {
				fmt.Fprintf(&b, "        autoscaling_config: %s\n", d.autoscaling)
			}
			writeEnv(&b, d.env)
			b.WriteString(`        health_check_path: /healthz
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 10
`)
		}
	}
	return b.String()
}

// asStart writes the config of apps and starts shoal on it; it returns shoal and the
// config's path, for redeploys.
func asStart(t *testing.T, apps ...asApp) (*shoal, string) {
	t.Helper()
	port := freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", asConfig(port, apps...))
	return startShoal(t, startOptions{config: cfg, proxyPort: port}), cfg
}

// asRedeploy rewrites the config at path and deploys it with `shoal deploy`.
func asRedeploy(t *testing.T, s *shoal, path string, apps ...asApp) {
	t.Helper()
	if err := os.WriteFile(path, []byte(asConfig(s.proxyPort, apps...)), 0o644); err != nil {
		t.Fatal(err)
	}
	whDeploy(t, s, path)
}

// asMetrics is shoal's view in autoscaling_detail.metrics.
type asMetrics struct {
	Decision      int        `json:"decision"`
	WindowAverage float64    `json:"window_average"`
	Queued        int        `json:"queued"`
	PendingSince  *time.Time `json:"pending_since"`
	PendingDelayS *float64   `json:"pending_delay_s"`
	PendingTarget int        `json:"pending_target"`
}

// asDetail is a deployment's autoscaling_detail.
type asDetail struct {
	ScalingStatus string     `json:"scaling_status"`
	Metrics       *asMetrics `json:"metrics"`
	MetricsHealth string     `json:"metrics_health"`
}

// asObs is one observation of a deployment: what the API says, and which replica
// processes are really alive.
type asObs struct {
	sent     time.Time // when the question was asked: the answer shows a state from after it
	at       time.Time // when the answer came: the state it shows was there before it
	status   string
	trigger  string
	target   int
	states   []string // the listed replicas' states, in the API's order
	detail   *asDetail
	live     []int // PIDs of the live processes shoal started for the deployment
	raw      string
	notFound bool
}

// running counts the listed replicas that are RUNNING.
func (o asObs) running() int {
	n := 0
	for _, st := range o.states {
		if st == "RUNNING" {
			n++
		}
	}
	return n
}

// has reports whether some listed replica is in state st.
func (o asObs) has(st string) bool {
	for _, s := range o.states {
		if s == st {
			return true
		}
	}
	return false
}

// settled is true when the deployment runs exactly n replicas, every one RUNNING and a
// live process, with target n.
func (o asObs) settled(n int) bool {
	return o.target == n && len(o.states) == n && o.running() == n && len(o.live) == n
}

func (o asObs) String() string {
	d := "none"
	if o.detail != nil && o.detail.Metrics != nil {
		m := o.detail.Metrics
		ps := "-"
		if m.PendingSince != nil {
			ps = m.PendingSince.Format("15:04:05.000")
		}
		if m.PendingDelayS != nil {
			ps += fmt.Sprintf(" for %gs", *m.PendingDelayS)
		}
		d = fmt.Sprintf("%s decision %d avg %.2f queued %d pending %d since %s", o.detail.ScalingStatus, m.Decision, m.WindowAverage, m.Queued, m.PendingTarget, ps)
	}
	return fmt.Sprintf("[%s %s/%s target %d replicas %v live %d; autoscaling: %s]",
		o.at.Format("15:04:05.000"), o.status, o.trigger, o.target, o.states, len(o.live), d)
}

// asObserve reads app/dep from GET /api/serve/applications/ and counts its live
// replica processes.
func asObserve(s *shoal, app, dep string) asObs {
	s.t.Helper()
	if s.isExited() {
		s.t.Fatalf("shoal exited: %v\n%s", s.exitErr, s.out)
	}
	s.status() // records PIDs so that cleanup can find leftovers
	sent := time.Now()
	code, body := s.do(http.MethodGet, "/api/serve/applications/", nil)
	o := asObs{sent: sent, at: time.Now()}
	if code != http.StatusOK {
		s.t.Fatalf("GET /api/serve/applications/: %d %s", code, body)
	}
	var d struct {
		Applications map[string]struct {
			Deployments map[string]json.RawMessage `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		s.t.Fatalf("GET /api/serve/applications/: %v\n%s", err, body)
	}
	raw, ok := d.Applications[app].Deployments[dep]
	if !ok {
		o.notFound = true
		return o
	}
	o.raw = string(raw)
	var dd struct {
		Status   string    `json:"status"`
		Trigger  string    `json:"status_trigger"`
		Target   int       `json:"target_num_replicas"`
		Detail   *asDetail `json:"autoscaling_detail"`
		Replicas []struct {
			State string `json:"state"`
		} `json:"replicas"`
	}
	if err := json.Unmarshal(raw, &dd); err != nil {
		s.t.Fatalf("deployment %s/%s: %v\n%s", app, dep, err, raw)
	}
	o.status, o.trigger, o.target, o.detail = dd.Status, dd.Trigger, dd.Target, dd.Detail
	for _, r := range dd.Replicas {
		o.states = append(o.states, r.State)
	}
	o.live = childReplicas(s.cmd.Process.Pid, app, dep)
	return o
}

// childReplicas returns the PIDs of the live processes that shoal (pid parent) started
// for app/dep, directly or under a supervisor of its own, and whose environment names
// app/dep: the replicas as the kernel sees them, whatever the API says.
func childReplicas(parent int, app, dep string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	ppids := map[int]int{} // every live process's parent
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ..."; comm may hold spaces or parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			ppids[pid] = ppid
		}
	}
	var out []int
	for pid, ppid := range ppids {
		if ppid != parent && ppids[ppid] != parent {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			continue
		}
		vars := bytes.Split(env, []byte{0})
		var okApp, okDep bool
		for _, kv := range vars {
			okApp = okApp || string(kv) == "SHOAL_APP="+app
			okDep = okDep || string(kv) == "SHOAL_DEPLOYMENT="+dep
		}
		if okApp && okDep {
			out = append(out, pid)
		}
	}
	sort.Ints(out)
	return out
}

// asWatch observes app/dep every 50 ms until until holds, and returns every
// observation made; it fails the test when until does not hold within timeout.
func asWatch(t *testing.T, s *shoal, app, dep string, timeout time.Duration, what string, until func(asObs) bool) []asObs {
	t.Helper()
	var hist []asObs
	deadline := time.Now().Add(timeout)
	for {
		o := asObserve(s, app, dep)
		hist = append(hist, o)
		if until(o) {
			return hist
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s; last seen: %s", timeout, what, o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// asHolds observes app/dep every 50 ms for d and fails the test at the first
// observation for which cond does not hold; it returns the observations.
func asHolds(t *testing.T, s *shoal, app, dep string, d time.Duration, what string, cond func(asObs) bool) []asObs {
	t.Helper()
	var hist []asObs
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		o := asObserve(s, app, dep)
		hist = append(hist, o)
		if !cond(o) {
			t.Fatalf("%s stopped holding: %s", what, o)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return hist
}

// asFirst returns the first observation of hist for which cond holds.
func asFirst(hist []asObs, cond func(asObs) bool) (asObs, bool) {
	for _, o := range hist {
		if cond(o) {
			return o, true
		}
	}
	return asObs{}, false
}

// asHistory formats observations for a failure message, the last n of them.
func asHistory(hist []asObs, n int) string {
	if len(hist) > n {
		hist = hist[len(hist)-n:]
	}
	var b strings.Builder
	for _, o := range hist {
		b.WriteString("\n  ")
		b.WriteString(o.String())
	}
	return b.String()
}

// asLoad is a load generator: clients that each loop GET url, one request at a time.
type asLoad struct {
	url    string
	client *http.Client
	wg     sync.WaitGroup
	stopc  chan struct{}
	n      int // clients started; only the test's goroutine touches it

	ok, failed atomic.Int64
	mu         sync.Mutex // guards lastErr
	lastErr    string
}

func asNewLoad(url string) *asLoad {
	return &asLoad{
		url:   url,
		stopc: make(chan struct{}),
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64},
		},
	}
}

// to raises the number of looping clients to n.
func (l *asLoad) to(n int) {
	for ; l.n < n; l.n++ {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stopc:
					return
				default:
				}
				r := pxGet(l.client, l.url)
				if r.err == nil && r.code == http.StatusOK {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.lastErr = r.String()
				l.mu.Unlock()
			}
		})
	}
}

// stop ends every client once its request in flight has finished.
func (l *asLoad) stop() {
	select {
	case <-l.stopc:
	default:
		close(l.stopc)
	}
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

// check fails the test when a request of the load failed.
func (l *asLoad) check(t *testing.T) {
	t.Helper()
	if f := l.failed.Load(); f > 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Errorf("%d of %d requests of the load failed; last: %s", f, f+l.ok.Load(), l.lastErr)
	}
}
