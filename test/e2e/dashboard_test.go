package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/internal/dashboard/dashtest"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// tab drives one browser tab for a test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

const browserStep = 15 * time.Second

func (b tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b tab) str(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func (b tab) num(expr string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds.
func (b tab) wait(timeout time.Duration, what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, browserStep)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 2000)`))
			b.t.Fatalf("after %v, still waiting until %s (%s; last error %v); the page:\n%s", timeout, what, expr, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// q quotes a string for JavaScript.
func q(s string) string { return strconv.Quote(s) }

// screenshotsToDocs reports whether the test writes the README's pictures of the
// dashboard into docs/ (SHOAL_SCREENSHOTS=1) rather than into a temp dir.
func screenshotsToDocs() bool { return os.Getenv("SHOAL_SCREENSHOTS") == "1" }

// screenshots takes the page at a phone's width and at a wide monitor's, full length.
// Each must be a PNG as wide as its viewport (times the phone's pixel ratio), and the
// page must not scroll sideways at either width.
func (b tab) screenshots() {
	b.t.Helper()
	dir := b.t.TempDir()
	if screenshotsToDocs() {
		dir = filepath.Join(bin.root, "docs")
	}
	shots := []struct {
		name          string
		width, height int64
		scale         float64
		mobile        bool
	}{
		{"dashboard-narrow.png", 375, 812, 2, true},
		{"dashboard-wide.png", 1440, 900, 1, false},
	}
	b.wait(10*time.Second, "no message covers the page", `!document.querySelector("#toast").classList.contains("is-visible")`)
	b.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 0, 0)) // no hover effect in the pictures
	for _, s := range shots {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(s.scale)}
		if s.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		b.do(chromedp.EmulateViewport(s.width, s.height, opts...))
		b.wait(10*time.Second, "the layout settles", `window.innerWidth === `+strconv.FormatInt(s.width, 10))
		if w := b.num(`document.documentElement.scrollWidth`); w > int(s.width) {
			b.t.Errorf("at %d px the page is %d px wide: it scrolls sideways", s.width, w)
		}
		ctx, cancel := context.WithTimeout(b.ctx, browserStep)
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("taking %s: %v", s.name, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil {
			b.t.Fatalf("%s is not a PNG: %v", s.name, err)
		}
		if want := int(float64(s.width) * s.scale); cfg.Width != want || cfg.Height < int(s.height) {
			b.t.Errorf("%s is %d×%d px, want %d px wide and at least a screen (%d px) tall", s.name, cfg.Width, cfg.Height, want, s.height)
		}
		if err := os.WriteFile(filepath.Join(dir, s.name), img, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("saved %s (%d×%d)", filepath.Join(dir, s.name), cfg.Width, cfg.Height)
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

// quickstartConfig is examples/quickstart/serve.yaml as `make run` starts it, with only
// what ties it to one checkout changed: the proxy port (a free one, so the test runs
// beside a `make run`), the replica binary (the one TestMain built, not bin/replica)
// and the working directories (absolute, as the file sits in a temp dir). Each edit
// must match exactly once, so a change to the quickstart that these edits no longer
// fit fails here instead of testing a different config.
func quickstartConfig(t *testing.T, proxyPort int) string {
	t.Helper()
	dir := filepath.Join(bin.root, "examples", "quickstart")
	cfg := readFile(t, filepath.Join(dir, "serve.yaml"))
	for _, e := range []struct{ old, new string }{
		{"\n  port: 8000\n", fmt.Sprintf("\n  port: %d\n", proxyPort)},
		{`command: ["./bin/replica"]`, fmt.Sprintf("command: [%q]", bin.replica)},
		{"working_dir: ../..\n", fmt.Sprintf("working_dir: %q\n", bin.root)},
		{"working_dir: .\n", fmt.Sprintf("working_dir: %q\n", dir)},
	} {
		if n := strings.Count(cfg, e.old); n != 1 {
			t.Fatalf("examples/quickstart/serve.yaml holds %q %d times, want once: update quickstartConfig to the file", e.old, n)
		}
		cfg = strings.Replace(cfg, e.old, e.new, 1)
	}
	return writeFile(t, t.TempDir(), "serve.yaml", cfg)
}

// scaleWith calls the webhook on the proxy port with token and returns the status.
func scaleWith(t *testing.T, s *shoal, token string, n int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.proxyURL()+"/api/v1/applications/echo/deployments/model/scale",
		bytes.NewReader([]byte(fmt.Sprintf(`{"target_num_replicas": %d}`, n))))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTheDashboardShowsAndSteersARealShoal drives the dashboard of a real shoal with
// real replicas in chromium: login, the Serve page, the token, scaling, a replica's log,
// the layout at two widths (the README's pictures) and the guards.
func TestTheDashboardShowsAndSteersARealShoal(t *testing.T) {
	path := dashtest.Chromium(t)
	_, err := exec.LookPath("python3")
	needTool(t, "python3 (the quickstart's file server)", err == nil)

	proxyPort := freePort(t)
	if screenshotsToDocs() {
		// The pictures in the README show the proxy where `make run` puts it.
		proxyPort = 8000
		ln, err := net.Listen("tcp", "127.0.0.1:8000")
		if err != nil {
			t.Fatalf("SHOAL_SCREENSHOTS=1 runs the quickstart on its own port 8000, which is taken (%v); stop what listens there (make run?) and run again", err)
		}
		ln.Close()
	}
	s := startShoal(t, startOptions{config: quickstartConfig(t, proxyPort), proxyPort: proxyPort})
	s.running("echo", "model", 2)
	s.running("files", "static", 1)

	b := tab{t: t, ctx: dashtest.NewTab(t, path, 1280, 900)}
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	// For the README's pictures each count holds a while, so the chart shows steps
	// rather than one jump at its right edge. Time passing is the point, not a wait for
	// a condition; a normal run does not pause.
	pace := func() {
		if screenshotsToDocs() {
			time.Sleep(15 * time.Second)
		}
	}
	echo := `.token-panel[data-app="echo"]`
	model := `article.dep[data-app="echo"][data-dep="model"]`
	running := func() string { return `document.querySelector(` + q(model+` [data-field="running"]`) + `).textContent` }

	// A wrong admin token is refused.
	b.do(chromedp.Navigate(s.controlURL() + "/"))
	b.wait(10*time.Second, "the login page shows", `location.pathname === "/login"`)
	b.do(chromedp.SendKeys(chromedp.ID("token"), "0000"), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.wait(10*time.Second, "the wrong token is refused", `!!document.querySelector("#login-error")`)

	// Log in and see both applications and their replicas.
	b.do(chromedp.SendKeys(chromedp.ID("token"), s.token()), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.wait(10*time.Second, "the Serve page shows", `location.pathname === "/serve"`)
	text := b.str(`document.body.innerText`)
	for app, a := range s.status().Applications {
		if !strings.Contains(text, app) || !strings.Contains(text, a.RoutePrefix) {
			t.Errorf("the page does not show application %s at %s", app, a.RoutePrefix)
		}
		for _, d := range a.Deployments {
			for _, r := range d.Replicas {
				if !strings.Contains(text, r.ID) || !strings.Contains(text, strconv.Itoa(r.PID)) {
					t.Errorf("the page does not show replica %s (pid %d) of %s/%s", r.ID, r.PID, app, d.Name)
				}
			}
		}
	}

	// Reveal and copy the token, and scale with it from a real HTTP client.
	b.do(chromedp.Click(chromedp.CSS(echo + ` [data-action="show-token"]`)))
	b.wait(10*time.Second, "the token shows", `document.querySelector(`+q(echo+" .token-value")+`).dataset.masked === "false"`)
	shown := b.str(`document.querySelector(` + q(echo+" .token-value") + `).textContent`)
	cliToken, _, _ := s.cli("token", "echo")
	if shown != strings.TrimSpace(cliToken) {
		t.Fatalf("the page shows token %q, shoal token echo prints %q", shown, cliToken)
	}
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: s.controlURL(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	b.do(chromedp.Click(chromedp.CSS(echo + ` [data-action="copy-token"]`)))
	b.wait(10*time.Second, "the token is copied", `document.querySelector("#toast").textContent.includes("copied")`)
	copied := b.str(`navigator.clipboard.readText()`)
	if copied != shown {
		t.Fatalf("the clipboard holds %q, want the token", copied)
	}
	pace()
	if code := scaleWith(t, s, copied, 3); code != http.StatusOK {
		t.Fatalf("scaling with the copied token answered %d, want 200", code)
	}
	s.running("echo", "model", 3)
	b.wait(20*time.Second, "the page shows 3 running", running()+` === "3"`)
	pace()

	// Copy the page's curl lines for the webhook and run them as they are. They carry
	// the token shown and the target the page was loaded with (2).
	_, err = exec.LookPath("curl")
	needTool(t, "curl (to run the dashboard's webhook snippet)", err == nil)
	b.do(chromedp.Click(chromedp.CSS(model + " details.snippets summary")))
	b.do(chromedp.Click(chromedp.CSS(model + ` [data-action="copy-snippet"][data-snippet$="-curl"]`)))
	b.wait(10*time.Second, "the snippet is copied", `document.querySelector("#toast").textContent === "Copied, with the token of echo"`)
	snippet := b.str(`navigator.clipboard.readText()`)
	for _, want := range []string{s.proxyURL() + "/api/v1/applications/echo/deployments/model/scale", "Bearer " + shown, `"target_num_replicas": 2`} {
		if !strings.Contains(snippet, want) {
			t.Fatalf("the copied snippet lacks %q:\n%s", want, snippet)
		}
	}
	// curl reads $CURL_HOME/.curlrc: there it is told to print the status code after
	// the body, so the copied lines run unchanged.
	curlHome := t.TempDir()
	writeFile(t, curlHome, ".curlrc", "silent\nshow-error\nwrite-out = \"\\n%{http_code}\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	sh := exec.CommandContext(ctx, "sh", "-c", snippet)
	sh.Env = append(cleanEnv(), "CURL_HOME="+curlHome)
	out, err := sh.CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("running the copied snippet: %v\n%s", err, out)
	}
	answer := strings.TrimSpace(string(out))
	body, code := answer[:max(strings.LastIndexByte(answer, '\n'), 0)], answer[strings.LastIndexByte(answer, '\n')+1:]
	if code != "200" || !strings.Contains(body, `"previous_target_num_replicas":3`) {
		t.Fatalf("the copied snippet answered %s %s, want 200 with the previous target 3", code, body)
	}
	s.running("echo", "model", 2)
	b.wait(20*time.Second, "the page shows 2 running", running()+` === "2"`)
	pace()

	// Rotate it: the old token is refused at once, the new one works.
	b.do(chromedp.Click(chromedp.CSS(echo + ` [data-action="rotate-token"]`)))
	b.wait(10*time.Second, "the new token shows", `document.querySelector(`+q(echo+" .token-value")+`).textContent !== `+q(shown))
	rotated := b.str(`document.querySelector(` + q(echo+" .token-value") + `).textContent`)
	if code := scaleWith(t, s, shown, 4); code != http.StatusForbidden {
		t.Errorf("the old token answered %d after rotation, want 403", code)
	}
	pace()
	if code := scaleWith(t, s, rotated, 4); code != http.StatusOK {
		t.Errorf("the new token answered %d, want 200", code)
	}
	s.running("echo", "model", 4)
	b.wait(10*time.Second, "the chart ends at target 4, running 4",
		dashtest.ChartNow(model+" .chart")+` === "label target 4, running 4; lines target 4, running 4"`)
	pace()

	// Scale from the control and watch the running count and the chart follow.
	b.str(`(() => { const i = document.querySelector(` + q(model+" form.scale input") + `); i.focus(); i.select(); return "" })()`)
	b.do(chromedp.KeyEvent("2"), chromedp.Click(chromedp.CSS(model+` form.scale button[type=submit]`)))
	b.wait(10*time.Second, "the control shows the answer", `document.querySelector(`+q(model+" .scale-result")+`).textContent === "Target set to 2 (was 4)."`)
	pids := s.running("echo", "model", 2)
	b.wait(20*time.Second, "the page shows 2 running", running()+` === "2"`)
	b.wait(10*time.Second, "the chart ends at target 2, running 2",
		dashtest.ChartNow(model+" .chart")+` === "label target 2, running 2; lines target 2, running 2"`)
	pace()

	// A replica's log is the real process's output.
	var first replicaDetails
	for _, r := range s.status().Applications["echo"].Deployments["model"].Replicas {
		if r.PID == pids[0] {
			first = r
		}
	}
	b.do(chromedp.Click(chromedp.CSS(model + ` button[data-action="logs"][data-replica=` + q(first.ID) + `]`)))
	b.wait(10*time.Second, "the replica's log shows", `document.querySelector(`+q(model+" .logs-text")+`).textContent.includes(`+q("replica "+first.ID+" of echo/model listening on")+`)`)

	// Pictures of the page as it is now, with the token hidden again.
	b.do(chromedp.Click(chromedp.CSS(echo + ` [data-action="show-token"]`)))
	b.wait(10*time.Second, "the token hides", `document.querySelector(`+q(echo+" .token-value")+`).dataset.masked === "true"`)
	b.screenshots()

	// A POST with the session cookie but without the dashboard's header is refused,
	// from the page itself and from another site's form.
	scaleURL := s.controlURL() + "/api/v1/applications/echo/deployments/model/scale"
	status := b.num(`fetch(` + q(scaleURL) + `, {method: "POST", credentials: "same-origin",
		headers: {"Content-Type": "application/json"}, body: '{"target_num_replicas": 4}'}).then(r => r.status)`)
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("a POST without the header answered %d, want 401 or 403", status)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s" enctype="text/plain">
<input type="hidden" name='{"target_num_replicas": 4, "pad": "' value='"}'></form>
<script>document.getElementById("f").submit()</script>`, scaleURL)
	}))
	defer evil.Close()
	b.do(chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)))
	b.wait(10*time.Second, "the form was posted to shoal", `location.href === `+q(scaleURL))
	b.wait(10*time.Second, "shoal answered with an error", `document.body.innerText.includes("error")`)
	if got := s.status().Applications["echo"].Deployments["model"].Target; got != 2 {
		t.Fatalf("the target is %d after the refused posts, want 2", got)
	}
}
