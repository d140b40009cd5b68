package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/auth"
	"shoal/internal/controller"
	"shoal/internal/store"
)

const testAdminToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

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

// testControl stands in for the control server: the two API routes the dashboard's
// script calls, authorized the way internal/api does (a dashboard session counts as the
// admin), with the dashboard mounted at "/".
func testControl(d *Dashboard, f *fakeIntents) http.Handler {
	mux := http.NewServeMux()
	isAdmin := func(r *http.Request) bool {
		if d.Session(r) {
			return true
		}
		tok, ok := auth.Bearer(r)
		return ok && auth.Equal(tok, testAdminToken)
	}
	refuse := func(w http.ResponseWriter, status int, msg string) {
		writeJSON(w, status, map[string]string{"error": msg})
	}
	mux.HandleFunc("POST /api/v1/applications/{app}/token/rotate", func(w http.ResponseWriter, r *http.Request) {
		if !isAdmin(r) {
			refuse(w, http.StatusForbidden, "this route needs the admin token")
			return
		}
		t, err := f.RotateToken(r.Context(), r.PathValue("app"))
		if err != nil {
			refuse(w, http.StatusNotFound, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"token": t.Secret})
	})
	mux.HandleFunc("POST /api/v1/applications/{app}/deployments/{dep}/scale", func(w http.ResponseWriter, r *http.Request) {
		app, dep := r.PathValue("app"), r.PathValue("dep")
		e := store.AuditEntry{Time: d.now(), App: app, Deployment: dep, From: -1, To: -1, Client: auth.ClientAddr(r), Source: "dashboard"}
		status, res := scaleForTest(r, f, isAdmin(r), &e)
		e.Status = status
		_ = f.RecordAudit(e)
		writeJSON(w, status, res)
	})
	mux.Handle("/", d)
	return mux
}

func scaleForTest(r *http.Request, f *fakeIntents, admin bool, e *store.AuditEntry) (int, any) {
	fail := func(status int, msg string) (int, any) {
		e.Result = msg
		return status, map[string]string{"error": msg}
	}
	if !admin {
		return fail(http.StatusForbidden, "invalid token")
	}
	e.TokenID = auth.AdminTokenID
	var body struct {
		N *int `json:"target_num_replicas"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.N == nil {
		return fail(http.StatusBadRequest, "Invalid request body")
	}
	e.To = *body.N
	prev, err := f.SetTarget(r.Context(), e.App, e.Deployment, *body.N, controller.SourceWebhook)
	switch {
	case errors.Is(err, controller.ErrOverLimit):
		return fail(http.StatusBadRequest, "target is above the replica_limit")
	case err != nil:
		return fail(http.StatusNotFound, "Application or Deployment not found")
	}
	e.From, e.Result = prev, "ok"
	return http.StatusOK, map[string]any{
		"message":                      "Scaling request received. Deployment will get scaled asynchronously.",
		"application":                  e.App,
		"deployment":                   e.Deployment,
		"target_num_replicas":          *body.N,
		"previous_target_num_replicas": prev,
	}
}

// login signs in to h and returns the session cookie.
func login(t *testing.T, h http.Handler) *http.Cookie {
	t.Helper()
	rec := postForm(h, "/login", url.Values{"token": {testAdminToken}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login answered %d, want 303", rec.Code)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == CookieName {
			return c
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

func postForm(h http.Handler, path string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.1:4000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// get serves a GET of path, with the cookie when not nil.
func get(h http.Handler, path string, c *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// eventually polls cond every 10 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
