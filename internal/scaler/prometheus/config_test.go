package prometheus

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/scaler"
)

func TestTheExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "..", "examples", "scalers", "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Targets[0]
	if c.Interval.D() != 15*time.Second || tg.PerReplica != 10 || tg.MinReplicas() != 1 || tg.Max != 20 ||
		tg.MaxStep != 4 || tg.DownCooldown() != 5*time.Minute || tg.Fallback.After.D() != 2*time.Minute ||
		tg.Fallback.Replicas != 3 || c.Shoal.TokenEnv != "SHOAL_TOKEN" {
		t.Errorf("example decoded wrong: %+v", c)
	}
	if !strings.Contains(tg.Query, "shoal_proxy_ongoing_requests") {
		t.Errorf("query %q", tg.Query)
	}
}

func TestDefaultsAreFilledIn(t *testing.T) {
	c, err := Parse([]byte("targets: [{application: a, deployment: d, query: q, per_replica: 1, max: 3}]\n"), "s.yaml", "/base")
	if err != nil {
		t.Fatal(err)
	}
	tg := c.Targets[0]
	if c.Shoal.Address != scaler.DefaultAddress || c.Prometheus.URL != DefaultURL || c.Interval.D() != DefaultInterval ||
		c.Prometheus.Timeout.D() != 10*time.Second || tg.MinReplicas() != 1 || tg.DownCooldown() != DefaultScaleDownCooldown ||
		tg.ScaleUpCooldown != 0 || tg.MaxStep != 0 || tg.Fallback != nil {
		t.Errorf("defaults: %+v / %+v", c, tg)
	}
}

func TestConfigErrorsNameTheFileLineAndPath(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"an unknown field is refused with its line",
			"interval: 5s\ntargets:\n  - application: a\n    deployment: d\n    query: q\n    per_replica: 1\n    max: 2\n    maxstep: 3\n",
			"p.yaml:8: field maxstep not found in type prometheus.Target"},
		{"a duration that does not parse names the line",
			"interval: fast\n",
			`p.yaml:1: want a duration like 15s or 5m, got "fast"`},
		{"no target is an error",
			"interval: 5s\n",
			"p.yaml: targets: at least one target is needed"},
		{"every problem of a target is reported, each with its line",
			"targets:\n  - application: a\n    deployment: d\n    query: ''\n    per_replica: 0\n    min: 5\n    max: 2\n    max_step: -1\n    fallback: {after: 0s, replicas: 9}\n",
			"p.yaml:4: targets[0].query: must not be empty\n" +
				"p.yaml:5: targets[0].per_replica: must be a number > 0, got 0\n" +
				"p.yaml:7: targets[0].max: must be >= 1 and >= min (5), got 2\n" +
				"p.yaml:8: targets[0].max_step: must be >= 0 (0: no limit), got -1\n" +
				"p.yaml:9: targets[0].fallback.after: must be > 0\n" +
				"p.yaml:9: targets[0].fallback.replicas: must be within min and max [5, 2], got 9"},
		{"a deployment scaled twice is refused",
			"targets:\n  - {application: a, deployment: d, query: q, per_replica: 1, max: 2}\n  - {application: a, deployment: d, query: q, per_replica: 1, max: 2}\n",
			"p.yaml:3: targets[1]: a/d is scaled by targets[0] already"},
		{"a prometheus url that is not http is refused",
			"prometheus: {url: 'ftp://x'}\ntargets: [{application: a, deployment: d, query: q, per_replica: 1, max: 2}]\n",
			`p.yaml:1: prometheus.url: must be an http:// or https:// URL, got "ftp://x"`},
		{"token_file and token_env together are refused",
			"shoal: {token_file: t, token_env: T}\ntargets: [{application: a, deployment: d, query: q, per_replica: 1, max: 2}]\n",
			"p.yaml:1: shoal.token_env: set token_file or token_env, not both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "p.yaml", "/")
			var errs *scaler.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %v (%T), want *scaler.Errors", err, err)
			}
			if err.Error() != c.want {
				t.Errorf("got\n%s\nwant\n%s", err, c.want)
			}
		})
	}
}
