package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/store"
)

func newTestDashboard(t *testing.T, f *fakeIntents, c *clock, edit func(*Options)) *Dashboard {
	t.Helper()
	opts := Options{Intents: f, AdminToken: testAdminToken, Now: c.now, LogDir: t.TempDir()}
	if edit != nil {
		edit(&opts)
	}
	return New(opts)
}

func TestLogin(t *testing.T) {
	cases := []struct {
		name       string
		token      string
		secure     bool
		wantStatus int
		wantCookie bool
		wantBody   string
	}{
		{name: "the admin token starts a session", token: testAdminToken, wantStatus: 303, wantCookie: true},
		{name: "surrounding whitespace of a pasted token is ignored", token: " " + testAdminToken + "\n", wantStatus: 303, wantCookie: true},
		{name: "the cookie is Secure when the control port serves TLS", token: testAdminToken, secure: true, wantStatus: 303, wantCookie: true},
		{name: "a wrong token is refused with the login page", token: "nope", wantStatus: 403, wantBody: "That is not the admin token."},
		{name: "a prefix of the admin token is refused", token: testAdminToken[:32], wantStatus: 403, wantBody: "That is not the admin token."},
		{name: "an empty token is refused", token: "", wantStatus: 403, wantBody: "That is not the admin token."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDashboard(t, newFake(), newClock(fakeStart), func(o *Options) { o.Secure = tc.secure })
			rec := postForm(d, "/login", url.Values{"token": {tc.token}})
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body does not say %q", tc.wantBody)
			}
			var cookie *http.Cookie
			for _, c := range rec.Result().Cookies() {
				if c.Name == CookieName {
					cookie = c
				}
			}
			if (cookie != nil) != tc.wantCookie {
				t.Fatalf("session cookie set = %v, want %v", cookie != nil, tc.wantCookie)
			}
			if cookie == nil {
				return
			}
			if loc := rec.Header().Get("Location"); loc != "/serve" {
				t.Errorf("redirect to %q, want /serve", loc)
			}
			if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure != tc.secure {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Secure=%v", cookie, tc.secure)
			}
			if strings.Contains(cookie.Value, testAdminToken) || len(cookie.Value) != 64 {
				t.Errorf("cookie value %q should be a random session id, not the token", cookie.Value)
			}
		})
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	c := newClock(fakeStart)
	d := newTestDashboard(t, newFake(), c, nil)
	for i := range maxLoginFailures + 1 {
		if rec := postForm(d, "/login", url.Values{"token": {"wrong"}}); rec.Code != http.StatusForbidden {
			t.Fatalf("failure %d answered %d, want 403", i+1, rec.Code)
		}
	}
	c.advance(15 * time.Second)
	rec := postForm(d, "/login", url.Values{"token": {testAdminToken}})
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after %d failures even the right token got %d, want 429", maxLoginFailures+1, rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "45" {
		t.Errorf("Retry-After %q, want 45 (the rest of the minute)", got)
	}
	c.advance(45 * time.Second)
	if rec := postForm(d, "/login", url.Values{"token": {testAdminToken}}); rec.Code != http.StatusSeeOther {
		t.Errorf("once the minute is over the right token got %d, want 303", rec.Code)
	}
}

func TestSession(t *testing.T) {
	c := newClock(fakeStart)
	d := newTestDashboard(t, newFake(), c, nil)
	valid := login(t, d)
	other := &http.Cookie{Name: CookieName, Value: strings.Repeat("a", 64)}
	cases := []struct {
		name   string
		method string
		cookie *http.Cookie
		header string
		want   bool
	}{
		{"a GET with the session cookie is the dashboard", "GET", valid, "", true},
		{"a HEAD with the session cookie is the dashboard", "HEAD", valid, "", true},
		{"a POST with the cookie and the header is the dashboard", "POST", valid, "1", true},
		{"a POST with the cookie but no header is refused (a cross-site form)", "POST", valid, "", false},
		{"a DELETE with the cookie but no header is refused", "DELETE", valid, "", false},
		{"a POST with the header set to another value is refused", "POST", valid, "true", false},
		{"a GET without a cookie is not the dashboard", "GET", nil, "", false},
		{"a POST with the header but no cookie is refused", "POST", nil, "1", false},
		{"an unknown session id is refused", "GET", other, "1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/api/v1/applications/echo/token/rotate", nil)
			if tc.cookie != nil {
				r.AddCookie(tc.cookie)
			}
			if tc.header != "" {
				r.Header.Set(HeaderName, tc.header)
			}
			if got := d.Session(r); got != tc.want {
				t.Fatalf("Session = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSessionsEndAtLogoutAndAfterTheirLifetime(t *testing.T) {
	c := newClock(fakeStart)
	d := newTestDashboard(t, newFake(), c, nil)
	first, second := login(t, d), login(t, d)
	isSession := func(ck *http.Cookie) bool {
		r := httptest.NewRequest(http.MethodGet, "/serve", nil)
		r.AddCookie(ck)
		return d.Session(r)
	}

	r := httptest.NewRequest(http.MethodPost, "/logout", nil)
	r.AddCookie(first)
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, r)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
		t.Fatalf("logout answered %d to %q, want 303 to /login", rec.Code, rec.Header().Get("Location"))
	}
	if cs := rec.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("logout should delete the cookie, set %+v", cs)
	}
	if isSession(first) {
		t.Error("the session is still valid after logout")
	}
	if !isSession(second) {
		t.Error("logging out one session ended another")
	}
	c.advance(SessionTTL - time.Second)
	if !isSession(second) {
		t.Error("the session ended before its lifetime")
	}
	c.advance(time.Second)
	if isSession(second) {
		t.Error("the session outlived its lifetime")
	}
}

