package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/controller"
	"shoal/internal/dashboard"
)

const adminToken = "admin-secret-0123456789"

// clock is a settable clock for the rate limiter and audit times.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testEnv struct {
	f         *fakeIntents
	api       *API
	clock     *clock
	shutdowns chan struct{}
	logDir    string
}

// fixedLoad reports 3 ongoing requests on every replica.
type fixedLoad struct{}

func (fixedLoad) Ongoing(string) int { return 3 }

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{
		f:         newFakeIntents(),
		clock:     &clock{t: fakeStart},
		shutdowns: make(chan struct{}, 1),
		logDir:    t.TempDir(),
	}
	e.api = New(Options{
		Intents:    e.f,
		AdminToken: adminToken,
		LogDir:     e.logDir,
		Now:        e.clock.now,
		Shutdown:   func() { e.shutdowns <- struct{}{} },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "shoal_up 1\n")
		}),
		Load:    fixedLoad{},
		BaseDir: t.TempDir(),
	})
	return e
}

// req describes one request; from is the client address (default 192.0.2.1).
type req struct {
	method, path string
	token        string // "" sends no Authorization header
	ctype        string
	body         string
	from         string
	header       map[string]string
}

func (e *testEnv) do(t *testing.T, h http.Handler, q req) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(q.method, q.path, strings.NewReader(q.body))
	if q.token != "" {
		r.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.ctype != "" {
		r.Header.Set("Content-Type", q.ctype)
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	r.RemoteAddr = "192.0.2.1:5555"
	if q.from != "" {
		r.RemoteAddr = q.from + ":5555"
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func (e *testEnv) call(t *testing.T, q req) *httptest.ResponseRecorder {
	t.Helper()
	return e.do(t, e.api, q)
}

func errorText(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
		t.Fatalf("body %q is not {\"error\": ...}: %v", w.Body.String(), err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return *body.Error
}

const scaleURL = "/api/v1/applications/my-app/deployments/my-deployment/scale"

func scaleReq(token, ctype, body string) req {
	return req{method: "POST", path: scaleURL, token: token, ctype: ctype, body: body}
}

const rayDisabledText = "Cannot update replicas for deployment 'd' in application 'fixed'. " +
	"The external scaling API can only be used when 'external_scaler_enabled' is set to true in the application configuration. " +
	"Current value: external_scaler_enabled=false. " +
	"To use this API, redeploy your application with 'external_scaler_enabled: true' in the config."

func TestScaleChecksRunInTheSpecTablesOrder(t *testing.T) {
	big := `{"target_num_replicas": 1, "pad": "` + strings.Repeat("x", 64<<10) + `"}`
	cases := []struct {
		name      string
		q         req
		status    int
		errText   string // exact error text; "" for a 200
		errPrefix string // or its prefix
	}{
		{"no token and a bad body is 401", scaleReq("", "text/plain", "{"), 401, "missing bearer token", ""},
		{"a Basic Authorization header counts as no token", req{method: "POST", path: scaleURL, header: map[string]string{"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, ctype: "application/json", body: `{"target_num_replicas": 2}`}, 401, "missing bearer token", ""},
		{"an unknown token with a bad content type is 403", scaleReq("nope", "text/plain", "{"), 403, "invalid token", ""},
		{"another application's token is 403", scaleReq("other-secret", "application/json", `{"target_num_replicas": 2}`), 403, `the token is not valid for application "my-app"`, ""},
		{"an application token on an unknown application is 403",
			req{method: "POST", path: "/api/v1/applications/nope/deployments/d/scale", token: "my-app-secret", ctype: "application/json", body: `{"target_num_replicas": 2}`}, 403, "", "the token is not valid"},
		{"a good token with a wrong content type and a bad body is 415", scaleReq("my-app-secret", "text/plain", "{"), 415, "", "Content-Type must be application/json"},
		{"a good token without a content type is 415", scaleReq("my-app-secret", "", `{"target_num_replicas": 2}`), 415, "", "Content-Type must be application/json"},
		{"an unparsable content type is 415", scaleReq(adminToken, "application/json; charset", `{"target_num_replicas": 2}`), 415, "", "Content-Type must be application/json"},
		{"a body over 64 KiB is 413 before it is parsed", scaleReq(adminToken, "application/json", big), 413, "", "request body is larger than"},
		{"a bad body on an unknown application is 400",
			req{method: "POST", path: "/api/v1/applications/nope/deployments/d/scale", token: adminToken, ctype: "application/json", body: `{"target_num_replicas": -1}`}, 400, "", "Invalid request body: "},
		{"an unknown application is 404",
			req{method: "POST", path: "/api/v1/applications/nope/deployments/d/scale", token: adminToken, ctype: "application/json", body: `{"target_num_replicas": 1}`}, 404, "Application or Deployment not found", ""},
		{"an unknown deployment is 404",
			req{method: "POST", path: "/api/v1/applications/my-app/deployments/nope/scale", token: "my-app-secret", ctype: "application/json", body: `{"target_num_replicas": 1}`}, 404, "Application or Deployment not found", ""},
		{"an application with the external scaler off is 412 with Ray's text",
			req{method: "POST", path: "/api/v1/applications/fixed/deployments/d/scale", token: adminToken, ctype: "application/json", body: `{"target_num_replicas": 1}`}, 412, rayDisabledText, ""},
		{"an application being deleted is 412 and its token still works",
			req{method: "POST", path: "/api/v1/applications/going/deployments/d/scale", token: "going-secret", ctype: "application/json", body: `{"target_num_replicas": 1}`}, 412, "Deployment is deleted", ""},
		{"a target above replica_limit is 400 naming the limit", scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 11}`), 400,
			"target_num_replicas 11 is above the deployment's replica_limit (10)", ""},
		{"json with a charset parameter is accepted", scaleReq("my-app-secret", "application/json; charset=utf-8", `{"target_num_replicas": 10}`), 200, "", ""},
		{"the admin token may scale any application", scaleReq(adminToken, "application/json", `{"target_num_replicas": 0}`), 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			w := e.call(t, tc.q)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 {
				return
			}
			got := errorText(t, w)
			if tc.errText != "" && got != tc.errText {
				t.Errorf("error = %q, want %q", got, tc.errText)
			}
			if tc.errPrefix != "" && !strings.HasPrefix(got, tc.errPrefix) {
				t.Errorf("error = %q, want it to start with %q", got, tc.errPrefix)
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestScaleRejectsEveryBadBody(t *testing.T) {
	cases := []struct{ name, body, why string }{
		{"an unknown field alone", `{"invalid_field": 2}`, `unknown field "invalid_field"`},
		{"an unknown field beside the target", `{"target_num_replicas": 2, "extra": true}`, `unknown field "extra"`},
		{"a negative target", `{"target_num_replicas": -1}`, "must be >= 0, got -1"},
		{"a fraction", `{"target_num_replicas": 2.5}`, "must be an integer, got 2.5"},
		{"a string", `{"target_num_replicas": "3"}`, "must be an integer, got a string"},
		{"null", `{"target_num_replicas": null}`, "must be an integer, got null"},
		{"a boolean", `{"target_num_replicas": true}`, "must be an integer, got a boolean"},
		{"an array as the target", `{"target_num_replicas": []}`, "must be an integer, got an array"},
		{"a number too large for any float", `{"target_num_replicas": 1e400}`, "out of range"},
		{"a number too large for a replica count", `{"target_num_replicas": 99999999999999999999}`, "out of range"},
		{"a bare number", `-1`, "expected a JSON object, got a number"},
		{"a bare array", `[]`, "expected a JSON object, got an array"},
		{"null as the body", `null`, "expected a JSON object, got null"},
		{"broken JSON", `{"target_num_replicas": 2`, "invalid JSON"},
		{"two JSON values", `{"target_num_replicas": 2} {}`, "data after the top-level value"},
		{"an empty object", `{}`, "target_num_replicas is required"},
		{"an empty body", ``, "empty body"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			e := newEnv(t)
			w := e.call(t, scaleReq("my-app-secret", "application/json", tc.body))
			if w.Code != 400 {
				t.Fatalf("status = %d, want 400; body %s", w.Code, w.Body)
			}
			got := errorText(t, w)
			if !strings.HasPrefix(got, "Invalid request body: ") || !strings.Contains(got, tc.why) {
				t.Errorf("error = %q, want \"Invalid request body: ...%s...\"", got, tc.why)
			}
		})
	}
}

func TestScaleAcceptsIntegersWrittenAsJSONNumbers(t *testing.T) {
	// Ray's pydantic NonNegativeInt accepts a float with no fraction; so does shoal.
	cases := []struct {
		body string
		want int
	}{
		{`{"target_num_replicas": 3}`, 3},
		{`{"target_num_replicas": 3.0}`, 3},
		{`{"target_num_replicas": 3e0}`, 3},
		{`{"target_num_replicas": 0}`, 0},
		{`{"target_num_replicas": -0}`, 0},
		{" \n{\"target_num_replicas\": 7}\n", 7},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			e := newEnv(t)
			w := e.call(t, scaleReq("my-app-secret", "application/json", tc.body))
			if w.Code != 200 {
				t.Fatalf("status = %d; body %s", w.Code, w.Body)
			}
			if got := e.f.Snapshot().App("my-app").Deployment("my-deployment").Target; got != tc.want {
				t.Errorf("target = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestScaleAnswersTheSpecsSuccessBodyAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	want := []string{
		`{"message":"Scaling request received. Deployment will get scaled asynchronously.","application":"my-app","deployment":"my-deployment","target_num_replicas":5,"previous_target_num_replicas":1}`,
		`{"message":"Scaling request received. Deployment will get scaled asynchronously.","application":"my-app","deployment":"my-deployment","target_num_replicas":5,"previous_target_num_replicas":5}`,
	}
	for i, wantBody := range want {
		w := e.call(t, scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 5}`))
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != wantBody {
			t.Errorf("call %d: %d %s, want 200 %s", i+1, w.Code, w.Body, wantBody)
		}
	}
}

func TestScaleWebhookAuditsAcceptedAndRefusedCallsWithoutTokens(t *testing.T) {
	e := newEnv(t)
	calls := []req{
		scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 4}`),
		scaleReq("", "application/json", `{"target_num_replicas": 4}`),
		scaleReq("wrong-secret", "application/json", `{"target_num_replicas": 4}`),
		scaleReq("other-secret", "application/json", `{"target_num_replicas": 4}`),
		scaleReq(adminToken, "application/json", `{"target_num_replicas": 99}`),
		scaleReq(adminToken, "text/plain", `{"target_num_replicas": 2}`),
	}
	for _, q := range calls {
		q.from = "198.51.100.7"
		e.call(t, q)
	}
	type row struct {
		token    string
		from, to int
		status   int
		result   string
	}
	want := []row{
		{"app:my-app#1", 1, 4, 200, "ok"},
		{"", 4, -1, 401, "missing bearer token"},
		{"invalid", 4, -1, 403, "invalid token"},
		{"app:other#1", 4, -1, 403, `the token is not valid for application "my-app"`},
		{"admin", 4, 99, 400, "target_num_replicas 99 is above the deployment's replica_limit (10)"},
		{"admin", 4, -1, 415, `Content-Type must be application/json, got "text/plain"`},
	}
	got := e.f.audits()
	if len(got) != len(want) {
		t.Fatalf("got %d audit entries, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.TokenID != w.token || g.From != w.from || g.To != w.to || g.Status != w.status || g.Result != w.result {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if g.App != "my-app" || g.Deployment != "my-deployment" || g.Client != "198.51.100.7" || g.Source != "webhook" || !g.Time.Equal(fakeStart) {
			t.Errorf("entry %d names the wrong call: %+v", i, g)
		}
	}
	b, _ := json.Marshal(got)
	for _, secret := range []string{"my-app-secret", "wrong-secret", "other-secret", adminToken} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the audit log holds the token %q", secret)
		}
	}
}

func TestScaleCallsForUnknownNamesAreLoggedButNotAudited(t *testing.T) {
	e := newEnv(t)
	var buf strings.Builder
	var mu sync.Mutex
	e.api = New(Options{
		Intents: e.f, AdminToken: adminToken, Now: e.clock.now, BaseDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil)),
	})
	body := `{"target_num_replicas": 1}`
	cases := []struct {
		name    string
		q       req
		audited bool
	}{
		{"an unauthenticated call to an invented application", req{method: "POST", path: "/api/v1/applications/invented-1/deployments/d/scale", ctype: "application/json", body: body}, false},
		{"an admin call to an invented application", req{method: "POST", path: "/api/v1/applications/invented-2/deployments/d/scale", token: adminToken, ctype: "application/json", body: body}, false},
		{"a call to an invented deployment of a real application", req{method: "POST", path: "/api/v1/applications/my-app/deployments/invented-3/scale", token: "my-app-secret", ctype: "application/json", body: body}, false},
		{"a refused call to a real deployment", req{method: "POST", path: scaleURL, ctype: "application/json", body: body}, true},
		{"a call to a deployment being deleted", req{method: "POST", path: "/api/v1/applications/going/deployments/d/scale", token: "going-secret", ctype: "application/json", body: body}, true},
	}
	for _, c := range cases {
		before := len(e.f.audits())
		w := e.call(t, c.q)
		if got := len(e.f.audits()) - before; got != map[bool]int{false: 0, true: 1}[c.audited] {
			t.Errorf("%s (status %d) added %d audit entries, want audited=%v", c.name, w.Code, got, c.audited)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"invented-1", "invented-2", "invented-3"} {
		if !strings.Contains(buf.String(), name) {
			t.Errorf("shoal's log does not mention the call to %s:\n%s", name, buf.String())
		}
	}
}

func TestAnAuditedReasonIsClippedTo512Bytes(t *testing.T) {
	e := newEnv(t)
	// An unknown field is quoted in the reason: a long one would fill the log.
	long := strings.Repeat("é", 20<<10)
	w := e.call(t, scaleReq(adminToken, "application/json", `{"`+long+`": 1}`))
	if w.Code != 400 {
		t.Fatalf("status %d, want 400", w.Code)
	}
	got := e.f.audits()
	if len(got) != 1 {
		t.Fatalf("%d audit entries, want 1", len(got))
	}
	r := got[0].Result
	if len(r) > maxAuditResult || !strings.HasSuffix(r, "…") || !utf8.ValidString(r) || !strings.HasPrefix(r, "Invalid request body: unknown field") {
		t.Errorf("audited reason is %d bytes (valid UTF-8: %v): %.80q…; want at most %d, valid, ending in …",
			len(r), utf8.ValidString(r), r, maxAuditResult)
	}
	if len(r) < maxAuditResult-4 {
		t.Errorf("audited reason is %d bytes, want close to %d: it should keep as much as fits", len(r), maxAuditResult)
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"short", "short"},
		{"exactly10!", "exactly10!"},
		{"eleven char", "eleven …"},
		{"ééééé", "ééééé"},   // 10 bytes fit as they are
		{"éééééé", "ééé…"},   // 12 bytes: cut between characters, never inside one
		{"aéééééé", "aééé…"}, // 13 bytes
	} {
		if got := clip(c.in, 10); got != c.want || len(got) > 10 {
			t.Errorf("clip(%q, 10) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestGetScaleShowsTheTargetAndTheAuditLog(t *testing.T) {
	e := newEnv(t)
	e.call(t, scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 3}`))
	w := e.call(t, req{method: "GET", path: scaleURL, token: "my-app-secret"})
	if w.Code != 200 {
		t.Fatalf("status = %d; body %s", w.Code, w.Body)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"application", "deployment", "target_num_replicas", "running_replicas", "status", "message", "mode", "replica_limit", "target_source", "audit"}
	if keys := sortedKeys(got); !slices.Equal(keys, sorted(wantKeys)) {
		t.Errorf("keys = %v, want %v", keys, sorted(wantKeys))
	}
	var info scaleInfo
	json.Unmarshal(w.Body.Bytes(), &info)
	if info.TargetNumReplicas != 3 || info.RunningReplicas != 1 || info.Status != controller.DeploymentHealthy || info.Mode != controller.ModeExternal ||
		info.ReplicaLimit != 10 || info.TargetSource != controller.SourceWebhook || len(info.Audit) != 1 || info.Audit[0].To != 3 {
		t.Errorf("GET scale = %+v", info)
	}

	for _, tc := range []struct {
		name   string
		q      req
		status int
	}{
		{"another application's token cannot read it", req{method: "GET", path: scaleURL, token: "other-secret"}, 403},
		{"no token cannot read it", req{method: "GET", path: scaleURL}, 401},
		{"an unknown deployment is 404", req{method: "GET", path: "/api/v1/applications/my-app/deployments/x/scale", token: adminToken}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := e.call(t, tc.q); w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
		})
	}
}

func TestGetScaleAnswersTheScaleWhenTheAuditLogCannotBeRead(t *testing.T) {
	e := newEnv(t)
	e.call(t, scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 3}`))
	e.f.mu.Lock()
	e.f.auditErr = errors.New("read audit: disk on fire")
	e.f.mu.Unlock()
	w := e.call(t, req{method: "GET", path: scaleURL, token: "my-app-secret"})
	if w.Code != 200 {
		t.Fatalf("status = %d, want 200 with the scale; body %s", w.Code, w.Body)
	}
	var info scaleInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.TargetNumReplicas != 3 || info.RunningReplicas != 1 || info.Mode != controller.ModeExternal || info.TargetSource != controller.SourceWebhook {
		t.Errorf("GET scale = %+v, want target 3, 1 running, external, set by the webhook", info)
	}
	if info.Audit == nil || len(info.Audit) != 0 || info.AuditError != auditUnavailable {
		t.Errorf("audit = %v, audit_error = %q; want [] and %q", info.Audit, info.AuditError, auditUnavailable)
	}
	if strings.Contains(w.Body.String(), "disk on fire") {
		t.Errorf("the store's error reached the caller: %s", w.Body)
	}
}

func TestEveryRouteChecksItsToken(t *testing.T) {
	cases := []struct {
		name   string
		q      req
		status int
	}{
		{"healthz needs no token", req{method: "GET", path: "/-/healthz"}, 200},
		{"the OpenAPI document needs no token", req{method: "GET", path: "/api/openapi.json"}, 200},
		{"metrics need no token", req{method: "GET", path: "/metrics"}, 200},
		{"the Serve listing needs a token", req{method: "GET", path: servePath}, 401},
		{"the Serve listing refuses an application token", req{method: "GET", path: servePath, token: "my-app-secret"}, 403},
		{"the Serve listing serves the admin", req{method: "GET", path: servePath, token: adminToken}, 200},
		{"a deploy with an application token is 403", req{method: "PUT", path: servePath, token: "my-app-secret", ctype: "application/json", body: `{"applications": []}`}, 403},
		{"a delete with an application token is 403", req{method: "DELETE", path: servePath, token: "my-app-secret"}, 403},
		{"an application cannot read its own token", req{method: "GET", path: "/api/v1/applications/my-app/token", token: "my-app-secret"}, 403},
		{"an application cannot rotate its own token", req{method: "POST", path: "/api/v1/applications/my-app/token/rotate", token: "my-app-secret"}, 403},
		{"an application cannot stop shoal", req{method: "POST", path: "/api/v1/shutdown", token: "my-app-secret"}, 403},
		{"an application cannot read replica logs", req{method: "GET", path: "/api/v1/applications/my-app/deployments/my-deployment/replicas/r1/logs", token: "my-app-secret"}, 403},
		{"an unknown path under /api is a JSON 404", req{method: "GET", path: "/api/v2/nothing"}, 404},
		{"a wrong method is a JSON 405", req{method: "PATCH", path: servePath, token: adminToken}, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			w := e.call(t, tc.q)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.status >= 400 {
				errorText(t, w)
			}
			if tc.status == 405 && w.Header().Get("Allow") != "PUT, GET, DELETE" {
				t.Errorf("Allow = %q", w.Header().Get("Allow"))
			}
		})
	}
}

func TestHealthzAnswersSuccess(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "GET", path: "/-/healthz"})
	if w.Code != 200 || w.Body.String() != "success" {
		t.Errorf("healthz = %d %q", w.Code, w.Body)
	}
}

func TestRepeatedFailedAuthenticationsAreRateLimitedForAMinute(t *testing.T) {
	e := newEnv(t)
	const attacker = "203.0.113.9"
	fail := func() int {
		return e.call(t, req{method: "GET", path: servePath, token: "guess", from: attacker}).Code
	}
	admin := func(from string) *httptest.ResponseRecorder {
		return e.call(t, req{method: "GET", path: servePath, token: adminToken, from: from})
	}
	for i := range maxAuthFailures {
		if code := fail(); code != 403 {
			t.Fatalf("failure %d: status %d, want 403", i+1, code)
		}
		e.clock.advance(time.Second)
	}
	if w := admin(attacker); w.Code != 200 {
		t.Fatalf("after %d failures the admin got %d, want 200", maxAuthFailures, w.Code)
	}
	if code := e.call(t, req{method: "GET", path: servePath, from: attacker}).Code; code != 401 {
		t.Fatalf("failure %d: status %d, want 401", maxAuthFailures+1, code)
	}
	e.clock.advance(500 * time.Millisecond)

	for _, q := range []req{
		{method: "GET", path: servePath, token: adminToken, from: attacker},
		{method: "GET", path: "/-/healthz", from: attacker},
		scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`),
	} {
		if q.from == "" {
			q.from = attacker
		}
		w := e.call(t, q)
		if w.Code != 429 {
			t.Fatalf("%s %s while blocked: status %d, want 429", q.method, q.path, w.Code)
		}
		errorText(t, w)
		s, err := strconv.Atoi(w.Header().Get("Retry-After"))
		if err != nil || s < 1 || s > 60 {
			t.Errorf("Retry-After = %q, want whole seconds in [1, 60]", w.Header().Get("Retry-After"))
		}
	}
	if got := e.do(t, e.api.Webhook(), scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`)); got.Code != 200 {
		t.Errorf("another address got %d, want 200", got.Code)
	}
	webhookFromAttacker := scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`)
	webhookFromAttacker.from = attacker
	if got := e.do(t, e.api.Webhook(), webhookFromAttacker); got.Code != 429 {
		t.Errorf("the webhook on the proxy port answered %d to a blocked address, want 429", got.Code)
	}

	e.clock.advance(time.Minute)
	if w := admin(attacker); w.Code != 200 {
		t.Errorf("a minute later the admin got %d, want 200", w.Code)
	}
}

func TestWebhookServesTheScaleRouteAlone(t *testing.T) {
	e := newEnv(t)
	h := e.api.Webhook()
	if w := e.do(t, h, scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`)); w.Code != 200 {
		t.Errorf("POST scale = %d; body %s", w.Code, w.Body)
	}
	if w := e.do(t, h, req{method: "GET", path: scaleURL, token: "my-app-secret"}); w.Code != 200 {
		t.Errorf("GET scale = %d", w.Code)
	}
	if w := e.do(t, h, req{method: "GET", path: servePath, token: adminToken}); w.Code != 404 {
		t.Errorf("GET %s on the webhook = %d, want 404", servePath, w.Code)
	}
	if n := len(e.f.audits()); n != 1 {
		t.Errorf("%d audit entries, want 1", n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Key sets of Ray's ServeInstanceDetails and its parts (python/ray/serve/schema.py).
var (
	rayInstanceKeys   = []string{"controller_info", "proxy_location", "http_options", "grpc_options", "proxies", "deploy_mode", "applications", "target_capacity"}
	rayActorKeys      = []string{"node_id", "node_ip", "node_instance_id", "actor_id", "actor_name", "worker_id", "log_file_path"}
	rayApplicationKey = []string{"name", "route_prefix", "docs_path", "status", "message", "last_deployed_time_s", "deployed_app_config", "source", "deployments", "external_scaler_enabled"}
	rayDeploymentKeys = []string{"name", "status", "status_trigger", "message", "deployment_config", "target_num_replicas", "required_resources", "replicas"}
	rayReplicaKeys    = append(slices.Clone(rayActorKeys), "replica_id", "state", "pid", "start_time_s", "ongoing_requests" /* shoal's */)
	rayHTTPKeys       = []string{"host", "port", "root_path", "request_timeout_s", "keep_alive_timeout_s", "ssl_keyfile", "ssl_certfile"}
	rayAutoscaleKeys  = []string{"scaling_status", "decisions", "metrics", "metrics_health", "errors"}
)

func TestServeListingHasRaysShape(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "GET", path: servePath, token: adminToken})
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	type obj = map[string]json.RawMessage
	var inst obj
	if err := json.Unmarshal(w.Body.Bytes(), &inst); err != nil {
		t.Fatal(err)
	}
	check := func(what string, m obj, want []string) {
		t.Helper()
		if got := sortedKeys(m); !slices.Equal(got, sorted(want)) {
			t.Errorf("%s keys = %v, want %v", what, got, sorted(want))
		}
	}
	sub := func(m obj, k string) obj {
		t.Helper()
		var o obj
		if err := json.Unmarshal(m[k], &o); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return o
	}
	check("instance", inst, rayInstanceKeys)
	check("controller_info", sub(inst, "controller_info"), rayActorKeys)
	check("http_options", sub(inst, "http_options"), rayHTTPKeys)
	apps := sub(inst, "applications")
	check("applications", apps, []string{"fixed", "going", "my-app", "other"})
	app := sub(apps, "my-app")
	check("application", app, rayApplicationKey)
	dep := sub(sub(app, "deployments"), "my-deployment")
	check("deployment", dep, rayDeploymentKeys)
	var replicas []obj
	json.Unmarshal(dep["replicas"], &replicas)
	if len(replicas) != 2 {
		t.Fatalf("%d replicas, want 2", len(replicas))
	}
	check("replica", replicas[0], rayReplicaKeys)
	auto := sub(sub(sub(apps, "other"), "deployments"), "auto")
	check("autoscaled deployment", auto, append(slices.Clone(rayDeploymentKeys), "autoscaling_detail"))
	check("autoscaling_detail", sub(auto, "autoscaling_detail"), rayAutoscaleKeys)

	var typed instanceDetails
	if err := json.Unmarshal(w.Body.Bytes(), &typed); err != nil {
		t.Fatal(err)
	}
	d := typed.Applications["my-app"].Deployments["my-deployment"]
	r := d.Replicas[0]
	wantLog := filepath.Join(e.logDir, "my-app", "my-deployment", "r1.log")
	if r.ReplicaID != "r1" || r.State != backend.Running || r.PID == nil || *r.PID != 4242 || r.OngoingRequests != 3 ||
		r.StartTimeS != float64(fakeStart.Unix()) || r.LogFilePath != wantLog || r.NodeIP != "127.0.0.1" {
		t.Errorf("replica = %+v", r)
	}
	if d.TargetNumReplicas != 1 || d.Status != controller.DeploymentHealthy || d.DeploymentConfig.ReplicaLimit != 10 {
		t.Errorf("deployment = %+v", d)
	}
	a := typed.Applications["my-app"]
	if a.Source != "declarative" || a.DocsPath != nil || a.LastDeployedTimeS != float64(fakeStart.Unix()) || !a.ExternalScalerEnabled || a.RoutePrefix != "/my-app" {
		t.Errorf("application = %+v", a)
	}
	if typed.DeployMode != "MULTI_APP" || typed.ProxyLocation != "HeadOnly" || typed.HTTPOptions.Port != 8000 {
		t.Errorf("instance = %+v", typed)
	}
	if s := typed.Applications["other"].Deployments["auto"].AutoscalingDetail.ScalingStatus; s != "UPSCALING" {
		t.Errorf("scaling_status = %q, want UPSCALING (decision 3 > target 2)", s)
	}
}

func TestDeployPassesTheParsedConfigToTheController(t *testing.T) {
	e := newEnv(t)
	body := `{"applications": [{"name": "a", "route_prefix": "/", "deployments": [{"name": "d", "command": ["sleep", "1"]}]}]}`
	w := e.call(t, req{method: "PUT", path: servePath, token: adminToken, ctype: "application/json", body: body})
	if w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("PUT = %d %q, want 200 and an empty body", w.Code, w.Body)
	}
	if len(e.f.deployed) != 1 || e.f.deployed[0].Applications[0].Name != "a" {
		t.Errorf("deployed = %+v", e.f.deployed)
	}
}

func TestDeployRefusesAnInvalidConfigWithItsErrors(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "PUT", path: servePath, token: adminToken, ctype: "application/json", body: `{"applications": [{"nmae": "a"}]}`})
	if w.Code != 400 {
		t.Fatalf("status %d, want 400; body %s", w.Code, w.Body)
	}
	if msg := errorText(t, w); !strings.Contains(msg, "nmae") {
		t.Errorf("error %q does not name the bad field", msg)
	}
	if len(e.f.deployed) != 0 {
		t.Error("an invalid config was deployed")
	}
}

func TestDeleteAllAsksTheController(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "DELETE", path: servePath, token: adminToken})
	if w.Code != 200 || e.f.deletes != 1 {
		t.Errorf("DELETE = %d, deletes = %d", w.Code, e.f.deletes)
	}
}

func TestTokenRoutes(t *testing.T) {
	e := newEnv(t)
	var tok tokenResponse
	w := e.call(t, req{method: "GET", path: "/api/v1/applications/my-app/token", token: adminToken})
	json.Unmarshal(w.Body.Bytes(), &tok)
	if w.Code != 200 || tok != (tokenResponse{Token: "my-app-secret", ID: "app:my-app#1"}) {
		t.Fatalf("GET token = %d %s", w.Code, w.Body)
	}
	w = e.call(t, req{method: "POST", path: "/api/v1/applications/my-app/token/rotate", token: adminToken})
	json.Unmarshal(w.Body.Bytes(), &tok)
	if w.Code != 200 || tok.ID != "app:my-app#2" || tok.Token == "my-app-secret" {
		t.Fatalf("rotate = %d %s", w.Code, w.Body)
	}
	if w := e.call(t, scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`)); w.Code != 403 {
		t.Errorf("the old token scaled with %d, want 403", w.Code)
	}
	if w := e.call(t, scaleReq(tok.Token, "application/json", `{"target_num_replicas": 2}`)); w.Code != 200 {
		t.Errorf("the new token scaled with %d, want 200", w.Code)
	}

	for _, tc := range []struct{ name, path, want string }{
		{"an application with the scaler off has no token", "/api/v1/applications/fixed/token", "external_scaler_enabled is false"},
		{"an unknown application has no token", "/api/v1/applications/nope/token", `application "nope" not found`},
		{"rotating for an application with the scaler off is 404", "/api/v1/applications/fixed/token/rotate", "external_scaler_enabled is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if strings.HasSuffix(tc.path, "rotate") {
				method = "POST"
			}
			w := e.call(t, req{method: method, path: tc.path, token: adminToken})
			if w.Code != 404 || !strings.Contains(errorText(t, w), tc.want) {
				t.Errorf("%d %s, want 404 naming %q", w.Code, w.Body, tc.want)
			}
		})
	}
}

