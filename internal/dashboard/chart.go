package dashboard

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"shoal/internal/store"
)

// The chart is two nested SVGs. The outer one is sized by CSS (the card's width, a
// fixed height) and uses pixels, so its text is never stretched; the inner one holds the
// lines in a 1000×plotHeight box stretched to the card's width (preserveAspectRatio
// none) with non-scaling strokes. Its y axis is in pixels too, so only time is stretched.
const (
	plotWidth  = 1000.0
	plotHeight = 128.0
	plotTop    = 10.0  // where the inner SVG starts in the outer one
	yZero      = 122.0 // inner y of the value 0
	yTop       = 14.0  // inner y of the highest gridline
	// minChartSpan is the narrowest time span drawn, so a fresh deployment's first
	// seconds are not stretched over the whole width.
	minChartSpan = 2 * time.Minute
)

type chartView struct {
	Label       string // the accessible description of the whole chart
	Empty       bool
	Grid        []gridLine
	XLabels     []xLabel
	TargetLine  string // SVG path data
	RunningLine string
	RunningArea string
	Events      []chartEvent
}

type gridLine struct {
	Y      float64 // inner y
	LabelY float64 // outer y of the label's baseline
	Label  string
}

type xLabel struct {
	X      string // a percentage of the width
	Anchor string // text-anchor
	Text   string
}

type chartEvent struct {
	X, Y  float64
	OK    bool
	Title string
}

// buildChart draws samples and audit entries over the span ending at now. span is
// clamped to [minChartSpan, historyWindow]. name is the deployment as the chart's
// accessible name calls it ("app/deployment", as deployment names repeat across
// applications).
func buildChart(name string, samples []sample, audit []store.AuditEntry, span time.Duration, now time.Time) chartView {
	span = min(max(span, minChartSpan), historyWindow)
	// Round the span up to whole minutes so the axis labels read well.
	span = ((span + time.Minute - 1) / time.Minute) * time.Minute
	start := now.Add(-span)
	xOf := func(t time.Time) float64 {
		x := float64(t.Sub(start)) / float64(span) * plotWidth
		return math.Max(0, math.Min(plotWidth, x))
	}

	c := chartView{Empty: len(samples) == 0}
	top := 1
	for _, s := range samples {
		top = max(top, s.target, s.running)
	}
	for _, e := range audit {
		if e.Status == 200 && !e.Time.Before(start) {
			top = max(top, e.To)
		}
	}
	step := niceStep(top)
	top = (top + step - 1) / step * step
	yOf := func(v int) float64 { return yZero - float64(v)/float64(top)*(yZero-yTop) }
	for v := 0; v <= top; v += step {
		y := yOf(v)
		c.Grid = append(c.Grid, gridLine{Y: y, LabelY: plotTop + y - 3, Label: strconv.Itoa(v)})
	}

	c.XLabels = []xLabel{
		{X: "0%", Anchor: "start", Text: ago(span)},
		{X: "50%", Anchor: "middle", Text: ago(span / 2)},
		{X: "100%", Anchor: "end", Text: "now"},
	}

	if len(samples) > 0 {
		var target, running strings.Builder
		x0 := xOf(samples[0].t)
		fmt.Fprintf(&target, "M%.1f %.1f", x0, yOf(samples[0].target))
		fmt.Fprintf(&running, "M%.1f %.1f", x0, yOf(samples[0].running))
		for _, s := range samples[1:] {
			x := xOf(s.t)
			fmt.Fprintf(&target, "H%.1fV%.1f", x, yOf(s.target))
			fmt.Fprintf(&running, "H%.1fV%.1f", x, yOf(s.running))
		}
		// The last value holds until now.
		fmt.Fprintf(&target, "H%.1f", plotWidth)
		fmt.Fprintf(&running, "H%.1f", plotWidth)
		c.TargetLine, c.RunningLine = target.String(), running.String()
		c.RunningArea = fmt.Sprintf("%sV%.1fH%.1fZ", c.RunningLine, yZero, x0)
	}

	events := 0
	for _, e := range audit {
		if e.Time.Before(start) || e.Time.After(now) {
			continue
		}
		events++
		ev := chartEvent{X: xOf(e.Time), Y: yZero, OK: e.Status == 200, Title: auditTitle(e)}
		if ev.OK && e.To >= 0 {
			ev.Y = yOf(e.To)
		}
		c.Events = append(c.Events, ev)
	}

	c.Label = fmt.Sprintf("Target and running replicas of %s over the last %s", name, spanText(span))
	if n := len(samples); n > 0 {
		c.Label += fmt.Sprintf("; now target %d, running %d", samples[n-1].target, samples[n-1].running)
	}
	c.Label += fmt.Sprintf("; %d scale %s.", events, plural(events, "event", "events"))
	return c
}

// niceStep picks the gridline step for values up to top: every integer up to 5, then
// 1, 2 or 5 times a power of ten giving 3 to 6 lines.
func niceStep(top int) int {
	if top <= 5 {
		return 1
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{1, 2, 5} {
			if (top+m*p-1)/(m*p) <= 5 {
				return m * p
			}
		}
	}
}

func ago(d time.Duration) string { return spanText(d) + " ago" }

func spanText(d time.Duration) string {
	if d < 2*time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return fmt.Sprintf("%d min", int(d.Minutes()))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func auditTitle(e store.AuditEntry) string {
	tok := e.TokenID
	if tok == "" {
		tok = "no token"
	}
	return fmt.Sprintf("%s · %s → %s · %s · %s", e.Time.Format("15:04:05"), count(e.From), count(e.To), tok, e.Result)
}

// count shows a replica count of the audit log, where -1 means unknown.
func count(n int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n)
}
