package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

// fixedLoad is a proxy's load that the test sets.
type fixedLoad struct {
	mu sync.Mutex // guards m
	m  map[backend.Key]loadPair
}

func (f *fixedLoad) set(k backend.Key, ongoing, queued int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[backend.Key]loadPair{}
	}
	f.m[k] = loadPair{ongoing, queued}
}

func (f *fixedLoad) DeploymentLoad(k backend.Key) (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.m[k]
	return l.ongoing, l.queued
}

func (f *fixedLoad) queued(k backend.Key) int {
	_, q := f.DeploymentLoad(k)
	return q
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const testSecret = "admin-token"

var (
	keyA = backend.Key{App: "shop", Deployment: "web"}
	keyB = backend.Key{App: "shop", Deployment: "worker"}
)

func newTestSharedLoad(local *fixedLoad) (*sharedLoad, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newSharedLoad(local, "leader@http://10.0.0.1:8265", []byte(testSecret), slog.New(slog.DiscardHandler))
	s.now = clock.now
	return s, clock
}

// post sends a report to s's route as a follower would, with a proof made with secret
// ("" : no proof header), and returns the status. A report without a time is sent now,
// by s's clock.
func post(t *testing.T, s *sharedLoad, secret string, rep loadReport) int {
	t.Helper()
	if rep.SentAt == 0 {
		rep.SentAt = s.now().UnixMilli()
	}
	body, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	proof := ""
	if secret != "" {
		proof = loadProof([]byte(secret), body)
	}
	return postBody(s, proof, bytes.NewReader(body)).Code
}

// postBody sends body to s's route with proof in the proof header ("": none).
func postBody(s *sharedLoad, proof string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, loadReportPath, body)
	if proof != "" {
		req.Header.Set(loadReportProofHeader, proof)
	}
	rec := httptest.NewRecorder()
	s.wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
	return rec
}

func report(replica string, loads ...deploymentLoad) loadReport {
	return loadReport{Replica: replica, Deployments: loads}
}

func dl(k backend.Key, ongoing, queued int) deploymentLoad {
	return deploymentLoad{App: k.App, Deployment: k.Deployment, Ongoing: ongoing, Queued: queued}
}

func TestTheLeadersLoadIsItsOwnPlusEveryFreshReport(t *testing.T) {
	local := &fixedLoad{}
	local.set(keyA, 2, 1)
	s, clock := newTestSharedLoad(local)
	if code := post(t, s, testSecret, report("b@http://10.0.0.2:8265", dl(keyA, 3, 0), dl(keyB, 0, 4))); code != http.StatusNoContent {
		t.Fatalf("a valid report answered %d, want 204", code)
	}
	clock.advance(time.Second)
	if code := post(t, s, testSecret, report("c@http://10.0.0.3:8265", dl(keyA, 5, 2))); code != http.StatusNoContent {
		t.Fatalf("a valid report answered %d, want 204", code)
	}
	steps := []struct {
		name            string
		after           time.Duration
		key             backend.Key
		ongoing, queued int
	}{
		{"both followers' reports add to the leader's own", 0, keyA, 2 + 3 + 5, 1 + 0 + 2},
		{"a deployment the leader has no load on counts the reports alone", 0, keyB, 0, 4},
		{"a report of exactly the freshness bound still counts", time.Second, keyA, 10, 3},
		{"the older report drops out once stale, the newer stays", time.Millisecond, keyA, 2 + 5, 1 + 2},
		{"the stale report's other deployments drop out too", 0, keyB, 0, 0},
		{"with every report stale the leader counts its own alone", time.Second, keyA, 2, 1},
	}
	for _, st := range steps {
		clock.advance(st.after)
		if on, q := s.DeploymentLoad(st.key); on != st.ongoing || q != st.queued {
			t.Errorf("%s: DeploymentLoad(%v) = %d ongoing, %d queued; want %d, %d", st.name, st.key, on, q, st.ongoing, st.queued)
		}
	}
}

