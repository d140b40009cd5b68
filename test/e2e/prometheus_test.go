package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal/test/testbin"
)

// TestPrometheusScalerClosesTheLoopThroughARealPrometheus runs the whole loop with
// real processes: load through shoal's proxy raises shoal_proxy_ongoing_requests,
// Debian's prometheus scrapes it from /metrics, `shoal scaler prometheus` (the built
// binary, its own process) queries it and scales the deployment up through the webhook;
// when the load stops it scales down once the cooldown has passed; when Prometheus
// stops, it falls back to the configured count and says so in its log.
func TestPrometheusScalerClosesTheLoopThroughARealPrometheus(t *testing.T) {
	promBin := prometheusBinary(t)
	s := pxStart(t, 20, pxApp{name: "echo", prefix: "/", deps: []pxDep{{name: "model", n: 1, maxOngoing: 20}}})
	prom := startPrometheus(t, promBin, fmt.Sprintf("127.0.0.1:%d", s.controlPort))
	eventually(t, 20*time.Second, "prometheus to have scraped shoal", func() (bool, string) {
		v, err := prom.query(`up{job="shoal"}`)
		return err == nil && v == 1, fmt.Sprintf("%v %v", v, err)
	})

	const cooldown = 4 * time.Second
	dir := t.TempDir()
	writeFile(t, dir, "token", appToken(t, s, "echo", false)+"\n")
	cfg := writeFile(t, dir, "prometheus.yaml", fmt.Sprintf(`shoal: {address: %q, token_file: token}
prometheus: {url: %q, timeout: 900ms}
interval: 1s
targets:
  - application: echo
    deployment: model
    query: sum(shoal_proxy_ongoing_requests{application="echo",deployment="model"})
    per_replica: 4
    min: 1
    max: 4
    scale_down_cooldown: %s
    fallback: {after: 2s, replicas: 2}
`, s.proxyURL(), prom.url, cooldown))
	sc := startProcess(t, "shoal scaler prometheus", bin.shoal, "scaler", "prometheus", "--config", cfg)

	// 12 clients, each with one slow request in flight at almost every moment: the
	// query sees 12, so the scaler wants ceil(12 / 4) = 3 replicas.
	stopLoad := holdRequests(t, s.proxyURL()+"/sleep?ms=300", 12)
	eventually(t, 20*time.Second, "the scaler to set the target to 3", func() (bool, string) {
		info := whGetScale(t, s, "echo", "model")
		return info.Target == 3, fmt.Sprintf("target %d; scaler log:\n%s", info.Target, sc.out)
	})
	s.running("echo", "model", 3) // three live replica processes, all RUNNING
	// What the scaler acted on is what Prometheus recorded of shoal's gauge.
	if v, err := prom.query(`sum(shoal_proxy_ongoing_requests{application="echo",deployment="model"})`); err != nil || v < 9 || v > 12 {
		t.Errorf("prometheus has the ongoing requests at %v (%v); want 9..12 under the load of 12", v, err)
	}

	stopLoad()
	eventually(t, 20*time.Second, "the scaler to scale down to 1 once the load stopped", func() (bool, string) {
		info := whGetScale(t, s, "echo", "model")
		return info.Target == 1, fmt.Sprintf("target %d; scaler log:\n%s", info.Target, sc.out)
	})
	s.running("echo", "model", 1)

	// The audit log has the scaler's calls, made with the application's token, and the
	// scale-down came no sooner than the cooldown after the last scale-up.
	audit := scaleAudit(t, s, "echo", "model")
	var up, down *auditEntry
	for i := range audit {
		e := &audit[i]
		if e.Status != http.StatusOK || e.From == e.To {
			continue
		}
		if !strings.HasPrefix(e.Token, "app:echo") {
			t.Errorf("audit entry %+v: want the scaler's call with echo's application token", *e)
		}
		switch {
		case e.To > e.From && (up == nil || e.Time.After(up.Time)) && (down == nil || e.Time.Before(down.Time)):
			up = e
		case e.To < e.From && e.To == 1 && (down == nil || e.Time.Before(down.Time)):
			down = e
		}
	}
	if up == nil || down == nil || up.To != 3 {
		t.Fatalf("audit %+v: want a scale-up to 3 and then a scale-down to 1", audit)
	}
	// Both times are shoal's, taken when each call arrived; the scaler's own clock
	// started the cooldown a few milliseconds before the first one.
	if gap := down.Time.Sub(up.Time); gap < cooldown-200*time.Millisecond {
		t.Errorf("scale-down %v after the scale-up; want no sooner than the %v cooldown", gap, cooldown)
	}

	// Prometheus goes away: the scaler keeps the target, then after fallback.after sets
	// the fallback count and says so.
	prom.stop()
	eventually(t, 20*time.Second, "the fallback target 2 after prometheus stopped", func() (bool, string) {
		info := whGetScale(t, s, "echo", "model")
		return info.Target == 2, fmt.Sprintf("target %d; scaler log:\n%s", info.Target, sc.out)
	})
	s.running("echo", "model", 2)
	log := sc.out.String()
	if !regexp.MustCompile(`level=WARN msg="decision applied: fallback".*target=2`).MatchString(log) {
		t.Errorf("the scaler's log does not say it applied the fallback:\n%s", log)
	}
	if !strings.Contains(log, "query_err=") {
		t.Errorf("the scaler's log does not say why the query failed:\n%s", log)
	}
	if !sc.stop() {
		t.Errorf("the scaler did not exit 0 on SIGTERM: %v", sc.cmd.ProcessState)
	}
}

