package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
	"shoal/internal/config"
	"shoal/internal/server"
	"shoal/internal/testport"
)

// writeKubeconfig writes a kubeconfig for cfg (a bearer token) with ns as the current
// namespace, as a user would have for a cluster.
func writeKubeconfig(t *testing.T, cfg *rest.Config, ns string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["shoal"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "shoal", Namespace: ns}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer is an io.Writer safe for the server's goroutine and the test's.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningShoal is one `shoal start --backend kubernetes`, run in this process.
type runningShoal struct {
	control string      // the control API's URL
	proxy   string      // the proxy's URL
	logs    *syncBuffer // its log
	stop    func() error
}

var (
	controlLine = regexp.MustCompile(`shoal: control listening on (\S+)`)
	proxyLine   = regexp.MustCompile(`shoal: proxy listening on (\S+)`)
)

// startServer runs server.Run as `shoal start --backend kubernetes --kubeconfig
// kubeconfig [configPath]` would, with identity as its name in the election, and its
// control API on a free loopback port that it advertises to the other replicas.
func startServer(t *testing.T, kubeconfig, configPath, identity string) *runningShoal {
	t.Helper()
	port, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{
			ConfigPath:    configPath,
			StateDir:      t.TempDir(),
			DashboardPort: port,
			Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Stdout:        out,
			Getenv: func(k string) string {
				if k == "SHOAL_AUTH_TOKEN" {
					return "admin-token"
				}
				return ""
			},
			BackendOptions: server.BackendOptions{
				Backend:      config.BackendKubernetes,
				Kubeconfig:   kubeconfig,
				ProxyURL:     "http://shoal-proxy.shoal.svc:8000",
				Identity:     identity,
				AdvertiseURL: fmt.Sprintf("http://127.0.0.1:%d", port),
				// Short terms keep the takeover quick; the ratios are client-go's.
				LeaseDuration: 3 * time.Second, LeaseRenewDeadline: 2 * time.Second, LeaseRetryPeriod: 200 * time.Millisecond,
			},
		})
	}()
	s := &runningShoal{logs: logs}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("server.Run did not return within 30s of its context's end")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("%s stopped with %v", identity, err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", identity, logs.String())
		}
	})
	kubetest.Eventually(t, 20*time.Second, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("server.Run returned at start: %v\n%s", err, logs.String())
		default:
		}
		m := controlLine.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("no control address yet in %q", out.String())
		}
		s.control = m[1]
		if m := proxyLine.FindStringSubmatch(out.String()); m != nil {
			s.proxy = m[1]
		}
		return nil
	})
	return s
}

// call sends an admin request to the control API and returns the status, the
// Retry-After header and the body.
func (s *runningShoal) call(t *testing.T, method, path, ctype, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.control+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer admin-token")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(data)
}

const startYAML = `
http_options: {host: 127.0.0.1, port: 0}
applications:
  - name: first
    route_prefix: /first
    deployments:
      - name: web
        image: registry.example/first:1
        command: ["serve"]
`

const deployYAML = `
http_options: {host: 127.0.0.1, port: 0}
applications:
  - name: my-app
    route_prefix: /
    external_scaler_enabled: true
    deployments:
      - name: web
        num_replicas: 2
        image: registry.example/web:1
        command: ["serve", "--port", "${PORT}"]
        env: {MODEL: small}
        health_check_path: /healthz
        graceful_shutdown_timeout_s: 7
        resources:
          requests: {cpu: 250m, memory: 64Mi}
          limits: {memory: 128Mi}
        node_selector: {pool: serving}
        service_account: web
`

const noImageYAML = `
applications:
  - name: my-app
    deployments:
      - name: web
        image: registry.example/web:1
        command: ["serve"]
      - name: worker
        command: ["work"]
`

