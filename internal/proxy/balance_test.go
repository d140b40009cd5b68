package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/backend"
)

// gatedReplica answers every request's headers at once and holds its body until the
// test opens the gate, and records the highest number of requests it held at once.
type gatedReplica struct {
	name    string
	addr    string
	gate    chan struct{}
	mu      sync.Mutex // guards cur and max
	cur     int
	max     int
	entered atomic.Int64
}

func newGatedReplica(t *testing.T, name string, gate chan struct{}) *gatedReplica {
	g := &gatedReplica{name: name, gate: gate}
	g.addr = replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.cur++
		if g.cur > g.max {
			g.max = g.cur
		}
		g.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		g.entered.Add(1)
		select {
		case <-g.gate:
		case <-r.Context().Done():
		}
		g.mu.Lock()
		g.cur--
		g.mu.Unlock()
		_, _ = io.WriteString(w, g.name)
	}))
	return g
}

func (g *gatedReplica) maxSeen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

// result is one finished request of a background client.
type result struct {
	status int
	body   string
	err    error
}

func (h *harness) goGet(path string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := h.httpc.Get(h.url + path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	return ch
}

func TestMaxOngoingRequestsIsHonouredExactly(t *testing.T) {
	h := newHarness(t, Options{})
	gate := make(chan struct{})
	reps := []*gatedReplica{newGatedReplica(t, "r1", gate), newGatedReplica(t, "r2", gate), newGatedReplica(t, "r3", gate)}
	h.publish(snap(30, app("a", "/", dep("d", 2, -1,
		running("r1", reps[0].addr), running("r2", reps[1].addr), running("r3", reps[2].addr)))))

	const n = 14
	var results []<-chan result
	for range n {
		results = append(results, h.goGet("/"))
	}
	key := backend.Key{App: "a", Deployment: "d"}
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(key) == n-6 })
	for _, r := range reps {
		if got := h.p.Ongoing(r.name); got != 2 {
			t.Errorf("Ongoing(%s) = %d, want 2", r.name, got)
		}
	}
	st := h.p.Stats()[key]
	if st.Queued != n-6 || len(st.Ongoing) != 3 || st.Ongoing["r1"] != 2 {
		t.Errorf("Stats = %+v", st)
	}
	close(gate)
	for i, ch := range results {
		if r := <-ch; r.err != nil || r.status != http.StatusOK {
			t.Errorf("request %d: %d %q %v", i, r.status, r.body, r.err)
		}
	}
	for _, r := range reps {
		if m := r.maxSeen(); m > 2 {
			t.Errorf("replica %s held %d requests at once, max_ongoing_requests is 2", r.name, m)
		}
	}
	if q := h.p.Queued(key); q != 0 {
		t.Errorf("Queued = %d after all finished", q)
	}
}

func TestAFullQueueTurnsRequestsAwayWith503(t *testing.T) {
	h := newHarness(t, Options{})
	gate := make(chan struct{})
	r1 := newGatedReplica(t, "r1", gate)
	h.publish(snap(30, app("app", "/", dep("dep", 1, 2, running("r1", r1.addr)))))
	key := backend.Key{App: "app", Deployment: "dep"}

	held := []<-chan result{h.goGet("/")}
	eventually(t, 5*time.Second, func() bool { return r1.entered.Load() == 1 })
	held = append(held, h.goGet("/"), h.goGet("/"))
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(key) == 2 })

	resp, body := h.get("/")
	want := `{"error":"deployment 'app/dep' is overloaded: 2 queued requests (max_queued_requests 2), 1 replica at max_ongoing_requests 1; retry later"}` + "\n"
	if resp.StatusCode != http.StatusServiceUnavailable || body != want {
		t.Errorf("got %d %q\nwant 503 %q", resp.StatusCode, body, want)
	}
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	close(gate)
	for _, ch := range held {
		if r := <-ch; r.status != http.StatusOK {
			t.Errorf("a held request failed: %+v", r)
		}
	}
}