// TestMetricsOfARunningShoalMatchMETRICSmd scrapes a running shoal after traffic, a
// scale call and a replica crash, and finds every metric of internal/metrics/METRICS.md
// with its type, help text and exact label names.
func TestMetricsOfARunningShoalMatchMETRICSmd(t *testing.T) {
	rows := metricsTable(t)
	s := pxStart(t, 10, pxModel(1, 0, 0))
	client := &http.Client{Timeout: 5 * time.Second}
	for range 5 {
		if code, body, err := get(client, s.proxyURL()+"/"); err != nil || code != http.StatusOK {
			t.Fatalf("GET /: %d %s %v", code, body, err)
		}
	}
	pxScale(t, s, "echo", "model", 2)
	pids := s.running("echo", "model", 2)
	// A replica killed from outside is a crash; shoal replaces it.
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the killed replica gone", func() (bool, string) {
		return !testbin.Alive(pids[0]), procStat(pids[:1])
	})
	if now := s.running("echo", "model", 2); slices.Contains(now, pids[0]) {
		t.Fatalf("replicas %v still include the killed %d", now, pids[0])
	}

	var scrape scraped
	eventually(t, 10*time.Second, "a scrape with the crash counted", func() (bool, string) {
		scrape = scrapeMetrics(t, s.controlURL()+"/metrics")
		return scrape.has("shoal_replica_crashes_total", map[string]string{"application": "echo", "deployment": "model"}),
			"no shoal_replica_crashes_total sample for echo/model"
	})
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			if got := scrape.types[r.name]; got != r.typ {
				t.Errorf("# TYPE %s is %q, want %q", r.name, got, r.typ)
			}
			if got := scrape.help[r.name]; got != r.help {
				t.Errorf("# HELP %s is %q, want %q", r.name, got, r.help)
			}
			sample := r.name
			if r.typ == "histogram" {
				sample += "_count"
			}
			var seen []string
			found := false
			for _, sm := range scrape.samples[sample] {
				seen = append(seen, fmt.Sprint(sm))
				if sm["application"] == "echo" && sm["deployment"] == "model" && sameKeys(sm, r.labels) {
					found = true
				}
			}
			if !found {
				t.Errorf("no sample of %s for echo/model with exactly the labels %v; seen %v", sample, r.labels, seen)
			}
		})
	}
	// The scale call and the states are counted with the values METRICS.md names.
	for _, want := range []struct {
		name   string
		labels map[string]string
	}{
		{"shoal_scale_requests_total", map[string]string{"source": "webhook", "result": "ok"}},
		{"shoal_deployment_replicas", map[string]string{"state": "RUNNING"}},
		{"shoal_deployment_replicas", map[string]string{"state": "STARTING"}},
		{"shoal_deployment_replicas", map[string]string{"state": "STOPPING"}},
		{"shoal_deployment_replicas", map[string]string{"state": "UNHEALTHY"}},
		{"shoal_proxy_requests_total", map[string]string{"code": "200"}},
	} {
		want.labels["application"], want.labels["deployment"] = "echo", "model"
		if !scrape.has(want.name, want.labels) {
			t.Errorf("no sample %s%v", want.name, want.labels)
		}
	}

	// `shoal scale` is counted as the CLI's request, and a redeploy that changes the
	// target (num_replicas 1 → 2 resets it) as the config's.
	if out, errOut, code := s.cli("scale", "echo", "model", "3"); code != 0 {
		t.Fatalf("shoal scale: exit %d\n%s%s", code, out, errOut)
	}
	s.running("echo", "model", 3)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", pxConfig(s.proxyPort, 10, pxModel(2, 0, 0)))
	if out, errOut, code := s.cli("deploy", cfg); code != 0 {
		t.Fatalf("shoal deploy: exit %d\n%s%s", code, out, errOut)
	}
	s.running("echo", "model", 2)
	for _, source := range []string{"cli", "config"} {
		labels := map[string]string{"application": "echo", "deployment": "model", "source": source, "result": "ok"}
		eventually(t, 10*time.Second, "a scale request counted with source "+source, func() (bool, string) {
			m := scrapeMetrics(t, s.controlURL()+"/metrics")
			return m.has("shoal_scale_requests_total", labels), fmt.Sprint(m.samples["shoal_scale_requests_total"])
		})
	}
}

