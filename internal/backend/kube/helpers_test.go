package kube_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
)

// recorder notes every request a client sends: "METHOD /path".
type recorder struct {
	mu   sync.Mutex // guards reqs
	reqs []string
}

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// writes returns the recorded requests that change something, and forgets all.
func (r *recorder) writes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.reqs {
		if !strings.HasPrefix(q, "GET ") {
			out = append(out, q)
		}
	}
	r.reqs = nil
	return out
}

// recordingClient is a client as cfg whose requests rec records.
func recordingClient(t *testing.T, cfg *rest.Config, rec *recorder) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(rec.wrap)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a Backend for one test and waits for its caches.
func start(t *testing.T, opts kube.Options) *kube.Backend {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	b := kube.New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

var key = backend.Key{App: "my-app", Deployment: "web"}

func sampleSpec() backend.Spec {
	return backend.Spec{
		Key:      key,
		Version:  "v1",
		Replicas: 2,
		Command:  []string{"python3", "-m", "http.server", "--bind", "0.0.0.0", "${PORT}"},
		Env:      map[string]string{"MODEL": "small", "SHOAL_APP": "my-app", "GREETING": "hello on ${PORT}"},

		HealthCheckPath:     "/healthz",
		HealthCheckPeriod:   10 * time.Second,
		HealthCheckTimeout:  30 * time.Second,
		DrainPollInterval:   2 * time.Second,
		GracefulStopTimeout: 20 * time.Second,
		Image:               "registry.example/web:1",
		Resources:           backend.Resources{Requests: map[string]string{"cpu": "100m"}, Limits: map[string]string{"memory": "256Mi"}},
		NodeSelector:        map[string]string{"pool": "serving"},
		ServiceAccount:      "web",
	}
}

// deploymentWith waits until the key's Deployment exists and check accepts it.
func deploymentWith(t *testing.T, c kubernetes.Interface, ns string, k backend.Key, check func(*appsv1.Deployment) error) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	kubetest.Eventually(t, 15*time.Second, func() error {
		got, err := c.AppsV1().Deployments(ns).Get(context.Background(), kube.ObjectName(k), metav1.GetOptions{})
		if err != nil {
			return err
		}
		d = got
		return check(got)
	})
	return d
}

// statusOf waits until Observe reports the key and check accepts its status.
func statusOf(t *testing.T, b *kube.Backend, k backend.Key, check func(backend.Status) error) backend.Status {
	t.Helper()
	var st backend.Status
	kubetest.Eventually(t, 15*time.Second, func() error {
		obs := b.Observe()
		i := slices.IndexFunc(obs, func(s backend.Status) bool { return s.Key == k })
		if i < 0 {
			return fmt.Errorf("%s not observed", k)
		}
		st = obs[i]
		return check(st)
	})
	return st
}

// only returns the entries of reqs that contain sub.
func only(reqs []string, sub string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r, sub) {
			out = append(out, r)
		}
	}
	return out
}