func TestAWaitLongerThanRequestTimeoutIs503(t *testing.T) {
	h := newHarness(t, Options{})
	gate := make(chan struct{})
	defer close(gate)
	r1 := newGatedReplica(t, "r1", gate)

	t.Run("all replicas busy", func(t *testing.T) {
		h.publish(snap(0.1, app("app", "/", dep("dep", 1, -1, running("r1", r1.addr)))))
		_ = h.goGet("/")
		eventually(t, 5*time.Second, func() bool { return r1.entered.Load() == 1 })
		resp, body := h.get("/")
		want := `{"error":"deployment 'app/dep' had no free replica within request_timeout_s 0.1: 1 replica at max_ongoing_requests 1; retry later"}` + "\n"
		if resp.StatusCode != http.StatusServiceUnavailable || body != want {
			t.Errorf("got %d %q\nwant 503 %q", resp.StatusCode, body, want)
		}
	})
	t.Run("no running replica", func(t *testing.T) {
		h.publish(snap(0.1, app("app", "/", dep("dep", 1, -1))))
		resp, body := h.get("/")
		want := `{"error":"deployment 'app/dep' has 0 running replicas and none became ready within request_timeout_s 0.1; retry later"}` + "\n"
		if resp.StatusCode != http.StatusServiceUnavailable || body != want {
			t.Errorf("got %d %q\nwant 503 %q", resp.StatusCode, body, want)
		}
		if q := h.p.Queued(backend.Key{App: "app", Deployment: "dep"}); q != 0 {
			t.Errorf("a timed-out request stays queued: Queued = %d", q)
		}
	})
}

func TestAReplicaSilentPastRequestTimeoutIs504(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	h.publish(snap(0.1, app("app", "/", dep("dep", 1, -1, running("r1", addr)))))
	resp, body := h.get("/")
	want := `{"error":"replica r1 of deployment 'app/dep' sent no response within request_timeout_s 0.1"}` + "\n"
	if resp.StatusCode != http.StatusGatewayTimeout || body != want {
		t.Errorf("got %d %q\nwant 504 %q", resp.StatusCode, body, want)
	}
}

func TestScaleFromZeroServesTheQueuedRequest(t *testing.T) {
	h := newHarness(t, Options{})
	key := backend.Key{App: "a", Deployment: "d"}
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, backend.Replica{ID: "s1", State: backend.Starting}))))
	pending := []<-chan result{h.goGet("/one"), h.goGet("/two")}
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(key) == 2 })

	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("s1", echoReplica(t, "s1"))))))
	for _, ch := range pending {
		if r := <-ch; r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"s1"`) {
			t.Errorf("queued request: %+v", r)
		}
	}
	if q := h.p.Queued(key); q != 0 {
		t.Errorf("Queued = %d", q)
	}
}

func TestAReplicaRemovedMidRequestFinishesItAndGetsNoMore(t *testing.T) {
	h := newHarness(t, Options{})
	gate := make(chan struct{})
	old := newGatedReplica(t, "old", gate)
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("old", old.addr)))))
	inflight := h.goGet("/")
	eventually(t, 5*time.Second, func() bool { return old.entered.Load() == 1 })

	stopping := running("old", old.addr)
	stopping.State = backend.Stopping
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, stopping, running("new", echoReplica(t, "new"))))))
	for range 5 {
		if _, body := h.get("/"); decodeSeen(t, body).Replica != "new" {
			t.Fatalf("a request went to the draining replica: %s", body)
		}
	}
	if got := h.p.Ongoing("old"); got != 1 {
		t.Errorf("Ongoing(old) = %d while its request runs, want 1", got)
	}
	// Gone from the snapshot entirely: still counted until its request ends.
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("new", echoReplica(t, "new2"))))))
	if got := h.p.Ongoing("old"); got != 1 {
		t.Errorf("Ongoing(old) = %d after it left the snapshot, want 1", got)
	}
	close(gate)
	if r := <-inflight; r.status != http.StatusOK || r.body != "old" {
		t.Errorf("in-flight request: %+v", r)
	}
	if got := h.p.Ongoing("old"); got != 0 {
		t.Errorf("Ongoing(old) = %d after its request ended", got)
	}
}

func TestARefusedConnectionIsRetriedOnAnotherReplica(t *testing.T) {
	h := newHarness(t, Options{})
	dead := refusedAddr(t)
	h.publish(snap(30, app("a", "/", dep("d", 100, -1,
		running("dead1", dead), running("live", echoReplica(t, "live")), running("dead2", refusedAddr(t))))))
	for i := range 20 {
		method := http.MethodGet
		var body io.Reader
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader(fmt.Sprintf("payload %d", i))
		}
		req, _ := http.NewRequest(method, h.url+"/x", body)
		resp, got := h.do(req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, got)
		}
		s := decodeSeen(t, got)
		if s.Replica != "live" || (method == http.MethodPost && s.Body != fmt.Sprintf("payload %d", i)) {
			t.Fatalf("request %d arrived as %+v", i, s)
		}
	}
	for _, id := range []string{"dead1", "dead2", "live"} {
		if got := h.p.Ongoing(id); got != 0 {
			t.Errorf("Ongoing(%s) = %d: a slot leaked", id, got)
		}
	}
}

func TestOnlyUnreachableReplicasGive502AfterBoundedRetries(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("x1", refusedAddr(t)), running("x2", refusedAddr(t))))))
	resp, body := h.get("/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not connect to a replica of deployment 'a/d'") {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
}

func TestAReplicaThatDiesMidRequestFailsOnlyThatRequest(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/die":
			_, _ = io.ReadAll(r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case "/die-mid-body":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "partial")
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))

	req, _ := http.NewRequest(http.MethodPost, h.url+"/die", strings.NewReader("x"))
	resp, body := h.do(req)
	if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(body, `{"error":"replica r1 of deployment 'a/d' failed before answering: `) {
		t.Errorf("dying replica: %d %s", resp.StatusCode, body)
	}
	r, err := h.httpc.Get(h.url + "/die-mid-body")
	if err == nil {
		_, err = io.ReadAll(r.Body)
		r.Body.Close()
	}
	if err == nil {
		t.Errorf("a response cut mid-body reached the client as complete")
	}
	if resp, body := h.get("/fine"); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Errorf("the next request: %d %s", resp.StatusCode, body)
	}
	eventually(t, 5*time.Second, func() bool { return h.p.Ongoing("r1") == 0 })
}