// TestShoalStartRunsTheScalersOfItsConfig declares a schedule scaler in the serve
// config: `shoal start` runs it, it sets the deployment's target through the webhook
// with the application's token (no token file anywhere), and it stops with shoal.
func TestShoalStartRunsTheScalersOfItsConfig(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	// An always-on profile in a fixed timezone: 2 replicas whatever the time.
	writeFile(t, dir, "schedule.yaml", `timezone: UTC
targets:
  - application: echo
    deployment: model
    default: 1
    profiles:
      - {name: always, days: [mon-sun], from: "00:00", to: "24:00", replicas: 2}
`)
	cfg := writeFile(t, dir, "serve.yaml", whConfig(port, whEcho(1, nil))+"scalers:\n  schedule:\n    - config: schedule.yaml\n")
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	pids := s.running("echo", "model", 2)
	info := whGetScale(t, s, "echo", "model")
	if info.Target != 2 {
		t.Errorf("target %d, want the schedule's 2", info.Target)
	}
	audit := scaleAudit(t, s, "echo", "model")
	if !slices.ContainsFunc(audit, func(e auditEntry) bool {
		return e.To == 2 && e.Status == http.StatusOK && strings.HasPrefix(e.Token, "app:echo")
	}) {
		t.Errorf("audit %+v: want the schedule's call to 2 with echo's application token", audit)
	}
	if !strings.Contains(s.out.String(), "scaler=schedule") {
		t.Errorf("shoal's log does not mention the schedule scaler:\n%s", s.out)
	}
	if m := scrapeMetrics(t, s.controlURL()+"/metrics"); !m.has("shoal_scaler_target_replicas", map[string]string{"application": "echo", "deployment": "model"}) {
		t.Errorf("shoal's /metrics has no shoal_scaler_target_replicas for echo/model")
	}
	s.stop()
	allDead(t, "replicas after shoal stopped", pids)

	t.Run("a bad scaler file stops the start with its line", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.yaml", "timezone: Nowhere/Never\ntargets:\n  - {application: echo, deployment: model}\n")
		cfgBad := writeFile(t, dir, "serve-bad.yaml", whConfig(freePort(t), whEcho(1, nil))+"scalers:\n  schedule:\n    - config: bad.yaml\n")
		env := append(cleanEnv(), "SHOAL_STATE_DIR="+t.TempDir())
		_, stderr, code := runCLI(t, env, "start", "--dashboard-port", itoa(freePort(t)), cfgBad)
		if code == 0 || !strings.Contains(stderr, bad+":1: timezone") {
			t.Errorf("shoal start exited %d with %q; want an error naming %s:1: timezone", code, stderr, bad)
		}
	})
}

