package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"shoal/internal/config"
	"shoal/internal/server"
)

func newStartCmd(g *globals) *cobra.Command {
	var (
		host, level     string
		port            int
		tlsCert, tlsKey string
		selfSigned      bool
	)
	kf := &backendFlags{}
	cmd := &cobra.Command{
		Use:   "start [CONFIG]",
		Short: "Run shoal in the foreground: proxy, control API and replicas",
		Long: `Run shoal in the foreground until SIGINT or SIGTERM (or 'shoal shutdown').

With CONFIG, shoal deploys it once started. Without, it brings back the config deployed
last in --state-dir, with the same replica targets. The proxy listens on the config's
http_options (default 127.0.0.1:8000); the control API on --dashboard-host:--dashboard-port.

TLS: http_options.ssl_certfile and ssl_keyfile serve the proxy over HTTPS, --tls-cert
and --tls-key the control API; --self-signed serves the others with a certificate for
local use and prints where its CA file is (clients take it with --cacert).

With --backend kubernetes, replicas are pods of Deployments in --namespace and the state
lives in the API server (see docs/kubernetes.md); several shoal replicas elect a leader.`,
		Args: rangeArgs(0, 1, "at most one CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			lv, err := parseLevel(level)
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usagef("--tls-cert and --tls-key go together")
			}
			logger := slog.New(slog.NewTextHandler(g.env.Stderr, &slog.HandlerOptions{Level: lv}))
			opts := server.Options{
				StateDir:      g.stateDir,
				DashboardHost: host,
				DashboardPort: port,
				TLSCertFile:   tlsCert,
				TLSKeyFile:    tlsKey,
				SelfSigned:    selfSigned,
				Logger:        logger,
				Stdout:        g.env.Stdout,
			}
			if len(args) == 1 {
				opts.ConfigPath = args[0]
			}
			if err := kf.apply(g, &opts); err != nil {
				return err
			}
			err = server.Run(cmd.Context(), opts)
			var errs config.Errors
			if errors.As(err, &errs) {
				fmt.Fprintf(g.env.Stderr, "shoal: %s is not a valid config:\n%v\n", opts.ConfigPath, err)
				fmt.Fprintf(g.env.Stderr, "shoal: fix the errors above and start again ('%s' checks a file)\n", validateHint(opts.Backend, opts.ConfigPath))
				return &exitCodeError{exitError}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "dashboard-host", "127.0.0.1", "host the control API listens on")
	f.IntVar(&port, "dashboard-port", 8265, "port the control API listens on")
	f.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&tlsCert, "tls-cert", "", "TLS certificate file for the control API")
	f.StringVar(&tlsKey, "tls-key", "", "TLS key file for the control API")
	f.BoolVar(&selfSigned, "self-signed", false,
		"serve TLS with a self-signed certificate for local use (a CA in <state-dir>/tls, reused while valid) on every listener without a certificate of its own")
	kf.register(f)
	return cmd
}

func parseLevel(s string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, usagef("--log-level %q: want debug, info, warn or error", s)
	}
	return lv, nil
}