func TestAClientThatLeavesTheQueueIsForgotten(t *testing.T) {
	h := newHarness(t, Options{})
	gate := make(chan struct{})
	r1 := newGatedReplica(t, "r1", gate)
	h.publish(snap(30, app("a", "/", dep("d", 1, -1, running("r1", r1.addr)))))
	key := backend.Key{App: "a", Deployment: "d"}
	first := h.goGet("/")
	eventually(t, 5*time.Second, func() bool { return r1.entered.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url+"/", nil)
	gone := make(chan error, 1)
	go func() {
		resp, err := h.httpc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(key) == 1 })
	cancel()
	<-gone
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(key) == 0 })
	close(gate)
	if r := <-first; r.status != http.StatusOK {
		t.Errorf("first request: %+v", r)
	}
	eventually(t, 5*time.Second, func() bool { return h.p.Ongoing("r1") == 0 })
	if n := r1.entered.Load(); n != 1 {
		t.Errorf("the replica got %d requests, want only the first", n)
	}
}

func TestADeletedDeploymentFailsItsQueue(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/a", dep("d", 1, -1))))
	pending := h.goGet("/a")
	eventually(t, 5*time.Second, func() bool { return h.p.Queued(backend.Key{App: "a", Deployment: "d"}) == 1 })
	h.publish(snap(30))
	r := <-pending
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "deployment 'a/d' was deleted") {
		t.Errorf("got %+v", r)
	}
}

func TestAReplicaClosingIdleConnectionsSilentlyLosesNoIdempotentRequest(t *testing.T) {
	h := newHarness(t, Options{})
	// The replica answers as if keeping the connection alive, then closes it: the
	// proxy's next request on that connection may find it dead and must resend it on a
	// fresh one. (A POST that was already written is not resent: the replica may have
	// acted on it. nginx and net/http make the same call.)
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path)
		_ = bw.Flush()
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
	for i := range 50 {
		want := fmt.Sprintf("/item/%d", i)
		resp, body := h.get(want)
		if resp.StatusCode != http.StatusOK || body != want {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
}

func TestAClientThatHangsUpCancelsTheReplicasRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		body   io.Reader
	}{
		{"a small request over the proxy's own client", http.MethodGet, nil},
		{"a chunked upload over http.Transport", http.MethodPost, io.MultiReader(strings.NewReader("x"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			entered := make(chan struct{})
			canceled := make(chan struct{})
			addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// A Go server notices a closed connection only once the body is read.
				_, _ = io.ReadAll(r.Body)
				close(entered)
				<-r.Context().Done()
				close(canceled)
			}))
			h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, tc.method, h.url+"/", tc.body)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := h.httpc.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			<-entered
			cancel()
			<-done
			select {
			case <-canceled:
			case <-time.After(5 * time.Second):
				t.Fatal("the replica's request was not canceled when the client hung up")
			}
			eventually(t, 5*time.Second, func() bool { return h.p.Ongoing("r1") == 0 })
		})
	}
}

func TestConnectionsToReplicasAreReused(t *testing.T) {
	h := newHarness(t, Options{})
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(body)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", s.Listener.Addr().String())))))
	for i := range 20 {
		method, body := http.MethodGet, ""
		if i%2 == 1 {
			method, body = http.MethodPost, strings.Repeat("b", i*100)
		}
		req, _ := http.NewRequest(method, h.url+"/", strings.NewReader(body))
		if resp, got := h.do(req); resp.StatusCode != http.StatusOK || got != body {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d connections to the replica, want 1", n)
	}
}