// TestShoalStartRunsThePrometheusScalerOfItsConfig declares a prometheus scaler in the
// serve config: under `shoal start` it queries a real Prometheus that scrapes this
// shoal, and load through the proxy raises the live replica count, which falls back
// after the cooldown once the load stops. A hand `shoal scale` is corrected: one below
// the desired count at the next evaluation, one above it after scale_down_cooldown.
func TestShoalStartRunsThePrometheusScalerOfItsConfig(t *testing.T) {
	promBin := prometheusBinary(t)
	port := freePort(t)
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const cooldown = 3 * time.Second
	dir := t.TempDir()
	// Until Prometheus is up the query fails and the target is kept: no fallback.
	writeFile(t, dir, "prometheus.yaml", fmt.Sprintf(`prometheus: {url: "http://%s", timeout: 900ms}
interval: 1s
targets:
  - application: echo
    deployment: model
    query: sum(shoal_proxy_ongoing_requests{application="echo",deployment="model"})
    per_replica: 4
    min: 1
    max: 4
    scale_down_cooldown: %s
`, promAddr, cooldown))
	cfg := writeFile(t, dir, "serve.yaml", pxConfig(port, 20, pxApp{name: "echo", prefix: "/", deps: []pxDep{{name: "model", n: 1, maxOngoing: 20}}})+
		"scalers:\n  prometheus:\n    - config: prometheus.yaml\n")
	s := startShoal(t, startOptions{config: cfg, proxyPort: port})
	s.running("echo", "model", 1)
	prom := startPrometheusAt(t, promBin, promAddr, fmt.Sprintf("127.0.0.1:%d", s.controlPort))
	eventually(t, 20*time.Second, "prometheus to have scraped shoal", func() (bool, string) {
		v, err := prom.query(`up{job="shoal"}`)
		return err == nil && v == 1, fmt.Sprintf("%v %v", v, err)
	})
	target := func(want int, within time.Duration, what string) {
		t.Helper()
		eventually(t, within, what, func() (bool, string) {
			info := whGetScale(t, s, "echo", "model")
			return info.Target == want, fmt.Sprintf("target %d; shoal's log:\n%s", info.Target, s.out)
		})
	}

	// 12 requests in flight: the scaler wants ceil(12 / 4) = 3 replicas.
	stopLoad := holdRequests(t, s.proxyURL()+"/sleep?ms=300", 12)
	target(3, 20*time.Second, "the config's scaler to set the target to 3 under load")
	pids := s.running("echo", "model", 3)
	if !strings.Contains(s.out.String(), "scaler=prometheus") {
		t.Errorf("shoal's log does not mention the prometheus scaler:\n%s", s.out)
	}

	// A hand scale below the desired count, under the same load: set back at the next
	// evaluation (scale_up_cooldown is 0).
	if out, errOut, code := s.cli("scale", "echo", "model", "1"); code != 0 {
		t.Fatalf("shoal scale echo model 1 exited %d: %s %s", code, out, errOut)
	}
	target(3, 10*time.Second, "the scaler to set the hand-made 1 back to 3")
	s.running("echo", "model", 3)
	if !strings.Contains(s.out.String(), "target 1 set outside the scaler (it was 3)") {
		t.Errorf("shoal's log does not say the target was set outside the scaler:\n%s", s.out)
	}

	stopLoad()
	target(1, 20*time.Second, "the scaler to scale down to 1 after the cooldown once the load stopped")
	left := s.running("echo", "model", 1)
	allDead(t, "the replicas scaled down", slices.DeleteFunc(pids, func(p int) bool { return slices.Contains(left, p) }))

	// A hand scale above the desired count holds for scale_down_cooldown, then goes.
	if out, errOut, code := s.cli("scale", "echo", "model", "2"); code != 0 {
		t.Fatalf("shoal scale echo model 2 exited %d: %s %s", code, out, errOut)
	}
	target(1, 20*time.Second, "the scaler to set the hand-made 2 back to 1")
	s.running("echo", "model", 1)

	// The audit log: the hand calls with the admin token, the scaler's with echo's
	// application token, the scale-down no sooner than the cooldown after the hand 2.
	var hand2, back1 *auditEntry
	audit := scaleAudit(t, s, "echo", "model")
	slices.SortFunc(audit, func(a, b auditEntry) int { return a.Time.Compare(b.Time) }) // newest first as served
	for i := range audit {
		e := &audit[i]
		switch {
		case e.Status == http.StatusOK && e.From == 1 && e.To == 2:
			hand2 = e
		case e.Status == http.StatusOK && e.From == 2 && e.To == 1 && hand2 != nil:
			back1 = e
			if !strings.HasPrefix(e.Token, "app:echo") {
				t.Errorf("audit entry %+v: want the scaler's call with echo's application token", *e)
			}
		}
	}
	if hand2 == nil || back1 == nil {
		t.Fatalf("audit %+v: want the hand-made 1 → 2 and then the scaler's 2 → 1", audit)
	}
	if strings.HasPrefix(hand2.Token, "app:") {
		t.Errorf("audit entry %+v: the hand call was made with the admin token", *hand2)
	}
	// Shoal's times; the scaler sees the change up to an interval (1s) after it was made
	// and counts the cooldown from then.
	if gap := back1.Time.Sub(hand2.Time); gap < cooldown-200*time.Millisecond {
		t.Errorf("the hand-made 2 undone %v after it was set; want no sooner than the %v cooldown", gap, cooldown)
	}
}

