package config

import (
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys of each level of the config (read-only tables). Ray's fields that shoal reads are listed with
// shoal's own; Ray's fields with no meaning for local processes are accepted with a
// warning (the reason is the warning's text). The lists follow Ray Serve's
// ServeDeploySchema, HTTPOptionsSchema, ServeApplicationSchema, DeploymentSchema and
// AutoscalingConfig.
var (
	topSchema = schema{
		known: []string{"http_options", "applications", "scalers"},
		hints: sameReason(`Ray's single-application format is not supported; put the application in "applications: [...]"`,
			"name", "import_path", "route_prefix", "deployments", "runtime_env", "args"),
		ignored: map[string]string{
			"proxy_location":  "shoal runs one proxy, on http_options.host:port",
			"grpc_options":    "shoal's proxy serves HTTP only",
			"logging_config":  "replica output goes to the state directory's logs",
			"target_capacity": "not supported; scale with num_replicas, autoscaling or the scale webhook",
		},
	}
	httpSchema = schema{
		known: []string{"host", "port", "request_timeout_s", "keep_alive_timeout_s", "ssl_keyfile", "ssl_certfile"},
		ignored: map[string]string{
			"root_path":            "not supported; route with each application's route_prefix",
			"ssl_keyfile_password": "encrypted keys are not supported; give an unencrypted ssl_keyfile",
			"ssl_ca_certs":         "client certificates are not verified",
			"middlewares":          "Python middlewares do not apply to shoal's proxy",
			"location":             "shoal runs one proxy, on http_options.host:port",
			"num_cpus":             "Ray resources do not apply to local processes",
			"root_url":             "not supported",
		},
	}
	appSchema = schema{
		nested: map[string]*schema{"runtime_env": &runtimeEnvSchema},
		known:  []string{"name", "route_prefix", "import_path", "runtime_env", "external_scaler_enabled", "args", "deployments", "host", "port"},
		ignored: map[string]string{
			"logging_config":     "replica output goes to the state directory's logs",
			"autoscaling_policy": "application-level autoscaling policies are not supported",
		},
	}
	runtimeEnvSchema = schema{
		known: []string{"working_dir", "env_vars"},
		ignored: sameReason(localEnvReason, "pip", "conda", "uv", "py_modules", "py_executable",
			"excludes", "container", "config", "image_uri", "java_jars", "nsight", "mpi"),
		openIgnored: localEnvReason,
	}
	deploymentSchema = schema{
		nested: map[string]*schema{"autoscaling_config": &autoscalingSchema, "resources": &resourcesSchema},
		hints: map[string]string{
			"route_prefix":           "route_prefix belongs to the application",
			"import_path":            "import_path belongs to the application",
			"runtime_env":            `runtime_env belongs to the application; a deployment has "env" and "working_dir"`,
			"max_concurrent_queries": `Ray's old name for "max_ongoing_requests"`,
		},
		known: []string{
			"name", "num_replicas", "command", "env", "working_dir", "health_check_path", "ingress", "image",
			"resources", "node_selector", "service_account",
			"max_ongoing_requests", "max_queued_requests",
			"graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s",
			"health_check_period_s", "health_check_timeout_s",
			"replica_limit", "user_config", "autoscaling_config",
		},
		ignored: map[string]string{
			"ray_actor_options":        "Ray actor resources do not apply to local processes",
			"placement_group_bundles":  "Ray placement groups do not apply to local processes",
			"placement_group_strategy": "Ray placement groups do not apply to local processes",
			"max_replicas_per_node":    "shoal runs replicas on one node (or lets Kubernetes place them)",
			"logging_config":           "replica output goes to the state directory's logs",
			"request_router_config":    "shoal's proxy picks replicas by power of two choices",
		},
	}
	autoscalingSchema = schema{
		known: []string{
			"min_replicas", "max_replicas", "initial_replicas", "target_ongoing_requests",
			"look_back_period_s", "upscale_delay_s", "downscale_delay_s", "downscale_to_zero_delay_s",
			"smoothing_factor", "upscaling_factor", "downscaling_factor", "metrics_interval_s",
		},
		ignored: map[string]string{
			"aggregation_function": "the look-back window is always averaged (Ray's default, mean)",
			"policy":               "custom autoscaling policies are not supported",
		},
		deprecated: map[string]string{
			"upscale_smoothing_factor":   "upscaling_factor",
			"downscale_smoothing_factor": "downscaling_factor",
		},
	}
)

const localEnvReason = "shoal runs replicas in the local environment; only working_dir and env_vars apply"

func sameReason(reason string, keys ...string) map[string]string {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = reason
	}
	return m
}

