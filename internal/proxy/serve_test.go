package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn is a client connection that writes bytes as given and reads responses with
// net/http's parser.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (h *harness) dialRaw() *rawConn {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: h.t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(parts ...string) {
	r.t.Helper()
	for _, p := range parts {
		if _, err := io.WriteString(r.c, p); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

func pathReplica(t *testing.T) string {
	return replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	}))
}

func TestPipelinedRequestsAreAnsweredInOrder(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", pathReplica(t))))))
	c := h.dialRaw()
	c.send("GET /one HTTP/1.1\r\nHost: x\r\nX-Request-Id: id-1\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
		"GET /three?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /one ", "POST /two body", "GET /three?q=1 "} {
		resp, body := c.read(http.MethodGet)
		if resp.StatusCode != http.StatusOK || body != want {
			t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
		}
		if want == "GET /one " && resp.Header.Get("X-Request-Id") != "id-1" {
			t.Errorf("X-Request-Id %q, want the client's", resp.Header.Get("X-Request-Id"))
		}
	}
}

func TestARequestSentInPiecesIsServed(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", pathReplica(t))))))
	c := h.dialRaw()
	req := "POST /pieces HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	for i := range len(req) {
		c.send(req[i : i+1])
	}
	if resp, body := c.read(http.MethodPost); resp.StatusCode != http.StatusOK || body != "POST /pieces hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestUnusualRequestsAreHandedToNetHTTPOnTheSameConnection(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", echoReplica(t, "r1"))))))
	for _, tc := range []struct {
		name, req  string
		wantStatus int
	}{
		{"a chunked upload", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200},
		{"a head larger than the read buffer", "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 6000) + "\r\n\r\n", 200},
		{"an escaped path", "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"the proxy's own endpoint", "GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"two Content-Length values", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"a folded header line (net/http unfolds it)", "GET /x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 200},
		{"no Host", "GET /x HTTP/1.1\r\n\r\n", 400},
		// No CRLF blank line ever comes: the loop must not wait for one (the harness
		// has no read timeout, so waiting would hang the test).
		{"lines ending in a bare LF", "GET /lf HTTP/1.1\nHost: x\n\n", 200},
		{"bare LF lines and a CRLF blank line", "GET /lf HTTP/1.1\nHost: x\n\r\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dialRaw()
			// A common request first, so the hand-over happens mid-connection.
			c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, _ := c.read(http.MethodGet); resp.StatusCode != http.StatusOK {
				t.Fatalf("first request: %d", resp.StatusCode)
			}
			c.send(tc.req)
			resp, body := c.read(http.MethodGet)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus != 200 {
				return
			}
			// net/http serves the rest of the connection.
			c.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := c.read(http.MethodGet); resp.StatusCode != http.StatusOK || decodeSeen(t, body).Path != "/after" {
				t.Fatalf("after the hand-over: %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestRequestHeadersAreRewrittenWhateverTheirCase(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", echoReplica(t, "r1"))))))
	c := h.dialRaw()
	c.send("GET /x HTTP/1.1\r\nhost: example.test\r\nx-request-id: low\r\nx-forwarded-for: 10.0.0.1\r\n" +
		"connection: keep-alive, x-drop\r\nx-drop: 1\r\nkeep-alive: 5\r\nx-keep:  spaced value \r\n\r\n")
	resp, body := c.read(http.MethodGet)
	s := decodeSeen(t, body)
	for k, want := range map[string]string{
		"X-Request-Id":     "low",
		"X-Forwarded-For":  "10.0.0.1, 127.0.0.1",
		"X-Forwarded-Host": "example.test",
		"X-Keep":           "spaced value",
	} {
		if got := s.Header.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"X-Drop", "Keep-Alive", "Connection"} {
		if s.Header.Get(k) != "" {
			t.Errorf("%s reached the replica", k)
		}
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "low" {
		t.Errorf("response X-Request-Id %q", got)
	}
}

func TestResponsesKeepTheirFraming(t *testing.T) {
	h := newHarness(t, Options{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		case "/not-modified":
			w.WriteHeader(http.StatusNotModified)
		case "/until-close":
			// An HTTP/1.0-style body that ends when the connection closes.
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nX-Mine: 1\r\n\r\nuntil the end")
			_ = brw.Flush()
			c.Close()
		case "/hints":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "after hints")
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "fixed")
		}
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
	c := h.dialRaw()
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/fixed", "fixed"},
		{http.MethodHead, "/fixed", ""},
		{http.MethodGet, "/no-content", ""},
		{http.MethodGet, "/not-modified", ""},
		{http.MethodGet, "/hints", "after hints"},
		{http.MethodGet, "/until-close", "until the end"},
		{http.MethodGet, "/fixed", "fixed"}, // the client's connection outlived the replica's
	} {
		c.send(tc.method + " " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.read(tc.method)
		if resp.StatusCode >= 400 || body != tc.want {
			t.Errorf("%s %s: %d %q, want %q", tc.method, tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func TestListenerShutdownWaitsForTheRequestInFlight(t *testing.T) {
	h := newHarness(t, Options{})
	release := make(chan struct{})
	entered := make(chan struct{})
	addr := replicaServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	h.publish(snap(30, app("a", "/", dep("d", 5, -1, running("r1", addr)))))
	c := h.dialRaw()
	c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	done := make(chan error, 1)
	go func() { done <- h.ln.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if resp, body := c.read(http.MethodGet); resp.StatusCode != http.StatusOK || body != "finished" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestParseHelpers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1a", 26, true}, {"FF;ext=1", 255, true}, {"", 0, false}, {"x", 0, false},
		{"1234567890abcdef", 0, false},
	} {
		if got, ok := parseHex([]byte(tc.in)); got != tc.want || ok != tc.ok {
			t.Errorf("parseHex(%q) = %d %v, want %d %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"HTTP/1.1 200 OK\r\n", 200}, {"HTTP/1.0 404\r\n\r\n", 404}, {"HTTP/2 200\r\n\r\n", -1}, {"HTTP/1.1 20x OK\r\n", -1},
	} {
		if got := parseStatus([]byte(tc.in)); got != tc.want {
			t.Errorf("parseStatus(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
