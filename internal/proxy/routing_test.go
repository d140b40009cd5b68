package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestRoutingPicksTheLongestMatchingPrefix(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5,
		app("root", "/", dep("r", 5, -1, running("r1", echoReplica(t, "root")))),
		app("api", "/api", dep("a", 5, -1, running("a1", echoReplica(t, "api")))),
		app("v2", "/api/v2", dep("v", 5, -1, running("v1", echoReplica(t, "v2")))),
	))
	cases := []struct {
		name, path, replica, prefix string
	}{
		{"the root prefix takes what nothing else matches", "/hello", "root", "/"},
		{"a prefix matches itself", "/api", "api", "/api"},
		{"a prefix matches paths below it", "/api/x/y", "api", "/api"},
		{"a prefix does not match a longer segment", "/apix", "root", "/"},
		{"the longest prefix wins", "/api/v2/items", "v2", "/api/v2"},
		{"a longer prefix does not match a sibling", "/api/v20", "api", "/api"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			s := decodeSeen(t, body)
			if s.Replica != tc.replica || s.Path != tc.path || s.Header.Get("X-Forwarded-Prefix") != tc.prefix {
				t.Errorf("got replica %q path %q prefix %q, want %q %q %q", s.Replica, s.Path,
					s.Header.Get("X-Forwarded-Prefix"), tc.replica, tc.path, tc.prefix)
			}
		})
	}
}

func TestNoRouteAnswers404JSONThatSaysWhereRoutesAre(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5, app("api", "/api", dep("a", 5, -1, running("a1", echoReplica(t, "api"))))))
	resp, body := h.get("/x")
	want := `{"error":"no application route matches path /x; routes: GET /-/routes"}` + "\n"
	if resp.StatusCode != http.StatusNotFound || body != want {
		t.Errorf("got %d %q, want 404 %q", resp.StatusCode, body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestHealthzAndRoutesAnswerAsRayDoes(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5,
		app("root", "/", dep("r", 5, -1, running("r1", echoReplica(t, "root")))),
		app("api", "/api", dep("a", 5, -1)),
	))
	resp, body := h.get("/-/healthz")
	if resp.StatusCode != http.StatusOK || body != "success" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	resp, body = h.get("/-/routes")
	if want := `{"/":"root","/api":"api"}`; resp.StatusCode != http.StatusOK || body != want {
		t.Errorf("routes: %d %q, want %q", resp.StatusCode, body, want)
	}
}

func TestForwardedHeadersAreSetAndTheHostKept(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5, app("api", "/api", dep("a", 5, -1, running("a1", echoReplica(t, "api"))))))
	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"on the direct path", nil},
		{"on the ReverseProxy path (a chunked upload)", io.MultiReader(strings.NewReader("up"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url+"/api/x?q=1", tc.body)
			req.Host = "example.test"
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			req.Header.Set("X-Forwarded-Prefix", "/spoofed")
			req.Header.Set("X-Request-ID", "rid-1")
			resp, body := h.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			s := decodeSeen(t, body)
			want := map[string]string{
				"X-Forwarded-For":    "198.51.100.7, 127.0.0.1",
				"X-Forwarded-Proto":  "http",
				"X-Forwarded-Host":   "example.test",
				"X-Forwarded-Prefix": "/api",
				"X-Request-Id":       "rid-1",
			}
			for k, v := range want {
				if got := s.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if s.Host != "example.test" || s.Path != "/api/x" {
				t.Errorf("Host %q path %q, want the client's", s.Host, s.Path)
			}
			if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "rid-1" {
				t.Errorf("response X-Request-Id %q", got)
			}
		})
	}
}

func TestRequestIDIsKeptOrGeneratedAndEchoed(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5, app("api", "/", dep("a", 5, -1, running("a1", echoReplica(t, "api"))))))

	t.Run("a sent id is passed on and echoed", func(t *testing.T) {
		resp, body := h.get("/", "X-Request-ID", "abc-123")
		s := decodeSeen(t, body)
		if got := s.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "abc-123" {
			t.Errorf("replica saw %q", got)
		}
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "abc-123" {
			t.Errorf("response has %q", got)
		}
	})
	t.Run("a missing id is generated, passed on and echoed", func(t *testing.T) {
		resp, body := h.get("/")
		s := decodeSeen(t, body)
		id := resp.Header.Get("X-Request-Id")
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
			t.Errorf("generated id %q is not 16 hex digits", id)
		}
		if s.Header.Get("X-Request-Id") != id {
			t.Errorf("replica saw %q, response has %q", s.Header.Get("X-Request-Id"), id)
		}
		resp2, _ := h.get("/")
		if resp2.Header.Get("X-Request-Id") == id {
			t.Errorf("two requests got the same id %q", id)
		}
	})
	t.Run("an error response echoes the id", func(t *testing.T) {
		h.publish(snap(5, app("api", "/api", dep("a", 5, -1))))
		resp, _ := h.get("/nothing", "X-Request-ID", "e-1")
		if resp.Header.Get("X-Request-Id") != "e-1" {
			t.Errorf("404 has id %q", resp.Header.Get("X-Request-Id"))
		}
	})
}

