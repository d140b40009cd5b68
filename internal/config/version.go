package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Version is a stable hash of the fields that change what a replica runs: command,
// env, working_dir, user_config, image, resources, node_selector, service_account, and
// the application's import_path, runtime_env and args (the replicas see args as
// SHOAL_APP_ARGS). A new Version means a rolling update. Counts, limits, health checks and autoscaling are left out: they
// change how many replicas run and how they are watched, not what they are.
func Version(app *Application, d *Deployment) string {
	v := struct {
		Command    []string          `json:"command"`
		Env        map[string]string `json:"env"`
		WorkingDir string            `json:"working_dir"`
		UserConfig any               `json:"user_config"`
		Image      string            `json:"image"`
		ImportPath string            `json:"import_path"`
		RuntimeEnv RuntimeEnv        `json:"runtime_env"`
		Args       any               `json:"args"`
		// The pod's shape on Kubernetes. Left out when unset, so that a config without
		// them keeps the version it had before they existed.
		Resources      Resources         `json:"resources,omitzero"`
		NodeSelector   map[string]string `json:"node_selector,omitempty"`
		ServiceAccount string            `json:"service_account,omitempty"`
	}{d.Command, d.Env, d.WorkingDir, d.UserConfig, d.Image, app.ImportPath, app.RuntimeEnv, app.Args,
		d.Resources, d.NodeSelector, d.ServiceAccount}
	// encoding/json writes map keys sorted, so equal configs hash equally.
	b, err := json.Marshal(v)
	if err != nil {
		// A value built by hand that JSON cannot hold (Parse never makes one).
		b = fmt.Appendf(nil, "%#v", v)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