func deploymentOf(t *testing.T, c kubernetes.Interface, ns string, k backend.Key, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	kubetest.Eventually(t, 20*time.Second, func() error {
		got, err := c.AppsV1().Deployments(ns).Get(context.Background(), kube.ObjectName(k), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := check(got); err != nil {
			return err
		}
		d = got
		return nil
	})
	return d
}

// TestShoalStartOnKubernetes runs `shoal start --backend kubernetes` (server.Run) with a
// kubeconfig holding a token of deploy/kubernetes's ServiceAccount, bound to exactly its
// Role: it deploys its start config, then a config with the Kubernetes fields through
// the REST API, and refuses one without an image, naming the path. A second shoal
// follows: it serves the same state, forwards the writes sent to it to the leader,
// which applies and audits them once, and leads once the first stops.
func TestShoalStartOnKubernetes(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	// The admin token of every shoal replica, from the Secret in deploy/kubernetes.
	t.Setenv("SHOAL_AUTH_TOKEN", "admin-token")
	kubetest.Create(t, env.Client, kubetest.Manifests(t, "namespace.yaml", "rbac.yaml", "state.yaml"))
	const ns = "shoal"
	kubeconfig := writeKubeconfig(t, env.ServiceAccountConfig(t, ns, "shoal"), ns)
	startFile := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(startFile, []byte(startYAML), 0o644); err != nil {
		t.Fatal(err)
	}

	first := startServer(t, kubeconfig, startFile, "shoal-a")
	// The leader deploys the start config.
	deploymentOf(t, env.Client, ns, backend.Key{App: "first", Deployment: "web"}, kubetest.ReplicasAre(1))

	// A config with every Kubernetes field, through the REST API.
	if code, _, body := first.call(t, "PUT", "/api/serve/applications/", "application/yaml", deployYAML); code != http.StatusOK {
		t.Fatalf("deploy answered %d: %s", code, body)
	}
	d := deploymentOf(t, env.Client, ns, backend.Key{App: "my-app", Deployment: "web"}, kubetest.ReplicasAre(2))
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "registry.example/web:1" || !reflect.DeepEqual(c.Command, []string{"serve", "--port", "8000"}) {
		t.Errorf("container image %q command %q", c.Image, c.Command)
	}
	wantRes := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
	for name, q := range wantRes.Requests {
		if got := c.Resources.Requests[name]; got.Cmp(q) != 0 {
			t.Errorf("requests.%s = %s, want %s", name, got.String(), q.String())
		}
	}
	for name, q := range wantRes.Limits {
		if got := c.Resources.Limits[name]; got.Cmp(q) != 0 {
			t.Errorf("limits.%s = %s, want %s", name, got.String(), q.String())
		}
	}
	if len(c.Resources.Requests) != 2 || len(c.Resources.Limits) != 1 {
		t.Errorf("resources = %+v, want %+v", c.Resources, wantRes)
	}
	if !reflect.DeepEqual(pod.NodeSelector, map[string]string{"pool": "serving"}) || pod.ServiceAccountName != "web" {
		t.Errorf("node selector %v, service account %q", pod.NodeSelector, pod.ServiceAccountName)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 7 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 7", pod.TerminationGracePeriodSeconds)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("readiness probe %+v, want GET /healthz", p)
	}
	vars := map[string]string{}
	for _, e := range c.Env {
		vars[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		"PORT": "8000", "MODEL": "small", "SHOAL_APP": "my-app", "SHOAL_DEPLOYMENT": "web",
		"SHOAL_HANDLE_URL": "http://shoal-proxy.shoal.svc:8000/-/handle/my-app",
	} {
		if vars[k] != v {
			t.Errorf("env %s = %q, want %q", k, vars[k], v)
		}
	}
	// The application left out of the new config is deleted.
	kubetest.Eventually(t, 20*time.Second, func() error {
		_, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), kube.ObjectName(backend.Key{App: "first", Deployment: "web"}), metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the Deployment of the removed application: %v", err)
		}
		return nil
	})

	// A config without an image is refused, every missing one named by its path.
	code, _, body := first.call(t, "PUT", "/api/serve/applications/", "application/yaml", noImageYAML)
	if want := "request body:8: applications[0].deployments[1].image: required on the kubernetes backend"; code != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Errorf("a config without an image: %d %s; want 400 with %q", code, body, want)
	}

	// A second shoal, started with the same file, follows: it reads the same state,
	// and refuses a change, naming the leader.
	second := startServer(t, kubeconfig, startFile, "shoal-b")
	kubetest.Eventually(t, 20*time.Second, func() error {
		code, _, body := second.call(t, "GET", "/api/serve/applications/", "", "")
		var got struct {
			Applications map[string]json.RawMessage `json:"applications"`
		}
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
			return fmt.Errorf("listing: %d %s", code, body)
		}
		if _, ok := got.Applications["my-app"]; !ok || len(got.Applications) != 1 {
			return fmt.Errorf("the follower lists %s, want my-app alone", body)
		}
		return nil
	})
	const scale = "/api/v1/applications/my-app/deployments/web/scale"
	// A change made through the leader shows on the follower within its poll.
	if code, _, body := first.call(t, "POST", scale, "application/json", `{"target_num_replicas": 4}`); code != http.StatusOK {
		t.Fatalf("scale through the leader: %d %s", code, body)
	}
	kubetest.Eventually(t, 20*time.Second, func() error {
		code, _, body := second.call(t, "GET", scale, "", "")
		var got struct {
			Target int `json:"target_num_replicas"`
		}
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || got.Target != 4 {
			return fmt.Errorf("the follower shows %d %s, want target 4", code, body)
		}
		return nil
	})
	// Writes sent to the follower are forwarded to the leader, which applies them: a
	// scale call...
	if code, _, body := second.call(t, "POST", scale, "application/json", `{"target_num_replicas": 3}`); code != http.StatusOK ||
		!strings.Contains(body, `"target_num_replicas":3`) {
		t.Fatalf("a scale sent to the follower: %d %s; want 200 with target 3", code, body)
	}
	deploymentOf(t, env.Client, ns, backend.Key{App: "my-app", Deployment: "web"}, kubetest.ReplicasAre(3))
	// ...audited once, by the leader (the follower logs no refusal of its own).
	code, _, body = first.call(t, "GET", scale, "", "")
	var status struct {
		Audit []struct {
			To     int    `json:"to"`
			Status int    `json:"status"`
			Token  string `json:"token"`
		} `json:"audit"`
	}
	if err := json.Unmarshal([]byte(body), &status); code != http.StatusOK || err != nil {
		t.Fatalf("the leader's scale status: %d %s", code, body)
	}
	audited := 0
	for _, e := range status.Audit {
		if e.To == 3 {
			audited++
			if e.Status != http.StatusOK || e.Token != "admin" {
				t.Errorf("the forwarded call was audited as %+v, want status 200 by the admin token", e)
			}
		}
	}
	if audited != 1 {
		t.Errorf("the forwarded scale call has %d audit entries, want 1: %s", audited, body)
	}
	if strings.Contains(second.logs.String(), "not audited") {
		t.Errorf("the follower handled the forwarded call itself:\n%s", second.logs.String())
	}
	// ...and a config change.
	if code, _, body := second.call(t, "PUT", "/api/serve/applications/", "application/yaml",
		strings.Replace(deployYAML, "num_replicas: 2", "num_replicas: 5", 1)); code != http.StatusOK {
		t.Fatalf("a config sent to the follower: %d %s; want 200", code, body)
	}
	deploymentOf(t, env.Client, ns, backend.Key{App: "my-app", Deployment: "web"}, func(d *appsv1.Deployment) error {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 5 {
			return fmt.Errorf("spec.replicas = %v, want 5 from the config sent to the follower", d.Spec.Replicas)
		}
		return nil
	})

	// The leader stops and gives the Lease up: the follower leads and writes.
	if err := first.stop(); err != nil {
		t.Fatalf("the leader stopped with %v", err)
	}
	kubetest.Eventually(t, 20*time.Second, func() error {
		code, _, body := second.call(t, "POST", scale, "application/json", `{"target_num_replicas": 3}`)
		if code != http.StatusOK {
			return fmt.Errorf("scale: %d %s", code, body)
		}
		return nil
	})
	deploymentOf(t, env.Client, ns, backend.Key{App: "my-app", Deployment: "web"}, kubetest.ReplicasAre(3))
	// Its start file was deployed already, by the first: the config deployed through the
	// API since stays.
	kubetest.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(second.logs.String(), "the start config was deployed already") {
			return errors.New("the new leader has not decided about its start config")
		}
		return nil
	})
	code, _, body = second.call(t, "GET", "/api/serve/applications/", "", "")
	if code != http.StatusOK || !strings.Contains(body, `"my-app"`) || strings.Contains(body, `"first"`) {
		t.Errorf("after the takeover the applications are %d %s; want my-app alone", code, body)
	}
}
