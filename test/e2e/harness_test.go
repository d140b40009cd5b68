package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal/internal/testport"
	"shoal/test/testbin"
)

// binaries are built once per `go test` run by TestMain.
type binaries struct {
	root    string // the repository root
	shoal   string
	replica string
}

// bin is set by TestMain before any test runs and only read after.
var bin binaries

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b, err := testbin.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin = binaries{root: b.Root, shoal: b.Shoal, replica: b.Replica}
	return m.Run()
}

// needTool skips a test whose tool is missing on a developer machine, and fails it
// under CI=true, where every tool must be installed (make deps).
func needTool(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing; CI must have it (make deps installs it)", what)
	}
	t.Skipf("%s is missing on this machine; skipped (it fails under CI=true); 'make deps' installs it", what)
}

// eventually polls cond every interval until it holds or timeout passes; then it fails
// the test with cond's last description of what it saw.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s; last seen: %s", timeout, what, seen)
		}
		time.Sleep(interval)
		interval = min(interval*2, 200*time.Millisecond)
	}
}

// freePort returns a free loopback port outside the kernel's ephemeral range, which
// replicas and outgoing connections of the tests running alongside draw from.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shoal is one running `shoal start`.
type shoal struct {
	t           *testing.T
	stateDir    string
	controlPort int
	proxyPort   int
	env         []string
	cmd         *exec.Cmd
	out         *syncBuffer
	exited      chan struct{} // closed when the process has exited; then exitErr is set
	exitErr     error

	mu   sync.Mutex // guards pids
	pids map[int]bool
}

// startOptions are the parts of a `shoal start` that tests vary.
type startOptions struct {
	stateDir  string   // default: a new temp dir
	config    string   // the CONFIG argument; "" starts with none
	proxyPort int      // the proxy port the config uses (for requests); 0 when unknown
	env       []string // extra environment, e.g. PATH
}

// startShoal starts shoal and waits until its control API answers /-/healthz.
func startShoal(t *testing.T, o startOptions) *shoal {
	t.Helper()
	s := launch(t, o)
	s.waitHealthy()
	return s
}

// launch starts shoal without waiting for it.
func launch(t *testing.T, o startOptions) *shoal {
	t.Helper()
	if o.stateDir == "" {
		o.stateDir = t.TempDir()
	}
	s := &shoal{
		t:           t,
		stateDir:    o.stateDir,
		controlPort: freePort(t),
		proxyPort:   o.proxyPort,
		out:         &syncBuffer{},
		exited:      make(chan struct{}),
		pids:        map[int]bool{},
	}
	s.env = append(cleanEnv(),
		"SHOAL_STATE_DIR="+s.stateDir,
		"SHOAL_ADDRESS="+s.controlURL())
	s.env = append(s.env, o.env...)
	args := []string{"start", "--dashboard-port", strconv.Itoa(s.controlPort), "--log-level", "debug"}
	if o.config != "" {
		args = append(args, o.config)
	}
	s.cmd = exec.Command(bin.shoal, args...)
	s.cmd.Env = s.env
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)
	return s
}

// cleanEnv is the test's environment without shoal's own variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *shoal) controlURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.controlPort) }
func (s *shoal) proxyURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", s.proxyPort) }

func (s *shoal) isExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