// prometheusBinary is Debian's prometheus; the test fails without it under CI=true.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	needTool(t, "prometheus (apt-get install prometheus)", err == nil)
	return p
}

// promServer is a prometheus the test runs on loopback.
type promServer struct {
	url string
	*process
}

// startPrometheus runs prometheus on a free loopback port with its data in a temp dir,
// scraping target's /metrics every second as job "shoal", and waits until it is ready.
func startPrometheus(t *testing.T, promBin, target string) *promServer {
	t.Helper()
	return startPrometheusAt(t, promBin, fmt.Sprintf("127.0.0.1:%d", freePort(t)), target)
}

// startPrometheusAt is startPrometheus listening on addr, for a test that must name
// Prometheus's URL before it can start it.
func startPrometheusAt(t *testing.T, promBin, addr, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	conf := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}
scrape_configs:
  - job_name: shoal
    static_configs: [{targets: [%q]}]
`, target))
	p := &promServer{url: "http://" + addr}
	p.process = startProcess(t, "prometheus", promBin,
		"--config.file="+conf,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	client := &http.Client{Timeout: time.Second}
	eventually(t, 30*time.Second, "prometheus ready", func() (bool, string) {
		if p.exited() {
			t.Fatalf("prometheus exited:\n%s", p.out)
		}
		code, body, err := get(client, p.url+"/-/ready")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
	return p
}

// query evaluates an instant query that returns one sample.
func (p *promServer) query(q string) (float64, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%d samples", len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// process is a program the test runs (prometheus, a scaler) with its output kept.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startProcess starts a program in its own process group, killed with the test's
// process if that dies, and stopped at the end of the test.
func startProcess(t *testing.T, name, path string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(path, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, p.out)
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to 10 s, then kills the process group. It reports
// whether the process exited 0.
func (p *process) stop() bool {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	return p.cmd.ProcessState.Success()
}

// holdRequests keeps n requests to url in flight, each client sending the next as soon
// as one is answered, until the returned stop is called (it waits for them).
func holdRequests(t *testing.T, url string, n int) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, _, err := get(client, url); err != nil {
					select {
					case <-done:
					case <-time.After(50 * time.Millisecond): // shoal is busy; try again soon
					}
				}
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// auditEntry is one entry of the scale route's audit log.
type auditEntry struct {
	Time   time.Time `json:"time"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Token  string    `json:"token"`
	Source string    `json:"source"`
	Status int       `json:"status"`
}