func TestTheScaleRouteGoesToTheWebhook(t *testing.T) {
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(r.URL.Path))
	})
	h := newHarness(t, Options{Webhook: hook})
	h.publish(snap(5, app("root", "/", dep("r", 5, -1, running("r1", echoReplica(t, "root"))))))
	resp, body := h.get("/api/v1/applications/a/deployments/d/scale")
	if resp.StatusCode != http.StatusTeapot || body != "/api/v1/applications/a/deployments/d/scale" {
		t.Errorf("scale route: %d %q", resp.StatusCode, body)
	}
	resp, body = h.get("/api/v1/applications/a/other")
	if resp.StatusCode != http.StatusOK || decodeSeen(t, body).Replica != "root" {
		t.Errorf("another path under the webhook prefix is routed as usual, got %d %q", resp.StatusCode, body)
	}
}

func TestHandleEndpoint(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5, app("shop", "/shop",
		dep("front", 5, -1, running("f1", echoReplica(t, "front"))),
		dep("worker", 5, -1, running("w1", echoReplica(t, "worker"))),
	)))

	t.Run("a loopback client reaches another deployment with the rest of the path", func(t *testing.T) {
		resp, body := h.get("/-/handle/shop/worker/items/7?x=1")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		s := decodeSeen(t, body)
		if s.Replica != "worker" || s.Path != "/items/7" || s.Header.Get("X-Forwarded-Prefix") != "/-/handle/shop/worker" {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("a handle call without a rest path gets /", func(t *testing.T) {
		_, body := h.get("/-/handle/shop/worker")
		if s := decodeSeen(t, body); s.Path != "/" {
			t.Errorf("path %q", s.Path)
		}
	})
	t.Run("an escaped rest path stays escaped", func(t *testing.T) {
		_, body := h.get("/-/handle/shop/worker/a%2Fb")
		if s := decodeSeen(t, body); s.Path != "/a/b" || s.RawPath != "/a%2Fb" {
			t.Errorf("path %q raw %q", s.Path, s.RawPath)
		}
	})
	t.Run("an unknown deployment is 404", func(t *testing.T) {
		resp, body := h.get("/-/handle/shop/nope/x")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("a non-loopback client is refused with 403 JSON", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/-/handle/shop/worker/x", nil)
		req.RemoteAddr = "203.0.113.9:4242"
		rec := httptest.NewRecorder()
		h.p.ServeHTTP(rec, req)
		want := `{"error":"the handle endpoint /-/handle/ answers loopback clients only"}` + "\n"
		if rec.Code != http.StatusForbidden || rec.Body.String() != want {
			t.Errorf("got %d %q", rec.Code, rec.Body.String())
		}
	})
}

func TestSplitHandle(t *testing.T) {
	cases := []struct {
		path, app, dep, rest string
		ok                   bool
	}{
		{"/-/handle/a/d/x/y", "a", "d", "/x/y", true},
		{"/-/handle/a/d/", "a", "d", "/", true},
		{"/-/handle/a/d", "a", "d", "/", true},
		{"/-/handle/a", "", "", "", false},
		{"/-/handle/a/", "", "", "", false},
		{"/-/handle//d/x", "", "", "", false},
	}
	for _, tc := range cases {
		app, dep, rest, ok := splitHandle(tc.path)
		if app != tc.app || dep != tc.dep || rest != tc.rest || ok != tc.ok {
			t.Errorf("splitHandle(%q) = %q %q %q %v", tc.path, app, dep, rest, ok)
		}
	}
}

func TestHopByHopHeadersStayOnTheirConnection(t *testing.T) {
	h := newHarness(t, Options{})
	h.publish(snap(5, app("api", "/", dep("a", 5, -1, running("a1", echoReplica(t, "api"))))))
	for _, conn := range []string{"keep-alive", "close, X-Secret"} {
		t.Run("Connection: "+conn, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.url+"/x", nil)
			req.Header.Set("Connection", conn)
			req.Header.Set("Keep-Alive", "timeout=5")
			req.Header.Set("X-Secret", "hop")
			req.Header.Set("X-Kept", "end-to-end")
			_, body := h.do(req)
			s := decodeSeen(t, body)
			for _, k := range []string{"Keep-Alive", "Connection"} {
				if v := s.Header.Get(k); v != "" {
					t.Errorf("%s reached the replica: %q", k, v)
				}
			}
			if strings.Contains(conn, "X-Secret") && s.Header.Get("X-Secret") != "" {
				t.Errorf("a header named in Connection reached the replica")
			}
			if s.Header.Get("X-Kept") != "end-to-end" {
				t.Errorf("an end-to-end header was dropped")
			}
		})
	}
}
