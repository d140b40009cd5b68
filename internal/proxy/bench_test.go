package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// BenchmarkProxyLoop measures the proxy's own server loop end to end: keep-alive client
// connections send GETs through a Listener to two loopback replicas (their cost
// included, as in BenchmarkProxyHandler).
func BenchmarkProxyLoop(b *testing.B) {
	b.Run("net/http replicas", func(b *testing.B) { benchProxyLoop(b, benchReplica(b), benchReplica(b)) })
	// A replica that costs no allocation, so allocs/op is the proxy's own.
	b.Run("raw replicas", func(b *testing.B) { benchProxyLoop(b, rawReplica(b), rawReplica(b)) })
}

// rawReplica answers every request head on a connection with a fixed small response,
// without net/http.
func rawReplica(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 {
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func benchProxyLoop(b *testing.B, replicas ...string) {
	p := New(Options{})
	p.apply(snap(30, app("a", "/api", dep("d", 1000, -1, running("r1", replicas[0]), running("r2", replicas[1])))))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: p, IdleTimeout: 30 * time.Second}
	fl := p.Listener(ln, srv)
	go func() { _ = srv.Serve(fl) }()
	b.Cleanup(func() {
		_ = srv.Close()
		_ = fl.Shutdown(context.Background())
	})
	req := []byte("GET /api/items/1 HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n\r\n")
	b.SetParallelism(8) // 8 client connections per P
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readSmallResponse(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// readSmallResponse reads one response with a Content-Length body, without allocating.
func readSmallResponse(br *bufio.Reader) error {
	n := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return fmt.Errorf("status line %q", line)
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		return errors.New("no Content-Length")
	}
	_, err := br.Discard(n)
	return err
}
