package config

import (
	"fmt"
	"strings"
)

// finish applies the rules that span fields, deployments and applications, and fills
// in what depends on more than one field (the import_path command, the merged env,
// the working directory). Every rule reports at the path of the field that breaks it.
func (p *parser) finish(cfg *Config) {
	names := map[string]string{}  // application name → path of its first use
	routes := map[string]string{} // route prefix → path of its first use
	for i := range cfg.Applications {
		app := &cfg.Applications[i]
		path := index("applications", i)
		if p.invalid[path] {
			continue
		}
		if first, dup := names[app.Name]; dup && app.Name != "" {
			p.errorf(join(path, "name"), "duplicate application name %q (also %s)", app.Name, first)
		} else {
			names[app.Name] = join(path, "name")
		}
		if first, dup := routes[app.RoutePrefix]; dup {
			p.errorf(join(path, "route_prefix"), "duplicate route_prefix %q (also %s); each application needs its own", app.RoutePrefix, first)
		} else {
			routes[app.RoutePrefix] = join(path, "route_prefix")
		}
		p.finishApp(app, path)
		if p.backend == BackendKubernetes {
			p.checkKubernetes(app, path)
		}
	}
}

func (p *parser) finishApp(app *Application, path string) {
	dpath := func(j int) string { return index(join(path, "deployments"), j) }

	names := map[string]string{}
	ingress := -1
	for j := range app.Deployments {
		d := &app.Deployments[j]
		if first, dup := names[d.Name]; dup && d.Name != "" {
			p.errorf(join(dpath(j), "name"), "duplicate deployment name %q in application %q (also %s)", d.Name, app.Name, first)
		} else {
			names[d.Name] = join(dpath(j), "name")
		}
		if d.Ingress {
			if ingress >= 0 {
				p.errorf(join(dpath(j), "ingress"), "only one deployment of an application may set ingress: true (also %s)", join(dpath(ingress), "ingress"))
			} else {
				ingress = j
			}
		}
	}
	if ingress < 0 {
		ingress = 0
	}

	workDir, deployed := p.defaultWorkDir(app, path)

	var autoscaled []string
	for j := range app.Deployments {
		d := &app.Deployments[j]
		dp := dpath(j)
		if p.invalid[dp] {
			continue
		}
		if len(d.Command) == 0 && !p.has(join(dp, "command")) {
			switch {
			case j == ingress && app.ImportPath != "" && checkImportPath(app.ImportPath) == "":
				// Ray runs import_path in Python; shoal runs it as an ASGI app.
				d.Command = []string{"python3", "-m", "uvicorn", uvicornTarget(app.ImportPath), "--host", "127.0.0.1", "--port", "${PORT}"}
				d.CommandFromImportPath = true
			case j == ingress && app.ImportPath == "":
				p.errorf(dp, "deployment %q needs a \"command\" (in Ray it is defined in Python code), or the application an \"import_path\" to run under uvicorn", d.Name)
			case j != ingress:
				p.errorf(dp, "deployment %q needs a \"command\" (in Ray it is defined in Python code)", d.Name)
			}
		}
		if d.WorkingDir == "" {
			d.WorkingDir = workDir
			if pd := deployed.Deployment(d.Name); pd != nil && pd.WorkingDir != "" {
				d.WorkingDir = pd.WorkingDir
			}
		}
		d.Env = mergeEnv(app.RuntimeEnv.EnvVars, d.Env)
		if d.Autoscaled() {
			autoscaled = append(autoscaled, fmt.Sprintf("%q", d.Name))
		}
		p.checkLimit(d, dp)
	}

	if app.ExternalScalerEnabled && len(autoscaled) > 0 {
		// Ray's wording (ServeApplicationSchema.validate_external_scaler_and_autoscaling).
		p.errorf(join(path, "external_scaler_enabled"), "external_scaler_enabled is set to True, but the following deployment(s) have autoscaling configured: %s. When using an external autoscaler, Serve's built-in autoscaling must be disabled for all deployments in the application.", strings.Join(autoscaled, ", "))
	}
}

// defaultWorkDir returns the working directory of the application's deployments that
// name none: runtime_env.working_dir when it is local; else, when the application is
// deployed already (see ParseOver), the directory its ingress deployment runs in, and
// that deployed application, whose deployments keep their own directories; else the
// base directory (the config file's). It warns about a remote runtime_env.working_dir,
// which is ignored.
func (p *parser) defaultWorkDir(app *Application, path string) (string, *Application) {
	wd := app.RuntimeEnv.WorkingDir
	if wd != "" && !isURI(wd) {
		return wd, nil
	}
	dir := p.baseDir
	deployed := p.deployed.Application(app.Name)
	if deployed != nil {
		if d := deployed.IngressDeployment(); d != nil && d.WorkingDir != "" {
			dir = d.WorkingDir
		}
	}
	if wd != "" {
		fp := join(join(path, "runtime_env"), "working_dir")
		where := "the replica runs in " + dir
		if deployed != nil {
			where = "the replicas keep the directory they run in"
		}
		p.warnAt(p.lineOf(fp), fp, "ignored: remote runtime_env URIs are not supported; %s", where)
	}
	return dir, deployed
}

// mergeEnv puts the application's runtime_env.env_vars under a deployment's env: the
// deployment's value wins.
func mergeEnv(app, dep map[string]string) map[string]string {
	if len(app) == 0 && len(dep) == 0 {
		return nil
	}
	out := make(map[string]string, len(app)+len(dep))
	for k, v := range app {
		out[k] = v
	}
	for k, v := range dep {
		out[k] = v
	}
	return out
}

// checkLimit enforces replica_limit >= every count of the deployment. The error goes
// where the user can fix it: at replica_limit when it was written, else at the count
// that is above the default limit.
func (p *parser) checkLimit(d *Deployment, dp string) {
	type count struct {
		path, name string
		n          int
	}
	var counts []count
	if d.NumReplicas.Set && !d.NumReplicas.Auto {
		counts = append(counts, count{join(dp, "num_replicas"), "num_replicas", d.NumReplicas.Value})
	}
	if a := d.AutoscalingConfig; a != nil {
		ap := join(dp, "autoscaling_config")
		at := func(field string) (string, string) {
			if p.has(join(ap, field)) || !d.NumReplicas.Auto {
				return join(ap, field), "autoscaling_config." + field
			}
			return join(dp, "num_replicas"), field + ` of num_replicas "auto"`
		}
		for _, c := range []struct {
			field string
			n     *int
		}{{"min_replicas", &a.MinReplicas}, {"max_replicas", &a.MaxReplicas}, {"initial_replicas", a.InitialReplicas}} {
			if c.n != nil {
				path, name := at(c.field)
				counts = append(counts, count{path, name, *c.n})
			}
		}
	}
	limitPath := join(dp, "replica_limit")
	for _, c := range counts {
		if c.n <= d.ReplicaLimit || d.ReplicaLimit < 1 {
			continue
		}
		if p.has(limitPath) {
			p.errorf(limitPath, "must be >= %s (%d), got %d", c.name, c.n, d.ReplicaLimit)
		} else {
			p.errorf(c.path, "must be <= replica_limit (%d), got %d", d.ReplicaLimit, c.n)
		}
	}
}
