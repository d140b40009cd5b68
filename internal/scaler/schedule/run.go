package schedule

import (
	"context"
	"errors"
	"fmt"
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

// Scaler sets each target's scheduled replica count at start and at every change, and
// in between, every interval, reads the target from shoal and sets it again where it was
// changed outside the scaler (a hand scale, the dashboard, a redeploy that reset it to
// num_replicas), as KEDA's cron scaler does. A count that should hold for a while is a
// window in the config, not a hand-made scale.
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

// Run sets every target at once, then at each planned change and every interval, until
// ctx is done; then it returns nil.
func Run(ctx context.Context, cfg *Config, o Options) error {
	s, err := New(cfg, o)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run sets every target at once, then at each planned change and every interval, until
// ctx is done; then it returns nil.
func (s *Scaler) Run(ctx context.Context) error {
	s.log.Info("schedule scaler started", "timezone", s.cfg.Location.String(), "interval", s.cfg.Interval.D(),
		"targets", len(s.cfg.Targets), "dry_run", s.o.DryRun)
	var logged Change // the next change last logged, so that it is logged once, not every interval
	for {
		failed := s.Step(ctx)
		now := s.o.Now()
		wait := min(s.o.MaxSleep, s.cfg.Interval.D())
		if next := NextChanges(s.cfg, now, 1); len(next) > 0 {
			wait = min(wait, next[0].At.Sub(now))
			if n := next[0]; !n.At.Equal(logged.At) || n.Application != logged.Application || n.Deployment != logged.Deployment {
				s.log.Info("next change", "at", n.At.In(s.cfg.Location).Format(timeFormat),
					"application", n.Application, "deployment", n.Deployment,
					"replicas", n.Replicas, "reason", n.Reason)
				logged = n
			}
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

// Step reads every target from shoal and sets the scheduled count where the target
// differs from it, and reports whether a webhook call failed. When a target cannot be
// read, it is set only if the scheduled count changed since the last one set. A dry run
// reads nothing and logs each scheduled count once.
func (s *Scaler) Step(ctx context.Context) (failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	for i := range s.cfg.Targets {
		t := &s.cfg.Targets[i]
		n, why := Desired(t, s.cfg.Location, now)
		s.o.Metrics.Target.WithLabelValues(t.Application, t.Deployment).Set(float64(n))
		log := s.log.With("application", t.Application, "deployment", t.Deployment, "replicas", n, "reason", why)
		if s.o.DryRun {
			if n != s.applied[i] {
				log.Info("scheduled target (dry run: webhook not called)")
				s.applied[i] = n
			}
			continue
		}
		outside := false
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cur, err := s.o.Webhook.Target(cctx, t.Application, t.Deployment)
		cancel()
		switch {
		case err != nil:
			log.Warn("cannot read the current target; it is set only when the schedule changes", "err", err)
			if n == s.applied[i] {
				continue
			}
		case cur == n:
			if s.applied[i] != n {
				log.Info("scheduled target already set")
				s.applied[i] = n
			}
			continue
		case s.applied[i] == n:
			// This scaler set n and the target is something else now.
			outside = true
		}
		cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		err = s.o.Webhook.Scale(cctx, t.Application, t.Deployment, n)
		cancel()
		if err != nil {
			s.o.Metrics.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "error").Inc()
			log.Error("scheduled target not set; trying again", "err", err, "retry_in", s.o.Retry)
			s.applied[i] = -1
			failed = true
			continue
		}
		s.o.Metrics.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "ok").Inc()
		if outside {
			log.Warn(fmt.Sprintf("target %d set outside the scaler; setting %d", cur, n))
		} else {
			log.Info("scheduled target set")
		}
		s.applied[i] = n
	}
	return failed
}
