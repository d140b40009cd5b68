package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/proxy"
)

// staticSnapshots serves one snapshot for ever.
type staticSnapshots struct{ snap *controller.Snapshot }

func (s staticSnapshots) Snapshot() *controller.Snapshot { return s.snap }

func (s staticSnapshots) Wait(ctx context.Context, gen uint64) (*controller.Snapshot, error) {
	if s.snap.Generation > gen {
		return s.snap, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// On Kubernetes the proxy's own loop serves application traffic, and handleFromPods
// must still see every call of the handle endpoint: the loop hands those to net/http.
func TestOnTheProxysOwnLoopTheHandleEndpointStillReachesTheWrapper(t *testing.T) {
	snap := oneReplicaSnapshot(t)
	log := slog.New(slog.DiscardHandler)
	px := proxy.New(proxy.Options{Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = px.Run(ctx, staticSnapshots{snap}) })

	var mu sync.Mutex // guards wrapped
	var wrapped []string
	wrap := func(next http.Handler) http.Handler {
		return handleFromPods(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			wrapped = append(wrapped, r.URL.Path)
			mu.Unlock()
			next.ServeHTTP(w, r)
		}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, fast := proxyServer(px, wrap, ln, 0, log)
	wg.Go(func() { _ = srv.Serve(fast) })
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		if err := fast.Shutdown(sctx); err != nil {
			t.Errorf("the proxy's loop still served requests at the end: %v", err)
		}
	}()

	// A new connection for each request: one handed to net/http stays there.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(path string) (string, error) {
		resp, err := hc.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body), nil
	}
	// The proxy has the route once its loop applied the snapshot.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := get("/warm")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the route never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	wrapped = nil
	mu.Unlock()

	if body, err := get("/x"); err != nil || body != "replica saw /x" {
		t.Fatalf("application traffic: %q, %v", body, err)
	}
	if body, err := get("/-/handle/a/d/y"); err != nil || body != "replica saw /y" {
		t.Fatalf("the handle endpoint: %q, %v", body, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/-/handle/a/d/y"}; strings.Join(wrapped, " ") != strings.Join(want, " ") {
		t.Errorf("the wrapper saw %q, want %q: application traffic on the proxy's loop, the handle endpoint on net/http", wrapped, want)
	}
}

// oneReplicaSnapshot is a snapshot of application a at / with one RUNNING replica of
// deployment d, a server that answers "replica saw PATH".
func oneReplicaSnapshot(t *testing.T) *controller.Snapshot {
	t.Helper()
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "replica saw "+r.URL.Path)
	}))
	t.Cleanup(replica.Close)
	key := backend.Key{App: "a", Deployment: "d"}
	return &controller.Snapshot{
		Generation:  1,
		HTTPOptions: config.DefaultHTTPOptions(),
		Applications: []*controller.Application{{
			Name: "a", RoutePrefix: "/", Ingress: "d",
			Deployments: []*controller.Deployment{{
				Key: key, Name: "d",
				Config: config.Deployment{Name: "d", MaxOngoingRequests: 5, MaxQueuedRequests: -1},
				Replicas: []backend.Replica{{
					Key: key, ID: "r1", State: backend.Running,
					Address: strings.TrimPrefix(replica.URL, "http://"),
				}},
			}},
		}},
	}
}