func TestPagesNeedASession(t *testing.T) {
	d := newTestDashboard(t, newFake(), newClock(fakeStart), nil)
	cases := []struct {
		name, path string
		wantStatus int
		wantLoc    string
	}{
		{"the root goes to the Serve page", "/", 302, "/serve"},
		{"the Serve page sends a stranger to the login page", "/serve", 302, "/login"},
		{"the login page is open", "/login", 200, ""},
		{"assets are open", "/dashboard/static/app.js", 200, ""},
		{"the state needs a session", "/dashboard/api/state", 401, ""},
		{"a token needs a session", "/dashboard/api/token?app=echo", 401, ""},
		{"logs need a session", "/dashboard/api/logs?app=echo&dep=model&replica=r-echo-1", 401, ""},
		{"an unknown page is a 404", "/nope", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(d, tc.path, nil)
			if rec.Code != tc.wantStatus {
				t.Fatalf("GET %s: %d, want %d", tc.path, rec.Code, tc.wantStatus)
			}
			if loc := rec.Header().Get("Location"); loc != tc.wantLoc {
				t.Errorf("Location %q, want %q", loc, tc.wantLoc)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy %q should forbid framing", csp)
			}
		})
	}
}

func TestServePageShowsEveryApplicationDeploymentAndReplica(t *testing.T) {
	f := newFake()
	d := newTestDashboard(t, f, newClock(fakeStart), nil)
	rec := get(d, "/serve", login(t, d))
	if rec.Code != 200 {
		t.Fatalf("GET /serve: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		">echo<", ">files<", "<code>/echo</code>", "<code>/files</code>", ">model<", ">static<",
		"r-echo-1", "r-echo-2", "r-files-1", "4101", "1m 30s", "CONFIG_<wbr>UPDATE_<wbr>COMPLETED",
		"external", "fixed", "app:echo#1",
		"curl -X POST http://127.0.0.1:8000/api/v1/applications/echo/deployments/model/scale",
		`"http://127.0.0.1:8000/api/v1/applications/echo/deployments/model/scale"`,
		`data-url="/api/v1/applications/echo/deployments/model/scale"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "shoal_app_first_secret_0001") {
		t.Error("the page holds the application token; it must be fetched only on demand")
	}
	if n := strings.Count(body, `class="scale"`); n != 1 {
		t.Errorf("%d scale controls, want 1 (only the external deployment)", n)
	}
}

type stateBody struct {
	Generation uint64            `json:"generation"`
	Layout     string            `json:"layout"`
	Fragments  map[string]string `json:"fragments"`
}

func getState(t *testing.T, h http.Handler, c *http.Cookie) stateBody {
	t.Helper()
	rec := get(h, "/dashboard/api/state", c)
	if rec.Code != 200 {
		t.Fatalf("GET state: %d %s", rec.Code, rec.Body)
	}
	var s stateBody
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateFollowsTheSnapshot(t *testing.T) {
	f := newFake()
	c := newClock(fakeStart)
	d := newTestDashboard(t, f, c, nil)
	ck := login(t, d)
	model := elemID("d", "echo\x00model")

	before := getState(t, d, ck)
	for _, id := range []string{"summary", model + "-summary", model + "-replicas", model + "-chart", model + "-audit", elemID("a", "echo") + "-head", elemID("a", "echo") + "-tokmeta"} {
		if _, ok := before.Fragments[id]; !ok {
			t.Errorf("state lacks fragment %s", id)
		}
	}

	c.advance(30 * time.Second)
	f.setRunning("echo", "model", 3, c.now())
	after := getState(t, d, ck)
	if after.Generation <= before.Generation {
		t.Errorf("generation %d did not grow from %d", after.Generation, before.Generation)
	}
	if !strings.Contains(after.Fragments[model+"-summary"], `data-field="running">3<`) {
		t.Errorf("the summary does not show 3 running: %s", after.Fragments[model+"-summary"])
	}
	if !strings.Contains(after.Fragments[model+"-replicas"], "r-echo-3") {
		t.Error("the replicas do not list the new replica")
	}
	// The chart's accessible name carries the counts it draws; its path data would
	// change anyway, as the time axis moves.
	if chart := before.Fragments[model+"-chart"]; !strings.Contains(chart, "now target 2, running 2;") {
		t.Errorf("the chart does not say target 2, running 2 before: %s", chart)
	}
	if chart := after.Fragments[model+"-chart"]; !strings.Contains(chart, "now target 2, running 3;") {
		t.Errorf("the chart does not say target 2, running 3 after: %s", chart)
	}
	if after.Layout != before.Layout {
		t.Error("a count change altered the layout key, which would reload the page")
	}

	f.update(func(s *controller.Snapshot) {
		s.Applications = append(s.Applications, &controller.Application{Name: "new", RoutePrefix: "/new", Status: controller.AppDeploying})
	})
	if getState(t, d, ck).Layout == before.Layout {
		t.Error("a new application did not change the layout key")
	}
}

func TestAnAutoscalingDeploymentShowsTheAutoscalersView(t *testing.T) {
	f := newFake()
	c := newClock(fakeStart)
	f.update(func(s *controller.Snapshot) {
		d := s.App("files").Deployment("static")
		d.Mode, d.TargetSource = controller.ModeAutoscaling, controller.SourceAutoscaler
		d.Autoscaling = &controller.AutoscalingDetail{Decision: 3, WindowAverage: 4.25, Queued: 2, PendingSince: fakeStart.Add(-20 * time.Second), PendingTarget: 3}
	})
	d := newTestDashboard(t, f, c, nil)
	frag := getState(t, d, login(t, d)).Fragments[elemID("d", "files\x00static")+"-summary"]
	want := "Autoscaler wants 3 · 4.2 ongoing on average · 2 queued · 3 pending for 20s"
	if !strings.Contains(frag, want) {
		t.Fatalf("the summary lacks %q:\n%s", want, frag)
	}
}

func TestTokenIsShownOnlyForExternalApplications(t *testing.T) {
	f := newFake()
	d := newTestDashboard(t, f, newClock(fakeStart), nil)
	ck := login(t, d)
	cases := []struct {
		name, app  string
		wantStatus int
		wantToken  string
	}{
		{"an external application's token is returned", "echo", 200, "shoal_app_first_secret_0001"},
		{"an application without the external scaler has none", "files", 404, ""},
		{"an unknown application has none", "ghost", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(d, "/dashboard/api/token?app="+tc.app, ck)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			var body tokenResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if body.Token != tc.wantToken {
				t.Errorf("token %q, want %q", body.Token, tc.wantToken)
			}
		})
	}
}

func TestReplicaLogs(t *testing.T) {
	f := newFake()
	logDir := t.TempDir()
	write := func(rel, text string) {
		p := filepath.Join(logDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for i := range 300 {
		lines = append(lines, "line "+strings.Repeat("x", i%7)+" "+string(rune('a'+i%26)))
	}
	write("echo/model/r-echo-1.log", strings.Join(lines, "\n")+"\n")
	write("secret.log", "do not show\n")
	f.update(func(s *controller.Snapshot) {
		d := s.App("echo").Deployment("model")
		d.Replicas = append(d.Replicas, backend.Replica{ID: "../../secret", State: backend.Running})
	})
	d := newTestDashboard(t, f, newClock(fakeStart), func(o *Options) { o.LogDir = logDir })
	ck := login(t, d)

	cases := []struct {
		name, query string
		wantStatus  int
		wantBody    string
	}{
		{"a replica's log answers its last lines", "app=echo&dep=model&replica=r-echo-1", 200, strings.Join(lines[100:], "\n") + "\n"},
		{"a replica that has written nothing has an empty log", "app=echo&dep=model&replica=r-echo-2", 200, ""},
		{"a replica of another deployment is not found", "app=files&dep=static&replica=r-echo-1", 404, ""},
		{"an unknown replica is not found", "app=echo&dep=model&replica=nope", 404, ""},
		{"a path in an unknown name is not found", "app=echo&dep=model&replica=../../../etc/passwd", 404, ""},
		{"a path in a known replica id is refused", "app=echo&dep=model&replica=../../secret", 400, ""},
		{"a path in the application is not found", "app=../echo&dep=model&replica=r-echo-1", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(d, "/dashboard/api/logs?"+tc.query, ck)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if tc.wantStatus == 200 && rec.Body.String() != tc.wantBody {
				t.Errorf("body %q..., want the last %d lines", firstN(rec.Body.String(), 40), logLines)
			}
			if strings.Contains(rec.Body.String(), "do not show") {
				t.Error("a file outside the replica logs was read")
			}
		})
	}

	noLogs := newTestDashboard(t, f, newClock(fakeStart), func(o *Options) { o.LogDir = "" })
	if rec := get(noLogs, "/dashboard/api/logs?app=echo&dep=model&replica=r-echo-1", login(t, noLogs)); rec.Code != 404 {
		t.Errorf("without a log directory: %d, want 404", rec.Code)
	}
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func TestTail(t *testing.T) {
	cases := []struct {
		name     string
		text     string
		n        int
		maxBytes int64
		want     string
	}{
		{"the last lines of a longer file", "a\nb\nc\nd\n", 2, 1 << 10, "c\nd\n"},
		{"a file shorter than asked is whole", "a\nb\n", 5, 1 << 10, "a\nb\n"},
		{"a last line without a newline counts", "a\nb\nc", 2, 1 << 10, "b\nc"},
		{"exactly n lines is whole", "a\nb\n", 2, 1 << 10, "a\nb\n"},
		{"a line cut by the byte limit is dropped", "aaaa\nbb\ncc\n", 10, 7, "bb\ncc\n"},
		{"an empty file is empty", "", 3, 1 << 10, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.log")
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := tail(p, tc.n, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("tail = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHistoryRing(t *testing.T) {
	t.Run("an unchanged sample within a second is not kept", func(t *testing.T) {
		var r ring
		r.add(sample{t: fakeStart, target: 1, running: 1})
		r.add(sample{t: fakeStart.Add(500 * time.Millisecond), target: 1, running: 1})
		r.add(sample{t: fakeStart.Add(600 * time.Millisecond), target: 2, running: 1})
		if r.n != 2 {
			t.Fatalf("%d samples, want 2", r.n)
		}
	})
	t.Run("the ring keeps only the newest points", func(t *testing.T) {
		var r ring
		for i := range historyPoints + 10 {
			r.add(sample{t: fakeStart.Add(time.Duration(i) * time.Second), target: i, running: i})
		}
		all := r.since(time.Time{})
		if len(all) != historyPoints || all[0].target != 10 || all[len(all)-1].target != historyPoints+9 {
			t.Fatalf("kept %d samples from %d to %d, want %d from 10", len(all), all[0].target, all[len(all)-1].target, historyPoints)
		}
	})
	t.Run("since includes the value holding at its start", func(t *testing.T) {
		var r ring
		for i := range 5 {
			r.add(sample{t: fakeStart.Add(time.Duration(i) * 10 * time.Second), target: i})
		}
		got := r.since(fakeStart.Add(25 * time.Second))
		if len(got) != 3 || got[0].target != 2 {
			t.Fatalf("since = %+v, want targets 2, 3, 4", got)
		}
	})
	t.Run("a clock step back does not fold the line", func(t *testing.T) {
		var r ring
		r.add(sample{t: fakeStart, target: 1})
		r.add(sample{t: fakeStart.Add(-time.Hour), target: 2})
		if got := r.since(time.Time{}); !got[1].t.Equal(fakeStart) {
			t.Fatalf("the second sample is at %v, want it clamped to %v", got[1].t, fakeStart)
		}
	})
}

func TestRunRecordsEverySnapshotAndForgetsDeletedDeployments(t *testing.T) {
	f := newFake()
	c := newClock(fakeStart)
	d := newTestDashboard(t, f, c, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	key := backend.Key{App: "echo", Deployment: "model"}
	eventually(t, 2*time.Second, "the first snapshot is recorded", func() bool { return len(d.hist.samples(key, time.Time{})) == 1 })
	f.setRunning("echo", "model", 5, fakeStart.Add(10*time.Second))
	eventually(t, 2*time.Second, "the change is recorded", func() bool {
		s := d.hist.samples(key, time.Time{})
		return len(s) == 2 && s[1].running == 5
	})
	f.update(func(s *controller.Snapshot) { s.Applications = s.Applications[1:] })
	eventually(t, 2*time.Second, "the deleted deployment is forgotten", func() bool { return d.hist.samples(key, time.Time{}) == nil })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil on cancel", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestBuildChart(t *testing.T) {
	now := fakeStart.Add(10 * time.Minute)
	samples := []sample{
		{t: fakeStart, target: 1, running: 1},
		{t: fakeStart.Add(5 * time.Minute), target: 4, running: 1},
		{t: fakeStart.Add(6 * time.Minute), target: 4, running: 4},
	}
	audit := []store.AuditEntry{
		{Time: fakeStart.Add(5 * time.Minute), From: 1, To: 4, Status: 200, Result: "ok", TokenID: "app:echo#1"},
		{Time: fakeStart.Add(7 * time.Minute), From: -1, To: -1, Status: 403, Result: "invalid token"},
		{Time: fakeStart.Add(-time.Hour), From: 1, To: 9, Status: 200, Result: "ok"}, // before the chart
	}
	c := buildChart("model", samples, audit, 10*time.Minute, now)
	if c.Empty {
		t.Fatal("a chart with samples is empty")
	}
	if want := "M0.0 95.0H500.0V14.0H600.0V14.0H1000.0"; c.TargetLine != want {
		t.Errorf("target line %q, want %q", c.TargetLine, want)
	}
	if want := "M0.0 95.0H500.0V95.0H600.0V14.0H1000.0"; c.RunningLine != want {
		t.Errorf("running line %q, want %q", c.RunningLine, want)
	}
	if len(c.Events) != 2 || !c.Events[0].OK || c.Events[0].X != 500 || c.Events[1].OK || c.Events[1].Y != yZero {
		t.Errorf("events %+v, want an accepted call at x 500 and a refused one on the axis", c.Events)
	}
	if len(c.Grid) != 5 || c.Grid[4].Label != "4" {
		t.Errorf("grid %+v, want lines 0 to 4", c.Grid)
	}
	if !strings.Contains(c.Label, "now target 4, running 4; 2 scale events") {
		t.Errorf("label %q", c.Label)
	}
	if empty := buildChart("model", nil, nil, 0, now); !empty.Empty || empty.RunningLine != "" {
		t.Errorf("a chart without samples should be empty: %+v", empty)
	}
}

func TestNiceStep(t *testing.T) {
	cases := []struct{ top, want int }{{1, 1}, {5, 1}, {6, 2}, {10, 2}, {11, 5}, {25, 5}, {30, 10}, {100, 20}, {1000, 200}}
	for _, tc := range cases {
		if got := niceStep(tc.top); got != tc.want {
			t.Errorf("niceStep(%d) = %d, want %d", tc.top, got, tc.want)
		}
	}
}

func TestProxyURL(t *testing.T) {
	cases := []struct {
		name string
		opts config.HTTPOptions
		want string
	}{
		{"a loopback host is kept", config.HTTPOptions{Host: "127.0.0.1", Port: 8000}, "http://127.0.0.1:8000"},
		{"a wildcard host is shown as loopback", config.HTTPOptions{Host: "0.0.0.0", Port: 9000}, "http://127.0.0.1:9000"},
		{"an IPv6 wildcard is shown as IPv6 loopback", config.HTTPOptions{Host: "::", Port: 8000}, "http://[::1]:8000"},
		{"TLS makes it https", config.HTTPOptions{Host: "shoal.example", Port: 443, SSLCertfile: "c.pem"}, "https://shoal.example:443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := proxyURL(tc.opts); got != tc.want {
				t.Fatalf("proxyURL = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"http://127.0.0.1:8000/api/v1/applications/a/deployments/b/scale", "http://127.0.0.1:8000/api/v1/applications/a/deployments/b/scale"},
		{"http://h/a&b", "'http://h/a&b'"},
		{"http://h/it's", `'http://h/it'\''s'`},
	}
	for _, tc := range cases {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSince(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {42 * time.Second, "42s"}, {192 * time.Second, "3m 12s"},
		{5*time.Hour + 2*time.Minute, "5h 02m"}, {76 * time.Hour, "3d 4h"}, {-time.Second, "0s"},
	}
	for _, tc := range cases {
		if got := since(fakeStart, fakeStart.Add(tc.d)); got != tc.want {
			t.Errorf("since(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
