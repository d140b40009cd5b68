package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
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

// Scalers are the scaler files a config names, parsed.
type Scalers struct {
	prometheus []*prometheus.Config
	schedule   []*schedule.Config
}

func (s Scalers) empty() bool { return len(s.prometheus) == 0 && len(s.schedule) == 0 }

// LoadScalers parses every scaler file that sec names (absolute paths: config.Load
// makes them so, from paths relative to the config). Errors come one a line, each the
// section that names the file and the file's own error ("scalers.schedule:
// file:line: path: message"), so that `shoal validate` reports them as it reports a
// config's, and a config it passes does not then stop `shoal start`.
func LoadScalers(sec config.Scalers) (Scalers, error) {
	var out Scalers
	var errs []error
	for _, ref := range sec.Prometheus {
		c, err := prometheus.Load(ref.Config)
		if err != nil {
			errs = append(errs, scalerFileError("scalers.prometheus", err))
			continue
		}
		out.prometheus = append(out.prometheus, c)
	}
	for _, ref := range sec.Schedule {
		c, err := schedule.Load(ref.Config)
		if err != nil {
			errs = append(errs, scalerFileError("scalers.schedule", err))
			continue
		}
		out.schedule = append(out.schedule, c)
	}
	return out, errors.Join(errs...)
}

// scalerFileError puts the section before every line of a file's error, and says
// where a missing file was looked for.
func scalerFileError(section string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w; create it, or correct the entry's config: path (relative to the config's directory)", err)
	}
	return &sectionError{section, err}
}

// sectionError is a scaler file's error, each line of which (a file lists every
// problem, one a line) starts with the config's section that names the file.
type sectionError struct {
	section string
	err     error
}

func (e *sectionError) Error() string {
	return e.section + ": " + strings.ReplaceAll(e.err.Error(), "\n", "\n"+e.section+": ")
}

func (e *sectionError) Unwrap() error { return e.err }

// loadScalers reads the scalers section of the config given on the command line, else
// of the config deployed last, and parses every file it names (LoadScalers). A bad file
// stops the start with the file's own errors; the section is read once, like
// http_options.
func loadScalers(cfg *config.Config, st store.Store) (Scalers, error) {
	if cfg != nil {
		return LoadScalers(cfg.Scalers)
	}
	state, err := st.Load()
	if err != nil {
		return Scalers{}, fmt.Errorf("load state: %w", err)
	}
	var sec config.Scalers
	if len(state.Config) > 0 {
		// A stored config that no longer parses is reported by proxyOptions.
		if saved, _, err := config.Parse(state.Config, "stored config", ""); err == nil {
			sec = saved.Scalers
		}
	}
	return LoadScalers(sec)
}

// configScalers runs the scalers of the config shoal starts with: for the whole run on
// the process backend, for each term as leader on Kubernetes. They call the scale
// webhook over HTTP like any outside scaler, so their calls are authenticated, audited
// and counted as webhook calls.
type configScalers struct {
	s Scalers
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
func newConfigScalers(s Scalers, address string, reg promclient.Registerer, log *slog.Logger) *configScalers {
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