func TestShutdownAnswers202ThenStops(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "POST", path: "/api/v1/shutdown", token: adminToken})
	if w.Code != 202 {
		t.Fatalf("status %d, want 202", w.Code)
	}
	select {
	case <-e.shutdowns:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown was not called")
	}
}

func TestReplicaLogsAnswerTheLastLines(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.logDir, "my-app", "my-deployment")
	os.MkdirAll(dir, 0o755)
	var lines []string
	for i := range 3000 {
		lines = append(lines, "line "+strconv.Itoa(i)+" "+strings.Repeat("x", 40))
	}
	if err := os.WriteFile(filepath.Join(dir, "r1.log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/applications/my-app/deployments/my-deployment/replicas/"
	cases := []struct {
		name, path string
		status     int
		want       string
	}{
		{"two lines", base + "r1/logs?lines=2", 200, strings.Join(lines[2998:], "\n") + "\n"},
		{"the default is 100 lines", base + "r1/logs", 200, strings.Join(lines[2900:], "\n") + "\n"},
		{"more lines than the file has gives the file", base + "r1/logs?lines=10000", 200, strings.Join(lines, "\n") + "\n"},
		{"an unknown replica is 404", base + "r9/logs", 404, ""},
		{"a bad line count is 400", base + "r1/logs?lines=abc", 400, ""},
		{"a zero line count is 400", base + "r1/logs?lines=0", 400, ""},
		{"an escaped dot-dot is refused", base + "%2E%2E/logs", 400, ""},
		{"an escaped slash is refused", "/api/v1/applications/my-app/deployments/..%2F..%2Fetc/replicas/r1/logs", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.call(t, req{method: "GET", path: tc.path, token: adminToken})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %.200s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 && w.Body.String() != tc.want {
				t.Errorf("body has %d lines, want %d", strings.Count(w.Body.String(), "\n"), strings.Count(tc.want, "\n"))
			}
			if tc.status != 200 {
				errorText(t, w)
			}
		})
	}
}

