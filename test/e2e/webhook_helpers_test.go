package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/test/testbin"
)

// whApp is one application of a webhook test's config: a deployment "model" of sample
// replicas.
type whApp struct {
	name   string
	prefix string
	scaler bool              // external_scaler_enabled
	n      int               // num_replicas
	env    map[string]string // the deployment's env (MODEL, STARTUP_DELAY_MS)
	limit  int               // replica_limit; 0 leaves the default
}

// whConfig is a config of apps on proxyPort. Health checks are frequent and graceful
// stops short, so that every scale settles in well under a second plus any startup delay.
func whConfig(proxyPort int, apps ...whApp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "http_options: {host: 127.0.0.1, port: %d, request_timeout_s: 20}\n", proxyPort)
	if len(apps) == 0 {
		b.WriteString("applications: []\n")
		return b.String()
	}
	b.WriteString("applications:\n")
	for _, a := range apps {
		fmt.Fprintf(&b, "  - name: %s\n    route_prefix: %s\n    external_scaler_enabled: %t\n    deployments:\n", a.name, a.prefix, a.scaler)
		fmt.Fprintf(&b, "      - name: model\n        num_replicas: %d\n        command: [%q]\n", a.n, bin.replica)
		writeEnv(&b, a.env)
		if a.limit > 0 {
			fmt.Fprintf(&b, "        replica_limit: %d\n", a.limit)
		}
		b.WriteString(`        health_check_path: /healthz
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 5
`)
	}
	return b.String()
}

// whEcho is the usual single application: "echo" at "/", scaler enabled.
func whEcho(n int, env map[string]string) whApp {
	return whApp{name: "echo", prefix: "/", scaler: true, n: n, env: env}
}

// whStart writes the config of apps and starts shoal on it; it returns shoal and the
// config's path, for redeploys.
func whStart(t *testing.T, apps ...whApp) (*shoal, string) {
	t.Helper()
	port := freePort(t)
	cfg := writeFile(t, t.TempDir(), "serve.yaml", whConfig(port, apps...))
	return startShoal(t, startOptions{config: cfg, proxyPort: port}), cfg
}

// whRedeploy rewrites the config at path and deploys it with `shoal deploy`.
func whRedeploy(t *testing.T, s *shoal, path string, apps ...whApp) {
	t.Helper()
	if err := os.WriteFile(path, []byte(whConfig(s.proxyPort, apps...)), 0o644); err != nil {
		t.Fatal(err)
	}
	whDeploy(t, s, path)
}

func whDeploy(t *testing.T, s *shoal, path string) {
	t.Helper()
	if out, errOut, code := s.cli("deploy", path); code != 0 {
		t.Fatalf("shoal deploy exited %d: %s %s", code, out, errOut)
	}
}

// whAnswer is a webhook answer: its status, headers, and body both raw and decoded.
type whAnswer struct {
	code   int
	header http.Header
	raw    string
	body   map[string]any
}

// errorText is the answer's {"error": ...}.
func (a whAnswer) errorText() string {
	s, _ := a.body["error"].(string)
	return s
}

func (a whAnswer) String() string { return fmt.Sprintf("%d %s", a.code, strings.TrimSpace(a.raw)) }

// whScalePath is the webhook route of app/dep.
func whScalePath(app, dep string) string {
	return "/api/v1/applications/" + app + "/deployments/" + dep + "/scale"
}

// whRequest is one raw call of the scale route; empty header values are not sent.
type whRequest struct {
	base, method, app, dep string
	auth, ctype            string
	body                   []byte
	client                 *http.Client // whHTTP when nil
}

var whHTTP = &http.Client{Timeout: 10 * time.Second}

// whClientFrom is a client whose connections come from ip, an address of the loopback
// range other than 127.0.0.1, so that shoal sees another client address.
func whClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func whDo(t *testing.T, r whRequest) whAnswer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, r.base+whScalePath(r.app, r.dep), bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	c := r.client
	if c == nil {
		c = whHTTP
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := whAnswer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// scale POSTs {"target_num_replicas": n} to app/dep on base with token.
func whScale(t *testing.T, base, token, app, dep string, n int) whAnswer {
	t.Helper()
	return whDo(t, whRequest{base: base, app: app, dep: dep, auth: "Bearer " + token,
		ctype: "application/json", body: fmt.Appendf(nil, `{"target_num_replicas": %d}`, n)})
}

// whMustScale scales echo/model with the admin token on the control port and checks
// the 200 and the previous target it reports.
func whMustScale(t *testing.T, s *shoal, n, prev int) {
	t.Helper()
	a := whScale(t, s.controlURL(), s.token(), "echo", "model", n)
	if a.code != http.StatusOK {
		t.Fatalf("scale echo/model to %d: %s; want 200", n, a)
	}
	if a.body["target_num_replicas"] != float64(n) || a.body["previous_target_num_replicas"] != float64(prev) {
		t.Fatalf("scale echo/model to %d: %s; want target_num_replicas %d, previous_target_num_replicas %d", n, a, n, prev)
	}
}

// whScaleInfo is the part of GET on the scale route the tests read.
type whScaleInfo struct {
	Target  int    `json:"target_num_replicas"`
	Running int    `json:"running_replicas"`
	Mode    string `json:"mode"`
	Source  string `json:"target_source"`
	Limit   int    `json:"replica_limit"`
	Audit   []struct {
		From   int    `json:"from"`
		To     int    `json:"to"`
		Token  string `json:"token"`
		Status int    `json:"status"`
	} `json:"audit"`
}

func whGetScale(t *testing.T, s *shoal, app, dep string) whScaleInfo {
	t.Helper()
	code, body := s.do(http.MethodGet, whScalePath(app, dep), nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", whScalePath(app, dep), code, body)
	}
	var info whScaleInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("GET %s: %v\n%s", whScalePath(app, dep), err, body)
	}
	return info
}

