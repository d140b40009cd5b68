package dashboard

import (
	"context"
	"sync"
	"time"

	"shoal/internal/backend"
	"shoal/internal/controller"
)

const (
	// historyWindow is how far back a deployment's chart reaches.
	historyWindow = time.Hour
	// historyPoints bounds the samples kept per deployment: one a second over the window.
	historyPoints = 3600
	// minSampleGap is the spacing below which an unchanged sample is not kept: a burst of
	// snapshots (every replica start publishes one) must not push an hour out of the ring.
	minSampleGap = time.Second
)

// sample is one observation of a deployment's replica counts.
type sample struct {
	t       time.Time
	target  int
	running int
}

// ring is a fixed-size circular buffer of samples, oldest first.
type ring struct {
	buf   []sample
	start int // index of the oldest sample
	n     int // samples held
}

func (r *ring) add(s sample) {
	if r.buf == nil {
		r.buf = make([]sample, historyPoints)
	}
	if r.n > 0 {
		last := &r.buf[(r.start+r.n-1)%len(r.buf)]
		if s.t.Before(last.t) {
			s.t = last.t // a clock step back must not fold the line over itself
		}
		if s.target == last.target && s.running == last.running && s.t.Sub(last.t) < minSampleGap {
			return
		}
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = s
		r.n++
		return
	}
	r.buf[r.start] = s
	r.start = (r.start + 1) % len(r.buf)
}

// since returns the samples from t on, plus the last one before t (it is the value at t).
func (r *ring) since(t time.Time) []sample {
	var out []sample
	for i := 0; i < r.n; i++ {
		s := r.buf[(r.start+i)%len(r.buf)]
		if s.t.Before(t) {
			out = append(out[:0], s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// history keeps every deployment's recent samples.
type history struct {
	mu    sync.Mutex // guards the fields below
	gen   uint64     // generation of the last snapshot recorded
	seen  bool       // whether any snapshot was recorded
	rings map[backend.Key]*ring
}

func newHistory() *history { return &history{rings: map[backend.Key]*ring{}} }

// record samples every deployment of s, once per snapshot generation. Deployments that
// left the snapshot lose their history, so deleted applications free their memory.
func (h *history) record(s *controller.Snapshot, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen && s.Generation <= h.gen {
		return
	}
	h.seen, h.gen = true, s.Generation
	t := s.Time
	if t.IsZero() {
		t = now
	}
	live := map[backend.Key]bool{}
	for _, a := range s.Applications {
		for _, d := range a.Deployments {
			k := backend.Key{App: a.Name, Deployment: d.Name}
			live[k] = true
			r := h.rings[k]
			if r == nil {
				r = &ring{}
				h.rings[k] = r
			}
			r.add(sample{t: t, target: d.Target, running: d.Running()})
		}
	}
	for k := range h.rings {
		if !live[k] {
			delete(h.rings, k)
		}
	}
}

// samples returns a deployment's samples from t on (see ring.since).
func (h *history) samples(k backend.Key, t time.Time) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rings[k]; r != nil {
		return r.since(t)
	}
	return nil
}

// first returns the time of a deployment's oldest sample.
func (h *history) first(k backend.Key) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[k]
	if r == nil || r.n == 0 {
		return time.Time{}, false
	}
	return r.buf[r.start].t, true
}

// Run follows the controller's snapshots and records every one into the charts'
// history, until ctx is done. Without it the history holds only the snapshots seen
// when pages and state are served.
func (d *Dashboard) Run(ctx context.Context) error {
	s := d.intents.Snapshot()
	for {
		d.hist.record(s, d.now())
		next, err := d.intents.Wait(ctx, s.Generation)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s = next
	}
}
