// Command predictive_scale sets a deployment's replica count by time of day through
// shoal's scale webhook, with pkg/client: the Go twin of examples/predictive_scale.py,
// the time-of-day example of Ray Serve's external scaling docs.
//
//	export SHOAL_TOKEN=$(shoal token my-app)
//	go run ./examples/predictive_scale [--app my-app] [--deployment my-deployment] [--wait 2m]
//
// The endpoint is SERVE_ENDPOINT, else --endpoint, else Ray's http://localhost:8000
// (shoal's proxy port, which answers the scale route; the control port does too). The
// hour is the local one, so TZ changes it. With --wait it then waits, printing the
// progress, until that many replicas are RUNNING.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"shoal/pkg/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "predictive_scale:", err)
		os.Exit(1)
	}
}

func run() error {
	endpoint := "http://localhost:8000"
	if e := os.Getenv("SERVE_ENDPOINT"); e != "" {
		endpoint = e
	}
	flag.StringVar(&endpoint, "endpoint", endpoint, "shoal's proxy or control address")
	app := flag.String("app", "my-app", "application")
	dep := flag.String("deployment", "my-deployment", "deployment")
	token := flag.String("token", os.Getenv("SHOAL_TOKEN"), "the application's token or the admin token (default $SHOAL_TOKEN)")
	wait := flag.Duration("wait", 0, "after the scale, wait this long for the replicas to be RUNNING (0: do not wait)")
	flag.Parse()
	if *token == "" {
		return fmt.Errorf("no token: pass --token or set SHOAL_TOKEN (shoal token %s prints it)", *app)
	}

	ctx := context.Background()
	c := client.New(endpoint, *token, client.WithTimeout(10*time.Second))
	now := time.Now()
	n := replicasAt(now.Hour())
	res, err := c.Scale(ctx, *app, *dep, n)
	if err != nil {
		return err
	}
	fmt.Printf("%s/%s: target %d (was %d) at %s\n", *app, *dep, res.TargetNumReplicas, res.PreviousTargetNumReplicas, now.Format("15:04 MST"))
	if *wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	last := -1
	return c.WaitRunning(ctx, *app, *dep, n, func(running, target int) {
		if running != last {
			fmt.Printf("%s/%s: %d/%d running\n", *app, *dep, running, target)
			last = running
		}
	})
}

// replicasAt is the daily profile of Ray's example: working hours, the evening peak,
// and the night.
func replicasAt(hour int) int {
	switch {
	case 9 <= hour && hour < 17:
		return 10
	case 17 <= hour && hour < 22:
		return 15
	default:
		return 3
	}
}
