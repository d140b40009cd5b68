package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"shoal/internal/metrics"
	"shoal/internal/scaler"
	"shoal/internal/scaler/prometheus"
	"shoal/internal/scaler/schedule"
)

// newScalerCmd is `shoal scaler`: the ready-made external scalers, each its own
// long-running process that sets targets through the scale webhook, as any outside
// system would.
func newScalerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scaler",
		Short: "Run an external scaler that sets targets through shoal's scale webhook",
		Long: `Run one of shoal's ready-made external scalers. Each reads a small YAML file, runs
until interrupted, and sets deployment targets through the scale webhook with an
application token (from shoal.token_file, or the variable shoal.token_env, default
SHOAL_TOKEN; get one with 'shoal token APP'). The application needs
external_scaler_enabled: true. For an https:// shoal.address signed by a CA of your
own, shoal.cacert (or --cacert) names the CA file to trust.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newScalerPrometheusCmd(), newScalerScheduleCmd())
	return cmd
}

// scalerFlags are the flags both scalers share.
type scalerFlags struct {
	config         string
	dryRun         bool
	metricsAddress string
}

func (f *scalerFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.config, "config", "", "the scaler's YAML file (required)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "decide and log, but do not call the webhook")
	cmd.Flags().StringVar(&f.metricsAddress, "metrics-address", "",
		"serve the scaler's own metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9101)")
}

func newScalerPrometheusCmd() *cobra.Command {
	var (
		f    scalerFlags
		once bool
	)
	cmd := &cobra.Command{
		Use:   "prometheus --config FILE",
		Short: "Scale deployments on the value of a PromQL query",
		Long: `Every interval, evaluate each target's PromQL query against a Prometheus server and
set the deployment's target to ceil(value / per_replica), clamped to [min, max], at most
max_step replicas at a time, and not within scale_up_cooldown / scale_down_cooldown of
the last change. The target is read before every decision: one changed outside the
scaler (by hand, by a redeploy) counts as a change and is corrected once the cooldowns
allow. While the query fails the target is kept; after fallback.after of
failures it becomes fallback.replicas until the query works again. Each decision is
logged with the value and why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.config == "" {
				return usagef("--config is required")
			}
			cfg, err := prometheus.Load(f.config)
			if err != nil {
				return configError(cmd, err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("scaler", "prometheus")
			wh, err := scalerWebhook(withCACert(cmd, cfg.Shoal), f.dryRun, cfg.Prometheus.Timeout.D(), log)
			if err != nil {
				return err
			}
			reg := promclient.NewRegistry()
			m := scaler.NewMetrics(reg)
			ctx := cmd.Context()
			stop, err := serveScalerMetrics(ctx, f.metricsAddress, reg, log)
			if err != nil {
				return err
			}
			defer stop()
			s, err := prometheus.New(cfg, prometheus.Options{Webhook: wh, Logger: log, DryRun: f.dryRun, Metrics: m})
			if err != nil {
				return err
			}
			if once {
				s.Step(ctx)
				return nil
			}
			return s.Run(ctx)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&once, "once", false, "evaluate every target once and exit")
	return cmd
}

func newScalerScheduleCmd() *cobra.Command {
	var (
		f      scalerFlags
		printN int
	)
	cmd := &cobra.Command{
		Use:   "schedule --config FILE",
		Short: "Scale deployments by time of day, weekday and one-off windows",
		Long: `Set each target's replica count from its schedule: profiles by weekday and time of
day in the config's timezone (a later profile wins where two overlap, one may cross
midnight), one-off windows for events (they win over profiles), and a default. The
target is set at start and at every planned change, and one changed outside the scaler
(by hand, by a redeploy) is set back within the config's interval (default 30s).
--print N shows the next N changes and exits.

Daylight saving time: a wall time that does not exist on a day (skipped when clocks go
forward) means the moment the clock skips to; one that occurs twice (when clocks go
back) means its first occurrence.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.config == "" {
				return usagef("--config is required")
			}
			if printN < 0 {
				return usagef("--print takes a count >= 1, got %d", printN)
			}
			cfg, err := schedule.Load(f.config)
			if err != nil {
				return configError(cmd, err)
			}
			if printN > 0 {
				return printSchedule(cmd.OutOrStdout(), cfg, time.Now(), printN)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("scaler", "schedule")
			wh, err := scalerWebhook(withCACert(cmd, cfg.Shoal), f.dryRun, 10*time.Second, log)
			if err != nil {
				return err
			}
			reg := promclient.NewRegistry()
			m := scaler.NewMetrics(reg)
			ctx := cmd.Context()
			stop, err := serveScalerMetrics(ctx, f.metricsAddress, reg, log)
			if err != nil {
				return err
			}
			defer stop()
			return schedule.Run(ctx, cfg, schedule.Options{Webhook: wh, Logger: log, DryRun: f.dryRun, Metrics: m})
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&printN, "print", 0, "print the next N planned changes as a table and exit")
	return cmd
}

// configError prints every config error, one a line, and ends with exit status 1.
func configError(cmd *cobra.Command, err error) error {
	var errs *scaler.Errors
	if errors.As(err, &errs) {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return &exitCodeError{exitError}
	}
	return err
}

// withCACert applies the global --cacert (inherited from the root command) to a
// scaler's shoal section: given on the command line it wins over the file's cacert;
// from SHOAL_CACERT it applies only when the file names none.
func withCACert(cmd *cobra.Command, s scaler.Shoal) scaler.Shoal {
	f := cmd.Flags().Lookup("cacert")
	if f == nil || f.Value.String() == "" {
		return s
	}
	if f.Changed || s.CACert == "" {
		s.CACert = f.Value.String()
	}
	return s
}

// scalerWebhook makes the webhook client. A dry run needs no token: without one it
// logs that it cannot read the current target, and goes on.
func scalerWebhook(s scaler.Shoal, dryRun bool, timeout time.Duration, log *slog.Logger) (scaler.Webhook, error) {
	wh, err := s.Client(os.Getenv, timeout)
	if err == nil {
		return wh, nil
	}
	if dryRun && errors.Is(err, scaler.ErrNoToken) {
		log.Warn("dry run without a token: current targets are not read", "err", err)
		return nil, nil
	}
	return nil, err
}

// serveScalerMetrics serves reg (plus Go runtime and process metrics) on addr until
// ctx is done or stop is called; an empty addr serves nothing.
func serveScalerMetrics(ctx context.Context, addr string, reg *promclient.Registry, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	if err := metrics.RegisterRuntime(reg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving the scaler's metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		sctx, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		_ = srv.Shutdown(sctx)
	}()
	return cancel, nil
}

// printSchedule writes what each target runs now and the next n planned changes.
func printSchedule(w io.Writer, cfg *schedule.Config, now time.Time, n int) error {
	const layout = "Mon 2006-01-02 15:04 MST"
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAPPLICATION\tDEPLOYMENT\tREPLICAS\tREASON")
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		r, why := schedule.Desired(t, cfg.Location, now)
		fmt.Fprintf(tw, "now (%s)\t%s\t%s\t%d\t%s\n", now.In(cfg.Location).Format(layout), t.Application, t.Deployment, r, why)
	}
	for _, c := range schedule.NextChanges(cfg, now, n) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.At.In(cfg.Location).Format(layout), c.Application, c.Deployment,
			strconv.Itoa(c.Previous)+" → "+strconv.Itoa(c.Replicas), c.Reason)
	}
	return tw.Flush()
}
