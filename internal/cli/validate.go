package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"shoal/internal/config"
	"shoal/internal/server"
)

func newValidateCmd(g *globals) *cobra.Command {
	var backend string
	cmd := &cobra.Command{
		Use:   "validate CONFIG",
		Short: "Check a config file: print every error, or ok",
		Long: `Check a config file without deploying it. Prints every error on stdout, one per
line as file:line: path: message, and exits 1; or prints the warnings (ignored Ray
fields) on stderr and "ok" on stdout, and exits 0.

The scaler files the config names under scalers: (relative to the config) are read as
'shoal start' reads them: a missing file, or one with errors, is reported the same way,
one error per line as scalers.<kind>: file:line: path: message.

--backend kubernetes also checks what that backend needs: an image for every deployment,
and a command for an ingress deployment that would run an import_path.`,
		Args: exactArgs("CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBackend(backend); err != nil {
				return err
			}
			cfg, warnings, err := config.LoadFor(args[0], backend)
			var errs config.Errors
			if errors.As(err, &errs) {
				// The errors are this command's answer, so they go to stdout like "ok".
				fmt.Fprintln(g.env.Stdout, err)
				return &exitCodeError{exitError}
			}
			if err != nil {
				return err
			}
			// 'shoal start' stops on a scaler file it cannot use: a config is not ok
			// until they are.
			if _, err := server.LoadScalers(cfg.Scalers); err != nil {
				fmt.Fprintln(g.env.Stdout, err)
				return &exitCodeError{exitError}
			}
			printWarnings(g, warnings)
			fmt.Fprintln(g.env.Stdout, "ok")
			return nil
		},
	}
	cmd.Flags().StringVar(&backend, "backend", config.BackendProcess,
		"the backend to check for: process or kubernetes")
	return cmd
}

func printWarnings(g *globals, warnings []config.Warning) {
	for _, w := range warnings {
		fmt.Fprintf(g.env.Stderr, "warning: %s\n", w.String())
	}
}
