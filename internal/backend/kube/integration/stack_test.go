package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"shoal/internal/api"
	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/proxy"
	"shoal/internal/store"
)

const serveYAML = `
http_options: {host: 127.0.0.1, port: 8000}
applications:
  - name: my-app
    route_prefix: /
    external_scaler_enabled: true
    deployments:
      - name: web
        num_replicas: 2
        image: registry.example/web:1
        command: ["serve", "--port", "${PORT}"]
        health_check_path: /
`

var key = backend.Key{App: "my-app", Deployment: "web"}

// shoal is one shoal process on the Kubernetes backend: controller, proxy and webhook.
type shoal struct {
	backend *kube.Backend
	store   *store.Kube
	ctrl    *controller.Controller
	proxy   *httptest.Server
	webhook *httptest.Server
	stop    func()
}

// startShoal starts a shoal that leads, or, with follower, one that reads and observes
// but writes nothing until its backend and store are told to lead.
func startShoal(t *testing.T, client kubernetes.Interface, ns string, follower bool) *shoal {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := kube.New(kube.Options{Client: client, Namespace: ns, Logger: log, Follower: follower})
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	st := store.NewKube(client, ns, "shoal")
	st.SetLeading(!follower)
	c, err := controller.New(controller.Options{Store: st, Backend: loopback{b}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Logger: log})
	a := api.New(api.Options{Intents: c, AdminToken: "admin-token", Logger: log, LogDir: t.TempDir(), Load: p})
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Run(ctx) })
	wg.Go(func() { _ = p.Run(ctx, c) })
	s := &shoal{backend: b, store: st, ctrl: c, proxy: httptest.NewServer(p), webhook: httptest.NewServer(a.Webhook())}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			s.proxy.Close()
			s.webhook.Close()
			cancel()
			wg.Wait()
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			_ = b.Shutdown(sctx)
			_ = st.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// loopback maps the TEST-NET-1 addresses (192.0.2.0/24, reserved for documentation:
// nothing is ever sent there) that the test's EndpointSlices carry, because the API
// server refuses loopback ones, to 127.0.0.1, where the local replicas listen on the
// same port.
type loopback struct{ *kube.Backend }

func (l loopback) Observe() []backend.Status {
	sts := l.Backend.Observe()
	for i := range sts {
		for j := range sts[i].Replicas {
			r := &sts[i].Replicas[j]
			if host, port, err := net.SplitHostPort(r.Address); err == nil && strings.HasPrefix(host, "192.0.2.") {
				r.Address = net.JoinHostPort("127.0.0.1", port)
			}
		}
	}
	return sts
}

// deploymentWrites keeps the requests that wrote Deployments.
func deploymentWrites(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r, "/deployments") {
			out = append(out, r)
		}
	}
	return out
}

