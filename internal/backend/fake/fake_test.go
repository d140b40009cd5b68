package fake

import (
	"errors"
	"testing"

	"shoal/internal/backend"
)

var key = backend.Key{App: "app", Deployment: "d"}

func states(b *Backend) map[string]int {
	out := map[string]int{}
	for _, r := range b.Replicas(key) {
		out[r.Version+" "+string(r.State)]++
	}
	return out
}

func drained(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestReplicasMoveAsTheTestSays(t *testing.T) {
	b := New()
	if err := b.Apply(backend.Spec{Key: key, Version: "v1", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	if !drained(b.Changes()) {
		t.Error("Apply did not signal a change")
	}
	if got := states(b); got["v1 STARTING"] != 2 || len(got) != 1 {
		t.Fatalf("after Apply: %v, want 2 STARTING", got)
	}
	b.Advance()
	if got := states(b); got["v1 RUNNING"] != 2 {
		t.Fatalf("after Advance: %v, want 2 RUNNING", got)
	}

	// A rolling update: old replicas stay until the new ones run.
	_ = b.Apply(backend.Spec{Key: key, Version: "v2", Replicas: 2})
	if got := states(b); got["v1 RUNNING"] != 2 || got["v2 STARTING"] != 2 {
		t.Fatalf("during the update: %v", got)
	}
	b.Advance()
	if got := states(b); got["v2 RUNNING"] != 2 || len(got) != 1 {
		t.Fatalf("after the update: %v", got)
	}

	// Scale-down drops the newest; a crash brings a replacement.
	_ = b.Apply(backend.Spec{Key: key, Version: "v2", Replicas: 1})
	rs := b.Replicas(key)
	if len(rs) != 1 {
		t.Fatalf("after scale-down: %v", rs)
	}
	b.Crash(key, rs[0].ID, "exit status 1")
	if got := states(b); got["v2 STARTING"] != 1 {
		t.Fatalf("after a crash: %v", got)
	}
	b.SetFailing(key, "exit status 1")
	if st := b.Observe()[0]; !st.Failing || st.Message != "exit status 1" {
		t.Errorf("Failing not reported: %+v", st)
	}
	b.SetState(key, b.Replicas(key)[0].ID, backend.Unhealthy)
	if got := states(b); got["v2 UNHEALTHY"] != 1 {
		t.Errorf("after SetState: %v", got)
	}
}

func TestRemoveThenFinish(t *testing.T) {
	b := New()
	if err := b.Remove(key); !errors.Is(err, backend.ErrUnknownDeployment) {
		t.Errorf("removing an unknown deployment: %v", err)
	}
	_ = b.Apply(backend.Spec{Key: key, Version: "v1", Replicas: 1})
	if err := b.Remove(key); err != nil {
		t.Fatal(err)
	}
	st := b.Observe()
	if len(st) != 1 || !st[0].Removing || st[0].Replicas[0].State != backend.Stopping {
		t.Fatalf("after Remove: %+v", st)
	}
	b.FinishRemove(key)
	if st := b.Observe(); len(st) != 0 {
		t.Errorf("after FinishRemove: %+v", st)
	}

	b.SetRemoveImmediately(true)
	_ = b.Apply(backend.Spec{Key: key, Version: "v1", Replicas: 1})
	_ = b.Remove(key)
	if st := b.Observe(); len(st) != 0 {
		t.Errorf("immediate remove left %+v", st)
	}
	if got := b.Removed(); len(got) != 3 {
		t.Errorf("Removed() = %v, want 3 calls", got)
	}
}