func TestAFollowersReportReplacesItsPreviousOne(t *testing.T) {
	s, clock := newTestSharedLoad(&fixedLoad{})
	const b = "b@http://10.0.0.2:8265"
	post(t, s, testSecret, report(b, dl(keyA, 3, 2), dl(keyB, 1, 0)))
	clock.advance(100 * time.Millisecond)
	post(t, s, testSecret, report(b, dl(keyA, 1, 0)))
	if on, q := s.DeploymentLoad(keyA); on != 1 || q != 0 {
		t.Errorf("after a second report of 1 ongoing: %d ongoing, %d queued; want 1, 0 (replaced, not added)", on, q)
	}
	if on, q := s.DeploymentLoad(keyB); on != 0 || q != 0 {
		t.Errorf("a deployment left out of the new report: %d ongoing, %d queued; want 0, 0", on, q)
	}
	// The same name at another URL is another replica (a pod that came back elsewhere
	// while its old report is fresh): both count, until the old one goes stale.
	post(t, s, testSecret, report("b@http://10.0.0.9:8265", dl(keyA, 4, 0)))
	if on, _ := s.DeploymentLoad(keyA); on != 5 {
		t.Errorf("two identities: %d ongoing, want 1+4", on)
	}
	clock.advance(loadReportTTL + time.Millisecond)
	post(t, s, testSecret, report("c@http://10.0.0.3:8265"))
	s.mu.RLock()
	n := len(s.peers)
	s.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d reports kept after the others went stale, want the new one alone", n)
	}
}

