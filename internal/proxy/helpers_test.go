package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/testport"
)

// fakeSource is a Snapshots whose snapshots the test publishes by hand.
type fakeSource struct {
	mu      sync.Mutex // guards cur and changed
	cur     *controller.Snapshot
	changed chan struct{} // closed and replaced on every publish
}

func newFakeSource() *fakeSource {
	return &fakeSource{cur: &controller.Snapshot{}, changed: make(chan struct{})}
}

func (f *fakeSource) Snapshot() *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeSource) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	for {
		f.mu.Lock()
		cur, ch := f.cur, f.changed
		f.mu.Unlock()
		if cur.Generation > gen {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// publish installs s with the next generation and returns it.
func (f *fakeSource) publish(s *controller.Snapshot) *controller.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Generation = f.cur.Generation + 1
	f.cur = s
	close(f.changed)
	f.changed = make(chan struct{})
	return s
}

// snap builds a snapshot of apps with the given request timeout (seconds).
func snap(timeoutS float64, apps ...*controller.Application) *controller.Snapshot {
	return &controller.Snapshot{
		HTTPOptions:  config.HTTPOptions{RequestTimeoutS: timeoutS},
		Applications: apps,
	}
}

func app(name, prefix string, deps ...*controller.Deployment) *controller.Application {
	a := &controller.Application{Name: name, RoutePrefix: prefix, Deployments: deps}
	if len(deps) > 0 {
		a.Ingress = deps[0].Name
	}
	for _, d := range deps {
		d.Key.App = name
		for i := range d.Replicas {
			d.Replicas[i].Key = d.Key
		}
	}
	return a
}

func dep(name string, maxOngoing, maxQueued int, replicas ...backend.Replica) *controller.Deployment {
	return &controller.Deployment{
		Key:      backend.Key{Deployment: name},
		Name:     name,
		Config:   config.Deployment{Name: name, MaxOngoingRequests: maxOngoing, MaxQueuedRequests: maxQueued},
		Replicas: replicas,
	}
}

func running(id, addr string) backend.Replica {
	return backend.Replica{ID: id, Address: addr, State: backend.Running}
}

// harness runs a proxy on a loopback listener, following a fakeSource.
type harness struct {
	t     *testing.T
	p     *Proxy
	src   *fakeSource
	srv   *httptest.Server
	ln    *Listener
	url   string
	httpc *http.Client
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, p: New(opts), src: newFakeSource()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx, h.src) }()
	// The proxy's own loop serves the common requests and hands the rest to the
	// http.Server, as in shoal.
	h.srv = httptest.NewUnstartedServer(h.p)
	h.ln = h.p.Listener(h.srv.Listener, h.srv.Config)
	h.srv.Listener = h.ln
	h.srv.Start()
	h.url = h.srv.URL
	h.httpc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	t.Cleanup(func() {
		h.httpc.CloseIdleConnections()
		h.srv.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := h.ln.Shutdown(sctx); err != nil {
			t.Errorf("the proxy's loop still served requests at the end: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return h
}

// publish publishes s and waits until the proxy routes by it.
func (h *harness) publish(s *controller.Snapshot) {
	h.t.Helper()
	s = h.src.publish(s)
	eventually(h.t, 5*time.Second, func() bool { return h.p.table.Load().gen >= s.Generation })
}

func (h *harness) get(path string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	resp, err := h.httpc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

// eventually polls cond every millisecond until it holds or the limit passes.
func eventually(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(time.Millisecond)
	}
}

// replicaServer is a loopback HTTP server standing in for a replica.
func replicaServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// seen is what an echo replica reports about the request it got.
type seen struct {
	Replica string      `json:"replica"`
	Path    string      `json:"path"`
	RawPath string      `json:"raw_path"`
	Host    string      `json:"host"`
	Header  http.Header `json:"header"`
	Body    string      `json:"body"`
}

// echoReplica answers with a JSON description of the request.
func echoReplica(t *testing.T, name string) string {
	return replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Replica: name, Path: r.URL.Path, RawPath: r.URL.RawPath,
			Host: r.Host, Header: r.Header, Body: string(body)})
	}))
}

func decodeSeen(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.NewDecoder(strings.NewReader(body)).Decode(&s); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return s
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}
