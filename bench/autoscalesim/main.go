// Command autoscalesim replays a day of load through shoal's autoscaling decision
// (internal/autoscale, the code the controller runs) and through a port of Ray Serve's
// policy, in virtual time, and writes the replica counts against the load as CSV and SVG.
//
//	go run ./bench/autoscalesim -out bench/autoscalesim
//
// The model, one virtual second a step: the trace gives the concurrency the clients ask
// for; running replicas serve up to max_ongoing_requests each, the rest waits in the
// queue; a new replica starts serving 10 s after it is asked for. Every policy sees the
// same ongoing (averaged over look_back_period_s) and queued figures.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"shoal/internal/autoscale"
	"shoal/internal/config"
)

const (
	day          = 24 * 60 * 60 // seconds
	startupDelay = 10           // seconds from a scale-up to a replica serving
	maxOngoing   = 5            // max_ongoing_requests
)

func main() {
	out := flag.String("out", "bench/autoscalesim", "folder for load.csv, replicas.csv, replicas.svg and summary.md")
	rayLoop := flag.Duration("ray-slow-loop", 400*time.Millisecond, "period of Ray's control loop when it runs slow (nominal 100ms)")
	flag.Parse()

	cfg := &config.AutoscalingConfig{
		MinReplicas: 1, MaxReplicas: 40, TargetOngoingRequests: 2, LookBackPeriodS: 30,
		UpscaleDelayS: 30, DownscaleDelayS: 600, SmoothingFactor: 1, MetricsIntervalS: 10,
	}
	load := trace()
	begin := time.Now()
	runs := []run{
		simulate("shoal (wall clock)", load, cfg, shoalPolicy(cfg)),
		simulate("Ray, loop at 0.1 s", load, cfg, rayPolicy(cfg, 100*time.Millisecond)),
		simulate(fmt.Sprintf("Ray, loop at %.1f s", rayLoop.Seconds()), load, cfg, rayPolicy(cfg, *rayLoop)),
	}
	// The same day with smoothing_factor 2: Ray's gain overshoots in both directions.
	fast := *cfg
	fast.SmoothingFactor = 2
	gain := []run{
		simulate("shoal, smoothing_factor 2", load, &fast, shoalPolicy(&fast)),
		simulate("Ray, smoothing_factor 2, loop at 0.1 s", load, &fast, rayPolicy(&fast, 100*time.Millisecond)),
	}
	elapsed := time.Since(begin)

	must(os.MkdirAll(*out, 0o755))
	must(writeCSV(filepath.Join(*out, "replicas.csv"), load, runs))
	must(os.WriteFile(filepath.Join(*out, "replicas.svg"), []byte(svg(load, runs)), 0o644))
	summary := summarize(append(runs, gain...), elapsed)
	must(os.WriteFile(filepath.Join(*out, "summary.md"), []byte(summary), 0o644))
	fmt.Print(summary)
}

// trace is the concurrency asked for at each second of the day: a daily curve (quiet
// at night, peaks at 11:00 and 20:00) with noise, and a spike at 15:00 for 15 minutes.
func trace() []float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]float64, day)
	for s := range out {
		h := float64(s) / 3600
		v := 2 + 18*bump(h, 11, 3) + 26*bump(h, 20, 2.5)
		if h >= 15 && h < 15.25 {
			v += 45
		}
		v *= 1 + 0.1*rng.NormFloat64()
		out[s] = math.Max(0, v)
	}
	return out
}

func bump(h, center, width float64) float64 { d := (h - center) / width; return math.Exp(-d * d) }

// policy decides a target every second of virtual time.
type policy func(now time.Time, target, running int, ongoing float64, queued int) int

func shoalPolicy(cfg *config.AutoscalingConfig) policy {
	var st autoscale.State
	return func(now time.Time, target, running int, ongoing float64, queued int) int {
		d := autoscale.Decide(cfg, st, autoscale.Input{Target: target, Running: running, Ongoing: ongoing, Queued: queued}, now)
		st = d.State
		return d.Target
	}
}

// rayPolicy is Ray Serve's replica_queue_length_autoscaling_policy, ported line by line:
// its delays are counts of control-loop iterations of a nominal 0.1 s
// (CONTROL_LOOP_INTERVAL_S), so when each iteration takes period instead, every delay
// stretches by period / 0.1 s.
func rayPolicy(cfg *config.AutoscalingConfig, period time.Duration) policy {
	counter := 0
	var next time.Time
	return func(now time.Time, target, running int, ongoing float64, queued int) int {
		decision := target
		for ; !next.After(now); next = next.Add(period) {
			if next.IsZero() {
				next = now
			}
			decision = rayDecide(cfg, &counter, decision, running, ongoing+float64(queued))
		}
		return decision
	}
}

func rayDecide(cfg *config.AutoscalingConfig, counter *int, target, running int, total float64) int {
	const loop = 0.1
	if running == 0 {
		if total > 0 {
			return max(int(math.Ceil(cfg.SmoothingFactor)), target)
		}
		return target
	}
	ratio := total / float64(running) / cfg.TargetOngoingRequests
	smoothed := 1 + (ratio-1)*cfg.SmoothingFactor
	desired := int(math.Ceil(float64(running) * smoothed))
	if int(math.Ceil(float64(running)*ratio)) < running && desired == running {
		desired--
	}
	desired = min(max(desired, cfg.MinReplicas), cfg.MaxReplicas)
	switch {
	case desired > target:
		*counter = max(*counter, 0) + 1
		if *counter > int(cfg.UpscaleDelayS/loop) {
			*counter = 0
			return desired
		}
	case desired < target:
		*counter = min(*counter, 0) - 1
		if *counter < -int(cfg.DownscaleDelayS/loop) {
			*counter = 0
			return max(desired, 1)
		}
	default:
		*counter = 0
	}
	return target
}

