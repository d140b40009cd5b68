package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newShutdownCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "shutdown",
		Short: "Stop the running shoal gracefully, keeping its state",
		Long: `Ask the running shoal to stop as on SIGTERM: it stops accepting, finishes the
requests in flight, stops every replica gracefully and exits. The deployed config and
the targets stay in the state directory: 'shoal start' brings them back.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.shutdown(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(g.env.Stdout, "shoal at %s is shutting down\n", g.address)
			return nil
		},
	}
}
