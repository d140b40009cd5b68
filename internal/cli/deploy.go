package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"shoal/internal/config"
)

func newDeployCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "deploy CONFIG",
		Short: "Deploy a config to a running shoal",
		Long: `Check CONFIG here, then send it to the running shoal, which makes it the deployed
config: new applications start, changed deployments roll to their new version, and
applications missing from CONFIG are deleted. Relative paths in CONFIG are resolved
here, against CONFIG's directory.`,
		Args: exactArgs("CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, warnings, err := config.Load(args[0])
			var errs config.Errors
			if errors.As(err, &errs) {
				fmt.Fprintln(g.env.Stderr, err)
				fmt.Fprintf(g.env.Stderr, "shoal: %s is not a valid config (%d error(s)); nothing was deployed\n", args[0], len(errs))
				return &exitCodeError{exitError}
			}
			if err != nil {
				return err
			}
			printWarnings(g, warnings)
			body, err := json.Marshal(cfg)
			if err != nil {
				return fmt.Errorf("encode config: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.deploy(cmd.Context(), body); err != nil {
				return err
			}
			names := make([]string, len(cfg.Applications))
			for i, a := range cfg.Applications {
				names[i] = a.Name
			}
			fmt.Fprintf(g.env.Stdout, "deployed %s to %s; 'shoal status' shows the progress\n", strings.Join(names, ", "), g.address)
			return nil
		},
	}
}