func (p *parser) config(root *yaml.Node) *Config {
	cfg := &Config{HTTPOptions: DefaultHTTPOptions()}
	fs, ok := p.fields(root, "", topSchema)
	if !ok {
		return cfg
	}
	if f, ok := fs["http_options"]; ok && !isNull(f.val) {
		p.httpOptions(f.val, "http_options", &cfg.HTTPOptions)
	}
	if f, ok := fs["scalers"]; ok && !isNull(f.val) {
		cfg.Scalers = p.scalers(f.val, "scalers")
	}
	f, ok := fs["applications"]
	switch {
	case !ok || isNull(f.val):
		p.errorAt(root, "applications", "required field is missing: list the applications to run")
	case f.val.Kind != yaml.SequenceNode:
		p.errorAt(f.val, "applications", "must be a list, got %s", describe(f.val))
	default:
		// An empty list is a valid config (Ray's too): deploying it deletes every
		// application. It stays a list, not null, in JSON.
		cfg.Applications = make([]Application, 0, len(f.val.Content))
		for i, n := range f.val.Content {
			if p.budget < 0 {
				break
			}
			path := index("applications", i)
			n = deref(n)
			p.lines[path] = n.Line
			cfg.Applications = append(cfg.Applications, p.application(n, path))
		}
	}
	return cfg
}

func (p *parser) httpOptions(n *yaml.Node, path string, h *HTTPOptions) {
	fs, ok := p.fields(n, path, httpSchema)
	if !ok {
		return
	}
	for name, f := range fs {
		if isNull(f.val) {
			continue // null: the default (Ray: "uses a default if null")
		}
		fp := join(path, name)
		switch name {
		case "host":
			if v, ok := p.str(f.val, fp); ok {
				if v == "" {
					p.errorAt(f.val, fp, "must not be empty")
				}
				h.Host = v
			}
		case "port":
			if v, ok := p.integer(f.val, fp); ok {
				if v < 0 || v > 65535 {
					p.errorAt(f.val, fp, "must be between 0 and 65535, got %d", v)
				}
				h.Port = v
			}
		case "request_timeout_s":
			if v, ok := p.number(f.val, fp); ok {
				if v <= 0 {
					p.errorAt(f.val, fp, "must be > 0, got %s", f.val.Value)
				}
				h.RequestTimeoutS = v
			}
		case "keep_alive_timeout_s":
			if v, ok := p.number(f.val, fp); ok {
				if v < 0 {
					p.errorAt(f.val, fp, "must be >= 0, got %s", f.val.Value)
				}
				h.KeepAliveTimeoutS = v
			}
		case "ssl_keyfile", "ssl_certfile":
			if v, ok := p.str(f.val, fp); ok && v != "" {
				v = p.abs(v)
				if name == "ssl_keyfile" {
					h.SSLKeyfile = v
				} else {
					h.SSLCertfile = v
				}
			}
		}
	}
	// Ray's validate_ssl_config: both or neither.
	switch {
	case h.SSLKeyfile != "" && h.SSLCertfile == "":
		p.errorf(join(path, "ssl_keyfile"), "ssl_certfile must be given with ssl_keyfile")
	case h.SSLCertfile != "" && h.SSLKeyfile == "":
		p.errorf(join(path, "ssl_certfile"), "ssl_keyfile must be given with ssl_certfile")
	}
}

// abs resolves a local path against the config file's directory.
func (p *parser) abs(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.baseDir, path)
}

// isURI reports whether a working_dir is a remote package (s3://, gs://, https://...zip)
// rather than a local directory.
func isURI(s string) bool { return strings.Contains(s, "://") }

