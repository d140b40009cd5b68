package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"shoal/internal/backend"
	"shoal/internal/backend/kube/kubetest"
	"shoal/internal/config"
	"shoal/internal/server"
)

// adminServiceAccount makes the ServiceAccount ns/shoal with every right, for a test
// that wants a namespace of its own rather than deploy/kubernetes's: shoal then makes
// the tokens Secret and the Lease itself.
func adminServiceAccount(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "shoal", Namespace: ns}}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "shoal-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "shoal", Namespace: ns}},
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

const scaledYAML = `
http_options: {host: 127.0.0.1, port: 0}
applications:
  - name: shop
    route_prefix: /
    external_scaler_enabled: true
    deployments:
      - name: web
        image: registry.example/shop:1
        command: ["serve"]
scalers:
  schedule:
    - config: schedule.yaml
`

// An always-on profile in a fixed timezone: 3 replicas whatever the time.
const alwaysThreeYAML = `timezone: UTC
targets:
  - application: shop
    deployment: web
    default: 1
    profiles:
      - {name: always, days: [mon-sun], from: "00:00", to: "24:00", replicas: 3}
`

// TestTheConfigsScalersRunOnTheLeaderAlone starts two shoals on the Kubernetes backend
// with a config that declares a schedule scaler. The leader runs it: it sets the
// Deployment's spec.replicas through the scale webhook with the application's token,
// and the call is audited. The follower runs none until it leads, and then runs its
// own, which finds the target set and leaves it.
func TestTheConfigsScalersRunOnTheLeaderAlone(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	// The admin token of both shoal replicas.
	t.Setenv("SHOAL_AUTH_TOKEN", "admin-token")
	ns := env.Namespace(t)
	adminServiceAccount(t, env.Client, ns)
	kubeconfig := writeKubeconfig(t, env.ServiceAccountConfig(t, ns, "shoal"), ns)
	dir := t.TempDir()
	for name, data := range map[string]string{"serve.yaml": scaledYAML, "schedule.yaml": alwaysThreeYAML} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startFile := filepath.Join(dir, "serve.yaml")
	k := backend.Key{App: "shop", Deployment: "web"}

	first := startServer(t, kubeconfig, startFile, "shoal-a")
	// The config asks for 1 replica; the leader's schedule scaler sets 3.
	deploymentOf(t, env.Client, ns, k, kubetest.ReplicasAre(3))
	if log := first.logs.String(); !strings.Contains(log, "scaler=schedule") || !strings.Contains(log, "scheduled target set") {
		t.Errorf("the leader's log does not show its schedule scaler setting the target:\n%s", log)
	}

	const scale = "/api/v1/applications/shop/deployments/web/scale"
	second := startServer(t, kubeconfig, startFile, "shoal-b")
	kubetest.Eventually(t, 20*time.Second, func() error {
		code, _, body := second.call(t, "GET", scale, "", "")
		var got struct {
			Target int `json:"target_num_replicas"`
		}
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || got.Target != 3 {
			return fmt.Errorf("the follower shows %d %s, want target 3", code, body)
		}
		return nil
	})
	// The follower read the scaler's file at start but runs no scaler: its calls would
	// be refused, and two leaders' worth of scalers would fight.
	if log := second.logs.String(); strings.Contains(log, "scaler=") {
		t.Errorf("the follower runs a scaler:\n%s", log)
	}
	if n := scheduledCalls(t, first); n != 1 {
		t.Errorf("%d scale calls of the schedule audited, want the leader's 1", n)
	}

	// The leader stops: the follower leads and runs the scaler, which reads the target
	// under its own term and finds it already set.
	if err := first.stop(); err != nil {
		t.Fatalf("the leader stopped with %v", err)
	}
	kubetest.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(second.logs.String(), "scheduled target already set") {
			return errors.New("the new leader's schedule scaler has not checked the target")
		}
		return nil
	})
	if n := scheduledCalls(t, second); n != 1 {
		t.Errorf("%d scale calls of the schedule audited, want the first leader's 1: the target was set already", n)
	}
	deploymentOf(t, env.Client, ns, k, kubetest.ReplicasAre(3))
}

// A scaler file that does not parse stops `shoal start --backend kubernetes` with the
// file's own error, as on the process backend.
func TestABadScalerFileStopsAKubernetesStart(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	adminServiceAccount(t, env.Client, ns)
	kubeconfig := writeKubeconfig(t, env.ServiceAccountConfig(t, ns, "shoal"), ns)
	dir := t.TempDir()
	bad := filepath.Join(dir, "schedule.yaml")
	if err := os.WriteFile(bad, []byte("timezone: Nowhere/Never\ntargets:\n  - {application: shop, deployment: web}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startFile := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(startFile, []byte(scaledYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// Bounded: a start that does not fail runs until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := server.Run(ctx, server.Options{
		ConfigPath: startFile,
		StateDir:   t.TempDir(),
		BackendOptions: server.BackendOptions{
			Backend:    config.BackendKubernetes,
			Kubeconfig: kubeconfig,
			Identity:   "shoal-a",
		},
	})
	if want := "scalers.schedule: " + bad + ":1: timezone: unknown timezone"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Run returned %v; want an error with %q", err, want)
	}
}

// scheduledCalls counts the audited scale calls to 3 that shop's token made and the
// webhook accepted.
func scheduledCalls(t *testing.T, s *runningShoal) int {
	t.Helper()
	code, _, body := s.call(t, "GET", "/api/v1/applications/shop/deployments/web/scale", "", "")
	var got struct {
		Audit []struct {
			To     int    `json:"to"`
			Token  string `json:"token"`
			Status int    `json:"status"`
		} `json:"audit"`
	}
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
		t.Fatalf("GET scale: %d %s (%v)", code, body, err)
	}
	n := 0
	for _, e := range got.Audit {
		if e.To == 3 && e.Status == http.StatusOK && strings.HasPrefix(e.Token, "app:shop") {
			n++
		}
	}
	return n
}
