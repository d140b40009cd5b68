package kube_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
)

func TestApplyCreatesADeploymentFromTheSpec(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	rec := &recorder{}
	b := start(t, kube.Options{Client: recordingClient(t, env.Config, rec), Namespace: ns})

	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	d := deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
	name := kube.ObjectName(key)

	// Created with no replicas, then scaled through the subresource: no write of the
	// Deployment itself carried a count.
	deps := "/apis/apps/v1/namespaces/" + ns + "/deployments"
	want := []string{"POST " + deps, "PUT " + deps + "/" + name + "/scale"}
	if got := only(rec.writes(), "/deployments"); !reflect.DeepEqual(got, want) {
		t.Fatalf("deployment writes = %q, want %q", got, want)
	}

	if d.Labels[kube.LabelManagedBy] != "shoal" || d.Annotations[kube.AnnotApp] != "my-app" ||
		d.Annotations[kube.AnnotDep] != "web" || d.Annotations[kube.AnnotVersion] != "v1" {
		t.Errorf("labels %v, annotations %v: want shoal's, with app, deployment and version", d.Labels, d.Annotations)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("rolling update %+v, want maxUnavailable 0 and maxSurge 1", ru)
	}
	pod := d.Spec.Template
	if pod.Annotations[kube.AnnotVersion] != "v1" {
		t.Errorf("pod annotations %v, want the version", pod.Annotations)
	}
	ps := pod.Spec
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != 20 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 20", ps.TerminationGracePeriodSeconds)
	}
	if !reflect.DeepEqual(ps.NodeSelector, map[string]string{"pool": "serving"}) || ps.ServiceAccountName != "web" {
		t.Errorf("nodeSelector %v, serviceAccountName %q", ps.NodeSelector, ps.ServiceAccountName)
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image != "registry.example/web:1" {
		t.Errorf("image %q", c.Image)
	}
	if want := []string{"python3", "-m", "http.server", "--bind", "0.0.0.0", "8000"}; !reflect.DeepEqual(c.Command, want) {
		t.Errorf("command %q, want %q", c.Command, want)
	}
	vars := map[string]string{}
	for _, e := range c.Env {
		vars[e.Name] = e.Value
		if e.Name == "SHOAL_REPLICA_ID" && (e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name") {
			t.Errorf("SHOAL_REPLICA_ID = %+v, want the pod's name from the downward API", e)
		}
	}
	if want := map[string]string{"PORT": "8000", "MODEL": "small", "SHOAL_APP": "my-app", "GREETING": "hello on 8000", "SHOAL_REPLICA_ID": ""}; !reflect.DeepEqual(vars, want) {
		t.Errorf("env %v, want %v", vars, want)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8000 {
		t.Errorf("ports %+v, want 8000", c.Ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("readiness probe %+v, want GET /healthz", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.PeriodSeconds != 10 || p.FailureThreshold != 3 {
		t.Errorf("liveness probe %+v, want GET every 10s, failing after 3 (30s)", p)
	}
	if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("resources %+v", c.Resources)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 2 {
		t.Errorf("lifecycle %+v, want a 2s preStop sleep", c.Lifecycle)
	}

	svc, err := env.Client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the deployment's Service: %v", err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("service %+v: want headless, selecting the deployment's pods", svc.Spec)
	}

	// Applying the same spec again writes nothing.
	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	statusOf(t, b, key, func(backend.Status) error { return nil })
	if w := rec.writes(); len(w) != 0 {
		t.Errorf("a repeated Apply wrote %q", w)
	}
}

func TestReplicaCounts(t *testing.T) {
	env := kubetest.Need(t, env, startErr)

	t.Run("a new count is written through the scale subresource alone", func(t *testing.T) {
		ns := env.Namespace(t)
		rec := &recorder{}
		b := start(t, kube.Options{Client: recordingClient(t, env.Config, rec), Namespace: ns})
		if err := b.Apply(sampleSpec()); err != nil {
			t.Fatal(err)
		}
		before := deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
		rec.writes()

		s := sampleSpec()
		s.Replicas = 5
		if err := b.Apply(s); err != nil {
			t.Fatal(err)
		}
		after := deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(5))
		if after.Generation <= before.Generation {
			t.Errorf("generation %d → %d, want it to grow with the new count", before.Generation, after.Generation)
		}
		want := []string{"PUT /apis/apps/v1/namespaces/" + ns + "/deployments/" + kube.ObjectName(key) + "/scale"}
		if got := only(rec.writes(), "/deployments"); !reflect.DeepEqual(got, want) {
			t.Fatalf("writes = %q, want only %q", got, want)
		}

		s.Replicas = 0 // scale to zero is a count like any other
		if err := b.Apply(s); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(0))
	})

	t.Run("a count changed outside shoal is reported and restored", func(t *testing.T) {
		ns := env.Namespace(t)
		b := start(t, kube.Options{Client: env.Client, Namespace: ns, Resync: time.Hour})
		s := sampleSpec()
		s.Replicas = 3
		if err := b.Apply(s); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(3))

		// What `kubectl scale --replicas=1` does.
		deps := env.Client.AppsV1().Deployments(ns)
		sc, err := deps.GetScale(context.Background(), kube.ObjectName(key), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Spec.Replicas = 1
		if _, err := deps.UpdateScale(context.Background(), kube.ObjectName(key), sc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}

		st := statusOf(t, b, key, func(st backend.Status) error {
			if !strings.Contains(st.Message, "changed outside shoal from 3 to 1") {
				return fmt.Errorf("message %q", st.Message)
			}
			return nil
		})
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(3))
		if st.Failing {
			t.Errorf("an outside change marked the deployment failing")
		}

		// A new target from shoal clears the report.
		s.Replicas = 4
		if err := b.Apply(s); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(4))
		statusOf(t, b, key, func(st backend.Status) error {
			if st.Message != "" {
				return fmt.Errorf("message %q, want none", st.Message)
			}
			return nil
		})
	})
}

