package autoscale

import "time"

// Window is a sliding window of samples of a deployment's ongoing requests (summed over
// its replicas). Its average over the look-back period is the "ongoing" the decision
// sees. The zero Window is empty and ready to use. It is not safe for concurrent use.
type Window struct {
	// samples are in time order; the oldest are dropped by Average and Add.
	samples []sample
}

type sample struct {
	t time.Time
	v float64
}

// Add records a sample taken at t. Samples must be added in time order.
func (w *Window) Add(t time.Time, v float64) {
	w.samples = append(w.samples, sample{t, v})
}

// Average returns the time-weighted average of the samples over (now-lookBack, now]:
// each sample holds until the next one (the last until now). Before the first sample
// the window knows nothing, so the average covers only the time since then. It returns
// 0 for an empty window, and drops samples that can no longer matter.
func (w *Window) Average(now time.Time, lookBack time.Duration) float64 {
	start := now.Add(-lookBack)
	// Keep the last sample at or before start: it holds at start.
	i := 0
	for i+1 < len(w.samples) && !w.samples[i+1].t.After(start) {
		i++
	}
	if i > 0 {
		w.samples = append(w.samples[:0], w.samples[i:]...)
	}
	if len(w.samples) == 0 {
		return 0
	}
	var area float64
	var span time.Duration
	for j, s := range w.samples {
		from := s.t
		if from.Before(start) {
			from = start
		}
		to := now
		if j+1 < len(w.samples) {
			to = w.samples[j+1].t
		}
		if !to.After(from) {
			continue
		}
		d := to.Sub(from)
		area += s.v * d.Seconds()
		span += d
	}
	if span <= 0 {
		// Only a sample at now: it is all the window knows.
		return w.samples[len(w.samples)-1].v
	}
	return area / span.Seconds()
}

// Reset empties the window.
func (w *Window) Reset() { w.samples = w.samples[:0] }
