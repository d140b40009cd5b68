package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

func TestStreamingResponsesFlushEachWrite(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		body         io.Reader
	}{
		{"on the direct path", http.MethodGet, nil},
		{"on the ReverseProxy path (a chunked upload)", http.MethodPost, io.MultiReader(strings.NewReader("up"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			firstRead := make(chan struct{})
			addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				_, _ = io.WriteString(w, "first\n")
				_ = http.NewResponseController(w).Flush()
				select {
				case <-firstRead:
				case <-time.After(5 * time.Second):
					return // the proxy held the first chunk back: the client sees no second line
				}
				_, _ = io.WriteString(w, "second\n")
			}))
			h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
			req, _ := http.NewRequest(tc.method, h.url+"/stream", tc.body)
			resp, err := h.httpc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			if err != nil || line != "first\n" {
				t.Fatalf("first chunk: %q %v", line, err)
			}
			close(firstRead)
			line, err = br.ReadString('\n')
			if err != nil || line != "second\n" {
				t.Fatalf("second chunk: %q %v", line, err)
			}
		})
	}
}

func TestRequestBodiesStreamToTheReplica(t *testing.T) {
	h := newHarness(t, Options{})
	arrived := make(chan struct{})
	var total atomic.Int64
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(arrived)
		n, _ := io.Copy(io.Discard, r.Body)
		total.Store(n + 1)
		_, _ = io.WriteString(w, "done")
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/upload", pr)
	done := make(chan result, 1)
	go func() {
		resp, err := h.httpc.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	chunk := make([]byte, 256<<10)
	if _, err := pw.Write(chunk); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the replica saw nothing of the upload before the client finished sending")
	}
	for range 8 {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	pw.Close()
	if r := <-done; r.err != nil || r.status != http.StatusOK || r.body != "done" {
		t.Fatalf("upload: %+v", r)
	}
	if got := total.Load(); got != 9*256<<10 {
		t.Errorf("replica got %d bytes, want %d", got, 9*256<<10)
	}
}

func TestWebSocketsPassThrough(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	h.publish(snap(30, app("a", "/ws", dep("d", 5, -1, running("r1", addr)))))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/ws/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, msg := range []string{"hello", "again"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("got %q %v", got, err)
		}
	}
	if got := h.p.Ongoing("r1"); got != 1 {
		t.Errorf("an open websocket holds a slot: Ongoing = %d, want 1", got)
	}
	c.Close(websocket.StatusNormalClosure, "")
	eventually(t, 5*time.Second, func() bool { return h.p.Ongoing("r1") == 0 })
}

func TestHammeringWhileReplicasComeAndGoLosesNothing(t *testing.T) {
	h := newHarness(t, Options{})
	var addrs []string
	for i := range 8 {
		addrs = append(addrs, echoReplica(t, string(rune('a'+i))))
	}
	withReplicas := func(n int) *controller.Snapshot {
		var reps []backend.Replica
		for i := range n {
			reps = append(reps, running(string(rune('a'+i)), addrs[i]))
		}
		return snap(30, app("a", "/", dep("d", 4, -1, reps...)))
	}
	h.publish(withReplicas(1))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	for range 64 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := h.httpc.Get(h.url + "/work")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status+" "+string(b))
					continue
				}
				ok.Add(1)
			}
		})
	}
	eventually(t, 5*time.Second, func() bool { return ok.Load() > 50 })
	for _, n := range []int{8, 1, 0, 2} {
		h.publish(withReplicas(n))
		if n == 0 {
			// Every client ends up queued at zero replicas.
			eventually(t, 5*time.Second, func() bool { return h.p.Queued(backend.Key{App: "a", Deployment: "d"}) == 64 })
			continue
		}
		before := ok.Load()
		eventually(t, 5*time.Second, func() bool { return ok.Load() > before+100 })
	}
	cancel()
	wg.Wait()
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed; first: %v", f, f+ok.Load(), firstErr.Load())
	}
	// A handler frees its slot just after the client has read the last byte.
	eventually(t, 5*time.Second, func() bool {
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			if h.p.Ongoing(id) != 0 {
				return false
			}
		}
		return true
	})
}

func TestTrailersPassThrough(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc")
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
	resp, err := h.httpc.Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "payload" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %q trailer %v", body, resp.Trailer)
	}
}

func TestLargeBodiesPassIntact(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		// Answer the upload repeated, so the response is far larger than any buffer.
		for range 16 {
			_, _ = w.Write(in)
		}
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
	for _, size := range []int{60 << 10, 200 << 10} { // the direct path and the ReverseProxy path
		up := make([]byte, size)
		for i := range up {
			up[i] = byte('a' + i%26)
		}
		req, _ := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(string(up)))
		resp, body := h.do(req)
		if resp.StatusCode != http.StatusOK || body != strings.Repeat(string(up), 16) {
			t.Errorf("%d-byte upload: status %d, %d bytes back, want %d", size, resp.StatusCode, len(body), 16*size)
		}
	}
}
