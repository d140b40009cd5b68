package kube_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"shoal/internal/backend"
	"shoal/internal/backend/kube"
	"shoal/internal/backend/kube/kubetest"
	"shoal/internal/leader"
	"shoal/internal/store"
)

// TestTheManifestsRoleIsEnough runs the backend, the store and the leader election as
// deploy/kubernetes's ServiceAccount, bound to exactly its Role, with a token minted for
// it: never as admin.
// The Services of shoal.yaml are valid, and the control Service keeps a browser on the
// replica that holds its dashboard session.
func TestTheManifestsServicesAreAcceptedAndTheControlOneIsSticky(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	ctx := context.Background()
	sticky := false
	for _, obj := range kubetest.Manifests(t, "shoal.yaml") {
		svc, ok := obj.(*corev1.Service)
		if !ok {
			continue
		}
		svc.Namespace = "shoal-services-test"
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: svc.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if err := env.Client.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		got, err := env.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("the API server refuses Service %s of shoal.yaml: %v", svc.Name, err)
		}
		if got.Name == "shoal-control" {
			sticky = got.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
		}
	}
	if !sticky {
		t.Error("Service shoal-control of shoal.yaml has no sessionAffinity: ClientIP; a dashboard session would be lost on the other replica")
	}
}

func TestTheManifestsRoleIsEnough(t *testing.T) {
	env := kubetest.Need(t, env, startErr)
	kubetest.Create(t, env.Client, kubetest.Manifests(t, "namespace.yaml", "rbac.yaml", "state.yaml"))
	const ns = "shoal"
	sa, err := kubernetes.NewForConfig(env.ServiceAccountConfig(t, ns, "shoal"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("the backend deploys, scales, restores, updates and removes", func(t *testing.T) {
		b := start(t, kube.Options{Client: sa, Namespace: ns})
		if err := b.Apply(sampleSpec()); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(2))
		s := sampleSpec()
		s.Replicas, s.Version = 4, "v2"
		if err := b.Apply(s); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(4))

		deps := env.Client.AppsV1().Deployments(ns)
		sc, err := deps.GetScale(ctx, kube.ObjectName(key), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Spec.Replicas = 1
		if _, err := deps.UpdateScale(ctx, kube.ObjectName(key), sc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		deploymentWith(t, env.Client, ns, key, kubetest.ReplicasAre(4))
		statusOf(t, b, key, func(st backend.Status) error {
			if st.Version != "v2" || st.Message == "" {
				return fmt.Errorf("status %+v, want v2 and the outside change reported", st)
			}
			return nil
		})

		if err := b.Remove(key); err != nil {
			t.Fatal(err)
		}
		kubetest.Eventually(t, 15*time.Second, func() error {
			if obs := b.Observe(); len(obs) != 0 {
				return fmt.Errorf("still observed: %+v", obs)
			}
			return nil
		})
	})

	t.Run("the store saves, loads and audits", func(t *testing.T) {
		k := store.NewKube(sa, ns, "shoal")
		defer k.Close()
		st := &store.State{
			Config: []byte(`{"applications":[]}`),
			Apps:   map[string]*store.AppState{"a": {Deployments: map[string]*store.DeploymentState{"d": {Target: 2, Source: "webhook"}}}},
			Tokens: map[string]*store.Token{"a": {ID: "app:a#1", Secret: "x"}},
		}
		if err := k.Save(st); err != nil {
			t.Fatal(err)
		}
		got, err := store.NewKube(sa, ns, "shoal").Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Tokens, st.Tokens) || got.Apps["a"].Deployments["d"].Target != 2 {
			t.Fatalf("loaded %+v", got)
		}
		// The namespace outlives a run (-count), so the entry is told apart by its value.
		to := int(time.Now().UnixNano() % 1_000_000)
		if err := k.AppendAudit(store.AuditEntry{App: "a", Deployment: "d", From: 1, To: to, Result: "ok", Status: 200}); err != nil {
			t.Fatal(err)
		}
		for _, dep := range []string{"d", ""} {
			es, err := k.Audit("a", dep, 1)
			if err != nil || len(es) != 1 || es[0].To != to {
				t.Fatalf("Audit(a, %q) = %v, %v; want the entry to %d", dep, es, err, to)
			}
		}
		// The application is deleted: its audit ConfigMap goes with it, which the Role
		// must allow.
		if err := k.Save(&store.State{Config: []byte(`{"applications":[]}`), Apps: map[string]*store.AppState{}, Tokens: map[string]*store.Token{}}); err != nil {
			t.Fatal(err)
		}
		if err := k.DropAudit("a"); err != nil {
			t.Fatalf("DropAudit under the manifests' Role: %v", err)
		}
		if es, err := k.Audit("a", "d", 1); err != nil || len(es) != 0 {
			t.Fatalf("after the application was deleted, Audit(a, d) = %v, %v; want nothing", es, err)
		}
	})

	t.Run("the leader election takes the Lease", func(t *testing.T) {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		led := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- leader.Run(lctx, leader.Options{
				Client: sa, Namespace: ns, Name: "shoal-leader", Identity: "shoal-0",
				RetryPeriod: 100 * time.Millisecond,
				OnStart:     func(context.Context) { close(led) },
			})
		}()
		select {
		case <-led:
		case err := <-done:
			t.Fatalf("leader election ended: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("did not become the leader")
		}
		cancel()
		<-done
	})

	t.Run("nothing beyond the Role is allowed", func(t *testing.T) {
		admin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shoal-admin", Namespace: ns}, StringData: map[string]string{"token": "t"}}
		if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, admin, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		for name, call := range map[string]func() error{
			"reading another Secret": func() error {
				_, err := sa.CoreV1().Secrets(ns).Get(ctx, "shoal-admin", metav1.GetOptions{})
				return err
			},
			"listing Secrets": func() error {
				_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
			"creating a Secret": func() error {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}}
				_, err := sa.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
				return err
			},
			"taking another Lease": func() error {
				l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns}}
				_, err := sa.CoordinationV1().Leases(ns).Create(ctx, l, metav1.CreateOptions{})
				return err
			},
			"writing pods": func() error {
				return sa.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
			},
			"reading another namespace": func() error {
				_, err := sa.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
				return err
			},
		} {
			if err := call(); !apierrors.IsForbidden(err) {
				t.Errorf("%s: %v, want forbidden", name, err)
			}
		}
	})
}
