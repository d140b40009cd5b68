package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
	"shoal/internal/dashboard/dashtest"
	"shoal/internal/store"
)

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evalCtx, cancel := context.WithTimeout(ctx, stepTimeout)
		ok, err := chromedp.Run(evalCtx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 1500)`))
			t.Fatalf("timed out waiting until %s (%s; last error %v); the page:\n%s", what, expr, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsString(s string) string { return strconv.Quote(s) }

// stepTimeout bounds every browser step, so a missing element fails the test at once
// instead of at the test binary's timeout.
const stepTimeout = 15 * time.Second

// do runs browser steps, failing the test on an error.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// loads is the proxy's count of ongoing requests per replica, set by the test.
type loads struct {
	mu sync.Mutex // guards m
	m  map[string]int
}

func (l *loads) Ongoing(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[id]
}

func (l *loads) set(id string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[id] = n
}

// addNamesakes gives the fake's snapshot what tells deployments apart only by their
// application: a second scalable deployment in echo (tokenizer), and an autoscaling
// application (ranker) whose deployment is called model, as echo's is.
func addNamesakes(f *fakeIntents, now time.Time) {
	f.update(func(s *controller.Snapshot) {
		replica := func(app, dep, id string, pid int) backend.Replica {
			return backend.Replica{
				ID: id, Key: backend.Key{App: app, Deployment: dep}, State: backend.Running, PID: pid,
				StartTime: now.Add(-90 * time.Second), Address: "127.0.0.1:1",
			}
		}
		echo := s.App("echo")
		echo.Deployments = append(echo.Deployments, &controller.Deployment{
			Key: backend.Key{App: "echo", Deployment: "tokenizer"}, Name: "tokenizer",
			Status: controller.DeploymentHealthy, StatusTrigger: "CONFIG_UPDATE_COMPLETED",
			Config: config.Deployment{ReplicaLimit: 4}, Mode: controller.ModeExternal,
			Target: 1, TargetSource: controller.SourceConfig,
			Replicas: []backend.Replica{replica("echo", "tokenizer", "r-tok-1", 4301)},
		})
		s.Applications = append(s.Applications, &controller.Application{
			Name: "ranker", RoutePrefix: "/ranker", Status: controller.AppRunning, Ingress: "model",
			Deployments: []*controller.Deployment{{
				Key: backend.Key{App: "ranker", Deployment: "model"}, Name: "model",
				Status: controller.DeploymentHealthy, StatusTrigger: "CONFIG_UPDATE_COMPLETED",
				Config: config.Deployment{ReplicaLimit: 1000}, Mode: controller.ModeAutoscaling,
				Target: 2, TargetSource: controller.SourceAutoscaler,
				Autoscaling: &controller.AutoscalingDetail{Decision: 2, WindowAverage: 3.5, Queued: 1, PendingTarget: 2},
				Replicas:    []backend.Replica{replica("ranker", "model", "r-rank-1", 4401), replica("ranker", "model", "r-rank-2", 4402)},
			}},
		})
	})
}

// axNode is an element of the page as the accessibility tree (what a screen reader
// reads) has it.
type axNode struct {
	role, name string
	backend    cdp.BackendNodeID
}

// axButtons returns the page's buttons and spin buttons that a screen reader can
// reach, with the names the browser computed for them.
func axButtons(t *testing.T, ctx context.Context) []axNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	// The document by its JavaScript object: DOM.getDocument would renumber the DOM
	// nodes chromedp's own queries hold.
	doc, err := chromedp.Run(ctx, chromedp.Evaluate[*runtime.RemoteObject](`document`))
	if err != nil {
		t.Fatal(err)
	}
	var out []axNode
	for _, role := range []string{"button", "spinbutton"} {
		res, err := chromedp.Call(ctx, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{ObjectID: doc.ObjectID, Role: role})
		if err != nil {
			t.Fatalf("querying the accessibility tree for %ss: %v", role, err)
		}
		for _, n := range res.Nodes {
			if n.Ignored || n.Name == nil {
				continue
			}
			var name string
			_ = json.Unmarshal([]byte(n.Name.Value), &name)
			out = append(out, axNode{role: role, name: name, backend: n.BackendDOMNodeID})
		}
	}
	return out
}

// byName finds the one element with role whose accessible name is name, and runs fn
// (a JavaScript function) on it with this bound to the element.
func byName(t *testing.T, ctx context.Context, role, name, fn string) {
	t.Helper()
	var found []axNode
	for _, n := range axButtons(t, ctx) {
		if n.role == role && n.name == name {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %ss are named %q, want exactly one", len(found), role, name)
	}
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: found[0].backend})
	if err != nil {
		t.Fatal(err)
	}
	on := func(p *runtime.CallFunctionOnParams) { p.ObjectID = obj.Object.ObjectID }
	if _, err := chromedp.Run(ctx, chromedp.CallFunctionOn[chromedp.Void](fn, on)); err != nil {
		t.Fatalf("acting on the %s %q: %v", role, name, err)
	}
}

// seedHistory gives the charts and the audit log the last 25 minutes of a deployment
// that an external scaler moved up and down, so the layout is checked on a lived-in page.
func seedHistory(d *Dashboard, f *fakeIntents, now time.Time) {
	key := backend.Key{App: "echo", Deployment: "model"}
	r := &ring{}
	at := func(m float64) time.Time { return now.Add(time.Duration(-m * float64(time.Minute))) }
	steps := []struct {
		min             float64
		target, running int
	}{
		{25, 2, 2}, {20, 4, 2}, {19.6, 4, 3}, {19.2, 4, 4}, {12, 6, 4}, {11.7, 6, 5}, {11.3, 6, 6},
		{6, 3, 6}, {5.6, 3, 4}, {5.3, 3, 3}, {2, 2, 3}, {1.7, 2, 2},
	}
	for _, s := range steps {
		r.add(sample{t: at(s.min), target: s.target, running: s.running})
	}
	d.hist.mu.Lock()
	d.hist.rings[key] = r
	files := &ring{}
	files.add(sample{t: at(25), target: 1, running: 1})
	d.hist.rings[backend.Key{App: "files", Deployment: "static"}] = files
	d.hist.mu.Unlock()

	audit := []store.AuditEntry{
		{Time: at(20), From: 2, To: 4, TokenID: "app:echo#1", Client: "10.0.4.17", Source: "webhook", Result: "ok", Status: 200},
		{Time: at(12), From: 4, To: 6, TokenID: "app:echo#1", Client: "10.0.4.17", Source: "webhook", Result: "ok", Status: 200},
		{Time: at(9), From: -1, To: 8, TokenID: "invalid", Client: "203.0.113.9", Source: "webhook", Result: "invalid token", Status: 403},
		{Time: at(6), From: 6, To: 3, TokenID: "app:echo#1", Client: "10.0.4.17", Source: "webhook", Result: "ok", Status: 200},
		{Time: at(2), From: 3, To: 2, TokenID: "app:echo#1", Client: "10.0.4.17", Source: "webhook", Result: "ok", Status: 200},
	}
	for _, e := range audit {
		e.App, e.Deployment = "echo", "model"
		_ = f.RecordAudit(e)
	}
}

// crossSite serves a page that, once opened, posts a form to target: what a hostile
// site can do to a signed-in user's browser.
func crossSite(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>a prize for you</title>
<form id="f" method="post" action="%s" enctype="text/plain">
<input type="hidden" name='{"target_num_replicas": 9, "pad": "' value='"}'>
</form>
<script>document.getElementById("f").submit()</script>`, target)
	})
}