func (p *parser) application(n *yaml.Node, path string) Application {
	app := Application{Name: DefaultAppName, RoutePrefix: DefaultRoutePrefix}
	fs, ok := p.fields(n, path, appSchema)
	if !ok {
		return app
	}
	for _, name := range appSchema.known {
		f, ok := fs[name]
		if !ok {
			continue
		}
		fp := join(path, name)
		if isNull(f.val) {
			switch name {
			case "route_prefix":
				p.errorAt(f.val, fp, "null (no HTTP route) is not supported: every application is routed by its route_prefix")
			case "deployments":
				p.errorAt(f.val, fp, "must list at least one deployment")
			}
			continue
		}
		switch name {
		case "name":
			if v, ok := p.str(f.val, fp); ok {
				app.Name = v
				p.checkName(f.val, fp, v, "application")
			}
		case "route_prefix":
			if v, ok := p.str(f.val, fp); ok {
				app.RoutePrefix = v
				switch {
				case !strings.HasPrefix(v, "/"):
					p.errorAt(f.val, fp, "must start with \"/\", got %q", v)
				case len(v) > 1 && strings.HasSuffix(v, "/"):
					p.errorAt(f.val, fp, "must not end with \"/\" unless it is just \"/\", got %q", v)
				case strings.ContainsAny(v, "{}"):
					p.errorAt(f.val, fp, "must not contain \"{\" or \"}\" (no wildcards), got %q", v)
				}
			}
		case "import_path":
			if v, ok := p.str(f.val, fp); ok {
				app.ImportPath = v
				if msg := checkImportPath(v); msg != "" {
					p.errorAt(f.val, fp, "%s", msg)
				}
			}
		case "runtime_env":
			p.runtimeEnv(f.val, fp, &app.RuntimeEnv)
		case "external_scaler_enabled":
			if v, ok := p.boolean(f.val, fp); ok {
				app.ExternalScalerEnabled = v
			}
		case "args":
			if f.val.Kind != yaml.MappingNode {
				p.errorAt(f.val, fp, "must be a mapping, got %s", describe(f.val))
				continue
			}
			if v, ok := p.value(f.val, fp); ok && len(v.(map[string]any)) > 0 {
				app.Args = v
			}
		case "host":
			// Ray's wording (ServeDeploySchema.nested_host_and_port).
			p.errorAt(f.key, fp, "Host %q is set in the config for application `%s`. Please remove it and set host in the top level deploy config only.", f.val.Value, app.Name)
		case "port":
			p.errorAt(f.key, fp, "Port %s is set in the config for application `%s`. Please remove it and set port in the top level deploy config only.", f.val.Value, app.Name)
		case "deployments":
			switch {
			case f.val.Kind != yaml.SequenceNode:
				p.errorAt(f.val, fp, "must be a list, got %s", describe(f.val))
			case len(f.val.Content) == 0:
				p.errorAt(f.val, fp, "must list at least one deployment")
			}
			if f.val.Kind != yaml.SequenceNode {
				continue
			}
			for i, dn := range f.val.Content {
				if p.budget < 0 {
					break
				}
				dp := index(fp, i)
				dn = deref(dn)
				p.lines[dp] = dn.Line
				app.Deployments = append(app.Deployments, p.deployment(dn, dp))
			}
		}
	}
	if _, ok := fs["deployments"]; !ok {
		p.errorAt(n, join(path, "deployments"), "required field is missing: list the application's deployments (shoal cannot read them from Python code)")
	}
	return app
}

// checkName refuses names that cannot be a path segment: names become URL segments of
// the API and directories of the log tree (<logs>/<app>/<deployment>/).
func (p *parser) checkName(n *yaml.Node, path, v, what string) {
	switch {
	case v == "":
		p.errorAt(n, path, "%s names must be non-empty", what)
	case v == "." || v == "..":
		p.errorAt(n, path, "must not be %q", v)
	case strings.ContainsAny(v, "/\\"):
		p.errorAt(n, path, "must not contain \"/\" or \"\\\", got %q", v)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		p.errorAt(n, path, "must not contain control characters, got %q", v)
	}
}

// checkImportPath applies Ray's rules for import_path and returns Ray's message for a
// bad one, or "".
func checkImportPath(v string) string {
	if strings.Contains(v, ":") {
		switch {
		case strings.Count(v, ":") > 1:
			return `Got invalid import path "` + v + `". An import path may have at most one colon.`
		case strings.HasPrefix(v, ":") || strings.HasSuffix(v, ":"):
			return `Got invalid import path "` + v + `". An import path may not start or end with a colon.`
		}
		return ""
	}
	switch {
	case !strings.Contains(v, "."):
		return `Got invalid import path "` + v + `". An import path must contain at least one dot or colon separating the module (and potentially submodules) from the deployment graph. E.g.: "module.deployment_graph".`
	case strings.HasPrefix(v, ".") || strings.HasSuffix(v, "."):
		return `Got invalid import path "` + v + `". An import path may not start or end with a dot.`
	}
	return ""
}