func TestTailFileHandlesFilesWithoutAFinalNewline(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(p, []byte("a\nb\nc"), 0o644)
	for n, want := range map[int]string{1: "c", 2: "b\nc", 5: "a\nb\nc"} {
		got, err := tailFile(p, n)
		if err != nil || string(got) != want {
			t.Errorf("tail %d = %q, %v; want %q", n, got, err, want)
		}
	}
}

func TestOpenAPIDescribesEveryRouteAndNoOther(t *testing.T) {
	e := newEnv(t)
	w := e.call(t, req{method: "GET", path: "/api/openapi.json"})
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	key := func(r Route) string { return r.Method + " " + r.Path }
	var inDoc, served []string
	for p, ops := range doc["paths"].(map[string]any) {
		for m, o := range ops.(map[string]any) {
			inDoc = append(inDoc, strings.ToUpper(m)+" "+p)
			if rs, _ := o.(map[string]any)["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s %s has no responses", m, p)
			}
		}
	}
	for _, r := range e.api.Routes() {
		served = append(served, key(r))
	}
	slices.Sort(inDoc)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(inDoc, r) {
			t.Errorf("route %s is missing from the OpenAPI document", r)
		}
	}
	for _, r := range inDoc {
		if !slices.Contains(served, r) {
			t.Errorf("the OpenAPI document describes %s, which is not served", r)
		}
	}
}