// whReplica is a replica as the tests here read it, with its ongoing requests.
type whReplica struct {
	ID      string `json:"replica_id"`
	State   string `json:"state"`
	PID     int    `json:"pid"`
	Ongoing int    `json:"ongoing_requests"`
	Model   string `json:"-"` // MODEL in the live process's environment
}

// whReplicas lists app/dep's replicas from the API, each with the MODEL its live
// process runs with ("" when the process is gone). It records the PIDs for cleanup.
func whReplicas(s *shoal, app, dep string) (status string, target int, rs []whReplica) {
	s.t.Helper()
	s.status() // records PIDs so that cleanup can find leftovers
	code, body := s.do(http.MethodGet, "/api/serve/applications/", nil)
	if code != http.StatusOK {
		s.t.Fatalf("GET /api/serve/applications/: %d %s", code, body)
	}
	var d struct {
		Applications map[string]struct {
			Status      string `json:"status"`
			Deployments map[string]struct {
				Target   int         `json:"target_num_replicas"`
				Replicas []whReplica `json:"replicas"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		s.t.Fatalf("GET /api/serve/applications/: %v\n%s", err, body)
	}
	a, ok := d.Applications[app]
	if !ok {
		return "", 0, nil
	}
	dd := a.Deployments[dep]
	for i := range dd.Replicas {
		dd.Replicas[i].Model = envOf(dd.Replicas[i].PID, "MODEL")
	}
	return a.Status, dd.Target, dd.Replicas
}

// whSettled waits until app/dep has exactly n replicas, every one RUNNING, a live
// process and started with MODEL=model (any model when model is ""), and the
// deployment's target is n; it returns their PIDs, sorted.
func whSettled(s *shoal, app, dep string, n int, model string) []int {
	s.t.Helper()
	var pids []int
	eventually(s.t, 30*time.Second, fmt.Sprintf("%s/%s settled at %d RUNNING live replicas (MODEL %q)", app, dep, n, model), func() (bool, string) {
		if s.isExited() {
			s.t.Fatalf("shoal exited: %v\n%s", s.exitErr, s.out)
		}
		_, target, rs := whReplicas(s, app, dep)
		pids = pids[:0]
		for _, r := range rs {
			if r.State != "RUNNING" || !testbin.Alive(r.PID) || (model != "" && r.Model != model) {
				return false, fmt.Sprintf("target %d, replicas %+v", target, rs)
			}
			pids = append(pids, r.PID)
		}
		return len(pids) == n && target == n, fmt.Sprintf("target %d, replicas %+v", target, rs)
	})
	slices.Sort(pids)
	return pids
}

// envOf returns the value of key in a live process's environment, "" when the process
// or the variable is missing.
func envOf(pid int, key string) string {
	if pid <= 0 || !testbin.Alive(pid) {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k == key {
			return v
		}
	}
	return ""
}

// allDead waits until none of pids is a live process.
func allDead(t *testing.T, what string, pids []int) {
	t.Helper()
	eventually(t, 15*time.Second, what, func() (bool, string) {
		live := liveOf(pids)
		return len(live) == 0, fmt.Sprintf("live: %v %s", live, procStat(live))
	})
}

// consistently checks cond for the whole of d, failing at the first time it does not
// hold: a bounded check that something does not happen.
func consistently(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, seen := cond(); !ok {
			t.Fatalf("%s stopped holding: %s", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// appToken returns app's token as `shoal token APP` prints it.
func appToken(t *testing.T, s *shoal, app string, rotate bool) string {
	t.Helper()
	args := []string{"token", app}
	if rotate {
		args = append(args, "--rotate")
	}
	out, errOut, code := s.cli(args...)
	tok := strings.TrimSpace(out)
	if code != 0 || tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("shoal %s: exit %d, stdout %q, stderr %q; want the token alone", strings.Join(args, " "), code, out, errOut)
	}
	return tok
}

// hourTZ returns a TZ value under which the local hour is now hour (any of 0..23), so
// that a time-of-day scaler picks a known profile. It uses the Etc/GMT zones, which
// both glibc (Python) and Go read from the system's zoneinfo; their sign is POSIX's,
// the reverse of ISO's: Etc/GMT-5 is UTC+5.
func hourTZ(t *testing.T, hour int) string {
	t.Helper()
	off := ((hour-time.Now().UTC().Hour())%24 + 24) % 24 // 0..23 hours east
	if off > 14 {
		off -= 24 // Etc/GMT zones span UTC-12..UTC+14
	}
	tz := "Etc/GMT"
	switch {
	case off > 0:
		tz = fmt.Sprintf("Etc/GMT-%d", off)
	case off < 0:
		tz = fmt.Sprintf("Etc/GMT+%d", -off)
	}
	if _, err := os.Stat(filepath.Join("/usr/share/zoneinfo", tz)); err != nil {
		needTool(t, "the system's time zone data (tzdata)", false)
	}
	return tz
}

// buildGo builds a Go program of the repository into the test's temp dir.
func buildGo(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = bin.root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