func scaleAudit(t *testing.T, s *shoal, app, dep string) []auditEntry {
	t.Helper()
	code, body := s.do(http.MethodGet, whScalePath(app, dep), nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", whScalePath(app, dep), code, body)
	}
	var info struct {
		Audit []auditEntry `json:"audit"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET %s: %v\n%s", whScalePath(app, dep), err, body)
	}
	return info.Audit
}

// metricRow is one row of METRICS.md's table.
type metricRow struct {
	name, typ, help string
	labels          []string
}

func metricsTable(t *testing.T) []metricRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bin.root, "internal/metrics/METRICS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []metricRow
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "| shoal_") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		if len(cells) != 4 {
			t.Fatalf("METRICS.md row %q: want name | type | labels | help", l)
		}
		r := metricRow{name: cells[0], typ: cells[1], help: cells[3]}
		for _, lb := range strings.Split(cells[2], ",") {
			r.labels = append(r.labels, strings.TrimSpace(lb))
		}
		rows = append(rows, r)
	}
	if len(rows) < 10 {
		t.Fatalf("METRICS.md has %d metric rows, want the table of at least 10", len(rows))
	}
	return rows
}

// scraped is a /metrics answer in Prometheus's text format, by metric name.
type scraped struct {
	types, help map[string]string
	samples     map[string][]map[string]string // sample name → label sets
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func scrapeMetrics(t *testing.T, url string) scraped {
	t.Helper()
	code, body, err := get(&http.Client{Timeout: 5 * time.Second}, url)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, code, err)
	}
	s := scraped{types: map[string]string{}, help: map[string]string{}, samples: map[string][]map[string]string{}}
	for _, l := range strings.Split(string(body), "\n") {
		switch {
		case strings.HasPrefix(l, "# TYPE "):
			f := strings.Fields(l)
			s.types[f[2]] = f[3]
		case strings.HasPrefix(l, "# HELP "):
			name, text, _ := strings.Cut(strings.TrimPrefix(l, "# HELP "), " ")
			s.help[name] = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(text)
		case l != "" && !strings.HasPrefix(l, "#"):
			m := sampleRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("unparsable sample line %q", l)
			}
			labels := map[string]string{}
			for _, lm := range labelRE.FindAllStringSubmatch(m[2], -1) {
				labels[lm[1]] = lm[2]
			}
			s.samples[m[1]] = append(s.samples[m[1]], labels)
		}
	}
	return s
}

// has reports whether a sample of name carries every label of want.
func (s scraped) has(name string, want map[string]string) bool {
	for _, got := range s.samples[name] {
		ok := true
		for k, v := range want {
			if got[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// sameKeys reports whether a label set has exactly the names in keys.
func sameKeys(labels map[string]string, keys []string) bool {
	if len(labels) != len(keys) {
		return false
	}
	for _, k := range keys {
		if _, ok := labels[k]; !ok {
			return false
		}
	}
	return true
}