func TestNewVersionUpdatesThePodTemplateOnly(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	rec := &recorder{}
	b := start(t, kube.Options{Client: recordingClient(t, env.Config, rec), Namespace: ns})
	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
	rec.writes()

	s := sampleSpec()
	s.Version = "v2"
	s.Env["MODEL"] = "large"
	s.HealthCheckPath = "" // readiness by TCP connect
	if err := b.Apply(s); err != nil {
		t.Fatal(err)
	}
	d := deploymentWith(t, env.Client, ns, key, func(d *appsv1.Deployment) error {
		if v := d.Spec.Template.Annotations[kube.AnnotVersion]; v != "v2" {
			return fmt.Errorf("template version %q", v)
		}
		return nil
	})
	c := d.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.HTTPGet != nil {
		t.Errorf("readiness %+v, want a TCP probe", c.ReadinessProbe)
	}
	found := false
	for _, e := range c.Env {
		found = found || (e.Name == "MODEL" && e.Value == "large")
	}
	if !found {
		t.Errorf("env %+v, want MODEL=large", c.Env)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d after a version change, want 2", *d.Spec.Replicas)
	}
	want := []string{"PUT /apis/apps/v1/namespaces/" + ns + "/deployments/" + kube.ObjectName(key)}
	if got := only(rec.writes(), "/deployments"); !reflect.DeepEqual(got, want) {
		t.Fatalf("writes = %q, want only the template update %q", got, want)
	}
	statusOf(t, b, key, func(st backend.Status) error {
		if st.Version != "v2" {
			return fmt.Errorf("status version %q", st.Version)
		}
		return nil
	})
}

