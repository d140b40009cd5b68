package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
)

// An application that scales from zero: nothing runs until a request comes.
const fromZeroYAML = `
http_options: {host: 127.0.0.1, port: 0, request_timeout_s: 30}
applications:
  - name: shop
    route_prefix: /
    deployments:
      - name: web
        image: registry.example/shop:1
        command: ["serve"]
        autoscaling_config:
          min_replicas: 0
          max_replicas: 3
          target_ongoing_requests: 1
`

// TestARequestOnAFollowerScalesTheLeadersDeploymentFromZero runs two shoals on the
// Kubernetes backend, behind one Service as in a cluster, with an autoscaled deployment
// at 0 replicas. A request sent to the follower's proxy waits there; the follower
// reports it to the leader, whose autoscaler sets spec.replicas to 1 within a couple of
// seconds (without the report, never: the leader's own proxy has no load).
func TestARequestOnAFollowerScalesTheLeadersDeploymentFromZero(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	t.Setenv("SHOAL_AUTH_TOKEN", "admin-token")
	ns := env.Namespace(t)
	adminServiceAccount(t, env.Client, ns)
	kubeconfig := writeKubeconfig(t, env.ServiceAccountConfig(t, ns, "shoal"), ns)
	startFile := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(startFile, []byte(fromZeroYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	k := backend.Key{App: "shop", Deployment: "web"}

	first := startServer(t, kubeconfig, startFile, "shoal-a")
	deploymentOf(t, env.Client, ns, k, kubetest.ReplicasAre(0))
	second := startServer(t, kubeconfig, startFile, "shoal-b")
	// The follower routes to the application once its view has it (its proxy answers
	// 404 for a route it does not know, and waits for a replica on one it does).
	const scale = "/api/v1/applications/shop/deployments/web/scale"
	kubetest.Eventually(t, 20*time.Second, func() error {
		code, _, body := second.call(t, "GET", scale, "", "")
		var got struct {
			Target *int `json:"target_num_replicas"`
		}
		if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || got.Target == nil || *got.Target != 0 {
			return fmt.Errorf("the follower shows %d %s, want target 0", code, body)
		}
		return nil
	})
	if !strings.Contains(second.logs.String(), "following the leader") {
		t.Fatalf("shoal-b is not following:\n%s", second.logs.String())
	}

	// The reports' route refuses a report without the proof every shoal replica makes
	// with the admin token, even with that token as a bearer.
	forged := `{"replica":"intruder@http://192.0.2.9:8265","deployments":[{"app":"shop","deployment":"web","ongoing":0,"queued":50}]}`
	if code, _, body := first.call(t, "POST", "/-/shoal/load", "application/json", forged); code != http.StatusForbidden {
		t.Errorf("a load report without a proof: %d %s; want 403", code, body)
	}

	// Nothing runs and nothing asks: the leader leaves the deployment at 0.
	time.Sleep(time.Second)
	deploymentOf(t, env.Client, ns, k, kubetest.ReplicasAre(0))

	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	// The request is given up at the end, before the shoals stop: no replica will
	// answer it (the API server refuses the loopback address a local one would have),
	// and a shoal drains for up to its request timeout.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, second.proxy+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		answered <- answer{code: resp.StatusCode, body: string(body)}
	}()
	// The leader's autoscaler reads the load every 100 ms; the follower reports a
	// request waiting at zero at once. A couple of seconds covers a loaded machine;
	// without the report it never happens (the request waits its 30 s and fails).
	kubetest.Eventually(t, 3*time.Second, func() error {
		select {
		case a := <-answered:
			t.Fatalf("the request sent to the follower was answered before any replica ran: %+v", a)
		default:
		}
		got, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), kube.ObjectName(k), metav1.GetOptions{})
		if err != nil {
			return err
		}
		return kubetest.ReplicasAre(1)(got)
	})
	t.Logf("spec.replicas = 1 %v after the request reached the follower", time.Since(sent).Round(time.Millisecond))
}