func TestTheDashboardGetsEveryPathOutsideTheAPI(t *testing.T) {
	f := newFakeIntents()
	a := New(Options{Intents: f, AdminToken: adminToken, Dashboard: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "dashboard "+r.URL.Path)
	})})
	e := &testEnv{f: f, api: a}
	for path, want := range map[string]string{"/": "dashboard /", "/serve/my-app": "dashboard /serve/my-app"} {
		if w := e.call(t, req{method: "GET", path: path}); w.Code != 200 || w.Body.String() != want {
			t.Errorf("GET %s = %d %q, want the dashboard", path, w.Code, w.Body)
		}
	}
	if w := e.call(t, req{method: "GET", path: "/api/nothing"}); w.Code != 404 {
		t.Errorf("GET /api/nothing = %d, want a JSON 404", w.Code)
	}
	if w := e.call(t, req{method: "GET", path: "/metrics"}); w.Code != 200 || !strings.HasPrefix(w.Body.String(), "dashboard") {
		t.Errorf("without a metrics handler /metrics is the dashboard's, got %d %q", w.Code, w.Body)
	}
	if slices.Contains(a.Routes(), Route{"GET", "/metrics"}) {
		t.Error("Routes lists /metrics without a metrics handler")
	}
}

func TestDeployAcceptsYAML(t *testing.T) {
	e := newEnv(t)
	body := "applications:\n  - name: a\n    deployments:\n      - name: d\n        command: [sleep, '1']\n"
	w := e.call(t, req{method: "PUT", path: servePath, token: adminToken, ctype: "application/yaml", body: body})
	if w.Code != 200 || len(e.f.deployed) != 1 {
		t.Errorf("PUT YAML = %d %s", w.Code, w.Body)
	}
}

