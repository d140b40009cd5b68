package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
)

// lockedBuffer is Run's stdout, read by the test while Run writes.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is one Run in a goroutine.
type running struct {
	cancel  context.CancelFunc
	done    chan error
	out     *lockedBuffer
	control string // the control API's URL, read from stdout
}

// emptyConfig is a config with no application whose proxy listens on a free port.
func emptyConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(p, []byte("http_options: {host: 127.0.0.1, port: 0}\napplications: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var controlLine = regexp.MustCompile(`shoal: control listening on (http://\S+)`)

func start(t *testing.T, o Options) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), out: &lockedBuffer{}}
	o.Stdout = r.out
	o.DashboardPort = 0
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := controlLine.FindStringSubmatch(r.out.String()); m != nil {
			r.control = m[1]
			return r
		}
		select {
		case err := <-r.done:
			t.Fatalf("Run returned before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run printed no control address; stdout:\n%s", r.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestRunServesTheControlAPIAndReturnsNilWhenCancelled(t *testing.T) {
	state := t.TempDir()
	r := start(t, Options{ConfigPath: emptyConfig(t), StateDir: state})

	resp, err := http.Get(r.control + "/-/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/healthz answered %d", resp.StatusCode)
	}
	resp, err = http.Get(r.control + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(metricsText), "go_goroutines") {
		t.Errorf("/metrics answered %d without the runtime's metrics:\n%.300s", resp.StatusCode, metricsText)
	}
	for _, want := range []string{"shoal: proxy listening on http://127.0.0.1:", "shoal: state dir " + state, filepath.Join(state, "auth_token")} {
		if !strings.Contains(r.out.String(), want) {
			t.Errorf("stdout does not say %q:\n%s", want, r.out)
		}
	}
	token, err := os.ReadFile(filepath.Join(state, "auth_token"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.out.String(), strings.TrimSpace(string(token))) {
		t.Error("stdout shows the admin token")
	}

	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("Run returned %v after cancel; want nil", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(r.control, "http://"), time.Second); err == nil {
		t.Error("the control port still accepts after Run returned")
	}
}

func TestShutdownThroughTheAPIMakesRunReturnNil(t *testing.T) {
	state := t.TempDir()
	r := start(t, Options{ConfigPath: emptyConfig(t), StateDir: state})
	token, err := os.ReadFile(filepath.Join(state, "auth_token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.control+"/api/v1/shutdown", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /api/v1/shutdown answered %d", resp.StatusCode)
	}
	if err := r.wait(t); err != nil {
		t.Errorf("Run returned %v; want nil", err)
	}
}

func TestASecondRunOnTheSameStateDirFailsWithErrLocked(t *testing.T) {
	state := t.TempDir()
	start(t, Options{ConfigPath: emptyConfig(t), StateDir: state})

	err := Run(context.Background(), Options{ConfigPath: emptyConfig(t), StateDir: state})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Run returned %v; want an error wrapping store.ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "another shoal") {
		t.Errorf("the lock error does not say what holds it: %v", err)
	}
}

func TestABadConfigIsReportedWithEveryErrorBeforeAnythingStarts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte("applications:\n  - name: a\n    deployments:\n      - name: d\n        num_replicas: 0\n        max_ongoing_requests: 0\n        command: [x]\n"), 0o644)

	err := Run(context.Background(), Options{ConfigPath: p, StateDir: state})
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("Run returned %v; want config.Errors with both errors", err)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the state dir was touched for a config that does not load: %v", err)
	}
}

func TestAProxyPortInUseIsAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("http_options: {host: 127.0.0.1, port: %d}\napplications: []\n", ln.Addr().(*net.TCPAddr).Port)), 0o644)

	err = Run(context.Background(), Options{ConfigPath: p, StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "proxy cannot listen") || !strings.Contains(err.Error(), "http_options.port") {
		t.Errorf("Run returned %v; want an error naming the proxy's port and what to change", err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"localhost", true},
		{"0.0.0.0", false},
		{"", false},
		{"192.0.2.1", false},
		{"example.com", false},
	}
	for _, tc := range tests {
		if got := isLoopback(tc.host); got != tc.want {
			t.Errorf("isLoopback(%q) = %v; want %v", tc.host, got, tc.want)
		}
	}
}

func TestHandleURLBaseReachesTheProxyOverLoopbackUnlessBoundElsewhere(t *testing.T) {
	tests := []struct {
		name string
		addr string
		tls  bool
		want string
	}{
		{"a loopback proxy is reached on loopback", "127.0.0.1:8000", false, "http://127.0.0.1:8000"},
		{"a proxy on every address is reached on loopback", "0.0.0.0:8000", false, "http://127.0.0.1:8000"},
		{"a proxy bound to one address is reached there", "192.0.2.7:8000", false, "http://192.0.2.7:8000"},
		{"a TLS proxy is reached with https", "127.0.0.1:8443", true, "https://127.0.0.1:8443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := net.ResolveTCPAddr("tcp", tc.addr)
			if got := handleURLBase(addr, tc.tls); got != tc.want {
				t.Errorf("got %q; want %q", got, tc.want)
			}
		})
	}
}

func TestReplicaStopBoundFollowsTheLongestGracefulTimeout(t *testing.T) {
	snap := &controller.Snapshot{Applications: []*controller.Application{
		{Deployments: []*controller.Deployment{
			{Config: config.Deployment{GracefulShutdownTimeoutS: 3}},
			{Config: config.Deployment{GracefulShutdownTimeoutS: 40}},
		}},
	}}
	if got, want := replicaStopBound(snap), 40*time.Second+replicaStopSlack; got != want {
		t.Errorf("got %v; want %v", got, want)
	}
	if got, want := replicaStopBound(&controller.Snapshot{}), replicaStopSlack; got != want {
		t.Errorf("with no deployment got %v; want %v", got, want)
	}
}
