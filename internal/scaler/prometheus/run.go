package prometheus

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
	// Querier evaluates the queries; default an HTTPQuerier of the config's URL.
	Querier Querier
	Logger  *slog.Logger
	// DryRun decides and logs, but calls no webhook (it still reads the current
	// target at start when Webhook is set, and then goes on from its own decisions).
	DryRun bool
	// Metrics, when set, receives the scaler's own metrics.
	Metrics *scaler.Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrNoWebhook is returned by New without a webhook outside a dry run.
var ErrNoWebhook = errors.New("a webhook is needed unless it is a dry run")

// Scaler evaluates every target of a config at its interval.
type Scaler struct {
	cfg *Config
	o   Options
	log *slog.Logger
	mu  sync.Mutex // guards st
	st  []State    // by target index
}

// New returns a Scaler of cfg (already validated by Parse or Load).
func New(cfg *Config, o Options) (*Scaler, error) {
	if o.Webhook == nil && !o.DryRun {
		return nil, ErrNoWebhook
	}
	if o.Querier == nil {
		o.Querier = HTTPQuerier{URL: cfg.Prometheus.URL}
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
	return &Scaler{cfg: cfg, o: o, log: o.Logger, st: make([]State, len(cfg.Targets))}, nil
}

// Run evaluates every target at once and then every interval, until ctx is done; then
// it returns nil.
func Run(ctx context.Context, cfg *Config, o Options) error {
	s, err := New(cfg, o)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Run evaluates every target at once and then every interval, until ctx is done; then
// it returns nil.
func (s *Scaler) Run(ctx context.Context) error {
	s.log.Info("prometheus scaler started", "prometheus", s.cfg.Prometheus.URL, "interval", s.cfg.Interval.D(),
		"targets", len(s.cfg.Targets), "dry_run", s.o.DryRun)
	t := time.NewTicker(s.cfg.Interval.D())
	defer t.Stop()
	for {
		s.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step evaluates every target once, applies the decisions and returns them, in the
// order of the config's targets.
func (s *Scaler) Step(ctx context.Context) []Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Decision, len(s.cfg.Targets))
	for i := range s.cfg.Targets {
		if ctx.Err() != nil {
			break
		}
		out[i] = s.step(ctx, i)
	}
	return out
}

func (s *Scaler) step(ctx context.Context, i int) Decision {
	t := &s.cfg.Targets[i]
	st := s.st[i]
	log := s.log.With("application", t.Application, "deployment", t.Deployment)
	m := s.o.Metrics

	now := s.o.Now()
	var outside string
	if s.o.Webhook != nil && (!st.Known || !s.o.DryRun) {
		// The target is read at every evaluation, not only at start: a hand scale, the
		// dashboard or a redeploy that resets it to num_replicas changes it behind the
		// scaler's back, and a scaler that trusted its memory would never correct it
		// while its desired count stays the same. A dry run reads it once only: its
		// state moves on as if its decisions were applied, which the real target never
		// shows.
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Prometheus.Timeout.D())
		n, err := s.o.Webhook.Target(cctx, t.Application, t.Deployment)
		cancel()
		switch {
		case err != nil && st.Known:
			log.Warn("cannot read the current target; deciding from the last one known", "target", st.Target, "err", err)
		case err != nil:
			log.Warn("cannot read the current target", "err", err)
		default:
			var changed bool
			st, changed = Observe(st, n, now)
			if changed {
				outside = fmt.Sprintf("target %d set outside the scaler (it was %d); ", n, s.st[i].Target)
			}
		}
	}

	qctx, cancel := context.WithTimeout(ctx, s.cfg.Prometheus.Timeout.D())
	value, qerr := s.o.Querier.Query(qctx, t.Query, now)
	cancel()
	d, next := Decide(t, st, value, qerr == nil, now)
	d.Reason = outside + d.Reason

	if d.OK {
		m.QueryValue.WithLabelValues(t.Application, t.Deployment).Set(value)
	} else {
		m.QueryFailures.WithLabelValues(t.Application, t.Deployment).Inc()
	}
	fallback := 0.0
	if d.Fallback {
		fallback = 1
	}
	m.FallbackActive.WithLabelValues(t.Application, t.Deployment).Set(fallback)

	attrs := []any{"value", d.Value, "ok", d.OK, "desired", d.Desired, "target", d.Target, "change", d.Change, "reason", d.Reason}
	if qerr != nil {
		attrs = append(attrs, "query_err", qerr.Error())
	}
	switch {
	case !d.Change:
		if d.Fallback || !d.OK {
			log.Warn("decision", attrs...)
		} else {
			log.Info("decision", attrs...)
		}
	case s.o.DryRun:
		log.Info("decision (dry run: webhook not called)", attrs...)
	default:
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Prometheus.Timeout.D())
		err := s.o.Webhook.Scale(cctx, t.Application, t.Deployment, d.Target)
		cancel()
		if err != nil {
			m.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "error").Inc()
			log.Error("decision not applied: the webhook failed; trying again at the next evaluation", append(attrs, "err", err)...)
			// The query's history stays (the failing-since time); the target does not.
			next.Target, next.Known, next.LastChange, next.Fallback = st.Target, st.Known, st.LastChange, st.Fallback
			d.Change = false
			break
		}
		m.WebhookCalls.WithLabelValues(t.Application, t.Deployment, "ok").Inc()
		if d.Fallback {
			log.Warn("decision applied: fallback", attrs...)
		} else {
			log.Info("decision applied", attrs...)
		}
	}
	if next.Known {
		m.Target.WithLabelValues(t.Application, t.Deployment).Set(float64(next.Target))
	}
	s.st[i] = next
	return d
}

// States returns a copy of every target's state, for tests and status output.
func (s *Scaler) States() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]State(nil), s.st...)
}
