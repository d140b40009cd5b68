package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"shoal/internal/config"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate CONFIG",
		Short: "Check a config file: print every error, or ok",
		Long: `Check a config file without deploying it. Prints every error on stdout, one per
line as file:line: path: message, and exits 1; or prints the warnings (ignored Ray
fields) on stderr and "ok" on stdout, and exits 0.`,
		Args: exactArgs("CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, warnings, err := config.Load(args[0])
			var errs config.Errors
			if errors.As(err, &errs) {
				// The errors are this command's answer, so they go to stdout like "ok".
				fmt.Fprintln(g.env.Stdout, err)
				return &exitCodeError{exitError}
			}
			if err != nil {
				return err
			}
			printWarnings(g, warnings)
			fmt.Fprintln(g.env.Stdout, "ok")
			return nil
		},
	}
}

func printWarnings(g *globals, warnings []config.Warning) {
	for _, w := range warnings {
		fmt.Fprintf(g.env.Stderr, "warning: %s\n", w.String())
	}
}
