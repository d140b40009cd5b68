package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:   "token APP",
		Short: "Print an application's scale-webhook token",
		Long: `Print the token of an application with external_scaler_enabled, alone on its line,
so that it can be captured: TOKEN=$(shoal token my-app). It may call only that
application's scale webhook. --rotate replaces it; the old token stops working at once.`,
		Args: exactArgs("APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tok, err := c.token(cmd.Context(), args[0], rotate)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.env.Stdout, tok)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token with a new one and print it")
	return cmd
}
