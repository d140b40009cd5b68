package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// observed records the calls of Options.Observe.
type observed struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (o *observed) observe(app, dep string, code int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		code = -code // shows up in the failure as a bad duration
	}
	o.calls = append(o.calls, fmt.Sprintf("%s/%s %d", app, dep, code))
}

func (o *observed) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.calls
	o.calls = nil
	return out
}

func TestEveryAnsweredRequestIsObservedOnceWithItsStatus(t *testing.T) {
	var o observed
	h := newHarness(t, Options{Observe: o.observe})
	failing := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	h.publish(snap(30,
		app("a", "/a", dep("d", 5, -1, running("r1", echoReplica(t, "r1")))),
		app("b", "/b", dep("e", 5, -1, running("r2", failing))),
		app("c", "/c", dep("f", 5, -1, running("r3", refusedAddr(t)))),
	))
	for _, tc := range []struct {
		name string
		send func()
		want []string
	}{
		{"a request served by the proxy's loop", func() { h.get("/a/x") }, []string{"a/d 200"}},
		{"a request handed to net/http", func() {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/a/up", strings.NewReader("body"))
			req.ContentLength = -1 // chunked: net/http serves it
			h.do(req)
		}, []string{"a/d 200"}},
		{"a request through ServeHTTP", func() {
			req := httptest.NewRequest(http.MethodGet, "/a/x", nil)
			req.RemoteAddr = "127.0.0.1:1"
			h.p.ServeHTTP(httptest.NewRecorder(), req)
		}, []string{"a/d 200"}},
		{"a replica's own error status", func() { h.get("/b/x") }, []string{"b/e 418"}},
		{"a replica that cannot be reached", func() { h.get("/c/x") }, []string{"c/f 502"}},
		{"no route: no deployment to count it for", func() { h.get("/nowhere") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.send()
			// The loop observes after it has written the response: wait for it.
			var got []string
			deadline := time.Now().Add(2 * time.Second)
			for len(got) < len(tc.want) && time.Now().Before(deadline) {
				got = append(got, o.take()...)
				time.Sleep(time.Millisecond)
			}
			got = append(got, o.take()...)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("observed %v, want %v", got, tc.want)
			}
		})
	}
}
