// Package dashtest drives the dashboard in a real headless Chromium: for the
// dashboard's own browser tests (against a fake controller) and for the end-to-end
// test against a running shoal. Only tests import it.
package dashtest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium returns the browser the tests drive: $SHOAL_CHROMIUM, else Debian's
// chromium. Under CI=true a missing browser fails the test (make deps installs it); on
// a developer machine the test skips and says so.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, c := range []string{os.Getenv("SHOAL_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing; CI must have it (apt-get install chromium, or make deps)")
	}
	t.Skip("chromium is missing on this machine; skipped (it fails under CI=true); apt-get install chromium, make deps, or set SHOAL_CHROMIUM")
	return ""
}

// NewTab starts a headless chromium at path, with a window of width × height, for the
// test, and returns a tab's context; both end with the test. The flags keep Chromium
// off the network it would otherwise call at every start.
func NewTab(t testing.TB, path string, width, height int) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}

// ChartNow is a JavaScript expression for the counts the chart in the element sel
// shows at its right edge, read two ways: from its accessible name ("now target T,
// running R") and from the heights where its target and running lines end, turned into
// counts through the gridlines' labels. It reads "label target T, running R; lines
// target T, running R". The path data alone is no test: it changes every second, as
// the time axis moves.
func ChartNow(sel string) string {
	return `(() => {
  const svg = document.querySelector(` + strconv.Quote(sel+" .chart-svg") + `);
  if (!svg) return "no chart";
  const m = /now (target \d+, running \d+)/.exec(svg.getAttribute("aria-label") || "");
  const ys = [...svg.querySelectorAll("line.grid")].map(l => Number(l.getAttribute("y1")));
  const vs = [...svg.querySelectorAll("text.axis-y")].map(t => Number(t.textContent));
  const end = (cls) => {
    const p = svg.querySelector("path." + cls);
    if (!p || ys.length < 2) return "none";
    let y = NaN;
    for (const seg of p.getAttribute("d").match(/[MHV][^MHV]*/g)) {
      const n = seg.slice(1).trim().split(/\s+/).map(Number);
      if (seg[0] === "M") y = n[1];
      if (seg[0] === "V") y = n[0];
    }
    return Math.round(vs[0] + (y - ys[0]) * (vs[1] - vs[0]) / (ys[1] - ys[0]));
  };
  return "label " + (m ? m[1] : "none") + "; lines target " + end("line-target") + ", running " + end("line-running");
})()`
}
