package chaos

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what a run did and saw, written as summary.md, samples.csv and
// resources.svg by -chaos.out, and logged after every run.
type report struct {
	seed                uint64
	duration, faultsEnd time.Duration
	converged           time.Duration
	steps               int
	clients             int
	replay              string
	stepKinds           map[string]int
	faults              []fault
	failures            []*failure
	badCodes            map[int]int
	ok                  int64
	okByApp             []string
	sentZero, served0   int64
	samples             []sample
	notes               []string
}

func (r report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Chaos run, seed %d\n\n", r.seed)
	fmt.Fprintf(&b, "- Faults for %v (%d steps), %d keep-alive clients through the proxy; every status HEALTHY/RUNNING %v after the faults stopped.\n",
		r.duration, r.steps, r.clients, r.converged.Round(time.Millisecond))
	fmt.Fprintf(&b, "- Replay: `%s`\n", r.replay)
	fmt.Fprintf(&b, "- Requests served: **%d** (%s); %d sent while their application was scaled to 0, %d of them served once replicas returned.\n",
		r.ok, strings.Join(r.okByApp, ", "), r.sentZero, r.served0)
	fmt.Fprintf(&b, "- Failed requests: **%d**, every one accounted for (below).\n\n", len(r.failures))

	b.WriteString("### Steps by kind\n\n| step | count |\n|---|---:|\n")
	for _, k := range sortedKeys(r.stepKinds) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, r.stepKinds[k])
	}
	faultsByKind := map[string]int{}
	for _, f := range r.faults {
		faultsByKind[f.kind]++
	}
	b.WriteString("\n### Faults injected\n\n| fault | count |\n|---|---:|\n")
	for _, k := range sortedKeys(faultsByKind) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, faultsByKind[k])
	}
	var bad []string
	codes := make([]int, 0, len(r.badCodes))
	for c := range r.badCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	total := 0
	for _, c := range codes {
		bad = append(bad, fmt.Sprintf("%d×%d", r.badCodes[c], c))
		total += r.badCodes[c]
	}
	fmt.Fprintf(&b, "\nBad webhook requests: %d, each answered with the status the spec gives (%s); no good call was ever refused with 429.\n",
		total, strings.Join(bad, ", "))

	byCause := map[string]int{}
	maxLag := map[string]time.Duration{}
	for _, f := range r.failures {
		k := causeKind(f.cause)
		byCause[k]++
		maxLag[k] = max(maxLag[k], f.lag)
	}
	b.WriteString("\n### Failed requests by cause\n\n" +
		"(lag: the longest time from the start of the fault to the sending of a request it failed)\n\n" +
		"| cause | requests | lag |\n|---|---:|---:|\n")
	for _, k := range sortedKeys(byCause) {
		fmt.Fprintf(&b, "| %s | %d | %v |\n", k, byCause[k], maxLag[k].Round(time.Millisecond))
	}
	byAnswer := map[string]int{}
	for _, f := range r.failures {
		byAnswer[answerKind(f)]++
	}
	b.WriteString("\n### Failed requests by answer\n\n| answer | requests |\n|---|---:|\n")
	for _, k := range sortedKeys(byAnswer) {
		fmt.Fprintf(&b, "| %s | %d |\n", k, byAnswer[k])
	}

	b.WriteString("\n### shoal's resources (one sample a second)\n\n| shoal | samples | RSS MiB min–max | fds min–max | goroutines min–max |\n|---|---:|---|---|---|\n")
	byInst := map[int][]sample{}
	var insts []int
	for _, s := range r.samples {
		if _, ok := byInst[s.instance]; !ok {
			insts = append(insts, s.instance)
		}
		byInst[s.instance] = append(byInst[s.instance], s)
	}
	for _, i := range insts {
		ss := byInst[i]
		rlo, rhi := minMax(ss, func(s sample) int { return s.rssKiB })
		flo, fhi := minMax(ss, func(s sample) int { return s.fds })
		glo, ghi := minMax(ss, func(s sample) int { return s.goroutines })
		fmt.Fprintf(&b, "| #%d (pid %d) | %d | %.1f–%.1f | %d–%d | %d–%d |\n", i, ss[0].pid, len(ss),
			float64(rlo)/1024, float64(rhi)/1024, flo, fhi, glo, ghi)
	}
	if len(r.notes) > 0 {
		b.WriteString("\nGrowth check (the part of each count its live replica count does not explain, first quarter of a shoal's life against its last):\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// answerKind groups a failure by what the client got.
func answerKind(f *failure) string {
	switch {
	case f.code == 0:
		msg := f.msg
		for _, k := range []string{"connection refused", "connection reset", "EOF", "broken pipe"} {
			if strings.Contains(msg, k) {
				return "transport: " + k
			}
		}
		return "transport: other"
	case f.code == -1:
		return "wrong answer"
	case f.replica != "" && strings.Contains(f.msg, "failed before answering"):
		return fmt.Sprintf("%d replica failed before answering", f.code)
	case f.replica != "":
		return fmt.Sprintf("%d naming its replica", f.code)
	default:
		return strconv.Itoa(f.code)
	}
}

func minMax(ss []sample, get func(sample) int) (lo, hi int) {
	lo, hi = math.MaxInt, math.MinInt
	for _, s := range ss {
		if v := get(s); v >= 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if lo > hi {
		return -1, -1
	}
	return lo, hi
}

// write puts summary.md, samples.csv and resources.svg into dir.
func (r report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "samples.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"t_s", "shoal_instance", "shoal_pid", "rss_kib", "fds", "goroutines", "replica_processes", "requests_ok", "requests_failed"})
	for _, s := range r.samples {
		_ = w.Write([]string{
			strconv.FormatFloat(s.at.Seconds(), 'f', 1, 64), strconv.Itoa(s.instance), strconv.Itoa(s.pid),
			strconv.Itoa(s.rssKiB), strconv.Itoa(s.fds), strconv.Itoa(s.goroutines), strconv.Itoa(s.replicas),
			strconv.FormatInt(s.ok, 10), strconv.FormatInt(s.failed, 10),
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.writeEvents(dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "resources.svg"), []byte(plot(r.samples)), 0o644)
}

// writeEvents writes failures.csv (every failed request and the fault that accounts
// for it) and faults.csv (every fault injected).
func (r report) writeEvents(dir string) error {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05.000")
	}
	var rows [][]string
	rows = append(rows, []string{"start", "end", "client", "request_id", "app", "path", "code", "replica", "cause", "lag_ms", "answer"})
	for _, f := range r.failures {
		msg := strings.TrimSpace(f.msg)
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		rows = append(rows, []string{ts(f.start), ts(f.end), strconv.Itoa(f.client), f.id, f.app, f.path, strconv.Itoa(f.code),
			f.replica, f.cause, strconv.FormatInt(f.lag.Milliseconds(), 10), msg})
	}
	if err := writeCSV(filepath.Join(dir, "failures.csv"), rows); err != nil {
		return err
	}
	rows = [][]string{{"step", "kind", "app", "replica", "pid", "start", "end"}}
	for _, x := range r.faults {
		rows = append(rows, []string{strconv.Itoa(x.step), x.kind, x.app, x.replica, strconv.Itoa(x.pid), ts(x.start), ts(x.end)})
	}
	return writeCSV(filepath.Join(dir, "faults.csv"), rows)
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.WriteAll(rows) // WriteAll flushes; its error is w.Error()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plot draws the samples as an SVG: one panel per series over the same time axis,
// with a dashed line at every restart of shoal.
func plot(ss []sample) string {
	const (
		width, left, right = 960, 70, 20
		panelH, gap, top   = 150, 40, 60
	)
	panels := []struct {
		title string
		color string
		get   func(sample) float64
	}{
		{"shoal RSS (MiB)", "#1f77b4", func(s sample) float64 { return float64(s.rssKiB) / 1024 }},
		{"shoal open file descriptors", "#d62728", func(s sample) float64 { return float64(s.fds) }},
		{"shoal goroutines", "#2ca02c", func(s sample) float64 { return float64(s.goroutines) }},
		{"live replica processes", "#7f7f7f", func(s sample) float64 { return float64(s.replicas) }},
	}
	height := top + len(panels)*(panelH+gap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	b.WriteString(`<text x="70" y="24" font-size="15">shoal under chaos: resources over time (dashed: kill -9 and restart of shoal)</text>` + "\n")
	if len(ss) == 0 {
		b.WriteString("</svg>\n")
		return b.String()
	}
	tmax := ss[len(ss)-1].at.Seconds()
	if tmax <= 0 {
		tmax = 1
	}
	x := func(t float64) float64 { return left + (width-left-right)*t/tmax }
	for pi, p := range panels {
		y0 := float64(top + pi*(panelH+gap))
		vmax := 0.0
		for _, s := range ss {
			vmax = max(vmax, p.get(s))
		}
		vmax = niceCeil(vmax)
		y := func(v float64) float64 { return y0 + panelH - panelH*v/vmax }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-6, p.title)
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%d" height="%d" fill="none" stroke="#ccc"/>`+"\n", left, y0, width-left-right, panelH)
		for _, v := range []float64{0, vmax / 2, vmax} {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, strconv.FormatFloat(v, 'f', -1, 64))
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, width-right, y(v), y(v))
		}
		for i := 1; i < len(ss); i++ {
			if ss[i].instance != ss[i-1].instance {
				fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#999" stroke-dasharray="4 3"/>`+"\n",
					x(ss[i].at.Seconds()), x(ss[i].at.Seconds()), y0, y0+panelH)
			}
		}
		// One polyline per shoal instance, so a restart is a break, not a slope.
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.3" points="%s"/>`+"\n", p.color, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for i, s := range ss {
			if i > 0 && s.instance != ss[i-1].instance {
				flush()
			}
			if v := p.get(s); v >= 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.at.Seconds()), y(v)))
			}
		}
		flush()
	}
	yAxis := top + len(panels)*(panelH+gap) - gap + 16
	for _, t := range ticks(tmax) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(t), yAxis, (time.Duration(t) * time.Second).String())
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// ticks are about 8 round times between 0 and tmax seconds.
func ticks(tmax float64) []float64 {
	step := niceCeil(tmax / 8)
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600} {
		if s >= tmax/8 {
			step = s
			break
		}
	}
	var out []float64
	for t := 0.0; t <= tmax; t += step {
		out = append(out, t)
	}
	return out
}