// recorder notes every request that writes that notes every write to Deployments.
type recorder struct {
	mu   sync.Mutex // guards reqs
	reqs []string
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func recordingClient(t *testing.T, cfg *rest.Config, rec *recorder) kubernetes.Interface {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet {
				rec.mu.Lock()
				rec.reqs = append(rec.reqs, req.Method+" "+req.URL.Path)
				rec.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func deployment(t *testing.T, c kubernetes.Interface, ns string, want int32) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	kubetest.Eventually(t, 15*time.Second, func() error {
		got, err := c.AppsV1().Deployments(ns).Get(context.Background(), kube.ObjectName(key), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Spec.Replicas == nil || *got.Spec.Replicas != want {
			return fmt.Errorf("spec.replicas = %v, want %d", got.Spec.Replicas, want)
		}
		d = got
		return nil
	})
	return d
}

// replica stands in for a pod: a local HTTP server answering its name, and the pod and
// EndpointSlice the ReplicaSet and endpoints controllers would make (envtest runs none).
func replica(t *testing.T, c kubernetes.Interface, d *appsv1.Deployment, name, host string) *discoveryv1.EndpointSlice {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	port := int32(n)

	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	pod.Name, pod.Namespace = name, d.Namespace
	if _, err := c.CoreV1().Pods(d.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, terminating, portName := true, false, "http"
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + name, Namespace: d.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: d.Name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &terminating},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: d.Namespace, Name: name},
		}},
	}
	s, err := c.DiscoveryV1().EndpointSlices(d.Namespace).Create(ctx, s, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// answers sends n requests through the proxy and returns the sorted set of replicas
// that answered.
func answers(proxyURL string, n int) ([]string, error) {
	seen := map[string]bool{}
	for range n {
		resp, err := http.Get(proxyURL + "/")
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		seen[string(body)] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

var (
	env      *kubetest.Env
	startErr error
)

func TestMain(m *testing.M) {
	env, startErr = kubetest.Start()
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
	}
	os.Exit(code)
}

// TestShoalOnKubernetes walks the story: deploy, route through EndpointSlices,
// drain a terminating endpoint, scale by webhook through the scale subresource, restore
// an outside change, and come back after a restart with the same state.
func TestShoalOnKubernetes(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	rec := &recorder{}
	client := recordingClient(t, env.Config, rec)
	ctx := context.Background()

	first := startShoal(t, client, ns, false)
	cfg, _, err := config.Parse([]byte(serveYAML), "serve.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.ctrl.Deploy(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	d := deployment(t, env.Client, ns, 2)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:1" {
		t.Fatalf("image %q", img)
	}

	// Two replicas become ready endpoints: traffic through the proxy reaches both.
	replica(t, env.Client, d, "pod-a", "192.0.2.1")
	sliceB := replica(t, env.Client, d, "pod-b", "192.0.2.2")
	kubetest.Eventually(t, 15*time.Second, func() error {
		got, err := answers(first.proxy.URL, 20)
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"pod-a", "pod-b"}) {
			return fmt.Errorf("answered by %v, want both replicas", got)
		}
		return nil
	})

	// pod-b starts terminating: its endpoint leaves the routing set while it still serves.
	terminating, ready := true, false
	sliceB.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: &ready, Serving: sliceB.Endpoints[0].Conditions.Serving, Terminating: &terminating}
	if _, err := env.Client.DiscoveryV1().EndpointSlices(ns).Update(ctx, sliceB, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 15*time.Second, func() error {
		got, err := answers(first.proxy.URL, 20)
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"pod-a"}) {
			return fmt.Errorf("answered by %v, want pod-a alone", got)
		}
		return nil
	})

	// The scale webhook: the new target reaches spec.replicas through the subresource.
	rec.take()
	req, _ := http.NewRequest(http.MethodPost, first.webhook.URL+"/api/v1/applications/my-app/deployments/web/scale",
		bytes.NewReader([]byte(`{"target_num_replicas": 5}`)))
	req.Header.Set("Authorization", "Bearer admin-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %d: %s", resp.StatusCode, body)
	}
	deployment(t, env.Client, ns, 5)
	scalePath := "PUT /apis/apps/v1/namespaces/" + ns + "/deployments/" + d.Name + "/scale"
	if got := deploymentWrites(rec.take()); !slices.Equal(got, []string{scalePath}) {
		t.Fatalf("deployment writes after the webhook = %q, want only %q", got, scalePath)
	}

	// `kubectl scale --replicas=1` from outside: reported and put back.
	sc, err := env.Client.AppsV1().Deployments(ns).GetScale(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 1
	if _, err := env.Client.AppsV1().Deployments(ns).UpdateScale(ctx, d.Name, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deployment(t, env.Client, ns, 5)
	kubetest.Eventually(t, 10*time.Second, func() error {
		dep := first.ctrl.Snapshot().App("my-app").Deployment("web")
		if want := "replica count changed outside shoal from 5 to 1; restoring 5"; !strings.Contains(dep.Message, want) || dep.Status == controller.DeploymentUnhealthy {
			return fmt.Errorf("deployment %s %q, want %q in its message and not UNHEALTHY", dep.Status, dep.Message, want)
		}
		return nil
	})

	// shoal restarts: the new process reads config, target and token back from the API
	// server, and the Deployment keeps its count.
	token, ok := first.ctrl.AppToken("my-app")
	if !ok {
		t.Fatal("no application token after deploy")
	}
	first.stop()
	second := startShoal(t, client, ns, false)
	snap := second.ctrl.Snapshot()
	app := snap.App("my-app")
	if app == nil {
		t.Fatalf("after a restart the snapshot has no my-app: %+v", snap)
	}
	again, ok := second.ctrl.AppToken("my-app")
	if !ok || again.Secret != token.Secret {
		t.Fatalf("after a restart the token is %+v, want %+v", again, token)
	}
	kubetest.Eventually(t, 15*time.Second, func() error {
		got, err := answers(second.proxy.URL, 10)
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"pod-a"}) {
			return fmt.Errorf("answered by %v, want pod-a", got)
		}
		return nil
	})
	deployment(t, env.Client, ns, 5)
	audit, err := second.store.Audit("my-app", "web", 10)
	if err != nil || len(audit) == 0 || audit[0].To != 5 {
		t.Fatalf("audit after a restart = %+v, %v; want the webhook call", audit, err)
	}
}

// TestAFollowerShoalWritesNothingAndTakesOver runs two shoal processes on one namespace:
// the leader writes; the follower reads the same state, refuses intents with
// store.ErrNotLeader and writes nothing, not even to put back an outside change, until
// the leader dies and it is told to lead.
func TestAFollowerShoalWritesNothingAndTakesOver(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	ctx := context.Background()
	leaderRec, followerRec := &recorder{}, &recorder{}

	leading := startShoal(t, recordingClient(t, env.Config, leaderRec), ns, false)
	cfg, _, err := config.Parse([]byte(serveYAML), "serve.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := leading.ctrl.Deploy(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	d := deployment(t, env.Client, ns, 2)

	following := startShoal(t, recordingClient(t, env.Config, followerRec), ns, true)
	if following.ctrl.Snapshot().App("my-app") == nil {
		t.Fatal("the follower did not read the leader's state")
	}
	if _, err := following.ctrl.SetTarget(ctx, "my-app", "web", 5, controller.SourceWebhook); !errors.Is(err, store.ErrNotLeader) {
		t.Fatalf("SetTarget on the follower: %v, want store.ErrNotLeader", err)
	}

	// An outside change: the leader alone puts it back.
	sc, err := env.Client.AppsV1().Deployments(ns).GetScale(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 1
	if _, err := env.Client.AppsV1().Deployments(ns).UpdateScale(ctx, d.Name, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deployment(t, env.Client, ns, 2)
	if w := followerRec.take(); len(w) != 0 {
		t.Fatalf("the follower wrote %q", w)
	}
	if w := deploymentWrites(leaderRec.take()); !slices.Contains(w, "PUT /apis/apps/v1/namespaces/"+ns+"/deployments/"+d.Name+"/scale") {
		t.Fatalf("the leader's writes %q do not restore the count", w)
	}

	// The leader dies; the follower is elected (see internal/leader) and leads: its store
	// and backend write, and a controller made afresh reads the latest state.
	leading.stop()
	following.store.SetLeading(true)
	following.backend.SetLeading(true)
	promoted, err := controller.New(controller.Options{Store: following.store, Backend: following.backend})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := promoted.SetTarget(ctx, "my-app", "web", 5, controller.SourceWebhook); err != nil {
		t.Fatalf("SetTarget on the new leader: %v", err)
	}
	deployment(t, env.Client, ns, 5)
}
