package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

func newScaleCmd(g *globals) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "scale APP DEPLOYMENT N",
		Short: "Set a deployment's target replica count",
		Long: `Set a deployment's target replica count, as the scale webhook does (the change is
durable once this returns). With --wait, show the running count until it reaches N.`,
		Args: exactArgs("APP", "DEPLOYMENT", "N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			app, dep := args[0], args[1]
			n, err := strconv.Atoi(args[2])
			if err != nil || n < 0 {
				return usagef("N must be a whole number >= 0, got %q", args[2])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			prev, err := c.scale(ctx, app, dep, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.env.Stdout, "%s/%s: target %d (was %d)\n", app, dep, n, prev)
			if !wait {
				return nil
			}
			return waitRunning(ctx, c, g.env.Stdout, app, dep, n, timeout, 250*time.Millisecond)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until N replicas are RUNNING, showing the progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// waitRunning polls the status until n replicas of app/dep are RUNNING. On a terminal
// the progress line is rewritten in place; elsewhere (a log, a pipe) a line is printed
// per change.
func waitRunning(ctx context.Context, c *apiClient, out io.Writer, app, dep string, n int, timeout, every time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tty := isTerminal(out)
	last := ""
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		running, line, err := progress(ctx, c, app, dep, n)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if line != "" && line != last {
			if tty {
				fmt.Fprintf(out, "\r%s\033[K", line)
			} else {
				fmt.Fprintln(out, line)
			}
			last = line
		}
		if err == nil && running == n {
			if tty {
				fmt.Fprintln(out)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(out)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s/%s: %d of %d replicas RUNNING after %v; the target is set and shoal keeps scaling: see 'shoal status' and 'shoal logs %s %s'",
					app, dep, running, n, timeout, app, dep)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// progress reads the running count and makes the progress line.
func progress(ctx context.Context, c *apiClient, app, dep string, n int) (int, string, error) {
	s, err := c.getScale(ctx, app, dep)
	if err != nil {
		return 0, "", err
	}
	line := fmt.Sprintf("%s/%s: %d/%d running", app, dep, s.RunningReplicas, n)
	if s.Status == "UNHEALTHY" {
		line += " (UNHEALTHY: " + oneLine(s.Message) + ")"
	}
	return s.RunningReplicas, line, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