func TestTheLoadRouteRefusesWhatNoReplicaSent(t *testing.T) {
	s, _ := newTestSharedLoad(&fixedLoad{})
	h := s.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	cases := []struct {
		name   string
		secret string
		rep    loadReport
		want   int
	}{
		{"a report without a proof", "", report("b@x", dl(keyA, 100, 100)), http.StatusForbidden},
		{"a report proven with another token", "guessed", report("b@x", dl(keyA, 100, 100)), http.StatusForbidden},
		{"a report naming the leader itself", testSecret, report(s.self, dl(keyA, 100, 100)), http.StatusBadRequest},
		{"a report naming no replica", testSecret, report("", dl(keyA, 100, 100)), http.StatusBadRequest},
	}
	for _, c := range cases {
		if code := post(t, s, c.secret, c.rep); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if on, q := s.DeploymentLoad(keyA); on != 0 || q != 0 {
		t.Errorf("refused reports count: %d ongoing, %d queued", on, q)
	}
	// A proof over another body does not carry over.
	body := `{"replica":"b@x","deployments":[{"app":"shop","deployment":"web","ongoing":9,"queued":9}]}`
	req := httptest.NewRequest(http.MethodPost, loadReportPath, strings.NewReader(body))
	req.Header.Set(loadReportProofHeader, loadProof([]byte(testSecret), []byte(`{"replica":"b@x"}`)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("a proof of another body: %d, want 403", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, loadReportPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET of the route: %d, want 405", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/applications", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("another path: %d, want the wrapped handler's", rec.Code)
	}
}

// The autoscaler reads the load of every autoscaled deployment every 100 ms.
func TestReadingTheSharedLoadAllocatesNothing(t *testing.T) {
	local := &fixedLoad{}
	local.set(keyA, 1, 0)
	s, _ := newTestSharedLoad(local)
	for i := range 3 {
		post(t, s, testSecret, report(fmt.Sprintf("r%d@x", i), dl(keyA, 1, 1), dl(keyB, 1, 0)))
	}
	if n := testing.AllocsPerRun(100, func() { s.DeploymentLoad(keyA) }); n != 0 {
		t.Errorf("DeploymentLoad allocates %v times per call, want 0", n)
	}
}

// follower is a loadReporter against a leader served by httptest.
type follower struct {
	rep     *loadReporter
	load    *fixedLoad
	snap    atomic.Pointer[controller.Snapshot]
	leading atomic.Bool
	posts   atomic.Int64
}

func newFollower(t *testing.T, leader *sharedLoad, secret string) *follower {
	t.Helper()
	f := &follower{load: &fixedLoad{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.posts.Add(1)
		leader.wrap(http.NotFoundHandler()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	target, _ := url.Parse(srv.URL)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	route := &leaderRoute{holder: leader.self, target: target, tr: tr}
	f.snap.Store(&controller.Snapshot{Applications: []*controller.Application{{
		Name: "shop",
		Deployments: []*controller.Deployment{
			{Key: keyA, Name: keyA.Deployment},
			{Key: keyB, Name: keyB.Deployment, Replicas: []backend.Replica{{ID: "w1", State: backend.Running}}},
		},
	}}})
	f.rep = &loadReporter{
		self: "b@http://10.0.0.2:8265", secret: []byte(secret),
		route:   func() *leaderRoute { return route },
		leading: f.leading.Load,
		snap:    f.snap.Load,
		load:    f.load, queued: f.load.queued,
		log: slog.New(slog.DiscardHandler),
		now: leader.now,
	}
	return f
}

func TestAFollowerReportsItsLoadAndStopsOnceTheLeaderKnowsItHasNone(t *testing.T) {
	leader, _ := newTestSharedLoad(&fixedLoad{})
	f := newFollower(t, leader, testSecret)
	ctx := context.Background()

	f.rep.report(ctx)
	if on, q := leader.DeploymentLoad(keyB); on != 0 || q != 0 || f.posts.Load() != 1 {
		t.Fatalf("first report of nothing: leader sees %d, %d after %d posts; want 0, 0 after 1", on, q, f.posts.Load())
	}
	f.rep.report(ctx)
	if n := f.posts.Load(); n != 1 {
		t.Errorf("an idle follower reported again (%d posts): the leader knows it has nothing", n)
	}
	f.load.set(keyB, 3, 1)
	f.rep.report(ctx)
	if on, q := leader.DeploymentLoad(keyB); on != 3 || q != 1 {
		t.Errorf("leader sees %d ongoing, %d queued; want the follower's 3, 1", on, q)
	}
	f.load.set(keyB, 0, 0)
	f.rep.report(ctx)
	if on, q := leader.DeploymentLoad(keyB); on != 0 || q != 0 || f.posts.Load() != 3 {
		t.Errorf("after the load ended: leader sees %d, %d after %d posts; want the zero reported (0, 0 after 3)", on, q, f.posts.Load())
	}
	f.leading.Store(true)
	f.load.set(keyB, 7, 0)
	f.rep.report(ctx)
	if n := f.posts.Load(); n != 3 {
		t.Errorf("a replica that leads reported its load (%d posts): it counts it itself", n)
	}
}

func TestAFollowerWithAnotherTokenIsRefusedAndSaysSo(t *testing.T) {
	leader, _ := newTestSharedLoad(&fixedLoad{})
	f := newFollower(t, leader, "another-token")
	f.load.set(keyA, 0, 1)
	err := f.rep.send(context.Background(), f.rep.route(), []byte(`{"replica":"b@x"}`))
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "SHOAL_AUTH_TOKEN") {
		t.Errorf("send with another token: %v; want the leader's 403 naming SHOAL_AUTH_TOKEN", err)
	}
	f.rep.report(context.Background())
	if !f.rep.failed || f.rep.newWaitAtZero() {
		t.Errorf("after a refused report: failed %v, and a request waiting at zero triggers another at once: %v; want true, false", f.rep.failed, f.rep.newWaitAtZero())
	}
}

// A request that starts waiting at a deployment with nothing running is reported
// before the period ends: the leader's autoscaler scales it from zero at once.
func TestARequestWaitingAtZeroIsReportedAtOnce(t *testing.T) {
	leader, _ := newTestSharedLoad(&fixedLoad{})
	f := newFollower(t, leader, testSecret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.rep.run(ctx, time.Hour /* no periodic report in this test */, 5*time.Millisecond)
	}()
	// Waiting at a deployment that runs a replica is left to the period.
	f.load.set(keyB, 0, 2)
	time.Sleep(100 * time.Millisecond) // long enough for many watches to (wrongly) report it
	if n := f.posts.Load(); n != 0 {
		t.Errorf("a request waiting at a running deployment was reported at once (%d posts)", n)
	}
	f.load.set(keyA, 0, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, q := leader.DeploymentLoad(keyA); q == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader never saw the request waiting at zero (%d posts)", f.posts.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Reported once; the same wait does not report again.
	time.Sleep(50 * time.Millisecond)
	if n := f.posts.Load(); n != 1 {
		t.Errorf("%d reports for one wait at zero, want 1", n)
	}
	cancel()
	<-done
}

// A report carries the time it was sent, inside its proof: one captured on the pod
// network cannot be replayed to hold a deployment scaled up.
func TestALoadReportIsCountedOnlyWhileFresh(t *testing.T) {
	s, clock := newTestSharedLoad(&fixedLoad{})
	now := clock.now()
	cases := []struct {
		name   string
		sentAt time.Time
		want   int
	}{
		{"a report sent just now counts", now, http.StatusNoContent},
		{"a report sent exactly the freshness bound ago counts", now.Add(-loadReportMaxSkew), http.StatusNoContent},
		{"a report sent longer ago is refused", now.Add(-loadReportMaxSkew - time.Millisecond), http.StatusForbidden},
		{"a report from a clock a second ahead counts", now.Add(time.Second), http.StatusNoContent},
		{"a report from a clock further ahead than the bound is refused", now.Add(loadReportMaxSkew + time.Millisecond), http.StatusForbidden},
	}
	for i, c := range cases {
		rep := report(fmt.Sprintf("r%d@x", i), dl(keyA, 0, 1))
		rep.SentAt = c.sentAt.UnixMilli()
		if code := post(t, s, testSecret, rep); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if _, q := s.DeploymentLoad(keyA); q != 3 {
		t.Errorf("%d queued counted, want the 3 fresh reports'", q)
	}

	// A report without a time is one from another version of shoal.
	body := []byte(`{"replica":"old@x","deployments":[{"app":"shop","deployment":"web","queued":9}]}`)
	rec := postBody(s, loadProof([]byte(testSecret), body), bytes.NewReader(body))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "same version") {
		t.Errorf("a report without sent_at: %d %s, want 400 asking whether the versions match", rec.Code, rec.Body)
	}
	stale := report("late@x", dl(keyA, 0, 1))
	stale.SentAt = now.Add(-time.Minute).UnixMilli()
	body, _ = json.Marshal(stale)
	rec = postBody(s, loadProof([]byte(testSecret), body), bytes.NewReader(body))
	if !strings.Contains(rec.Body.String(), "was sent 1m0s ago") || !strings.Contains(rec.Body.String(), "clocks") {
		t.Errorf("a stale report is refused with %s, want how old it is and the clocks named", rec.Body)
	}
}

func TestAReplayedLoadReportChangesNothing(t *testing.T) {
	s, clock := newTestSharedLoad(&fixedLoad{})
	const b = "b@http://10.0.0.2:8265"
	busy := report(b, dl(keyA, 0, 5))
	busy.SentAt = clock.now().UnixMilli()
	busyBody, _ := json.Marshal(busy)
	busyProof := loadProof([]byte(testSecret), busyBody)
	replay := func() {
		t.Helper()
		if rec := postBody(s, busyProof, bytes.NewReader(busyBody)); rec.Code != http.StatusNoContent && rec.Code != http.StatusForbidden {
			t.Fatalf("a replay answered %d %s", rec.Code, rec.Body)
		}
	}
	replay() // the original
	if _, q := s.DeploymentLoad(keyA); q != 5 {
		t.Fatalf("%d queued after the report, want 5", q)
	}
	clock.advance(100 * time.Millisecond)
	post(t, s, testSecret, report(b)) // the follower's load ended
	clock.advance(100 * time.Millisecond)
	replay()
	if _, q := s.DeploymentLoad(keyA); q != 0 {
		t.Errorf("a replay of an older report counts: %d queued, want the newer report's 0", q)
	}

	// A replay of the latest report does not keep it counted past its time.
	s, clock = newTestSharedLoad(&fixedLoad{})
	replay()
	for range 4 {
		clock.advance(loadReportTTL / 2)
		replay()
	}
	if _, q := s.DeploymentLoad(keyA); q != 0 {
		t.Errorf("a report replayed for %s still counts (%d queued): replays kept it fresh", 2*loadReportTTL, q)
	}
}

// countingReader counts what the handler reads of a body.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestTheLoadRouteReadsNoBodyWithoutAProofAndNoLargeOne(t *testing.T) {
	s, _ := newTestSharedLoad(&fixedLoad{})
	huge := strings.Repeat("x", 10<<20)
	for _, c := range []struct {
		name  string
		proof string
	}{
		{"no proof", ""},
		{"a proof that is not hex", "not-hex"},
		{"a proof of the wrong length", "abcd"},
	} {
		body := &countingReader{r: strings.NewReader(huge)}
		rec := postBody(s, c.proof, body)
		if rec.Code != http.StatusForbidden || body.n != 0 {
			t.Errorf("%s: %d after reading %d bytes of the body, want 403 before reading any", c.name, rec.Code, body.n)
		}
	}
	body := &countingReader{r: strings.NewReader(huge)}
	rec := postBody(s, loadProof([]byte(testSecret), []byte(huge)), body)
	if rec.Code != http.StatusRequestEntityTooLarge || body.n > 2*loadReportMaxBody {
		t.Errorf("a body of 10 MiB: %d after reading %d bytes, want 413 after at most %d", rec.Code, body.n, 2*loadReportMaxBody)
	}
}

// Reports sent within one millisecond still reach the leader in order.
func TestAFollowersEveryReportIsNewerThanTheLast(t *testing.T) {
	leader, _ := newTestSharedLoad(&fixedLoad{}) // its clock stands still
	f := newFollower(t, leader, testSecret)
	f.load.set(keyB, 3, 1)
	f.rep.report(context.Background())
	f.load.set(keyB, 1, 0)
	f.rep.report(context.Background())
	if on, q := leader.DeploymentLoad(keyB); on != 1 || q != 0 {
		t.Errorf("leader sees %d ongoing, %d queued; want the second report's 1, 0", on, q)
	}
}
