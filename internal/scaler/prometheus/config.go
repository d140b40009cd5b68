package prometheus

import (
	"fmt"
	"math"
	"net/url"
	"time"

	"shoal/internal/scaler"
)

// Defaults.
const (
	DefaultURL               = "http://127.0.0.1:9090"
	DefaultInterval          = 15 * time.Second
	DefaultScaleDownCooldown = 5 * time.Minute
)

// Config is the scaler's YAML file.
//
//	shoal: {address: http://127.0.0.1:8000, token_file: token}
//	prometheus: {url: http://127.0.0.1:9090}
//	interval: 15s
//	targets:
//	  - application: my-app
//	    deployment: my-deployment
//	    query: sum(shoal_proxy_ongoing_requests{application="my-app"})
//	    per_replica: 10
//	    min: 1
//	    max: 20
//	    scale_up_cooldown: 30s
//	    scale_down_cooldown: 5m
//	    max_step: 4
//	    fallback: {after: 2m, replicas: 3}
type Config struct {
	Shoal      scaler.Shoal `yaml:"shoal"`
	Prometheus Source       `yaml:"prometheus"`
	// Interval between two evaluations of every target's query; default 15s.
	Interval scaler.Duration `yaml:"interval"`
	Targets  []Target        `yaml:"targets"`
}

// Source is where the queries go.
type Source struct {
	// URL of the Prometheus server (its HTTP API is under /api/v1); default DefaultURL.
	URL string `yaml:"url"`
	// Timeout of one query; default the interval, at most 10s.
	Timeout scaler.Duration `yaml:"timeout"`
}

// Target is one deployment scaled on one query.
type Target struct {
	Application string `yaml:"application"`
	Deployment  string `yaml:"deployment"`
	// Query is a PromQL expression that returns one number: a scalar, or a vector of one
	// sample (wrap it in sum() when it may return more).
	Query string `yaml:"query"`
	// PerReplica is how much of the value one replica takes: replicas =
	// ceil(value / per_replica).
	PerReplica float64 `yaml:"per_replica"`
	// Min and Max bound the replica count; Min defaults to 1 (0 allows scale to zero).
	Min *int `yaml:"min"`
	Max int  `yaml:"max"`
	// ScaleUpCooldown: no scale-up within this long of the last change (default 0).
	ScaleUpCooldown scaler.Duration `yaml:"scale_up_cooldown"`
	// ScaleDownCooldown: no scale-down within this long of the last change (default 5m,
	// as a Kubernetes HPA's scale-down stabilization).
	ScaleDownCooldown *scaler.Duration `yaml:"scale_down_cooldown"`
	// MaxStep limits one change to this many replicas up or down (0: no limit).
	MaxStep int `yaml:"max_step"`
	// Fallback, when set, replaces the target after the query has failed for a while.
	Fallback *Fallback `yaml:"fallback"`
}

// Fallback is KEDA's fallback: after the query has failed continuously for After, the
// target becomes Replicas until a query succeeds again.
type Fallback struct {
	After    scaler.Duration `yaml:"after"`
	Replicas int             `yaml:"replicas"`
}

// MinReplicas is Min with its default.
func (t *Target) MinReplicas() int {
	if t.Min == nil {
		return 1
	}
	return *t.Min
}

// DownCooldown is ScaleDownCooldown with its default.
func (t *Target) DownCooldown() time.Duration {
	if t.ScaleDownCooldown == nil {
		return DefaultScaleDownCooldown
	}
	return t.ScaleDownCooldown.D()
}

// Name is "application/deployment".
func (t *Target) Name() string { return t.Application + "/" + t.Deployment }

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	data, dir, err := scaler.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, dir)
}

// Parse decodes a config strictly, fills defaults and validates it. Errors come as a
// *scaler.Errors listing every problem with its line. Relative paths are relative to
// baseDir.
func Parse(data []byte, name, baseDir string) (*Config, error) {
	var c Config
	doc, err := scaler.Decode(data, name, &c)
	if err != nil {
		return nil, err
	}
	errs := &scaler.Errors{File: name}
	scaler.DefaultsAndShoal(&c.Shoal, baseDir, errs, doc)
	if c.Prometheus.URL == "" {
		c.Prometheus.URL = DefaultURL
	}
	if u, err := url.Parse(c.Prometheus.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Add(doc.Line("prometheus", "url"), "prometheus.url", fmt.Sprintf("must be an http:// or https:// URL, got %q", c.Prometheus.URL))
	}
	if c.Interval == 0 {
		c.Interval = scaler.Duration(DefaultInterval)
	}
	if c.Interval < 0 {
		errs.Add(doc.Line("interval"), "interval", "must be > 0")
	}
	if c.Prometheus.Timeout == 0 {
		c.Prometheus.Timeout = scaler.Duration(min(c.Interval.D(), 10*time.Second))
	}
	if c.Prometheus.Timeout < 0 {
		errs.Add(doc.Line("prometheus", "timeout"), "prometheus.timeout", "must be > 0")
	}
	if len(c.Targets) == 0 {
		errs.Add(doc.Line("targets"), "targets", "at least one target is needed")
	}
	seen := map[string]int{}
	for i := range c.Targets {
		validateTarget(&c.Targets[i], i, doc, errs, seen)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &c, nil
}

func validateTarget(t *Target, i int, doc *scaler.Doc, errs *scaler.Errors, seen map[string]int) {
	at := func(field string) (int, string) {
		if field == "" {
			return doc.Line("targets", i), fmt.Sprintf("targets[%d]", i)
		}
		return doc.Line("targets", i, field), fmt.Sprintf("targets[%d].%s", i, field)
	}
	add := func(field, msg string) {
		line, path := at(field)
		errs.Add(line, path, msg)
	}
	if t.Application == "" {
		add("application", "must not be empty")
	}
	if t.Deployment == "" {
		add("deployment", "must not be empty")
	}
	if prev, dup := seen[t.Name()]; dup && t.Application != "" && t.Deployment != "" {
		add("", fmt.Sprintf("%s is scaled by targets[%d] already", t.Name(), prev))
	} else {
		seen[t.Name()] = i
	}
	if t.Query == "" {
		add("query", "must not be empty")
	}
	if !(t.PerReplica > 0) || math.IsInf(t.PerReplica, 0) {
		add("per_replica", fmt.Sprintf("must be a number > 0, got %v", t.PerReplica))
	}
	lo := t.MinReplicas()
	if lo < 0 {
		add("min", fmt.Sprintf("must be >= 0, got %d", lo))
	}
	if t.Max < 1 || t.Max < lo {
		add("max", fmt.Sprintf("must be >= 1 and >= min (%d), got %d", lo, t.Max))
	}
	if t.ScaleUpCooldown < 0 {
		add("scale_up_cooldown", "must be >= 0")
	}
	if t.DownCooldown() < 0 {
		add("scale_down_cooldown", "must be >= 0")
	}
	if t.MaxStep < 0 {
		add("max_step", fmt.Sprintf("must be >= 0 (0: no limit), got %d", t.MaxStep))
	}
	if f := t.Fallback; f != nil {
		if f.After <= 0 {
			line := doc.Line("targets", i, "fallback", "after")
			errs.Add(line, fmt.Sprintf("targets[%d].fallback.after", i), "must be > 0")
		}
		if f.Replicas < lo || f.Replicas > t.Max {
			line := doc.Line("targets", i, "fallback", "replicas")
			errs.Add(line, fmt.Sprintf("targets[%d].fallback.replicas", i), fmt.Sprintf("must be within min and max [%d, %d], got %d", lo, t.Max, f.Replicas))
		}
	}
}
