// Command replica is shoal's sample replica: an echo server that stands in for a model.
// It serves on 127.0.0.1:$PORT and is what the quickstart and the end-to-end tests run.
//
//	GET /healthz          200 once it listens
//	GET /                 JSON: replica id, app, deployment, path, a few headers, $MODEL
//	GET /sleep?ms=N       answers after N ms (slow requests)
//	GET /stream?n=N       N chunks, each flushed, 10 ms apart
//	GET /call?deployment=D&path=/x
//	                      calls deployment D of the same application through
//	                      $SHOAL_HANDLE_URL/D/x and returns its answer
//	GET /stats            {"max_concurrent", "current", "total"} requests seen
//
// STARTUP_DELAY_MS delays the listen (a slow start). SIGTERM stops it gracefully: it
// stops accepting and finishes the requests in flight.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		log.Printf("replica: %v", err)
		os.Exit(1)
	}
}

func run() error {
	port := os.Getenv("PORT")
	if port == "" {
		return errors.New("PORT is not set; this program is started by shoal, which sets it")
	}
	if ms, err := strconv.Atoi(os.Getenv("STARTUP_DELAY_MS")); err == nil && ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	r := newReplica()
	srv := &http.Server{Handler: r.routes(), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	log.Printf("replica %s of %s/%s listening on %s", r.id, r.app, r.deployment, ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("replica %s: stopping, finishing requests in flight", r.id)
	// shoal sends SIGKILL after graceful_shutdown_timeout_s anyway; this bound only keeps
	// the program from hanging when run by hand.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

type replica struct {
	id, app, deployment string
	handleURL           string
	client              *http.Client

	mu            sync.Mutex // guards the counters below
	current       int
	maxConcurrent int
	total         int
}

func newReplica() *replica {
	return &replica{
		id:         os.Getenv("SHOAL_REPLICA_ID"),
		app:        os.Getenv("SHOAL_APP"),
		deployment: os.Getenv("SHOAL_DEPLOYMENT"),
		handleURL:  strings.TrimSuffix(os.Getenv("SHOAL_HANDLE_URL"), "/"),
		client:     &http.Client{Timeout: 60 * time.Second},
	}
}

func (r *replica) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /stats", r.stats)
	mux.HandleFunc("/sleep", r.sleep)
	mux.HandleFunc("/stream", r.stream)
	mux.HandleFunc("/call", r.call)
	mux.HandleFunc("/", r.echo)
	return r.counting(mux)
}

// counting tracks concurrent requests so tests can check the proxy's max_ongoing_requests.
// /stats and /healthz are not counted: they observe, they are not traffic.
func (r *replica) counting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/stats" || req.URL.Path == "/healthz" {
			next.ServeHTTP(w, req)
			return
		}
		r.mu.Lock()
		r.current++
		r.total++
		r.maxConcurrent = max(r.maxConcurrent, r.current)
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.current--
			r.mu.Unlock()
		}()
		next.ServeHTTP(w, req)
	})
}

func (r *replica) stats(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	s := map[string]int{"max_concurrent": r.maxConcurrent, "current": r.current, "total": r.total}
	r.mu.Unlock()
	writeJSON(w, http.StatusOK, s)
}

func (r *replica) echo(w http.ResponseWriter, req *http.Request) {
	// These headers are echoed back so tests can see what the proxy forwarded.
	headers := map[string]string{}
	for _, h := range []string{"X-Forwarded-Prefix", "X-Forwarded-For", "X-Request-Id", "Content-Type"} {
		if v := req.Header.Get(h); v != "" {
			headers[h] = v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"replica_id": r.id,
		"app":        r.app,
		"deployment": r.deployment,
		"method":     req.Method,
		"path":       req.URL.Path,
		"query":      req.URL.RawQuery,
		"headers":    headers,
		"model":      os.Getenv("MODEL"),
		"pid":        os.Getpid(),
	})
}

func (r *replica) sleep(w http.ResponseWriter, req *http.Request) {
	ms, _ := strconv.Atoi(req.URL.Query().Get("ms"))
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-req.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"replica_id": r.id, "slept_ms": ms, "model": os.Getenv("MODEL")})
}

func (r *replica) stream(w http.ResponseWriter, req *http.Request) {
	n, err := strconv.Atoi(req.URL.Query().Get("n"))
	if err != nil || n < 0 {
		n = 5
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for i := range n {
		fmt.Fprintf(w, "chunk %d of %d from %s\n", i+1, n, r.id)
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-req.Context().Done():
			return
		}
	}
}

func (r *replica) call(w http.ResponseWriter, req *http.Request) {
	if r.handleURL == "" {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "SHOAL_HANDLE_URL is not set"})
		return
	}
	dep := req.URL.Query().Get("deployment")
	if dep == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "deployment parameter is required"})
		return
	}
	path := req.URL.Query().Get("path")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	target := r.handleURL + "/" + url.PathEscape(dep) + path
	out, err := http.NewRequestWithContext(req.Context(), http.MethodGet, target, nil)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	resp, err := r.client.Do(out)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
