package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"shoal/pkg/client"
)

func newDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete [APP...]",
		Short: "Delete applications (all of them without arguments)",
		Long: `Delete applications: their replicas drain and stop, and they leave 'shoal status'
once every replica has stopped. Without arguments every application is deleted; with
names, the deployed config is deployed again without those applications.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(args) == 0 {
				if err := c.deleteAll(ctx); err != nil {
					return err
				}
				fmt.Fprintln(g.env.Stdout, "deleting every application; 'shoal status' shows when they are gone")
				return nil
			}
			d, err := c.status(ctx)
			if err != nil {
				return err
			}
			for _, name := range args {
				if _, ok := d.Applications[name]; !ok {
					return fmt.Errorf("no application named %q; 'shoal status' lists them", name)
				}
			}
			var keep []json.RawMessage
			for _, name := range sortedKeys(d.Applications) {
				app := d.Applications[name]
				if slices.Contains(args, name) || app.Status == "DELETING" || len(app.DeployedAppConfig) == 0 {
					continue
				}
				keep = append(keep, app.DeployedAppConfig)
			}
			if len(keep) == 0 {
				err = c.deleteAll(ctx)
			} else {
				body, merr := json.Marshal(map[string]any{"http_options": configHTTPOptions(d.HTTPOptions), "applications": keep})
				if merr != nil {
					return merr
				}
				err = c.deploy(ctx, body)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.env.Stdout, "deleting %s; 'shoal status' shows when they are gone\n", strings.Join(args, ", "))
			return nil
		},
	}
}

// configHTTPOptions turns the http_options of the status answer back into the config's
// fields, so that a redeploy keeps the proxy's settings (Ray's answer has more fields
// than the config accepts).
func configHTTPOptions(h client.HTTPOptions) map[string]any {
	m := map[string]any{"host": h.Host, "port": h.Port, "keep_alive_timeout_s": h.KeepAliveTimeoutS}
	if h.RequestTimeoutS != nil {
		m["request_timeout_s"] = *h.RequestTimeoutS
	}
	if h.SSLKeyfile != nil && *h.SSLKeyfile != "" {
		m["ssl_keyfile"] = *h.SSLKeyfile
	}
	if h.SSLCertfile != nil && *h.SSLCertfile != "" {
		m["ssl_certfile"] = *h.SSLCertfile
	}
	return m
}