// replicaServer is a local stand-in for a replica pod: an HTTP server on loopback. It
// returns its port.
func replicaServer(t *testing.T, name string) int32 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	_, p, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// The API server refuses loopback addresses in EndpointSlices, so the slices name pods
// by addresses of TEST-NET-1 (192.0.2.0/24, reserved for documentation: nothing is ever
// sent there) and the test reaches the local server behind one on 127.0.0.1, same port.
func local(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort("127.0.0.1", port)
}

// addPod creates a pod as the Deployment's ReplicaSet would: from its template.
func addPod(t *testing.T, c kubernetes.Interface, d *appsv1.Deployment, name string) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	p.Name, p.Namespace = name, d.Namespace
	if _, err := c.CoreV1().Pods(d.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// slice is the EndpointSlice the endpoints controller would make for one pod (envtest
// runs no controllers, so the test plays it). Each replica gets its own slice because
// each local server has its own port.
func slice(ns, svc, pod, host string, port int32, ready, terminating bool) *discoveryv1.EndpointSlice {
	name := "http"
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc + "-" + pod, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{host},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: &terminating},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
		}},
	}
}

func TestObserveReadsPodsAndEndpointSlices(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	b := start(t, kube.Options{Client: env.Client, Namespace: ns})
	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	d := deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
	svc := kube.ObjectName(key)
	slices := env.Client.DiscoveryV1().EndpointSlices(ns)
	ctx := context.Background()

	hostA, portA := "192.0.2.1", replicaServer(t, "a")
	hostB, portB := "192.0.2.2", replicaServer(t, "b")
	addPod(t, env.Client, d, "web-a")
	addPod(t, env.Client, d, "web-b")
	addPod(t, env.Client, d, "web-c")
	statusOf(t, b, key, func(st backend.Status) error {
		if len(st.Replicas) != 3 || st.Replicas[0].State != backend.Starting {
			return fmt.Errorf("replicas %+v, want three STARTING pods", st.Replicas)
		}
		return nil
	})

	for _, s := range []*discoveryv1.EndpointSlice{
		slice(ns, svc, "web-a", hostA, portA, true, false),
		slice(ns, svc, "web-b", hostB, portB, true, false),
		slice(ns, svc, "web-c", "192.0.2.3", 1, false, false),
	} {
		if _, err := slices.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	addrA := net.JoinHostPort(hostA, strconv.Itoa(int(portA)))
	addrB := net.JoinHostPort(hostB, strconv.Itoa(int(portB)))
	type seen struct {
		id, addr string
		state    backend.State
	}
	states := func(want []seen) func(backend.Status) error {
		return func(st backend.Status) error {
			var got []seen
			for _, r := range st.Replicas {
				got = append(got, seen{r.ID, r.Address, r.State})
				if r.Version != "v1" || r.Key != key {
					return fmt.Errorf("replica %+v: want version v1 of %s", r, key)
				}
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("replicas %v, want %v", got, want)
			}
			return nil
		}
	}
	statusOf(t, b, key, states([]seen{
		{"web-a", addrA, backend.Running},
		{"web-b", addrB, backend.Running},
		{"web-c", "192.0.2.3:1", backend.Starting},
	}))
	// The addresses are those of the replicas.
	for addr, want := range map[string]string{addrA: "a", addrB: "b"} {
		resp, err := http.Get("http://" + local(addr) + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("%s answered %q, want %q", addr, body, want)
		}
	}

	// web-a's pod starts terminating: its endpoint says so while it still serves, and
	// it leaves the RUNNING set before the pod stops.
	term := slice(ns, svc, "web-a", hostA, portA, false, true)
	cur, err := slices.Get(ctx, term.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	term.ResourceVersion = cur.ResourceVersion
	if _, err := slices.Update(ctx, term, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	statusOf(t, b, key, states([]seen{
		{"web-a", addrA, backend.Stopping},
		{"web-b", addrB, backend.Running},
		{"web-c", "192.0.2.3:1", backend.Starting},
	}))

	// A pod whose container cannot start is UNHEALTHY and the deployment failing.
	pod, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web-c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: kube.ContainerName, Image: "registry.example/web:1",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off restarting"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}},
	}}
	if _, err := env.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := slices.Delete(ctx, svc+"-web-c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, b, key, func(st backend.Status) error {
		if !st.Failing || len(st.Replicas) != 3 || st.Replicas[2].State != backend.Unhealthy {
			return fmt.Errorf("status %+v, want web-c UNHEALTHY and the deployment failing", st)
		}
		return nil
	})
	if !strings.Contains(st.Message, "CrashLoopBackOff") || !strings.Contains(st.Message, "last exit code 3") {
		t.Errorf("message %q, want the reason and the exit code", st.Message)
	}
}

