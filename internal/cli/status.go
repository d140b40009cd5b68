package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"shoal/pkg/client"
)

func newStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show applications, deployments and replicas",
		Long: `Show every application and its deployments: status, route, how the replica count
is decided (mode), the target and running counts, and the replicas by state.
-o json or -o yaml prints the control API's answer (Ray's ServeInstanceDetails) instead.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "table" && output != "json" && output != "yaml" {
				return usagef("-o %q: want table, json or yaml", output)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.status(cmd.Context())
			if err != nil {
				return err
			}
			switch output {
			case "json", "yaml":
				raw, err := json.MarshalIndent(d, "", "  ")
				if err != nil {
					return err
				}
				if output == "yaml" {
					return writeYAML(g.env.Stdout, raw)
				}
				_, err = fmt.Fprintf(g.env.Stdout, "%s\n", raw)
				return err
			}
			return writeTable(g.env.Stdout, d)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// mode is how a deployment's count is decided, in the words of the scale webhook's GET.
func mode(app *client.ApplicationDetails, d *client.DeploymentDetails) string {
	switch ac := d.DeploymentConfig.AutoscalingConfig; {
	case app.ExternalScalerEnabled:
		return "external"
	case len(ac) > 0 && string(ac) != "null":
		return "autoscaling"
	default:
		return "fixed"
	}
}

// byState summarizes replicas as "1 STARTING, 2 RUNNING", in the order of a replica's life.
func byState(d *client.DeploymentDetails) string {
	counts := map[string]int{}
	for _, r := range d.Replicas {
		counts[r.State]++
	}
	var parts []string
	for _, s := range []string{"STARTING", "RUNNING", "STOPPING", "UNHEALTHY"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
			delete(counts, s)
		}
	}
	for _, s := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func writeTable(w io.Writer, d *client.ServeDetails) error {
	if len(d.Applications) == 0 {
		_, err := fmt.Fprintln(w, "no applications; deploy a config with 'shoal deploy CONFIG'")
		return err
	}
	// The MESSAGE column shows only when there is a message. Every row has every cell,
	// empty or not, or tabwriter would align the columns after a short row on their
	// own; the blanks it pads empty trailing cells with are trimmed after.
	withMsg := false
	for _, app := range d.Applications {
		withMsg = withMsg || app.Message != ""
		for _, dep := range app.Deployments {
			withMsg = withMsg || dep.Message != ""
		}
	}
	row := func(cells ...string) string {
		if !withMsg {
			cells = cells[:len(cells)-1]
		}
		return strings.Join(cells, "\t") + "\n"
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, row("APPLICATION / DEPLOYMENT", "STATUS", "ROUTE", "MODE", "TARGET", "RUNNING", "REPLICAS", "MESSAGE"))
	for _, name := range sortedKeys(d.Applications) {
		app := d.Applications[name]
		fmt.Fprint(tw, row(name, app.Status, app.RoutePrefix, appMode(app), "", "", "", oneLine(app.Message)))
		for _, dn := range sortedKeys(app.Deployments) {
			dep := app.Deployments[dn]
			fmt.Fprint(tw, row("  "+dn, dep.Status, "", mode(app, dep), strconv.Itoa(dep.TargetNumReplicas),
				strconv.Itoa(dep.Running()), byState(dep), oneLine(dep.Message)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// appMode is the application's mode: external, or its deployments' mode when they
// share one, else "mixed".
func appMode(app *client.ApplicationDetails) string {
	if app.ExternalScalerEnabled {
		return "external"
	}
	shared := ""
	for _, d := range app.Deployments {
		m := mode(app, d)
		if shared != "" && m != shared {
			return "mixed"
		}
		shared = m
	}
	return shared
}

// oneLine keeps a table row on one line: the first line of a message, shortened.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:79]) + "…"
	}
	return s
}

// writeYAML prints JSON as block-style YAML, keeping the keys' order and the numbers as
// written (YAML reads JSON; only the style changes).
func writeYAML(w io.Writer, raw []byte) error {
	var node yaml.Node
	if err := yaml.Unmarshal(raw, &node); err != nil {
		return fmt.Errorf("the control API answered something that is not JSON: %w", err)
	}
	blockStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return err
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style = 0
	}
	if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle {
		// Keep quotes only where YAML needs them ("true", "1", "" as strings).
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
