package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"shoal/internal/backend/fake"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
)

// followerStore is a store of a shoal replica that does not lead: it reads, and
// refuses every write.
type followerStore struct{ *store.Memory }

func (followerStore) Save(*store.State) error            { return store.ErrNotLeader }
func (followerStore) AppendAudit(store.AuditEntry) error { return store.ErrNotLeader }

func newController(t *testing.T, st store.Store) *controller.Controller {
	t.Helper()
	c, err := controller.New(controller.Options{Store: st, Backend: fake.New()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTheSwitchsGenerationsOnlyGrowAcrossControllers(t *testing.T) {
	sw := newSwitch(config.DefaultHTTPOptions(), slog.New(slog.DiscardHandler))
	if s := sw.Snapshot(); s == nil || s.Generation != 0 {
		t.Fatalf("before any controller the snapshot is %+v, want an empty one at 0", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	first := newController(t, store.NewMemory())
	sw.set(first)
	s1, err := sw.Wait(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A change through the switch reaches the first controller and its snapshot is
	// republished by the pump.
	pctx, stopPump := context.WithCancel(ctx)
	go sw.pump(pctx, first)
	cfg := &config.Config{HTTPOptions: config.DefaultHTTPOptions(), Applications: []config.Application{}}
	if err := sw.Deploy(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s2, err := sw.Wait(ctx, s1.Generation)
	if err != nil {
		t.Fatal(err)
	}
	stopPump()

	// A new controller numbers its snapshots from 0; the switch keeps counting up.
	sw.set(newController(t, store.NewMemory()))
	s3, err := sw.Wait(ctx, s2.Generation)
	if err != nil {
		t.Fatal(err)
	}
	if !(s1.Generation < s2.Generation && s2.Generation < s3.Generation) {
		t.Errorf("generations %d, %d, %d; want growing", s1.Generation, s2.Generation, s3.Generation)
	}
	if s3.Config != nil {
		t.Errorf("the new controller's snapshot has the old one's config")
	}
}

func TestTheSwitchRefusesChangesWithoutALeadingController(t *testing.T) {
	sw := newSwitch(config.DefaultHTTPOptions(), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	cfg := &config.Config{HTTPOptions: config.DefaultHTTPOptions(), Applications: []config.Application{}}
	for _, tc := range []struct {
		name  string
		setup func()
	}{
		{"before the state was read once", func() {}},
		{"on a follower", func() { sw.set(newController(t, followerStore{store.NewMemory()})) }},
		{"once detached for a new leader", func() { sw.detach() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			if err := sw.Deploy(ctx, cfg); !errors.Is(err, store.ErrNotLeader) {
				t.Errorf("Deploy: %v, want store.ErrNotLeader", err)
			}
			if _, err := sw.SetTarget(ctx, "a", "d", 1, controller.SourceWebhook); !errors.Is(err, store.ErrNotLeader) && !errors.Is(err, controller.ErrNotFound) {
				t.Errorf("SetTarget: %v, want store.ErrNotLeader or ErrNotFound", err)
			}
			// A refused call's audit entry is logged, not failed: only the leader audits.
			if err := sw.RecordAudit(store.AuditEntry{App: "a", Deployment: "d", Status: 503}); err != nil {
				t.Errorf("RecordAudit: %v, want nil", err)
			}
		})
	}
}

func TestTheHandleEndpointAnswersPodsButNotTheInternet(t *testing.T) {
	var seen string
	h := handleFromPods(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }))
	for _, tc := range []struct {
		name, path, from, want string
	}{
		{"a pod's call to the handle endpoint comes in as loopback", "/-/handle/app/dep/x", "10.244.1.7:4000", "127.0.0.1:4000"},
		{"a public client's call keeps its address", "/-/handle/app/dep/x", "203.0.113.9:4000", "203.0.113.9:4000"},
		{"application traffic keeps its address", "/x", "10.244.1.7:4000", "10.244.1.7:4000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.path, nil)
			r.RemoteAddr = tc.from
			h.ServeHTTP(httptest.NewRecorder(), r)
			if seen != tc.want {
				t.Errorf("the proxy saw %s, want %s", seen, tc.want)
			}
		})
	}
}
