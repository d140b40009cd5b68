package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// ErrNoAssets says that kube-apiserver and etcd were not found.
var ErrNoAssets = errors.New("kube-apiserver and etcd not found: run hack/k8stools/build.sh and export KUBEBUILDER_ASSETS=.cache/k8s/bin")

// Env is a running control plane.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config // admin
	Client kubernetes.Interface
	seq    atomic.Int64
}

// AssetsDir finds the binaries: $KUBEBUILDER_ASSETS, else .cache/k8s/bin in the nearest
// folder above the working directory that has one (where build.sh puts them).
func AssetsDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w (KUBEBUILDER_ASSETS=%s)", ErrNoAssets, dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if c := filepath.Join(dir, ".cache", "k8s", "bin"); has(c) {
			return c, nil
		}
		if filepath.Dir(dir) == dir {
			return "", ErrNoAssets
		}
	}
}

// Start starts etcd and kube-apiserver. Stop them with Stop.
func Start() (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's logger, which complains (with a stack
	// trace) when none is set.
	ctrllog.SetLogger(logr.Discard())
	te := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		// A shared two-core machine can be slow to start both.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd from %s: %w", dir, err)
	}
	cfg.QPS, cfg.Burst = 200, 400 // tests make bursts of calls; no need to throttle them
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &Env{env: te, Config: cfg, Client: client}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e == nil {
		return nil
	}
	return e.env.Stop()
}

// Need returns env for a test that needs it. When the control plane did not start
// (startErr), the test fails under CI=true, where the binaries must have been built,
// and is skipped elsewhere, saying why.
func Need(t testing.TB, env *Env, startErr error) *Env {
	t.Helper()
	if startErr == nil && env != nil {
		return env
	}
	if startErr == nil {
		startErr = ErrNoAssets
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("kubernetes control plane needed: %v", startErr)
	}
	t.Skipf("skipped (set CI=true to make this a failure): %v", startErr)
	return nil
}

// Namespace creates a fresh namespace for one test. Namespaces are never deleted:
// envtest has no controller to finish a deletion, and each test run has its own etcd.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", e.seq.Add(1), sanitize(t.Name()))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ServiceAccountConfig returns a client config that authenticates as the service
// account ns/name with a token minted by the TokenRequest API, the way a pod's
// projected token does: whatever it may do, it may do only through RBAC.
func (e *Env) ServiceAccountConfig(t testing.TB, ns, name string) *rest.Config {
	t.Helper()
	expiry := int64(3600)
	tr, err := e.Client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s/%s: %v", ns, name, err)
	}
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// Eventually polls cond every 20 ms until it returns nil, failing the test with its
// last error after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// ReplicasAre is a check of a Deployment for Eventually-style waits: its spec.replicas
// is set and is n.
func ReplicasAre(n int32) func(*appsv1.Deployment) error {
	return func(d *appsv1.Deployment) error {
		if d.Spec.Replicas == nil {
			return fmt.Errorf("spec.replicas unset, want %d", n)
		}
		if *d.Spec.Replicas != n {
			return fmt.Errorf("spec.replicas = %d, want %d", *d.Spec.Replicas, n)
		}
		return nil
	}
}
