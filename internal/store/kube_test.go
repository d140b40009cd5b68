package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"shoal/internal/backend/kube/kubetest"
)

// TestKube runs the store's conformance table and the Kubernetes-specific behaviour
// against a real kube-apiserver and etcd (hack/k8stools/build.sh builds them).
func TestKube(t *testing.T) {
	env, err := kubetest.Start()
	if err == nil {
		t.Cleanup(func() { _ = env.Stop() })
	}
	env = kubetest.Need(t, env, err)
	ns := env.Namespace(t)
	var seq atomic.Int64
	open := func(t *testing.T, auditCap int) Store {
		k := NewKube(env.Client, ns, fmt.Sprintf("s%d", seq.Add(1)))
		k.auditCap = auditCap
		t.Cleanup(func() { _ = k.Close() })
		return k
	}

	t.Run("conformance", func(t *testing.T) { testConformance(t, open) })

	t.Run("a new store on the same objects reads back state, tokens and audit", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		first := NewKube(env.Client, ns, name)
		if err := first.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		if err := first.AppendAudit(entry("a", "d", 7)); err != nil {
			t.Fatal(err)
		}
		_ = first.Close()

		again := NewKube(env.Client, ns, name)
		defer again.Close()
		st, err := again.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(st, sampleState()) {
			t.Fatalf("after a restart loaded %+v, want %+v", st, sampleState())
		}
		got, err := again.Audit("a", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tos(got), []int{7}) {
			t.Fatalf("audit after a restart = %v, want [7]", tos(got))
		}
		// And the restarted store writes on top, at the resourceVersion it read.
		st.Apps["a"].Deployments["d"].Target = 5
		if err := again.Save(st); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("tokens live only in the Secret, config and targets in the ConfigMap", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		k := NewKube(env.Client, ns, name)
		defer k.Close()
		if err := k.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := cm.Data[kubeStateKey]; strings.Contains(s, "s3cret") || !strings.Contains(s, `"target":3`) {
			t.Fatalf("ConfigMap holds %s; want the targets and no token", s)
		}
		sec, err := env.Client.CoreV1().Secrets(ns).Get(ctx, name+"-tokens", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(sec.Data[kubeTokensKey]), "s3cret") {
			t.Fatalf("Secret holds %s; want the token", sec.Data[kubeTokensKey])
		}
	})

	t.Run("a save over a state another writer changed fails with ErrConflict", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		old, successor := NewKube(env.Client, ns, name), NewKube(env.Client, ns, name)
		defer old.Close()
		defer successor.Close()
		if err := old.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		st, err := successor.Load()
		if err != nil {
			t.Fatal(err)
		}
		st.Apps["a"].Deployments["d"].Target = 9
		if err := successor.Save(st); err != nil {
			t.Fatal(err)
		}
		stale := sampleState()
		stale.Apps["a"].Deployments["d"].Target = 1
		if err := old.Save(stale); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale save: %v, want ErrConflict", err)
		}
		got, err := successor.Load()
		if err != nil {
			t.Fatal(err)
		}
		if n := got.Apps["a"].Deployments["d"].Target; n != 9 {
			t.Fatalf("target = %d after the stale save, want the successor's 9", n)
		}
		// Having read again, the old writer may write.
		if _, err := old.Load(); err != nil {
			t.Fatal(err)
		}
		if err := old.Save(stale); err != nil {
			t.Fatalf("save after a fresh load: %v", err)
		}
	})

	t.Run("a store that does not lead reads but refuses writes with ErrNotLeader", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		k := NewKube(env.Client, ns, name)
		defer k.Close()
		if err := k.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		k.SetLeading(false)
		if err := k.Save(sampleState()); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("Save by a follower: %v, want ErrNotLeader", err)
		}
		if err := k.AppendAudit(entry("a", "d", 1)); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("AppendAudit by a follower: %v, want ErrNotLeader", err)
		}
		if err := k.DropAudit("a"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("DropAudit by a follower: %v, want ErrNotLeader", err)
		}
		if st, err := k.Load(); err != nil || !reflect.DeepEqual(st, sampleState()) {
			t.Fatalf("Load by a follower = %+v, %v; want the saved state", st, err)
		}
		rev, err := k.Revision()
		if err != nil || rev == "" {
			t.Fatalf("Revision = %q, %v; want the ConfigMap's resourceVersion", rev, err)
		}
	})

	t.Run("an audit ConfigMap stays under its byte bound, and appends go on", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		k := NewKube(env.Client, ns, name)
		defer k.Close()
		// Entries of 200 KiB each: without the byte bound the fifth append would
		// pass the API server's 1 MiB and fail, and so would every one after it.
		for i := range 8 {
			e := entry("a", "d", i)
			e.Result = strings.Repeat("x", 200<<10)
			if err := k.AppendAudit(e); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), k.auditName("a", "d"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cm.Data[kubeEntriesKey]); n > kubeAuditMaxBytes {
			t.Errorf("the audit ConfigMap holds %d bytes, want at most %d", n, kubeAuditMaxBytes)
		}
		got, err := k.Audit("a", "d", 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(tos(got), []int{7, 6, 5}) {
			t.Errorf("kept entries %v, want the newest three that fit, [7 6 5]", tos(got))
		}
	})

	t.Run("the byte bound drops the oldest small entries too", func(t *testing.T) {
		k := NewKube(env.Client, ns, fmt.Sprintf("s%d", seq.Add(1)))
		defer k.Close()
		k.auditMaxBytes = 2000
		for i := range 30 {
			if err := k.AppendAudit(entry("a", "d", i)); err != nil {
				t.Fatal(err)
			}
		}
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), k.auditName("a", "d"), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cm.Data[kubeEntriesKey]); n > 2000 || n < 1500 {
			t.Errorf("the audit ConfigMap holds %d bytes, want at most 2000 and close to it", n)
		}
		got, err := k.Audit("a", "d", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || len(got) >= 30 || got[0].To != 29 {
			t.Errorf("kept entries %v, want the newest ones only", tos(got))
		}
	})

	t.Run("a restarted leader that saves without an application deletes its audit ConfigMaps", func(t *testing.T) {
		name := fmt.Sprintf("s%d", seq.Add(1))
		first := NewKube(env.Client, ns, name)
		if err := first.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		for _, e := range []AuditEntry{entry("gone", "d", 1), entry("gone", "e", 2), entry("a", "d", 3)} {
			if err := first.AppendAudit(e); err != nil {
				t.Fatal(err)
			}
		}
		_ = first.Close()

		// A store that never loaded learns what was saved from the ConfigMap it replaces.
		again := NewKube(env.Client, ns, name)
		defer again.Close()
		st := sampleState()
		delete(st.Apps, "gone")
		if err := again.Save(st); err != nil {
			t.Fatal(err)
		}
		list, err := env.Client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubeLabelStore + "=" + name})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, cm := range list.Items {
			if cm.Name != name {
				left = append(left, cm.Annotations[kubeAnnotApp]+"/"+cm.Annotations[kubeAnnotDep])
			}
		}
		if !reflect.DeepEqual(left, []string{"a/d"}) {
			t.Errorf("audit ConfigMaps left: %v, want only a/d's", left)
		}
	})
}