func (s *shoal) waitHealthy() {
	s.t.Helper()
	client := &http.Client{Timeout: time.Second}
	eventually(s.t, 20*time.Second, "shoal's /-/healthz", func() (bool, string) {
		if s.isExited() {
			s.t.Fatalf("shoal exited before it was healthy: %v\n%s", s.exitErr, s.out)
		}
		resp, err := client.Get(s.controlURL() + "/-/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// token is the admin token shoal made in its state dir.
func (s *shoal) token() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.stateDir, "auth_token"))
	if err != nil {
		s.t.Fatalf("read admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// do sends an admin request to the control API.
func (s *shoal) do(method, path string, body []byte) (int, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.controlURL()+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// details is the part of GET /api/serve/applications/ the tests read.
type details struct {
	Applications map[string]appDetails `json:"applications"`
}

type appDetails struct {
	Name        string                       `json:"name"`
	Status      string                       `json:"status"`
	Message     string                       `json:"message"`
	RoutePrefix string                       `json:"route_prefix"`
	Deployments map[string]deploymentDetails `json:"deployments"`
}

type deploymentDetails struct {
	Name     string           `json:"name"`
	Status   string           `json:"status"`
	Message  string           `json:"message"`
	Target   int              `json:"target_num_replicas"`
	Replicas []replicaDetails `json:"replicas"`
}

type replicaDetails struct {
	ID    string `json:"replica_id"`
	State string `json:"state"`
	PID   int    `json:"pid"`
}

func (s *shoal) status() details {
	s.t.Helper()
	code, body := s.do(http.MethodGet, "/api/serve/applications/", nil)
	if code != http.StatusOK {
		s.t.Fatalf("GET /api/serve/applications/: %d %s", code, body)
	}
	var d details
	if err := json.Unmarshal(body, &d); err != nil {
		s.t.Fatalf("GET /api/serve/applications/: %v\n%s", err, body)
	}
	s.mu.Lock()
	for _, a := range d.Applications {
		for _, dep := range a.Deployments {
			for _, r := range dep.Replicas {
				if r.PID > 0 {
					s.pids[r.PID] = true
				}
			}
		}
	}
	s.mu.Unlock()
	return d
}

// running returns the PIDs of a deployment's RUNNING replicas once exactly n are
// RUNNING, every one a live process, and no replica is in another state; it fails the
// test when that does not happen in time.
func (s *shoal) running(app, dep string, n int) []int {
	s.t.Helper()
	var pids []int
	eventually(s.t, 30*time.Second, fmt.Sprintf("%s/%s with %d RUNNING replicas", app, dep, n), func() (bool, string) {
		if s.isExited() {
			s.t.Fatalf("shoal exited: %v\n%s", s.exitErr, s.out)
		}
		d, ok := s.status().Applications[app].Deployments[dep]
		if !ok {
			return false, "no such deployment"
		}
		pids = pids[:0]
		for _, r := range d.Replicas {
			if r.State != "RUNNING" || !testbin.Alive(r.PID) {
				return false, fmt.Sprintf("%+v", d.Replicas)
			}
			pids = append(pids, r.PID)
		}
		return len(pids) == n, fmt.Sprintf("%+v", d.Replicas)
	})
	return pids
}

// cli runs a shoal command against this shoal.
func (s *shoal) cli(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return runCLI(s.t, s.env, args...)
}

func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin.shoal, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("shoal %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// stop sends SIGTERM and waits for shoal to exit; it fails the test unless shoal exits 0
// in time.
func (s *shoal) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !s.isExited() {
		s.t.Fatal(err)
	}
	s.waitExit(30 * time.Second)
	if s.exitErr != nil {
		s.t.Fatalf("shoal did not exit 0 on SIGTERM: %v\n%s", s.exitErr, s.out)
	}
}

// kill sends SIGKILL: shoal gets no chance to stop its replicas.
func (s *shoal) kill() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.waitExit(10 * time.Second)
}

func (s *shoal) waitExit(d time.Duration) {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(d):
		s.cmd.Process.Kill()
		s.t.Fatalf("shoal did not exit within %v\n%s", d, s.out)
	}
}

// seenPIDs are the replica PIDs any status call has shown.
func (s *shoal) seenPIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for p := range s.pids {
		out = append(out, p)
	}
	return out
}

// cleanup kills shoal if a test left it running, kills any replica that outlived it
// (which is a bug the tests report elsewhere; here it only keeps the machine clean), and
// shows shoal's output when the test failed.
func (s *shoal) cleanup() {
	if !s.isExited() {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
	for _, pid := range s.seenPIDs() {
		if testbin.Alive(pid) && isReplica(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if s.t.Failed() {
		s.t.Logf("shoal's output:\n%s", s.out)
	}
}

// isReplica reports whether pid is a process shoal started (its environment names a
// replica), so cleanup never kills an unrelated process that reused a PID.
func isReplica(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && bytes.Contains(b, []byte("SHOAL_REPLICA_ID="))
}

// liveOf returns those of pids that are still live processes.
func liveOf(pids []int) []int {
	var out []int
	for _, p := range pids {
		if testbin.Alive(p) {
			out = append(out, p)
		}
	}
	return out
}

// get sends a GET through the proxy.
func get(client *http.Client, url string) (int, []byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// echoAnswer is what examples/replica answers on /.
type echoAnswer struct {
	ReplicaID  string `json:"replica_id"`
	App        string `json:"app"`
	Deployment string `json:"deployment"`
	Path       string `json:"path"`
	Model      string `json:"model"`
	PID        int    `json:"pid"`
}

// writeFile writes a file into dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// emptyConfig writes a config with no application whose proxy listens on a free port,
// for tests that need a running shoal but no replica.
func emptyConfig(t *testing.T) (path string, port int) {
	t.Helper()
	port = freePort(t)
	path = writeFile(t, t.TempDir(), "serve.yaml",
		fmt.Sprintf("http_options: {host: 127.0.0.1, port: %d}\napplications: []\n", port))
	return path, port
}

// echoConfig is a config with one application, "echo" at "/", whose deployment
// "model" runs n sample replicas with MODEL=model.
func echoConfig(proxyPort, n int, model string) string {
	return fmt.Sprintf(`http_options:
  host: 127.0.0.1
  port: %d
  request_timeout_s: 10
applications:
  - name: echo
    route_prefix: /
    deployments:
      - name: model
        num_replicas: %d
        command: [%q]
        env: {MODEL: %s}
        health_check_path: /healthz
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.05
        graceful_shutdown_timeout_s: 5
`, proxyPort, n, bin.replica, model)
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// procStat describes processes for a failure message: state and parent of each.
func procStat(pids []int) string {
	var b strings.Builder
	for _, p := range pids {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		fmt.Fprintf(&b, "[%s] ", strings.TrimSpace(string(stat)))
	}
	return b.String()
}

// writeEnv writes a deployment's env block of a config, keys sorted; nothing for none.
func writeEnv(b *strings.Builder, env map[string]string) {
	if len(env) == 0 {
		return
	}
	b.WriteString("        env:\n")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(b, "          %s: %q\n", k, env[k])
	}
}