func TestRemove(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	b := start(t, kube.Options{Client: env.Client, Namespace: ns})

	if err := b.Remove(key); !errors.Is(err, backend.ErrUnknownDeployment) {
		t.Fatalf("Remove of an unknown key: %v, want ErrUnknownDeployment", err)
	}
	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
	if err := b.Remove(key); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 15*time.Second, func() error {
		ctx := context.Background()
		if _, err := env.Client.AppsV1().Deployments(ns).Get(ctx, kube.ObjectName(key), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deployment: %v", err)
		}
		if _, err := env.Client.CoreV1().Services(ns).Get(ctx, kube.ObjectName(key), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service: %v", err)
		}
		if obs := b.Observe(); len(obs) != 0 {
			return fmt.Errorf("still observed: %+v", obs)
		}
		return nil
	})
}

func TestARestartedBackendFindsAndRemovesWhatItLeft(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	first := start(t, kube.Options{Client: env.Client, Namespace: ns})
	if err := first.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutting shoal down leaves the replicas to Kubernetes.
	deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))

	again := start(t, kube.Options{Client: env.Client, Namespace: ns})
	statusOf(t, again, key, func(st backend.Status) error {
		if st.Version != "v1" {
			return fmt.Errorf("version %q, want v1 from the Deployment", st.Version)
		}
		return nil
	})
	if err := again.Remove(key); err != nil {
		t.Fatalf("Remove of a deployment found in the cluster: %v", err)
	}
	kubetest.Eventually(t, 15*time.Second, func() error {
		if obs := again.Observe(); len(obs) != 0 {
			return fmt.Errorf("still observed: %+v", obs)
		}
		return nil
	})
}

func TestAFollowerWritesNothingUntilItLeads(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ns := env.Namespace(t)
	rec := &recorder{}
	b := start(t, kube.Options{Client: recordingClient(t, env.Config, rec), Namespace: ns, Follower: true})
	if err := b.Apply(sampleSpec()); err != nil {
		t.Fatal(err)
	}
	// The follower reports what it was told, from its caches.
	statusOf(t, b, key, func(st backend.Status) error {
		if st.Version != "v1" || len(st.Replicas) != 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	if w := rec.writes(); len(w) != 0 {
		t.Fatalf("a follower wrote %q", w)
	}
	b.SetLeading(true)
	deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
}

func TestApplyRefusesASpecKubernetesCannotRun(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	b := start(t, kube.Options{Client: env.Client, Namespace: env.Namespace(t)})
	for _, tc := range []struct {
		name   string
		change func(*backend.Spec)
		want   string
	}{
		{"a spec without an image", func(s *backend.Spec) { s.Image = "" }, "image is required"},
		{"a resource that is not a quantity", func(s *backend.Spec) { s.Resources.Limits["memory"] = "lots" }, `resources.limits.memory: "lots" is not a quantity`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleSpec()
			tc.change(&s)
			err := b.Apply(s)
			if !errors.Is(err, kube.ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want ErrInvalidSpec saying %q", err, tc.want)
			}
		})
	}
	if obs := b.Observe(); len(obs) != 0 {
		t.Fatalf("refused specs were recorded: %+v", obs)
	}
}
