package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"

	"shoal/internal/config"
	"shoal/internal/scaler"
	"shoal/internal/scaler/prometheus"
	"shoal/internal/scaler/schedule"
	"shoal/internal/store"
	"shoal/pkg/client"
)

// ErrNoAppToken is what a config-declared scaler gets when the application it scales
// has no token: it is unknown, or its external_scaler_enabled is false.
var ErrNoAppToken = errors.New("the application has no token: is it deployed with external_scaler_enabled: true?")

// scalers are the scaler files of the config shoal starts with, parsed.
type scalers struct {
	prometheus []*prometheus.Config
	schedule   []*schedule.Config
}

func (s scalers) empty() bool { return len(s.prometheus) == 0 && len(s.schedule) == 0 }

// loadScalers reads the scalers section of the config given on the command line, else
// of the config deployed last, and parses every file it names. A bad file stops the
// start with the file's own errors; the section is read once, like http_options.
func loadScalers(cfg *config.Config, st store.Store) (scalers, error) {
	var sec config.Scalers
	switch {
	case cfg != nil:
		sec = cfg.Scalers
	default:
		state, err := st.Load()
		if err != nil {
			return scalers{}, fmt.Errorf("load state: %w", err)
		}
		if len(state.Config) > 0 {
			// A stored config that no longer parses is reported by proxyOptions.
			if saved, _, err := config.Parse(state.Config, "stored config", ""); err == nil {
				sec = saved.Scalers
			}
		}
	}
	var out scalers
	var errs []error
	for _, ref := range sec.Prometheus {
		c, err := prometheus.Load(ref.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("scalers.prometheus: %w", err))
			continue
		}
		out.prometheus = append(out.prometheus, c)
	}
	for _, ref := range sec.Schedule {
		c, err := schedule.Load(ref.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("scalers.schedule: %w", err))
			continue
		}
		out.schedule = append(out.schedule, c)
	}
	return out, errors.Join(errs...)
}

// configScalers runs the scalers of the config shoal starts with: for the whole run on
// the process backend, for each term as leader on Kubernetes. They call the scale
// webhook over HTTP like any outside scaler, so their calls are authenticated, audited
// and counted as webhook calls.
type configScalers struct {
	s scalers
	// address is shoal's own proxy (it answers the scale route).
	address string
	log     *slog.Logger
	// metrics are one set for all the scalers, made once: they are labelled by
	// deployment, and a second registration of the same names (a second term as
	// leader) would fail. Nil without scalers.
	metrics *scaler.Metrics
}

// newConfigScalers prepares the scalers s to call the proxy at address, with their
// metrics on reg.
func newConfigScalers(s scalers, address string, reg promclient.Registerer, log *slog.Logger) *configScalers {
	c := &configScalers{s: s, address: address, log: log}
	if !s.empty() {
		c.metrics = scaler.NewMetrics(reg)
	}
	return c
}

// start runs every scaler on workers until ctx is done. token returns an application's
// token, read at every call so that a rotation applies at once.
func (c *configScalers) start(ctx context.Context, workers *sync.WaitGroup, token func(app string) (store.Token, bool)) {
	if c == nil || c.s.empty() {
		return
	}
	wh := &tokenWebhook{
		address: c.address,
		token:   token,
		hc:      &http.Client{Timeout: 10 * time.Second},
	}
	for i, cfg := range c.s.prometheus {
		log := c.log.With("component", "scaler", "scaler", "prometheus", "index", i)
		workers.Go(func() {
			if err := prometheus.Run(ctx, cfg, prometheus.Options{Webhook: wh, Logger: log, Metrics: c.metrics}); err != nil {
				log.Error("scaler stopped", "err", err)
			}
		})
	}
	for i, cfg := range c.s.schedule {
		log := c.log.With("component", "scaler", "scaler", "schedule", "index", i)
		workers.Go(func() {
			if err := schedule.Run(ctx, cfg, schedule.Options{Webhook: wh, Logger: log, Metrics: c.metrics}); err != nil {
				log.Error("scaler stopped", "err", err)
			}
		})
	}
}

// tokenWebhook is a scaler.Webhook that calls the scale route of one shoal with the
// token of the application each call is for.
type tokenWebhook struct {
	address string
	token   func(app string) (store.Token, bool)
	hc      *http.Client
}

var _ scaler.Webhook = (*tokenWebhook)(nil)

func (w *tokenWebhook) client(app string) (scaler.Webhook, error) {
	tok, ok := w.token(app)
	if !ok {
		return nil, fmt.Errorf("%s: %w", app, ErrNoAppToken)
	}
	return scaler.NewWebhook(client.New(w.address, tok.Secret, client.WithHTTPClient(w.hc))), nil
}

func (w *tokenWebhook) Scale(ctx context.Context, app, dep string, n int) error {
	c, err := w.client(app)
	if err != nil {
		return err
	}
	return c.Scale(ctx, app, dep, n)
}

func (w *tokenWebhook) Target(ctx context.Context, app, dep string) (int, error) {
	c, err := w.client(app)
	if err != nil {
		return 0, err
	}
	return c.Target(ctx, app, dep)
}