// uvicornTarget turns an import path into uvicorn's "module:attr": Ray also accepts
// "module.attr", where the last dot separates the attribute.
func uvicornTarget(importPath string) string {
	if strings.Contains(importPath, ":") {
		return importPath
	}
	i := strings.LastIndexByte(importPath, '.')
	if i < 0 {
		return importPath
	}
	return importPath[:i] + ":" + importPath[i+1:]
}

func (p *parser) runtimeEnv(n *yaml.Node, path string, re *RuntimeEnv) {
	fs, ok := p.fields(n, path, runtimeEnvSchema)
	if !ok {
		return
	}
	if f, ok := fs["working_dir"]; ok && !isNull(f.val) {
		fp := join(path, "working_dir")
		if v, ok := p.str(f.val, fp); ok && v != "" {
			if isURI(v) {
				// Kept for the version; finishApp warns, once it knows where the replicas run.
				re.WorkingDir = v
			} else {
				re.WorkingDir = p.abs(v)
			}
		}
	}
	if f, ok := fs["env_vars"]; ok && !isNull(f.val) {
		re.EnvVars = p.env(f.val, join(path, "env_vars"))
	}
}

// env reads a mapping of variable names to values; values may be written as numbers
// or booleans, and their ${VAR} references must be well formed.
func (p *parser) env(n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.errorAt(n, path, "must be a mapping of variable names to values, got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for _, e := range p.entries(n, path, 0) {
		fp := join(path, e.name)
		if e.name == "" || strings.ContainsAny(e.name, "=\x00") {
			p.errorAt(e.f.key, fp, "invalid variable name %q", e.name)
			continue
		}
		v, ok := p.scalarText(e.f.val, fp)
		if !ok {
			continue
		}
		if err := checkRefs(v); err != nil {
			p.errorAt(e.f.val, fp, "%v", err)
		}
		out[e.name] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (p *parser) deployment(n *yaml.Node, path string) Deployment {
	d := defaultDeployment()
	fs, ok := p.fields(n, path, deploymentSchema)
	if !ok {
		return d
	}
	if f, ok := fs["name"]; !ok || isNull(f.val) {
		p.errorAt(n, join(path, "name"), "required field is missing")
	}
	for _, name := range deploymentSchema.known {
		f, ok := fs[name]
		if !ok || isNull(f.val) {
			continue // null: the default (Ray: "uses a default if null")
		}
		fp := join(path, name)
		switch name {
		case "name":
			if v, ok := p.str(f.val, fp); ok {
				d.Name = v
				p.checkName(f.val, fp, v, "deployment")
			}
		case "num_replicas":
			p.numReplicas(f.val, fp, &d.NumReplicas)
		case "command":
			d.Command = p.command(f.val, fp)
		case "env":
			d.Env = p.env(f.val, fp)
		case "working_dir":
			if v, ok := p.str(f.val, fp); ok && v != "" {
				if isURI(v) {
					p.errorAt(f.val, fp, "must be a local directory, got %q (remote URIs are not supported)", v)
					continue
				}
				d.WorkingDir = p.abs(v)
			}
		case "health_check_path":
			if v, ok := p.str(f.val, fp); ok {
				if !strings.HasPrefix(v, "/") {
					p.errorAt(f.val, fp, "must start with \"/\", got %q", v)
				}
				d.HealthCheckPath = v
			}
		case "ingress":
			if v, ok := p.boolean(f.val, fp); ok {
				d.Ingress = v
			}
		case "image":
			if v, ok := p.str(f.val, fp); ok {
				if v == "" {
					p.errorAt(f.val, fp, "must not be empty")
				}
				d.Image = v
			}
		case "resources":
			d.Resources = p.resources(f.val, fp)
		case "node_selector":
			d.NodeSelector = p.nodeSelector(f.val, fp)
		case "service_account":
			if v, ok := p.str(f.val, fp); ok {
				if msg := checkDNSSubdomain(v); msg != "" {
					p.errorAt(f.val, fp, "%s", msg)
				}
				d.ServiceAccount = v
			}
		case "max_ongoing_requests":
			if v, ok := p.integer(f.val, fp); ok {
				if v <= 0 {
					p.errorAt(f.val, fp, "must be > 0, got %d", v)
				}
				d.MaxOngoingRequests = v
			}
		case "max_queued_requests":
			if v, ok := p.integer(f.val, fp); ok {
				if v != -1 && v < 1 {
					p.errorAt(f.val, fp, "must be -1 (no limit) or a positive integer, got %d", v)
				}
				d.MaxQueuedRequests = v
			}
		case "graceful_shutdown_wait_loop_s":
			d.GracefulShutdownWaitLoopS = p.bounded(f.val, fp, d.GracefulShutdownWaitLoopS, false)
		case "graceful_shutdown_timeout_s":
			d.GracefulShutdownTimeoutS = p.bounded(f.val, fp, d.GracefulShutdownTimeoutS, false)
		case "health_check_period_s":
			d.HealthCheckPeriodS = p.bounded(f.val, fp, d.HealthCheckPeriodS, true)
		case "health_check_timeout_s":
			d.HealthCheckTimeoutS = p.bounded(f.val, fp, d.HealthCheckTimeoutS, true)
		case "replica_limit":
			if v, ok := p.integer(f.val, fp); ok {
				if v < 1 {
					p.errorAt(f.val, fp, "must be >= 1, got %d", v)
				}
				d.ReplicaLimit = v
			}
		case "user_config":
			if f.val.Kind != yaml.MappingNode {
				p.errorAt(f.val, fp, "must be a mapping, got %s", describe(f.val))
				continue
			}
			if v, ok := p.value(f.val, fp); ok {
				d.UserConfig = v
			}
		}
	}
	if !d.NumReplicas.Set {
		d.NumReplicas.Value = DefaultNumReplicas
	}

	// autoscaling_config last: with num_replicas: "auto" it overrides the "auto"
	// defaults field by field (Ray merges them the same way).
	f, hasAS := fs["autoscaling_config"]
	hasAS = hasAS && !isNull(f.val)
	switch {
	case hasAS:
		a := DefaultAutoscalingConfig()
		if d.NumReplicas.Auto {
			a = AutoAutoscalingConfig()
		}
		p.autoscaling(f.val, join(path, "autoscaling_config"), &a)
		d.AutoscalingConfig = &a
	case d.NumReplicas.Auto:
		a := AutoAutoscalingConfig()
		d.AutoscalingConfig = &a
	}
	if hasAS && d.NumReplicas.Set && !d.NumReplicas.Auto {
		p.errorf(join(path, "num_replicas"), "Manually setting num_replicas is not allowed when autoscaling_config is provided.")
	}
	return d
}

// bounded reads a number of seconds that must be >= 0 (or > 0 when positive).
func (p *parser) bounded(n *yaml.Node, path string, def float64, positive bool) float64 {
	v, ok := p.number(n, path)
	if !ok {
		return def
	}
	switch {
	case positive && v <= 0:
		p.errorAt(n, path, "must be > 0, got %s", n.Value)
	case !positive && v < 0:
		p.errorAt(n, path, "must be >= 0, got %s", n.Value)
	}
	return v
}

func (p *parser) numReplicas(n *yaml.Node, path string, nr *NumReplicas) {
	if isStringy(n) {
		if n.Value == "auto" {
			*nr = NumReplicas{Auto: true, Set: true}
			return
		}
		p.errorAt(n, path, "must be an integer or \"auto\", got %s", describe(n))
		return
	}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		p.errorAt(n, path, "must be an integer or \"auto\", got %s", describe(n))
		return
	}
	v, ok := p.integer(n, path)
	if !ok {
		return
	}
	if v < 1 {
		// Ray's bound: only the scale webhook may set 0.
		p.errorAt(n, path, "must be >= 1, got %d", v)
	}
	*nr = NumReplicas{Value: v, Set: true}
}

func (p *parser) command(n *yaml.Node, path string) []string {
	if isStringy(n) {
		p.errorAt(n, path, "must be a list of arguments, e.g. [\"python3\", \"app.py\"], got %s", describe(n))
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorAt(n, path, "must be a list of arguments, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errorAt(n, path, "must not be empty: give the program to run and its arguments")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		c = deref(c)
		ip := index(path, i)
		v, ok := p.scalarText(c, ip)
		if !ok {
			continue
		}
		if err := checkRefs(v); err != nil {
			p.errorAt(c, ip, "%v", err)
		}
		out = append(out, v)
	}
	if len(out) > 0 && out[0] == "" {
		p.errorAt(deref(n.Content[0]), index(path, 0), "the program must not be empty")
	}
	return out
}

func (p *parser) autoscaling(n *yaml.Node, path string, a *AutoscalingConfig) {
	fs, ok := p.fields(n, path, autoscalingSchema)
	if !ok {
		return
	}
	ptr := func(v float64) *float64 { return &v }
	// Ray's deprecated names first, so that the new names, when also given, win (Ray's
	// get_upscaling_factor prefers upscaling_factor).
	for _, name := range []string{"upscale_smoothing_factor", "downscale_smoothing_factor"} {
		f, ok := fs[name]
		if !ok || isNull(f.val) {
			continue
		}
		if v, ok := p.positive(f.val, join(path, name)); ok {
			if name == "upscale_smoothing_factor" {
				a.UpscalingFactor = ptr(v)
			} else {
				a.DownscalingFactor = ptr(v)
			}
		}
	}
	for _, name := range autoscalingSchema.known {
		f, ok := fs[name]
		if !ok {
			continue
		}
		fp := join(path, name)
		if isNull(f.val) {
			switch name {
			case "initial_replicas":
				a.InitialReplicas = nil
			case "downscale_to_zero_delay_s":
				a.DownscaleToZeroDelayS = nil
			case "upscaling_factor":
				if _, dep := fs["upscale_smoothing_factor"]; !dep {
					a.UpscalingFactor = nil
				}
			case "downscaling_factor":
				if _, dep := fs["downscale_smoothing_factor"]; !dep {
					a.DownscalingFactor = nil
				}
			}
			continue
		}
		switch name {
		case "min_replicas", "initial_replicas":
			if v, ok := p.integer(f.val, fp); ok {
				if v < 0 {
					p.errorAt(f.val, fp, "must be >= 0, got %d", v)
				}
				if name == "min_replicas" {
					a.MinReplicas = v
				} else {
					a.InitialReplicas = &v
				}
			}
		case "max_replicas":
			if v, ok := p.integer(f.val, fp); ok {
				if v < 1 {
					p.errorAt(f.val, fp, "must be >= 1, got %d", v)
				}
				a.MaxReplicas = v
			}
		case "target_ongoing_requests":
			if v, ok := p.positive(f.val, fp); ok {
				a.TargetOngoingRequests = v
			}
		case "look_back_period_s":
			if v, ok := p.positive(f.val, fp); ok {
				a.LookBackPeriodS = v
			}
		case "metrics_interval_s":
			if v, ok := p.positive(f.val, fp); ok {
				a.MetricsIntervalS = v
			}
		case "smoothing_factor":
			if v, ok := p.positive(f.val, fp); ok {
				a.SmoothingFactor = v
			}
		case "upscaling_factor":
			if v, ok := p.positive(f.val, fp); ok {
				a.UpscalingFactor = ptr(v)
			}
		case "downscaling_factor":
			if v, ok := p.positive(f.val, fp); ok {
				a.DownscalingFactor = ptr(v)
			}
		case "upscale_delay_s":
			a.UpscaleDelayS = p.bounded(f.val, fp, a.UpscaleDelayS, false)
		case "downscale_delay_s":
			a.DownscaleDelayS = p.bounded(f.val, fp, a.DownscaleDelayS, false)
		case "downscale_to_zero_delay_s":
			if v, ok := p.number(f.val, fp); ok {
				if v < 0 {
					p.errorAt(f.val, fp, "must be >= 0, got %s", f.val.Value)
				}
				a.DownscaleToZeroDelayS = ptr(v)
			}
		}
	}
	// Ray's cross-field rules, each reported at the field that breaks it.
	if a.MaxReplicas < a.MinReplicas {
		minPath, maxPath := join(path, "min_replicas"), join(path, "max_replicas")
		if p.has(minPath) && !p.has(maxPath) {
			p.errorf(minPath, "must be <= max_replicas (%d), got %d", a.MaxReplicas, a.MinReplicas)
		} else {
			p.errorf(maxPath, "must be >= min_replicas (%d), got %d", a.MinReplicas, a.MaxReplicas)
		}
	}
	if ir := a.InitialReplicas; ir != nil && *ir >= 0 {
		switch {
		case *ir < a.MinReplicas:
			p.errorf(join(path, "initial_replicas"), "must be >= min_replicas (%d), got %d", a.MinReplicas, *ir)
		case *ir > a.MaxReplicas:
			p.errorf(join(path, "initial_replicas"), "must be <= max_replicas (%d), got %d", a.MaxReplicas, *ir)
		}
	}
}

func (p *parser) positive(n *yaml.Node, path string) (float64, bool) {
	v, ok := p.number(n, path)
	if !ok {
		return 0, false
	}
	if v <= 0 {
		p.errorAt(n, path, "must be > 0, got %s", n.Value)
		return 0, false
	}
	return v, true
}
