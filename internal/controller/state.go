package controller

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"shoal/internal/auth"
	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/store"
)

// cloneState deep-copies a state, so a change can be saved before memory is touched
// (a failed Save then changes nothing). Nil maps come back empty.
func cloneState(s *store.State) *store.State {
	out := &store.State{
		Apps:   make(map[string]*store.AppState, len(s.Apps)),
		Tokens: make(map[string]*store.Token, len(s.Tokens)),
	}
	if s.Config != nil {
		out.Config = slices.Clone(s.Config)
	}
	for name, as := range s.Apps {
		if as == nil {
			continue
		}
		a := *as
		a.Deployments = make(map[string]*store.DeploymentState, len(as.Deployments))
		for dn, ds := range as.Deployments {
			if ds != nil {
				d := *ds
				a.Deployments[dn] = &d
			}
		}
		out.Apps[name] = &a
	}
	for name, t := range s.Tokens {
		if t != nil {
			tt := *t
			out.Tokens[name] = &tt
		}
	}
	return out
}

// jsonMarshal encodes a config for the store. No applications is written as [] (not
// null), which Parse reads back; it is what DeleteAll leaves.
func jsonMarshal(cfg *config.Config) ([]byte, error) {
	if cfg.Applications == nil {
		c := *cfg
		c.Applications = []config.Application{}
		cfg = &c
	}
	return json.Marshal(cfg)
}

// newToken makes an application token with a fresh random secret.
func newToken(app string, seq int, now time.Time) *store.Token {
	return &store.Token{ID: fmt.Sprintf("app:%s#%d", app, seq), Secret: auth.NewSecret(), Created: now}
}

// tokenSeq reads N from a token id "app:NAME#N" (0 when it has none).
func tokenSeq(id string) int {
	i := strings.LastIndexByte(id, '#')
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil {
		return 0
	}
	return n
}

// buildSpec resolves everything a replica of d needs into a backend spec.
func (c *Controller) buildSpec(a *config.Application, d *config.Deployment, target int) backend.Spec {
	env := make(map[string]string, len(a.RuntimeEnv.EnvVars)+len(d.Env)+5)
	maps.Copy(env, a.RuntimeEnv.EnvVars)
	maps.Copy(env, d.Env) // the deployment's own env wins over the application's
	env["SHOAL_APP"] = a.Name
	env["SHOAL_DEPLOYMENT"] = d.Name
	env["SHOAL_USER_CONFIG"] = jsonString(d.UserConfig)
	if a.Args != nil {
		env["SHOAL_APP_ARGS"] = jsonString(a.Args)
	}
	if c.handleURL != nil {
		env["SHOAL_HANDLE_URL"] = c.handleURL(a.Name)
	}
	wd := d.WorkingDir
	if wd == "" {
		wd = a.RuntimeEnv.WorkingDir
	}
	return backend.Spec{
		Key:                 backend.Key{App: a.Name, Deployment: d.Name},
		Version:             version(a, d),
		Replicas:            target,
		Command:             slices.Clone(d.Command),
		Env:                 env,
		WorkingDir:          wd,
		HealthCheckPath:     d.HealthCheckPath,
		HealthCheckPeriod:   config.Seconds(d.HealthCheckPeriodS),
		HealthCheckTimeout:  config.Seconds(d.HealthCheckTimeoutS),
		DrainPollInterval:   config.Seconds(d.GracefulShutdownWaitLoopS),
		GracefulStopTimeout: config.Seconds(d.GracefulShutdownTimeoutS),
		MaxOngoingRequests:  d.MaxOngoingRequests,
		Image:               d.Image,
		Resources: backend.Resources{
			Requests: maps.Clone(d.Resources.Requests),
			Limits:   maps.Clone(d.Resources.Limits),
		},
		NodeSelector:   maps.Clone(d.NodeSelector),
		ServiceAccount: d.ServiceAccount,
	}
}

// jsonString is v as JSON; "null" for nil (and for a value that cannot be encoded, which
// a config decoded from YAML or JSON never holds).
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}
