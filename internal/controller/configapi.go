package controller

import "shoal/internal/config"

// The few calls into the config package beyond its types, in one place.

// parseStored parses the config saved in the store. Its paths are absolute already.
func parseStored(data []byte) (*config.Config, error) {
	cfg, _, err := config.Parse(data, "stored config", "/")
	return cfg, err
}

func version(app *config.Application, d *config.Deployment) string {
	return config.Version(app, d)
}

// ingressName names the application's ingress deployment ("" when it has none).
func ingressName(app *config.Application) string {
	if d := app.IngressDeployment(); d != nil {
		return d.Name
	}
	return ""
}

func defaultHTTPOptions() config.HTTPOptions { return config.DefaultHTTPOptions() }
