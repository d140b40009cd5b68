package store

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// opener makes a fresh, empty store whose audit log keeps auditCap entries per deployment.
type opener func(t *testing.T, auditCap int) Store

func openMemory(t *testing.T, auditCap int) Store {
	m := NewMemory()
	m.auditCap = auditCap
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func openBolt(t *testing.T, auditCap int) Store {
	b, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b.auditCap = auditCap
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestMemoryConformance(t *testing.T) { testConformance(t, openMemory) }
func TestBoltConformance(t *testing.T)   { testConformance(t, openBolt) }

var t0 = time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)

func sampleState() *State {
	return &State{
		Config: []byte(`{"applications":[{"name":"a"}]}`),
		Apps: map[string]*AppState{
			"a": {
				LastDeployed: t0,
				Deployments: map[string]*DeploymentState{
					"d": {Target: 3, Source: "webhook", Version: "v1", NumReplicas: 1, UpdatedAt: t0.Add(time.Second)},
				},
			},
			"gone": {LastDeployed: t0, Deleting: true, Deployments: map[string]*DeploymentState{}},
		},
		Tokens: map[string]*Token{"a": {ID: "app:a#1", Secret: "s3cret", Created: t0}},
	}
}

func entry(app, dep string, to int) AuditEntry {
	return AuditEntry{
		Time: t0.Add(time.Duration(to) * time.Second), App: app, Deployment: dep,
		From: to - 1, To: to, TokenID: "admin", Client: "127.0.0.1", Source: "webhook",
		Result: "ok", Status: 200,
	}
}

// tos lists the To field of entries: each test entry is numbered by it.
func tos(es []AuditEntry) []int {
	out := []int{}
	for _, e := range es {
		out = append(out, e.To)
	}
	return out
}

func testConformance(t *testing.T, open opener) {
	t.Run("an empty store loads an empty state with usable maps", func(t *testing.T) {
		st, err := open(t, AuditCap).Load()
		if err != nil {
			t.Fatal(err)
		}
		if st.Config != nil || len(st.Apps) != 0 || len(st.Tokens) != 0 {
			t.Fatalf("state = %+v, want empty", st)
		}
		st.Apps["x"] = &AppState{} // must not panic
		st.Tokens["x"] = &Token{}
	})

	t.Run("a saved state loads back equal", func(t *testing.T) {
		s := open(t, AuditCap)
		if err := s.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, sampleState()) {
			t.Fatalf("loaded %+v, want %+v", got, sampleState())
		}
	})

	t.Run("a save replaces the whole previous state", func(t *testing.T) {
		s := open(t, AuditCap)
		if err := s.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(&State{Apps: map[string]*AppState{"b": {LastDeployed: t0}}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		want := &State{
			Apps:   map[string]*AppState{"b": {LastDeployed: t0, Deployments: map[string]*DeploymentState{}}},
			Tokens: map[string]*Token{},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("loaded %+v, want %+v", got, want)
		}
	})

	t.Run("changing a state after saving it or after loading it changes nothing stored", func(t *testing.T) {
		s := open(t, AuditCap)
		st := sampleState()
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
		st.Apps["a"].Deployments["d"].Target = 99
		st.Config[0] = 'X'
		st.Tokens["a"].Secret = "changed"
		loaded, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		loaded.Apps["a"].Deployments["d"].Target = 42
		delete(loaded.Apps, "gone")
		again, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, sampleState()) {
			t.Fatalf("loaded %+v, want the state as saved", again)
		}
	})

	t.Run("saving nil is an error", func(t *testing.T) {
		if err := open(t, AuditCap).Save(nil); err == nil {
			t.Fatal("Save(nil) succeeded")
		}
	})

	t.Run("audit entries come back whole", func(t *testing.T) {
		s := open(t, AuditCap)
		e := entry("a", "d", 5)
		e.Result, e.Status, e.TokenID = "403 token of another application", 403, "app:b#1"
		if err := s.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
		got, err := s.Audit("a", "d", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], e) {
			t.Fatalf("audit = %+v, want [%+v]", got, e)
		}
	})

	// The audit table: entries are appended in the order given (each named by its To
	// field), then read with a filter and limit.
	type appended struct {
		app, dep string
		to       int
	}
	audits := []struct {
		name     string
		auditCap int
		append   []appended
		app, dep string
		limit    int
		want     []int
	}{
		{
			name:   "an application without entries has an empty log",
			append: []appended{{"other", "d", 1}},
			app:    "a", dep: "d", limit: 10,
			want: []int{},
		},
		{
			name:   "a deployment's log is newest first",
			append: []appended{{"a", "d", 1}, {"a", "d", 2}, {"a", "d", 3}},
			app:    "a", dep: "d", limit: 10,
			want: []int{3, 2, 1},
		},
		{
			name:   "the limit keeps the newest entries",
			append: []appended{{"a", "d", 1}, {"a", "d", 2}, {"a", "d", 3}, {"a", "d", 4}},
			app:    "a", dep: "d", limit: 2,
			want: []int{4, 3},
		},
		{
			name:   "a limit of zero returns every kept entry",
			append: []appended{{"a", "d", 1}, {"a", "d", 2}, {"a", "d", 3}},
			app:    "a", dep: "d", limit: 0,
			want: []int{3, 2, 1},
		},
		{
			name:     "the cap drops a deployment's oldest entries",
			auditCap: 3,
			append:   []appended{{"a", "d", 1}, {"a", "d", 2}, {"a", "d", 3}, {"a", "d", 4}, {"a", "d", 5}},
			app:      "a", dep: "d", limit: 0,
			want: []int{5, 4, 3},
		},
		{
			name:     "the cap counts each deployment apart",
			auditCap: 2,
			append: []appended{
				{"a", "d", 1}, {"a", "e", 2}, {"a", "d", 3}, {"a", "d", 4}, {"a", "d", 5}, {"a", "e", 6},
			},
			app: "a", dep: "e", limit: 0,
			want: []int{6, 2},
		},
		{
			name: "an application's log merges its deployments newest first",
			append: []appended{
				{"a", "d", 1}, {"a", "e", 2}, {"ab", "d", 3}, {"a", "d", 4}, {"b", "d", 5}, {"a", "e", 6},
			},
			app: "a", limit: 0,
			want: []int{6, 4, 2, 1},
		},
		{
			name: "an application's log applies the limit after merging",
			append: []appended{
				{"a", "d", 1}, {"a", "e", 2}, {"a", "d", 3}, {"a", "e", 4}, {"a", "d", 5},
			},
			app: "a", limit: 3,
			want: []int{5, 4, 3},
		},
		{
			name:   "a deployment filter leaves out the application's other deployments",
			append: []appended{{"a", "d", 1}, {"a", "e", 2}, {"a", "d", 3}},
			app:    "a", dep: "d", limit: 0,
			want: []int{3, 1},
		},
		{
			name:   "empty names are kept apart like any other",
			append: []appended{{"", "", 1}, {"a", "", 2}, {"", "d", 3}},
			app:    "", limit: 0,
			want: []int{3, 1},
		},
	}
	for _, tc := range audits {
		t.Run(tc.name, func(t *testing.T) {
			auditCap := tc.auditCap
			if auditCap == 0 {
				auditCap = AuditCap
			}
			s := open(t, auditCap)
			for _, a := range tc.append {
				if err := s.AppendAudit(entry(a.app, a.dep, a.to)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Audit(tc.app, tc.dep, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("Audit returned nil, want a non-nil slice")
			}
			if !reflect.DeepEqual(tos(got), tc.want) {
				t.Fatalf("Audit(%q, %q, %d) = %v, want %v", tc.app, tc.dep, tc.limit, tos(got), tc.want)
			}
		})
	}

	t.Run("DropAudit removes every deployment's entries of one application and no other's", func(t *testing.T) {
		s := open(t, AuditCap)
		for _, e := range []AuditEntry{entry("a", "d", 1), entry("a", "e", 2), entry("ab", "d", 3), entry("b", "d", 4)} {
			if err := s.AppendAudit(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DropAudit("a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DropAudit("never-audited"); err != nil {
			t.Fatalf("dropping an application without entries: %v", err)
		}
		for app, want := range map[string][]int{"a": {}, "ab": {3}, "b": {4}} {
			got, err := s.Audit(app, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tos(got), want) {
				t.Errorf("after dropping a, Audit(%q) = %v, want %v", app, tos(got), want)
			}
		}
		// The application's log starts again empty.
		if err := s.AppendAudit(entry("a", "d", 5)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Audit("a", "", 0); err != nil || !reflect.DeepEqual(tos(got), []int{5}) {
			t.Errorf("after a new append, Audit(a) = %v, %v; want [5]", tos(got), err)
		}
	})

	t.Run("a save without an application drops that application's audit log", func(t *testing.T) {
		s := open(t, AuditCap)
		if err := s.Save(sampleState()); err != nil { // applications a and gone
			t.Fatal(err)
		}
		for _, e := range []AuditEntry{entry("gone", "d", 1), entry("gone", "e", 2), entry("a", "d", 3), entry("unsaved", "d", 4)} {
			if err := s.AppendAudit(e); err != nil {
				t.Fatal(err)
			}
		}
		st := sampleState()
		delete(st.Apps, "gone")
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
		// An application the saved state never had is not the store's to judge.
		for app, want := range map[string][]int{"gone": {}, "a": {3}, "unsaved": {4}} {
			got, err := s.Audit(app, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tos(got), want) {
				t.Errorf("after a save without gone, Audit(%q) = %v, want %v", app, tos(got), want)
			}
		}
		// Saving it back (deployed again) keeps what is logged from then on.
		if err := s.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendAudit(entry("gone", "d", 5)); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Audit("gone", "", 0); err != nil || !reflect.DeepEqual(tos(got), []int{5}) {
			t.Errorf("after gone was saved again, Audit(gone) = %v, %v; want [5]", tos(got), err)
		}
	})

	t.Run("every call after close fails with ErrClosed", func(t *testing.T) {
		s := open(t, AuditCap)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		_, errLoad := s.Load()
		_, errAudit := s.Audit("a", "", 1)
		for name, err := range map[string]error{
			"Load":        errLoad,
			"Save":        s.Save(sampleState()),
			"AppendAudit": s.AppendAudit(entry("a", "d", 1)),
			"Audit":       errAudit,
			"DropAudit":   s.DropAudit("a"),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})

	t.Run("concurrent saves and appends are safe and all land", func(t *testing.T) {
		s := open(t, AuditCap)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 5 {
					if err := s.AppendAudit(entry("a", fmt.Sprint(g), i)); err != nil {
						t.Error(err)
					}
					if err := s.Save(sampleState()); err != nil {
						t.Error(err)
					}
					if _, err := s.Load(); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		got, err := s.Audit("a", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 20 {
			t.Fatalf("%d entries, want 20", len(got))
		}
	})
}
