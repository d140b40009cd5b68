package schedule

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"shoal/internal/scaler"
)

// Options are what a Scaler needs besides its config.
type Options struct {
	// Webhook sets targets; required unless DryRun.
	Webhook scaler.Webhook
	Logger  *slog.Logger
	// DryRun decides and logs, but calls no webhook.
	DryRun bool
	// Metrics, when set, receives the scaler's own metrics.
	Metrics *scaler.Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Retry is how soon a failed webhook call is tried again; default 30s.
	Retry time.Duration
	// MaxSleep bounds a wait for the next change, so that a wall clock that jumps (a
	// suspended laptop, a corrected clock) is noticed; default 5m.
	MaxSleep time.Duration
}

// ErrNoWebhook is returned by New without a webhook outside a dry run.
var ErrNoWebhook = errors.New("a webhook is needed unless it is a dry run")

// Scaler sets each target's scheduled replica count at start and at every change.
// Between changes it leaves the target alone: a hand-made scale holds until the next
// planned change.
type Scaler struct {
	cfg *Config
	o   Options
	log *slog.Logger

	mu sync.Mutex // guards applied
	// applied is the count last set for each target (-1: none yet, or the call failed).
	applied []int
}

// New returns a Scaler of cfg (already validated by Parse or Load).
func New(cfg *Config, o Options) (*Scaler, error) {
	if o.Webhook == nil && !o.DryRun {
		return nil, ErrNoWebhook
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = scaler.NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retry <= 0 {
		o.Retry = 30 * time.Second
	}
	if o.MaxSleep <= 0 {
		o.MaxSleep = 5 * time.Minute
	}
	s := &Scaler{cfg: cfg, o: o, log: o.Logger, applied: make([]int, len(cfg.Targets))}
	for i := range s.applied {
		s.applied[i] = -1
	}
	return s, nil
}

// Run sets every target at once and then at each planned change, until ctx is done;
// then it returns nil.
func Run(ctx context.Context, cfg *Config, o Options) error {
	s, err := New(cfg, o)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run sets every target at once and then at each planned change, until ctx is done;
// then it returns nil.
func (s *Scaler) Run(ctx context.Context) error {
	s.log.Info("schedule scaler started", "timezone", s.cfg.Location.String(), "targets", len(s.cfg.Targets), "dry_run", s.o.DryRun)
	for {
		failed := s.Step(ctx)
		now := s.o.Now()
		wait := s.o.MaxSleep
		if next := NextChanges(s.cfg, now, 1); len(next) > 0 {
			wait = min(wait, next[0].At.Sub(now))
			s.log.Info("next change", "at", next[0].At.In(s.cfg.Location).Format(timeFormat),
				"application", next[0].Application, "deployment", next[0].Deployment,
				"replicas", next[0].Replicas, "reason", next[0].Reason)
		}
		if failed {
			wait = min(wait, s.o.Retry)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Step sets every target whose scheduled count differs from the one it last set, and
// reports whether a webhook call failed.
func (s *Scaler) Step(ctx context.Context) (failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	for i := range s.cfg.Targets {
		t := &s.cfg.Targets[i]
		n, why := Desired(t, s.cfg.Location, now)
		s.o.Metrics.Target.WithLabelValues(t.Application, t.Deployment).Set(float64(n))
		if n == s.applied[i] {
			continue
		}
		log := s.log.With("application", t.Application, "deployment", t.Deployment, "replicas", n, "reason", why)
		if s.o.DryRun {
			log.Info("scheduled target (dry run: webhook not called)")
			s.applied[i] = n
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.o.Webhook.Scale(cctx, t.Application, t.Deployment, n)
		cancel()
		if err != nil {
			s.o.Metrics.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "error").Inc()
			log.Error("scheduled target not set; trying again", "err", err, "retry_in", s.o.Retry)
			failed = true
			continue
		}
		s.o.Metrics.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "ok").Inc()
		log.Info("scheduled target set")
		s.applied[i] = n
	}
	return failed
}