func TestBrowser(t *testing.T) {
	chromium := dashtest.Chromium(t)
	now := time.Now()
	f := newFakeAt(now)
	logDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(logDir, "echo", "model"), 0o755); err != nil {
		t.Fatal(err)
	}
	logText := "INFO:     Started server process [4101]\nINFO:     Uvicorn running on http://127.0.0.1:41231\nGET /echo/hello 200 1.2ms\n"
	if err := os.WriteFile(filepath.Join(logDir, "echo", "model", "r-echo-1.log"), []byte(logText), 0o644); err != nil {
		t.Fatal(err)
	}
	addNamesakes(f, now)
	load := &loads{m: map[string]int{"r-echo-1": 3, "r-echo-2": 1}}
	d := New(Options{
		Intents: f, AdminToken: testAdminToken, LogDir: logDir, Load: load,
	})
	seedHistory(d, f, now)
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = d.Run(runCtx)
	}()
	t.Cleanup(func() {
		stopRun()
		<-runDone
	})

	srv := httptest.NewServer(testControl(d, f))
	t.Cleanup(srv.Close)
	scaleURL := srv.URL + "/api/v1/applications/echo/deployments/model/scale"
	evil := httptest.NewServer(crossSite(scaleURL))
	t.Cleanup(evil.Close)
	// localhost and 127.0.0.1 are different sites to the browser, as two domains are.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	ctx := dashtest.NewTab(t, chromium, 1440, 900)
	model := "#" + elemID("d", "echo\x00model")
	echo := "#" + elemID("a", "echo")

	// confirm() dialogs (token rotation) are accepted.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	// Script errors and Content-Security-Policy violations fail the test at its end.
	// (Refused requests log network errors; those are expected.)
	var consoleMu sync.Mutex // guards problems
	var problems []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
				consoleMu.Lock()
				problems = append(problems, fmt.Sprintf("%s %s at %s:%d", m.Type, m.Text, m.URL, m.Line))
				consoleMu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, p := range problems {
			t.Errorf("the browser console reported: %s", p)
		}
	})

	// Each step builds on the one before: stop at the first that fails.
	step := func(name string, fn func(t *testing.T)) {
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}

	step("a wrong admin token is refused", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(srv.URL+"/serve"))
		waitJS(t, ctx, "a stranger is sent to the login page", `location.pathname === "/login"`)
		do(t, ctx,
			chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		)
		waitJS(t, ctx, "the login page says the token is wrong",
			`(document.querySelector("#login-error") || {}).textContent === "That is not the admin token."`)
		if got := eval[string](t, ctx, `location.pathname`); got != "/login" {
			t.Fatalf("after a wrong token the browser is at %s, want /login", got)
		}
	})

	step("log in and see the applications and their replicas", func(t *testing.T) {
		do(t, ctx,
			chromedp.SendKeys(chromedp.ID("token"), testAdminToken),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		)
		waitJS(t, ctx, "the Serve page shows", `location.pathname === "/serve" && !!document.querySelector("h1")`)
		text := eval[string](t, ctx, `document.body.innerText`)
		for _, want := range []string{"echo", "files", "/echo", "/files", "model", "static", "r-echo-1", "r-echo-2", "r-files-1", "4101", "RUNNING", "HEALTHY"} {
			if !strings.Contains(text, want) {
				t.Errorf("the page does not show %q", want)
			}
		}
		waitJS(t, ctx, "live updates are on", `document.querySelector("#live .live-text").textContent === "Live"`)
	})

	// ongoing reads the Ongoing cell of a replica's row.
	ongoing := func(id string) string {
		return `(() => {
  for (const tr of document.querySelectorAll(".table-replicas tbody tr")) {
    const c = tr.querySelector("code");
    if (c && c.textContent === ` + jsString(id) + `) return tr.querySelector('td[data-label="Ongoing"]').textContent;
  }
  return "no row";
})()`
	}

	step("see each deployment's mode and each replica's ongoing requests", func(t *testing.T) {
		modes := map[string]string{ // selector → the mode it shows
			`section[data-app="echo"] .app-title .chip-mode`:                        "external",
			`section[data-app="files"] .app-title .chip-mode`:                       "fixed",
			`section[data-app="ranker"] .app-title .chip-mode`:                      "autoscaling",
			`article[data-app="echo"][data-dep="model"] .dep-header .chip-mode`:     "external",
			`article[data-app="echo"][data-dep="tokenizer"] .dep-header .chip-mode`: "external",
			`article[data-app="ranker"][data-dep="model"] .dep-header .chip-mode`:   "autoscaling",
			`article[data-app="files"][data-dep="static"] .dep-header .chip-mode`:   "fixed",
		}
		for sel, want := range modes {
			if got := eval[string](t, ctx, `(document.querySelector(`+jsString(sel)+`) || {textContent: "none"}).textContent`); got != want {
				t.Errorf("%s shows %q, want %q", sel, got, want)
			}
		}
		ranker := `article[data-app="ranker"][data-dep="model"]`
		if got, want := eval[string](t, ctx, `document.querySelector(`+jsString(ranker+" .autoscaler")+`).textContent`), "Autoscaler wants 2 · 3.5 ongoing on average · 1 queued"; got != want {
			t.Errorf("the autoscaling deployment shows %q, want %q", got, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll(`+jsString(ranker+" form.scale")+`).length`); n != 0 {
			t.Errorf("the autoscaling deployment has %d scale controls, want none", n)
		}
		if got := eval[string](t, ctx, `document.querySelector(`+jsString(ranker+" .table-replicas thead")+`).textContent`); !strings.Contains(got, "Ongoing") {
			t.Errorf("the replicas table has no Ongoing column: %q", got)
		}
		for id, want := range map[string]string{"r-echo-1": "3", "r-echo-2": "1", "r-tok-1": "0"} {
			if got := eval[string](t, ctx, ongoing(id)); got != want {
				t.Errorf("replica %s shows %s ongoing requests, want %s", id, got, want)
			}
		}
		load.set("r-echo-2", 7)
		waitJS(t, ctx, "r-echo-2 shows its 7 ongoing requests", ongoing("r-echo-2")+` === "7"`)
	})

	step("reveal and copy the token", func(t *testing.T) {
		value := echo + " .token-value"
		if got := eval[string](t, ctx, `document.querySelector(`+jsString(value)+`).textContent`); strings.Contains(got, "shoal_app") {
			t.Fatalf("the token is visible before Show: %q", got)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(echo+` [data-action="show-token"]`)))
		waitJS(t, ctx, "the token shows", `document.querySelector(`+jsString(value)+`).textContent === "shoal_app_first_secret_0001"`)

		origin := srv.URL
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
				Setting:    browser.PermissionSettingGranted, Origin: origin,
			}); err != nil {
				t.Fatalf("granting %s: %v", name, err)
			}
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(echo+` [data-action="copy-token"]`)))
		waitJS(t, ctx, "the page says the token was copied", `document.querySelector("#toast").textContent === "Token of echo copied"`)
		if got := eval[string](t, ctx, `navigator.clipboard.readText()`); got != "shoal_app_first_secret_0001" {
			t.Fatalf("the clipboard holds %q, want the token", got)
		}

		// The webhook snippets carry the real token once it is shown.
		snippet := eval[string](t, ctx, `document.querySelector(`+jsString(model+"-curl")+`).textContent`)
		for _, want := range []string{"curl -X POST " + "http://127.0.0.1:8000/api/v1/applications/echo/deployments/model/scale", "Bearer shoal_app_first_secret_0001"} {
			if !strings.Contains(snippet, want) {
				t.Errorf("the curl snippet %q lacks %q", snippet, want)
			}
		}

		// Open the snippets and copy the curl lines, as a person would.
		do(t, ctx, chromedp.Click(chromedp.CSS(model+" details.snippets summary")))
		byName(t, ctx, "button", "Copy the curl command for echo/model", `function () { this.click() }`)
		waitJS(t, ctx, "the page says the snippet was copied", `document.querySelector("#toast").textContent === "Copied, with the token of echo"`)
		want := `curl -X POST http://127.0.0.1:8000/api/v1/applications/echo/deployments/model/scale \
  -H "Authorization: Bearer shoal_app_first_secret_0001" \
  -H "Content-Type: application/json" \
  -d '{"target_num_replicas": 2}'`
		if got := eval[string](t, ctx, `navigator.clipboard.readText()`); got != want {
			t.Fatalf("the clipboard holds\n%s\nwant\n%s", got, want)
		}
	})

	step("rotate the token after confirming", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS(echo+` [data-action="rotate-token"]`)))
		waitJS(t, ctx, "the new token shows", `document.querySelector(`+jsString(echo+" .token-value")+`).textContent === "shoal_app_rotated_secret_0001"`)
		waitJS(t, ctx, "the new token's id shows", `document.querySelector(`+jsString(echo+"-tokmeta")+`).textContent.includes("app:echo#2")`)
		if tok, _ := f.AppToken("echo"); tok.Secret != "shoal_app_rotated_secret_0001" {
			t.Fatalf("the controller's token is %q, want it rotated", tok.Secret)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(echo+` [data-action="show-token"]`)))
		waitJS(t, ctx, "the token hides again", `document.querySelector(`+jsString(echo+" .token-value")+`).dataset.masked === "true"`)

		// With the token hidden the snippet shows a placeholder; its copy still holds
		// the (new) token.
		if got := eval[string](t, ctx, `document.querySelector(`+jsString(model+"-py")+`).textContent`); !strings.Contains(got, "Bearer $SHOAL_TOKEN") {
			t.Errorf("the hidden token shows in the Python snippet:\n%s", got)
		}
		eval[bool](t, ctx, `(() => { document.querySelector("#toast").textContent = ""; return true })()`)
		byName(t, ctx, "button", "Copy the Python code for echo/model", `function () { this.click() }`)
		waitJS(t, ctx, "the page says the snippet was copied", `document.querySelector("#toast").textContent === "Copied, with the token of echo"`)
		got := eval[string](t, ctx, `navigator.clipboard.readText()`)
		for _, want := range []string{`"Bearer shoal_app_rotated_secret_0001"`, `json={"target_num_replicas": 2}`} {
			if !strings.Contains(got, want) {
				t.Errorf("the copied Python code lacks %s:\n%s", want, got)
			}
		}
	})

	step("scale from the control and watch the page follow", func(t *testing.T) {
		if got, want := eval[string](t, ctx, dashtest.ChartNow(model+"-chart")), "label target 2, running 2; lines target 2, running 2"; got != want {
			t.Fatalf("before scaling the chart shows %q, want %q", got, want)
		}
		input := model + "-n"
		// Select the field's text and type over it, as a person would.
		eval[bool](t, ctx, `(() => { const i = document.querySelector(`+jsString(input)+`); i.focus(); i.select(); return true })()`)
		do(t, ctx,
			chromedp.KeyEvent("4"),
			chromedp.Click(chromedp.CSS(model+` form.scale button[type=submit]`)),
		)
		waitJS(t, ctx, "the control shows the answer", `document.querySelector(`+jsString(model+" .scale-result")+`).textContent === "Target set to 4 (was 2)."`)
		call, n := f.lastSet()
		if n != 1 || call != (setCall{"echo", "model", 4, controller.SourceWebhook}) {
			t.Fatalf("the controller got %d calls, the last %+v; want one webhook target of 4 for echo/model", n, call)
		}
		waitJS(t, ctx, "the target shows 4", `document.querySelector(`+jsString(model+` [data-field="target"]`)+`).textContent === "4"`)

		f.setRunning("echo", "model", 4, time.Now())
		waitJS(t, ctx, "the running count shows 4", `document.querySelector(`+jsString(model+` [data-field="running"]`)+`).textContent === "4"`)
		waitJS(t, ctx, "the fourth replica is listed", `document.querySelector(`+jsString(model+"-replicas")+`).textContent.includes("r-echo-4")`)
		waitJS(t, ctx, "the chart ends at target 4, running 4",
			dashtest.ChartNow(model+"-chart")+` === "label target 4, running 4; lines target 4, running 4"`)
		waitJS(t, ctx, "the scale call is in the audit table", `document.querySelector(`+jsString(model+"-audit tbody tr")+`).textContent.includes("2 → 4")`)

	})

	step("show a replica's log", func(t *testing.T) {
		do(t, ctx, chromedp.Click(chromedp.CSS(model+` button[data-replica="r-echo-1"]`)))
		waitJS(t, ctx, "the log shows", `document.querySelector(`+jsString(model+" .logs-text")+`).textContent === `+jsString(logText))
		// The log stays open for the layout check.
	})

	step("every control is named for its deployment or replica", func(t *testing.T) {
		// Closed snippets are hidden from screen readers too; open them all.
		eval[bool](t, ctx, `(() => { document.querySelectorAll("details.snippets").forEach(d => d.open = true); return true })()`)
		seen := map[string]int{}
		for _, n := range axButtons(t, ctx) {
			seen[n.role+" "+n.name]++
		}
		for name, n := range seen {
			if n > 1 {
				t.Errorf("%d controls are named %q: a screen reader cannot tell them apart", n, name)
			}
		}
		for _, bare := range []string{"Scale", "Refresh", "Log", "Copy", "Show", "Rotate", ""} {
			if seen["button "+bare] > 0 {
				t.Errorf("a button is named just %q", bare)
			}
		}
		for _, want := range []string{
			"button Scale echo/model", "button Scale echo/tokenizer",
			"spinbutton Target replicas of echo/model (0–10)", "spinbutton Target replicas of echo/tokenizer (0–4)",
			"button Copy the curl command for echo/model", "button Copy the curl command for echo/tokenizer",
			"button Show the log of replica r-echo-1", "button Show the log of replica r-rank-1",
			"button Refresh the log of replica r-echo-1", "button Close the log of replica r-echo-1",
		} {
			if seen[want] != 1 {
				t.Errorf("no control is named %q", want)
			}
		}
		eval[bool](t, ctx, `(() => { document.querySelectorAll("details.snippets").forEach(d => d.open = false); return true })()`)

		// Scale the other deployment by its names alone.
		byName(t, ctx, "spinbutton", "Target replicas of echo/tokenizer (0–4)", `function () { this.focus(); this.select() }`)
		do(t, ctx, chromedp.KeyEvent("3"))
		byName(t, ctx, "button", "Scale echo/tokenizer", `function () { this.click() }`)
		waitJS(t, ctx, "tokenizer's control shows the answer",
			`document.querySelector('article[data-dep="tokenizer"] .scale-result').textContent === "Target set to 3 (was 1)."`)
		if call, _ := f.lastSet(); call != (setCall{"echo", "tokenizer", 3, controller.SourceWebhook}) {
			t.Fatalf("the last scale call was %+v, want echo/tokenizer to 3", call)
		}

		// Refresh the open log by its name: it shows what the replica wrote since.
		more := logText + "GET /echo/again 200 0.9ms\n"
		if err := os.WriteFile(filepath.Join(logDir, "echo", "model", "r-echo-1.log"), []byte(more), 0o644); err != nil {
			t.Fatal(err)
		}
		byName(t, ctx, "button", "Refresh the log of replica r-echo-1", `function () { this.click() }`)
		waitJS(t, ctx, "the refreshed log shows", `document.querySelector(`+jsString(model+" .logs-text")+`).textContent === `+jsString(more))
	})

	// The README's pictures are of a real shoal (test/e2e); here the lived-in page only
	// has to fit both widths.
	step("the page fits a phone and a wide monitor", func(t *testing.T) {
		widths := []struct {
			width, height int64
			scale         float64
			mobile        bool
		}{
			{375, 812, 2, true},
			{1440, 900, 1, false},
		}
		for _, w := range widths {
			opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(w.scale)}
			if w.mobile {
				opts = append(opts, chromedp.EmulateMobile)
			}
			do(t, ctx, chromedp.EmulateViewport(w.width, w.height, opts...))
			waitJS(t, ctx, "the layout settles", `window.innerWidth === `+strconv.FormatInt(w.width, 10))
			if got := eval[int](t, ctx, `document.documentElement.scrollWidth`); got > int(w.width) {
				t.Errorf("at %d px the page is %d px wide: it scrolls sideways", w.width, got)
			}
		}
		do(t, ctx, chromedp.EmulateViewport(1440, 900))
	})

	step("a target over the deployment's limit shows the API's error", func(t *testing.T) {
		input := model + "-n"
		eval[bool](t, ctx, `(() => { const i = document.querySelector(`+jsString(input)+`); i.focus(); i.select(); return true })()`)
		do(t, ctx,
			chromedp.KeyEvent("11"),
			chromedp.Click(chromedp.CSS(model+` form.scale button[type=submit]`)),
		)
		waitJS(t, ctx, "the control shows the error", `document.querySelector(`+jsString(model+" .scale-result")+`).textContent === "target is above the replica_limit"`)
	})

	step("a cross-site POST without the header is refused", func(t *testing.T) {
		_, sets := f.lastSet()
		// From the dashboard's own origin, with the cookie but without the header.
		status := eval[int](t, ctx, `fetch(`+jsString(scaleURL)+`, {method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/json"}, body: '{"target_num_replicas": 7}'}).then(r => r.status)`)
		if status != http.StatusForbidden {
			t.Errorf("a POST with the cookie but no header answered %d, want 403", status)
		}
		// From another site, by a form that submits itself.
		do(t, ctx, chromedp.Navigate(evilURL))
		waitJS(t, ctx, "the form was posted to shoal", `location.href === `+jsString(scaleURL))
		waitJS(t, ctx, "shoal refused it", `document.body.innerText.includes("invalid token")`)
		if _, after := f.lastSet(); after != sets {
			t.Fatalf("the controller got %d scale calls from the refused posts", after-sets)
		}
	})

	step("sign out", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(srv.URL+"/serve"))
		waitJS(t, ctx, "the Serve page shows", `location.pathname === "/serve"`)
		do(t, ctx, chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)))
		waitJS(t, ctx, "the login page shows", `location.pathname === "/login"`)
		do(t, ctx, chromedp.Navigate(srv.URL+"/serve"))
		waitJS(t, ctx, "the Serve page needs a new login", `location.pathname === "/login"`)
		res, err := http.Get(srv.URL + "/dashboard/api/state")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("the state without a session answered %d, want 401", res.StatusCode)
		}
	})
}