func TestLogsNeverHoldTokens(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	f := newFakeIntents()
	a := New(Options{Intents: f, AdminToken: adminToken, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil)),
		Shutdown: func() {}})
	e := &testEnv{f: f, api: a}
	for _, q := range []req{
		scaleReq("my-app-secret", "application/json", `{"target_num_replicas": 2}`),
		scaleReq("guessed-secret", "application/json", `{"target_num_replicas": 2}`),
		scaleReq(adminToken, "application/json", `{"target_num_replicas": 2}`),
		{method: "POST", path: "/api/v1/applications/my-app/token/rotate", token: adminToken},
		{method: "POST", path: "/api/v1/shutdown", token: adminToken},
	} {
		e.call(t, q)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "token=app:my-app#1") {
		t.Errorf("the log does not name the token by id:\n%s", buf.String())
	}
	for _, secret := range []string{"my-app-secret", "guessed-secret", adminToken, "my-app-secret-2"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log holds the token %q:\n%s", secret, buf.String())
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex // guards w
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestADashboardSessionActsAsTheAdminOnlyWhenTheSessionCheckSaysSo(t *testing.T) {
	e := newEnv(t)
	e.api = New(Options{
		Intents: e.f, AdminToken: adminToken, Now: e.clock.now, BaseDir: t.TempDir(),
		Session: func(r *http.Request) bool { return r.Header.Get("X-Test-Session") == "ok" },
	})
	body := `{"target_num_replicas": 2}`
	with := req{method: "POST", path: scaleURL, ctype: "application/json", body: body, header: map[string]string{"X-Test-Session": "ok"}}
	if w := e.call(t, with); w.Code != http.StatusOK {
		t.Fatalf("scale with a session: %d %s, want 200", w.Code, w.Body)
	}
	if w := e.call(t, req{method: "GET", path: "/api/serve/applications/", header: map[string]string{"X-Test-Session": "ok"}}); w.Code != http.StatusOK {
		t.Fatalf("admin route with a session: %d, want 200", w.Code)
	}
	without := with
	without.header = nil
	if w := e.call(t, without); w.Code != http.StatusUnauthorized {
		t.Fatalf("scale without a session: %d, want 401", w.Code)
	}
	// A bearer token, even a wrong one, is judged as a token, never as a session.
	wrong := with
	wrong.token = "not-a-token"
	if w := e.call(t, wrong); w.Code != http.StatusForbidden {
		t.Fatalf("wrong token with a session: %d, want 403", w.Code)
	}
	entries, _ := e.f.Audit("my-app", "my-deployment", 10)
	if len(entries) == 0 || entries[len(entries)-1].TokenID != "dashboard" && entries[0].TokenID != "dashboard" {
		t.Fatalf("audit entries %+v do not name the dashboard session", entries)
	}
}

type scaleCounts map[string]int

func (c scaleCounts) ObserveScale(app, dep, source, result string) {
	c[app+"/"+dep+" "+source+" "+result]++
}

func TestScaleCallsAreCountedByResult(t *testing.T) {
	e := newEnv(t)
	counts := scaleCounts{}
	e.api = New(Options{Intents: e.f, AdminToken: adminToken, Now: e.clock.now, BaseDir: t.TempDir(), Observer: counts})
	calls := []struct {
		q    req
		want string
	}{
		{scaleReq(adminToken, "application/json", `{"target_num_replicas": 2}`), "ok"},
		{scaleReq("", "application/json", `{"target_num_replicas": 2}`), "unauthorized"},
		{scaleReq("wrong", "application/json", `{"target_num_replicas": 2}`), "forbidden"},
		{scaleReq(adminToken, "text/plain", `{"target_num_replicas": 2}`), "invalid"},
		{scaleReq(adminToken, "application/json", `{"target_num_replicas": -1}`), "invalid"},
		{scaleReq(adminToken, "application/json", `{"target_num_replicas": 100000}`), "over_limit"},
	}
	for _, c := range calls {
		e.call(t, c.q)
	}
	for _, c := range calls {
		if counts["my-app/my-deployment webhook "+c.want] == 0 {
			t.Errorf("no scale call counted as %q; counts %v", c.want, counts)
		}
	}

	// The CLI names itself in its User-Agent; any other caller, the dashboard included,
	// is the webhook.
	cli := scaleReq(adminToken, "application/json", `{"target_num_replicas": 3}`)
	cli.header = map[string]string{"User-Agent": "shoal-cli/1"}
	e.call(t, cli)
	other := cli
	other.header = map[string]string{"User-Agent": "shoal-client/1"}
	e.call(t, other)
	if n := counts["my-app/my-deployment cli ok"]; n != 1 {
		t.Errorf("%d scale calls counted with source cli, want 1; counts %v", n, counts)
	}
	if n := counts["my-app/my-deployment webhook ok"]; n != 2 {
		t.Errorf("%d scale calls counted with source webhook and result ok, want 2; counts %v", n, counts)
	}
	if got := e.f.audits(); got[len(got)-2].Source != "cli" || got[len(got)-1].Source != "webhook" {
		t.Errorf("audited sources %q and %q, want cli and webhook", got[len(got)-2].Source, got[len(got)-1].Source)
	}

	// Invented names share one series, with empty names.
	for i := range 3 {
		e.call(t, req{method: "POST", path: "/api/v1/applications/invented-" + strconv.Itoa(i) + "/deployments/d/scale",
			token: adminToken, ctype: "application/json", body: `{"target_num_replicas": 2}`})
	}
	if n := counts["/ webhook not_found"]; n != 3 {
		t.Errorf("%d calls to invented names counted under empty names, want 3; counts %v", n, counts)
	}
	for k := range counts {
		if strings.Contains(k, "invented") {
			t.Errorf("a series names an invented application: %q", k)
		}
	}
}

func TestFailedDashboardLoginsAndAPICallsShareOneLimitPerAddress(t *testing.T) {
	e := newEnv(t)
	limiter := auth.NewLimiter(maxAuthFailures, authFailureWindow, e.clock.now)
	dash := dashboard.New(dashboard.Options{Intents: e.f, AdminToken: adminToken, Now: e.clock.now, Limiter: limiter})
	e.api = New(Options{
		Intents: e.f, AdminToken: adminToken, Now: e.clock.now, BaseDir: t.TempDir(),
		Dashboard: dash, Session: dash.Session, Limiter: limiter,
	})
	const guesser = "203.0.113.20"
	login := req{method: "POST", path: "/login", ctype: "application/x-www-form-urlencoded", body: "token=guess", from: guesser}
	for i := range maxAuthFailures {
		if w := e.call(t, login); w.Code != http.StatusForbidden {
			t.Fatalf("failed login %d: status %d, want 403", i+1, w.Code)
		}
	}
	admin := req{method: "GET", path: servePath, token: adminToken, from: guesser}
	if w := e.call(t, admin); w.Code != http.StatusOK {
		t.Fatalf("after %d failed logins the admin got %d, want 200: the limit is more than %d", maxAuthFailures, w.Code, maxAuthFailures)
	}
	// One more failure, on the API this time, is over the one limit.
	if w := e.call(t, req{method: "GET", path: servePath, token: "guess", from: guesser}); w.Code != http.StatusForbidden {
		t.Fatalf("a bad token after the failed logins: status %d, want 403", w.Code)
	}
	for _, q := range []req{admin, scaleReq(adminToken, "application/json", `{"target_num_replicas": 2}`), login} {
		q.from = guesser
		w := e.call(t, q)
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("%s %s after %d failed logins and a failed API call: status %d, want 429", q.method, q.path, maxAuthFailures, w.Code)
		}
		if s, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("%s %s: Retry-After = %q, want whole seconds in [1, 60]", q.method, q.path, w.Header().Get("Retry-After"))
		}
	}
	if w := e.call(t, req{method: "GET", path: servePath, token: adminToken, from: "203.0.113.21"}); w.Code != http.StatusOK {
		t.Errorf("another address got %d, want 200", w.Code)
	}
	e.clock.advance(time.Minute)
	if w := e.call(t, admin); w.Code != http.StatusOK {
		t.Errorf("a minute later the admin got %d, want 200", w.Code)
	}
}