type run struct {
	name     string
	replicas []int // target at each second
	running  []int
	queued   []float64
}

func simulate(name string, load []float64, cfg *config.AutoscalingConfig, decide policy) run {
	r := run{name: name, replicas: make([]int, len(load)), running: make([]int, len(load)), queued: make([]float64, len(load))}
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	target := cfg.MinReplicas
	var starting []int // second at which each starting replica serves
	running := target
	var window autoscale.Window
	for s := range load {
		now := t0.Add(time.Duration(s) * time.Second)
		// Replicas asked for startupDelay ago serve now.
		for len(starting) > 0 && starting[0] <= s {
			starting = starting[1:]
			running++
		}
		ongoing := math.Min(load[s], float64(running*maxOngoing))
		queued := load[s] - ongoing
		window.Add(now, ongoing)
		avg := window.Average(now, config.Seconds(cfg.LookBackPeriodS))
		next := decide(now, target, running, avg, int(math.Round(queued)))
		switch {
		case next > target:
			for i := 0; i < next-target; i++ {
				starting = append(starting, s+startupDelay)
			}
		case next < target:
			// Starting replicas go first, then running ones (SPEC §3).
			drop := target - next
			for drop > 0 && len(starting) > 0 {
				starting = starting[:len(starting)-1]
				drop--
			}
			running -= drop
		}
		target = next
		r.replicas[s], r.running[s], r.queued[s] = target, running, queued
	}
	return r
}

func summarize(runs []run, elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "24 h of virtual time per policy, %d policies in %v (%.0f× real time)\n\n", len(runs), elapsed.Round(time.Millisecond), float64(len(runs))*day/elapsed.Seconds())
	b.WriteString("| policy | replica-hours | queued request-seconds | seconds with a queue | scale changes | max replicas |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		var hours, queued float64
		var queuedSeconds, changes, peak int
		for s := range r.replicas {
			hours += float64(r.running[s]) / 3600
			queued += r.queued[s]
			if r.queued[s] >= 1 {
				queuedSeconds++
			}
			if s > 0 && r.replicas[s] != r.replicas[s-1] {
				changes++
			}
			peak = max(peak, r.replicas[s])
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.0f | %d | %d | %d |\n", r.name, hours, queued, queuedSeconds, changes, peak)
	}
	return b.String()
}

func writeCSV(path string, load []float64, runs []run) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"second", "load"}
	for _, r := range runs {
		head = append(head, r.name+" target", r.name+" running", r.name+" queued")
	}
	_ = w.Write(head)
	// One row a minute keeps the file small; the plot uses every second.
	for s := 0; s < len(load); s += 60 {
		row := []string{strconv.Itoa(s), strconv.FormatFloat(load[s], 'f', 2, 64)}
		for _, r := range runs {
			row = append(row, strconv.Itoa(r.replicas[s]), strconv.Itoa(r.running[s]), strconv.FormatFloat(r.queued[s], 'f', 1, 64))
		}
		_ = w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// svg plots the load (as replicas needed: load / target_ongoing_requests) and each
// policy's running replicas over the day.
func svg(load []float64, runs []run) string {
	const W, H, left, right, top, bottom = 1000.0, 420.0, 50.0, 20.0, 30.0, 40.0
	ymax := 0.0
	for s := range load {
		ymax = math.Max(ymax, load[s]/2)
		for _, r := range runs {
			ymax = math.Max(ymax, float64(r.running[s]))
		}
	}
	ymax = math.Ceil(ymax/5) * 5
	x := func(s int) float64 { return left + (W-left-right)*float64(s)/day }
	y := func(v float64) float64 { return H - bottom - (H-top-bottom)*v/ymax }
	line := func(vals func(int) float64, color string, width float64) string {
		var p strings.Builder
		for s := 0; s < day; s += 30 {
			fmt.Fprintf(&p, "%.1f,%.1f ", x(s), y(vals(s)))
		}
		return fmt.Sprintf(`<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`, color, width, p.String())
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`, W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`)
	for v := 0.0; v <= ymax; v += 5 {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end">%.0f</text>`, left, W-right, y(v), y(v), left-6, y(v)+4, v)
	}
	for h := 0; h <= 24; h += 3 {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%02d:00</text>`, x(h*3600), H-bottom+18, h)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14">Replicas over a day: load (as replicas needed at target_ongoing_requests 2) and each policy's running replicas</text>`, left)
	b.WriteString(line(func(s int) float64 { return load[s] / 2 }, "#bbb", 1))
	colors := []string{"#1f77b4", "#d62728", "#ff7f0e"}
	// Drawn last to first, so shoal's line lies on top.
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		l := line(func(s int) float64 { return float64(r.running[s]) }, colors[i%len(colors)], 1.6)
		if i == 0 {
			// shoal's line is drawn wide and dashed: with Ray's loop at its nominal
			// period the two decide the same, and one would hide the other.
			l = strings.Replace(l, `stroke-width="1.6"`, `stroke-width="3" stroke-dasharray="6 4"`, 1)
		}
		b.WriteString(l)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="14" height="3" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`, left+10, top+10+float64(i)*16, colors[i%len(colors)], left+30, top+14+float64(i)*16, r.name)
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="14" height="3" fill="#bbb"/><text x="%.0f" y="%.0f">load / 2</text>`, left+10, top+10+float64(len(runs))*16, left+30, top+14+float64(len(runs))*16)
	b.WriteString(`</svg>`)
	return b.String()
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "autoscalesim:", err)
		os.Exit(1)
	}
}
