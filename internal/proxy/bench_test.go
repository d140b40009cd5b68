package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/backend"
)

func BenchmarkBalancerPick(b *testing.B) {
	p := New(Options{})
	var reps []backend.Replica
	for i := range 8 {
		reps = append(reps, running("r"+strconv.Itoa(i), "127.0.0.1:"+strconv.Itoa(10000+i)))
	}
	p.apply(snap(30, app("a", "/", dep("d", 1000, -1, reps...))))
	bal := p.table.Load().byKey[backend.Key{App: "a", Deployment: "d"}]
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := bal.acquire(ctx, 0, nil)
			if err != nil {
				b.Error(err)
				return
			}
			bal.release(r)
		}
	})
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the
// proxy and not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// benchReplica is a loopback replica answering a small JSON body.
func benchReplica(b *testing.B) string {
	body := []byte(`{"ok":true}`)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// BenchmarkDirectBaseline is the same traffic as BenchmarkProxyHandler sent straight to
// the replicas with the proxy's transport: the difference is the proxy's own cost.
func BenchmarkDirectBaseline(b *testing.B) {
	addrs := []string{benchReplica(b), benchReplica(b)}
	tr := newTransport(30 * time.Second)
	b.Cleanup(tr.CloseIdleConnections)
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addrs[n.Add(1)%2]+"/api/items/1", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkProxyHandler measures ServeHTTP end to end against two loopback replicas
// (their cost included); allocs/op is the proxy's plus net/http's client side.
func BenchmarkProxyHandler(b *testing.B) {
	p := New(Options{})
	p.apply(snap(30, app("a", "/api", dep("d", 1000, -1, running("r1", benchReplica(b)), running("r2", benchReplica(b))))))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/api/items/1", nil)
		req.RemoteAddr = "127.0.0.1:50000"
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			delete(req.Header, "X-Request-Id")
			p.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
}
